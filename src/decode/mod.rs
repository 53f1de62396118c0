//! Decode: raw frames in, the facts the flow table needs out.
//!
//! One call per packet ([`decode`]) turns captured bytes into a [`Decoded`] view that
//! borrows the packet: MACs, VLAN, IP addresses, transport ports and flags, and the
//! transport payload. etherparse does the L3/L4 slicing in its "lax" mode so that
//! snaplen-truncated packets still yield their headers. Anything that cannot be decoded
//! comes back as a [`Malformed`] reason the pipeline counts; nothing here panics.
//!
//! Lengths: payload lengths come from the headers (so a snaplen cut still counts what
//! was on the wire), but no header is believed beyond the packet's wire length: an IPv4
//! total length, IPv6 payload length or UDP length claiming more is capped there and
//! the packet flagged ([`IpPacket::bogus_length`]); it is still decoded.
//!
//! Fragments are not reassembled. The first fragment of a datagram still has its
//! transport header decoded (with the part of the payload it carries); later ones come
//! back with their [`Fragment`] identity and no transport layer.

pub mod link;

use std::net::IpAddr;

use etherparse::err::{Layer, packet::SliceError};
use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, Ipv6ExtensionSlice, LaxNetSlice, LaxSlicedPacket,
    TcpSlice, TransportSlice, UdpSlice,
};
pub use link::LinkType;

/// TCP flag bits as in the TCP header's flags byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A decoded packet, borrowing the captured bytes.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    pub net: Net<'a>,
}

#[derive(Debug)]
pub enum Net<'a> {
    Ip(IpPacket<'a>),
    Arp(Arp),
    /// A frame that is not IP or ARP (LLDP, STP, 802.3 LLC, ...): counted, not decoded.
    Other(u16),
}

#[derive(Debug)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub proto: u8,
    pub ttl: u8,
    /// Set for a fragment (IPv4 MF flag or offset, IPv6 fragment header). There is no
    /// reassembly: the first fragment (offset 0) has its transport header decoded into
    /// `l4`, with the payload this fragment carries; later ones have [`L4::None`].
    pub fragment: Option<Fragment>,
    /// Bytes of IP payload (after extension headers) this packet carries: the declared
    /// length, capped at the wire length, not limited by snaplen.
    pub payload_len: u32,
    /// A length field (IPv4 total length, IPv6 payload length, UDP length) claimed more
    /// bytes than the wire length leaves; every length above was capped at the wire.
    pub bogus_length: bool,
    pub l4: L4<'a>,
}

/// Where a fragment belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Identification: 16 bits for IPv4, 32 for IPv6.
    pub id: u32,
    /// Offset of this fragment's data in the datagram, in 8-byte units.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

#[derive(Debug)]
pub enum L4<'a> {
    Tcp(Tcp<'a>),
    Udp {
        sport: u16,
        dport: u16,
        /// Payload bytes of this packet: declared by the headers (not limited by
        /// snaplen), capped at the wire length.
        payload_len: u32,
        /// Length of the datagram payload `payload` is the start of: `payload_len`,
        /// except in a first fragment, where later fragments carry the rest.
        msg_len: u32,
        payload: &'a [u8],
    },
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
        payload_len: u32,
        /// The captured message from its type byte (header included).
        msg: &'a [u8],
    },
    /// Later fragments, first fragments too short for their transport header, and
    /// protocols without ports (GRE, ESP, IGMP, ...).
    None,
}

#[derive(Debug)]
pub struct Tcp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Payload bytes: declared by the IP length, capped at the wire length.
    pub payload_len: u32,
    /// Captured payload (may be shorter than `payload_len` under a snaplen).
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub operation: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: std::net::Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: std::net::Ipv4Addr,
}

/// What was wrong with a packet. Counted per reason in capture statistics.
///
/// Every reason but two means the packet was not decoded (it counts towards no flow).
/// The two length reasons mark packets that are still accounted, with lengths capped
/// at what is known to be there: [`Malformed::BogusLength`] (a header length field
/// beyond the wire length; see [`IpPacket::bogus_length`]) and
/// [`Malformed::BogusCaptureLength`] (a capture record's wire length below its
/// captured length or beyond any real frame; marked by the capture source). A packet
/// counts once in the `malformed` total however many reasons it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    TruncatedLink,
    UnknownLinkFamily,
    TruncatedVlan,
    TruncatedIp,
    BadIpHeader,
    BadIpExtension,
    TruncatedTcp,
    BadTcpHeader,
    TruncatedUdp,
    TruncatedIcmp,
    TruncatedArp,
    UnsupportedArp,
    BogusLength,
    BogusCaptureLength,
    Other,
}

impl Malformed {
    pub const ALL: [Malformed; 15] = [
        Malformed::TruncatedLink,
        Malformed::UnknownLinkFamily,
        Malformed::TruncatedVlan,
        Malformed::TruncatedIp,
        Malformed::BadIpHeader,
        Malformed::BadIpExtension,
        Malformed::TruncatedTcp,
        Malformed::BadTcpHeader,
        Malformed::TruncatedUdp,
        Malformed::TruncatedIcmp,
        Malformed::TruncatedArp,
        Malformed::UnsupportedArp,
        Malformed::BogusLength,
        Malformed::BogusCaptureLength,
        Malformed::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::TruncatedLink => "truncated_link_header",
            Malformed::UnknownLinkFamily => "unknown_link_family",
            Malformed::TruncatedVlan => "truncated_vlan_header",
            Malformed::TruncatedIp => "truncated_ip_header",
            Malformed::BadIpHeader => "bad_ip_header",
            Malformed::BadIpExtension => "bad_ip_extension_header",
            Malformed::TruncatedTcp => "truncated_tcp_header",
            Malformed::BadTcpHeader => "bad_tcp_header",
            Malformed::TruncatedUdp => "truncated_udp_header",
            Malformed::TruncatedIcmp => "truncated_icmp_header",
            Malformed::TruncatedArp => "truncated_arp",
            Malformed::UnsupportedArp => "unsupported_arp",
            Malformed::BogusLength => "bogus_length",
            Malformed::BogusCaptureLength => "bogus_capture_length",
            Malformed::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The reason for etherparse's stop error `err` at `layer`: a length error (the bytes ran
/// out) is a truncation, anything else is a header whose contents are invalid (an IPv4
/// IHL below 5, an IP version other than 4 or 6, a TCP data offset below 5, ...).
fn stop_reason(err: &SliceError, layer: Layer) -> Malformed {
    let cut = matches!(err, SliceError::Len(_));
    match layer {
        Layer::VlanHeader | Layer::MacsecHeader | Layer::MacsecPacket => {
            if cut {
                Malformed::TruncatedVlan
            } else {
                Malformed::Other
            }
        }
        Layer::IpHeader | Layer::Ipv4Header | Layer::Ipv6Header => {
            if cut {
                Malformed::TruncatedIp
            } else {
                Malformed::BadIpHeader
            }
        }
        Layer::Ipv4Packet | Layer::Ipv6Packet => Malformed::BadIpHeader,
        Layer::IpAuthHeader
        | Layer::Ipv6ExtHeader
        | Layer::Ipv6HopByHopHeader
        | Layer::Ipv6DestOptionsHeader
        | Layer::Ipv6RouteHeader
        | Layer::Ipv6FragHeader => Malformed::BadIpExtension,
        Layer::TcpHeader => {
            if cut {
                Malformed::TruncatedTcp
            } else {
                Malformed::BadTcpHeader
            }
        }
        Layer::UdpHeader | Layer::UdpPayload => Malformed::TruncatedUdp,
        Layer::Icmpv4 | Layer::Icmpv6 => Malformed::TruncatedIcmp,
        Layer::Arp => Malformed::TruncatedArp,
        _ => Malformed::Other,
    }
}

/// Decodes one captured frame of link type `link` that was `wire_len` bytes on the wire
/// (`data` may be shorter: snaplen).
pub fn decode(link: LinkType, data: &[u8], wire_len: u32) -> Result<Decoded<'_>, Malformed> {
    let frame = link::strip(link, data).map_err(|e| match e {
        link::LinkError::Truncated => Malformed::TruncatedLink,
        link::LinkError::UnknownFamily => Malformed::UnknownLinkFamily,
    })?;
    // 802.3 frames carry a length, not an EtherType: LLC/SNAP (STP, CDP, ...).
    if frame.ether_type < 0x0600 {
        return Ok(Decoded {
            src_mac: frame.src_mac,
            dst_mac: frame.dst_mac,
            vlan: 0,
            net: Net::Other(frame.ether_type),
        });
    }
    let sliced = LaxSlicedPacket::from_ether_type(EtherType(frame.ether_type), frame.payload);
    let vlan = sliced.vlan_ids().first().map(|v| v.value()).unwrap_or(0);
    let base = |net| Decoded {
        src_mac: frame.src_mac,
        dst_mac: frame.dst_mac,
        vlan,
        net,
    };
    let net = match &sliced.net {
        None => {
            if let Some((err, layer)) = &sliced.stop_err {
                return Err(stop_reason(err, *layer));
            }
            let et = sliced
                .link
                .as_ref()
                .and_then(|l| match l {
                    etherparse::LinkSlice::EtherPayload(p) => Some(p.ether_type.0),
                    _ => None,
                })
                .unwrap_or(frame.ether_type);
            // VLAN-tagged non-IP frames report the inner type.
            let inner = sliced
                .link_exts
                .last()
                .and_then(|e| match e {
                    etherparse::LaxLinkExtSlice::Vlan(v) => Some(v.ether_type().0),
                    _ => None,
                })
                .unwrap_or(et);
            return Ok(base(Net::Other(inner)));
        }
        Some(n) => n,
    };
    match net {
        LaxNetSlice::Arp(arp) => {
            let sha = arp.sender_hw_addr();
            let spa = arp.sender_protocol_addr();
            let tha = arp.target_hw_addr();
            let tpa = arp.target_protocol_addr();
            if sha.len() != 6 || spa.len() != 4 || tha.len() != 6 || tpa.len() != 4 {
                return Err(Malformed::UnsupportedArp);
            }
            let ip4 = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(base(Net::Arp(Arp {
                operation: arp.operation().0,
                sender_mac: link::mac6(sha),
                sender_ip: ip4(spa),
                target_mac: link::mac6(tha),
                target_ip: ip4(tpa),
            })))
        }
        LaxNetSlice::Ipv4(_) | LaxNetSlice::Ipv6(_) => {
            // Addresses (as integers) of where the captured bytes end and where the
            // wire length says the frame ends. Length fields are believed up to the
            // wire: a header claiming more is capped there and the packet flagged.
            let data_start = data.as_ptr() as usize;
            let captured_end = data_start + data.len();
            let wire_end = data_start + (wire_len as usize).max(data.len());
            let (src, dst, ttl, declared_end, frag) = match net {
                LaxNetSlice::Ipv4(v4) => {
                    let h = v4.header();
                    let start = h.slice().as_ptr() as usize;
                    let total = h.total_len() as usize;
                    (
                        IpAddr::V4(h.source_addr()),
                        IpAddr::V4(h.destination_addr()),
                        h.ttl(),
                        // A total length below the header's own (offloaded packets carry
                        // 0) says nothing: the captured bytes count, as in etherparse.
                        (total >= h.slice().len()).then_some(start + total),
                        Fragment {
                            id: h.identification() as u32,
                            offset: h.fragments_offset().value(),
                            more: h.more_fragments(),
                        },
                    )
                }
                LaxNetSlice::Ipv6(v6) => {
                    let h = v6.header();
                    let start = h.slice().as_ptr() as usize;
                    let plen = h.payload_length() as usize;
                    let frag = v6
                        .extensions()
                        .clone()
                        .into_iter()
                        .find_map(|e| match e {
                            Ipv6ExtensionSlice::Fragment(f) => Some(Fragment {
                                id: f.identification(),
                                offset: f.fragment_offset().value(),
                                more: f.more_fragments(),
                            }),
                            _ => None,
                        })
                        // etherparse only reports fragmentation after reading a
                        // fragment header; should that ever not hold, the packet is
                        // a fragment whose transport header is not known to be here.
                        .unwrap_or(Fragment {
                            id: 0,
                            offset: u16::MAX,
                            more: false,
                        });
                    (
                        IpAddr::V6(h.source_addr()),
                        IpAddr::V6(h.destination_addr()),
                        h.hop_limit(),
                        // Payload length 0: a jumbogram or an offloaded packet.
                        (plen > 0).then_some(start + 40 + plen),
                        frag,
                    )
                }
                LaxNetSlice::Arp(_) => unreachable!("handled above"),
            };
            let payload = match net {
                LaxNetSlice::Ipv4(v4) => v4.payload(),
                LaxNetSlice::Ipv6(v6) => v6.payload(),
                LaxNetSlice::Arp(_) => unreachable!("handled above"),
            };
            let mut bogus_length = declared_end.is_some_and(|e| e > wire_end);
            let ip_end = declared_end.map_or(captured_end, |e| e.min(wire_end));
            // Bytes the (capped) IP length says follow a given point: lets us count
            // payload beyond a snaplen. Saturates for lying headers.
            let declared_after = |p: &[u8]| -> u32 {
                let at = p.as_ptr() as usize;
                ip_end.saturating_sub(at) as u32
            };
            let proto = payload.ip_number.0;
            let fragment = payload.fragmented.then_some(frag);
            let first_fragment = fragment.is_some_and(|f| f.offset == 0);
            // etherparse stops at the IP layer of a fragment; the first one still
            // carries the transport header, so it is sliced here.
            let first_l4;
            let transport = match fragment {
                None => sliced.transport.as_ref(),
                Some(_) if first_fragment && sliced.stop_err.is_none() => {
                    first_l4 = first_fragment_transport(proto, payload.payload);
                    first_l4.as_ref()
                }
                Some(_) => None,
            };
            let l4 = match transport {
                Some(TransportSlice::Tcp(t)) => {
                    let p = t.payload();
                    let hdr = t.header_slice();
                    let declared = declared_after(hdr).saturating_sub(hdr.len() as u32);
                    L4::Tcp(Tcp {
                        sport: t.source_port(),
                        dport: t.destination_port(),
                        seq: t.sequence_number(),
                        ack: t.acknowledgment_number(),
                        flags: hdr[13],
                        window: t.window_size(),
                        payload_len: declared.max(p.len() as u32),
                        payload: p,
                    })
                }
                Some(TransportSlice::Udp(u)) => {
                    let p = u.payload();
                    // What the IP length leaves for the datagram, and what the UDP
                    // length claims. In a first fragment the UDP length is the whole
                    // datagram's, most of it in later fragments.
                    let room = declared_after(u.slice());
                    let udp_len = u.length() as u32;
                    let here = room.saturating_sub(8).max(p.len() as u32);
                    let (payload_len, msg_len) = if first_fragment {
                        (here, udp_len.saturating_sub(8).max(here))
                    } else {
                        if udp_len > room {
                            bogus_length = true;
                        }
                        let n = udp_len.min(room).saturating_sub(8).max(p.len() as u32);
                        (n, n)
                    };
                    L4::Udp {
                        sport: u.source_port(),
                        dport: u.destination_port(),
                        payload_len,
                        msg_len,
                        payload: p,
                    }
                }
                Some(TransportSlice::Icmpv4(i)) => L4::Icmp {
                    v6: false,
                    icmp_type: i.type_u8(),
                    code: i.code_u8(),
                    payload_len: declared_after(i.slice()).saturating_sub(8),
                    msg: i.slice(),
                },
                Some(TransportSlice::Icmpv6(i)) => L4::Icmp {
                    v6: true,
                    icmp_type: i.type_u8(),
                    code: i.code_u8(),
                    payload_len: declared_after(i.slice()).saturating_sub(8),
                    msg: i.slice(),
                },
                Some(TransportSlice::Igmp(_)) | None => {
                    if fragment.is_none()
                        && let Some((err, layer)) = &sliced.stop_err
                    {
                        return Err(stop_reason(err, *layer));
                    }
                    L4::None
                }
            };
            Ok(base(Net::Ip(IpPacket {
                src,
                dst,
                proto,
                ttl,
                fragment,
                payload_len: declared_after(payload.payload).max(payload.payload.len() as u32),
                bogus_length,
                l4,
            })))
        }
    }
}

/// The transport header at the start of a first fragment's payload, if it is whole.
fn first_fragment_transport(proto: u8, bytes: &[u8]) -> Option<TransportSlice<'_>> {
    match proto {
        6 => TcpSlice::from_slice(bytes).ok().map(TransportSlice::Tcp),
        17 => UdpSlice::from_slice_lax(bytes)
            .ok()
            .map(TransportSlice::Udp),
        1 => Icmpv4Slice::from_slice(bytes)
            .ok()
            .map(TransportSlice::Icmpv4),
        58 => Icmpv6Slice::from_slice(bytes)
            .ok()
            .map(TransportSlice::Icmpv6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// Decodes a frame captured whole (wire length = captured length).
    fn whole(link: LinkType, data: &[u8]) -> Result<Decoded<'_>, Malformed> {
        decode(link, data, data.len() as u32)
    }

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .ipv4([192, 168, 1, 10], [93, 184, 216, 34], 64)
            .tcp(50000, 443, 1000, 65535)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn decodes_tcp_over_ethernet() {
        let f = tcp_frame(b"hello");
        let d = whole(LinkType::Ethernet, &f).unwrap();
        assert_eq!(d.src_mac, Some([1, 2, 3, 4, 5, 6]));
        let Net::Ip(ip) = d.net else { panic!("not ip") };
        assert_eq!(ip.src.to_string(), "192.168.1.10");
        assert_eq!(ip.proto, 6);
        let L4::Tcp(t) = ip.l4 else { panic!("not tcp") };
        assert_eq!((t.sport, t.dport, t.seq), (50000, 443, 1000));
        assert_eq!(t.flags & tcp_flags::SYN, tcp_flags::SYN);
        assert_eq!(t.payload, b"hello");
        assert_eq!(t.payload_len, 5);
    }

    #[test]
    fn snaplen_truncated_payload_keeps_declared_length() {
        let f = tcp_frame(&[0u8; 500]);
        let d = decode(LinkType::Ethernet, &f[..14 + 20 + 20 + 10], f.len() as u32).unwrap();
        let Net::Ip(ip) = d.net else { panic!("not ip") };
        let L4::Tcp(t) = ip.l4 else { panic!("not tcp") };
        assert_eq!(t.payload.len(), 10);
        assert_eq!(t.payload_len, 500);
    }

    #[test]
    fn vlan_and_qinq() {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .double_vlan(
                etherparse::VlanId::try_new(100).unwrap(),
                etherparse::VlanId::try_new(7).unwrap(),
            )
            .ipv6([0xfd; 16], [0xfe; 16], 5)
            .udp(5353, 5353);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        let d = whole(LinkType::Ethernet, &v).unwrap();
        assert_eq!(d.vlan, 100);
        let Net::Ip(ip) = d.net else { panic!("not ip") };
        assert!(matches!(
            ip.l4,
            L4::Udp {
                sport: 5353,
                dport: 5353,
                ..
            }
        ));
    }

    #[test]
    fn truncations_never_panic_and_give_reasons() {
        let f = tcp_frame(b"hello world");
        let mut reasons = std::collections::BTreeSet::new();
        for n in 0..f.len() {
            if let Err(r) = whole(LinkType::Ethernet, &f[..n]) {
                reasons.insert(r);
            }
        }
        assert!(reasons.contains(&Malformed::TruncatedLink));
        assert!(reasons.contains(&Malformed::TruncatedIp));
        assert!(reasons.contains(&Malformed::TruncatedTcp));
    }

    /// Header fields with impossible values are "bad", not "truncated": the bytes are
    /// all there, their contents are wrong.
    #[test]
    fn invalid_header_values_are_bad_not_truncated() {
        let mut f = tcp_frame(b"hello");
        f[14 + 20 + 12] = 2 << 4; // TCP data offset 2 (< 5)
        assert_eq!(
            whole(LinkType::Ethernet, &f).unwrap_err(),
            Malformed::BadTcpHeader
        );
        let mut f = tcp_frame(b"hello");
        f[14] = 0x43; // IPv4 IHL 3 (< 5)
        assert_eq!(
            whole(LinkType::Ethernet, &f).unwrap_err(),
            Malformed::BadIpHeader
        );
        let mut f = tcp_frame(b"hello");
        f[14] = 0x55; // IP version 5 behind EtherType IPv4
        assert_eq!(
            whole(LinkType::Ethernet, &f).unwrap_err(),
            Malformed::BadIpHeader
        );
        // The same headers cut short are truncations.
        let f = tcp_frame(b"hello");
        assert_eq!(
            whole(LinkType::Ethernet, &f[..14 + 20 + 12]).unwrap_err(),
            Malformed::TruncatedTcp
        );
        assert_eq!(
            whole(LinkType::Ethernet, &f[..14 + 12]).unwrap_err(),
            Malformed::TruncatedIp
        );
    }

    fn ip_of(d: Decoded<'_>) -> IpPacket<'_> {
        match d.net {
            Net::Ip(ip) => ip,
            other => panic!("not ip: {other:?}"),
        }
    }

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .ipv4([192, 168, 1, 10], [8, 8, 8, 8], 64)
            .udp(5000, 53);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn length_fields_are_capped_at_the_wire_length() {
        // UDP length 60000 in a 46-byte frame.
        let mut f = udp_frame(b"abcd");
        f[38..40].copy_from_slice(&60_000u16.to_be_bytes());
        let ip = ip_of(whole(LinkType::Ethernet, &f).unwrap());
        assert!(ip.bogus_length);
        assert!(matches!(
            ip.l4,
            L4::Udp {
                payload_len: 4,
                msg_len: 4,
                ..
            }
        ));
        // IPv4 total length 60000 in a 59-byte frame.
        let mut f = tcp_frame(b"abcde");
        f[16..18].copy_from_slice(&60_000u16.to_be_bytes());
        let ip = ip_of(whole(LinkType::Ethernet, &f).unwrap());
        assert!(ip.bogus_length);
        assert_eq!(ip.payload_len, 25);
        let L4::Tcp(t) = ip.l4 else { panic!("not tcp") };
        assert_eq!(t.payload_len, 5);
        // Cut by a snaplen, the wire length vouches for the declared lengths.
        let f = udp_frame(&[7u8; 500]);
        let ip = ip_of(decode(LinkType::Ethernet, &f[..60], f.len() as u32).unwrap());
        assert!(!ip.bogus_length);
        assert!(matches!(
            ip.l4,
            L4::Udp {
                payload_len: 500,
                ..
            }
        ));
        // The same cut with a wire length no larger than what was captured: the
        // headers claim more than there was.
        let ip = ip_of(decode(LinkType::Ethernet, &f[..60], 60).unwrap());
        assert!(ip.bogus_length);
        assert!(matches!(
            ip.l4,
            L4::Udp {
                payload_len: 18,
                ..
            }
        ));
        // Ethernet padding after a short datagram is not payload, nor an error.
        let mut f = udp_frame(b"x");
        f.resize(60, 0);
        let ip = ip_of(whole(LinkType::Ethernet, &f).unwrap());
        assert!(!ip.bogus_length);
        assert!(matches!(ip.l4, L4::Udp { payload_len: 1, .. }));
    }

    /// An IPv4 fragment of a UDP datagram: `bytes` at byte `offset` of its payload.
    fn v4_fragment(id: u16, offset: usize, more: bool, bytes: &[u8]) -> Vec<u8> {
        let mut ip = etherparse::Ipv4Header::new(
            bytes.len() as u16,
            64,
            etherparse::IpNumber::UDP,
            [8, 8, 8, 8],
            [192, 168, 1, 10],
        )
        .unwrap();
        ip.identification = id;
        ip.more_fragments = more;
        ip.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&[0x08, 0x00]);
        ip.write(&mut v).unwrap();
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn first_fragments_carry_their_transport_header() {
        let payload: Vec<u8> = (0..200u8).collect();
        let h = etherparse::UdpHeader::without_ipv4_checksum(53, 5000, payload.len()).unwrap();
        let mut dgram = h.to_bytes().to_vec();
        dgram.extend_from_slice(&payload);

        let f = v4_fragment(77, 0, true, &dgram[..104]);
        let ip = ip_of(whole(LinkType::Ethernet, &f).unwrap());
        assert_eq!(
            ip.fragment,
            Some(Fragment {
                id: 77,
                offset: 0,
                more: true
            })
        );
        assert!(
            !ip.bogus_length,
            "a UDP length beyond a fragment is expected"
        );
        let L4::Udp {
            sport,
            dport,
            payload_len,
            msg_len,
            payload,
        } = ip.l4
        else {
            panic!("no udp: {:?}", ip.l4)
        };
        assert_eq!((sport, dport, payload_len, msg_len), (53, 5000, 96, 200));
        assert_eq!(payload, &payload_of(&dgram)[..96]);

        let f = v4_fragment(77, 104, false, &dgram[104..]);
        let ip = ip_of(whole(LinkType::Ethernet, &f).unwrap());
        assert_eq!(
            ip.fragment,
            Some(Fragment {
                id: 77,
                offset: 13,
                more: false
            })
        );
        assert!(matches!(ip.l4, L4::None));
        assert_eq!(ip.payload_len, 104);

        // A first fragment too short for its transport header: no L4, no error.
        let f = v4_fragment(78, 0, true, &dgram[..6]);
        let ip = ip_of(whole(LinkType::Ethernet, &f).unwrap());
        assert!(matches!(ip.l4, L4::None));
        assert!(ip.fragment.is_some());
    }

    fn payload_of(dgram: &[u8]) -> &[u8] {
        &dgram[8..]
    }

    #[test]
    fn ipv6_fragment_header_is_read() {
        let h = etherparse::UdpHeader::without_ipv4_checksum(53, 5000, 100).unwrap();
        let mut dgram = h.to_bytes().to_vec();
        dgram.extend_from_slice(&[1u8; 100]);
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&[0x86, 0xdd]);
        etherparse::Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: 8 + 48,
            next_header: etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER,
            hop_limit: 64,
            source: [0xfd; 16],
            destination: [0xfe; 16],
        }
        .write(&mut v)
        .unwrap();
        let frag = |offset: u16, more: bool| {
            etherparse::Ipv6FragmentHeader::new(
                etherparse::IpNumber::UDP,
                etherparse::IpFragOffset::try_new(offset).unwrap(),
                more,
                0xdead_beef,
            )
            .to_bytes()
        };
        let mut first = v.clone();
        first.extend_from_slice(&frag(0, true));
        first.extend_from_slice(&dgram[..48]);
        let ip = ip_of(whole(LinkType::Ethernet, &first).unwrap());
        assert_eq!(
            ip.fragment,
            Some(Fragment {
                id: 0xdead_beef,
                offset: 0,
                more: true
            })
        );
        assert!(matches!(
            ip.l4,
            L4::Udp {
                sport: 53,
                payload_len: 40,
                msg_len: 100,
                ..
            }
        ));
        let mut later = v;
        later.extend_from_slice(&frag(6, false));
        later.extend_from_slice(&dgram[48..96]);
        let ip = ip_of(whole(LinkType::Ethernet, &later).unwrap());
        assert_eq!(
            ip.fragment.map(|f| (f.id, f.offset)),
            Some((0xdead_beef, 6))
        );
        assert!(matches!(ip.l4, L4::None));
        assert_eq!(ip.payload_len, 48);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..300usize {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            for link in [
                LinkType::Ethernet,
                LinkType::RawIp,
                LinkType::LinuxSll,
                LinkType::Null,
            ] {
                let _ = whole(link, &buf);
            }
            // Make it look like IPv4 so the deeper layers get exercised.
            if len > 20 {
                buf[0] = 0x45;
                let _ = whole(LinkType::RawIp, &buf);
            }
        }
    }

    #[test]
    fn arp_request() {
        let arp = etherparse::ArpPacket::new(
            etherparse::ArpHardwareId::ETHERNET,
            etherparse::EtherType::IPV4,
            etherparse::ArpOperation::REQUEST,
            &[1, 2, 3, 4, 5, 6],
            &[192, 168, 1, 10],
            &[0; 6],
            &[192, 168, 1, 1],
        )
        .unwrap();
        let mut v = vec![0xff; 6];
        v.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        v.extend_from_slice(&[0x08, 0x06]);
        v.extend_from_slice(&arp.to_bytes());
        let d = whole(LinkType::Ethernet, &v).unwrap();
        let Net::Arp(a) = d.net else {
            panic!("not arp")
        };
        assert_eq!(a.operation, 1);
        assert_eq!(a.sender_ip.to_string(), "192.168.1.10");
        assert_eq!(a.target_ip.to_string(), "192.168.1.1");
    }
}
