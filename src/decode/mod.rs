//! Decode: raw frames in, the facts the flow table needs out.
//!
//! One call per packet ([`decode`]) turns captured bytes into a [`Decoded`] view that
//! borrows the packet: MACs, VLAN, IP addresses, transport ports and flags, and the
//! transport payload. etherparse does the L3/L4 slicing in its "lax" mode so that
//! snaplen-truncated packets still yield their headers. Anything that cannot be decoded
//! comes back as a [`Malformed`] reason the pipeline counts; nothing here panics.

pub mod link;

use std::net::IpAddr;

use etherparse::err::{Layer, packet::SliceError};
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
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
    /// IPv4 fragment or IPv6 fragment header present: no transport header decoded.
    pub fragment: bool,
    pub l4: L4<'a>,
}

#[derive(Debug)]
pub enum L4<'a> {
    Tcp(Tcp<'a>),
    Udp {
        sport: u16,
        dport: u16,
        /// Payload length declared by the headers (not limited by snaplen).
        payload_len: u32,
        payload: &'a [u8],
    },
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
        payload_len: u32,
    },
    /// Fragments and protocols without ports (GRE, ESP, IGMP, ...).
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

/// Why a packet was not decoded. Counted per reason in capture statistics.
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
    Other,
}

impl Malformed {
    pub const ALL: [Malformed; 13] = [
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

/// Decodes one captured frame of link type `link`.
pub fn decode(link: LinkType, data: &[u8]) -> Result<Decoded<'_>, Malformed> {
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
            let (src, dst, ttl, declared_end) = match net {
                LaxNetSlice::Ipv4(v4) => {
                    let h = v4.header();
                    let start = h.slice().as_ptr() as usize;
                    (
                        IpAddr::V4(h.source_addr()),
                        IpAddr::V4(h.destination_addr()),
                        h.ttl(),
                        start + h.total_len() as usize,
                    )
                }
                LaxNetSlice::Ipv6(v6) => {
                    let h = v6.header();
                    let start = h.slice().as_ptr() as usize;
                    (
                        IpAddr::V6(h.source_addr()),
                        IpAddr::V6(h.destination_addr()),
                        h.hop_limit(),
                        start + 40 + h.payload_length() as usize,
                    )
                }
                LaxNetSlice::Arp(_) => unreachable!("handled above"),
            };
            let payload = match net {
                LaxNetSlice::Ipv4(v4) => v4.payload(),
                LaxNetSlice::Ipv6(v6) => v6.payload(),
                LaxNetSlice::Arp(_) => unreachable!("handled above"),
            };
            // Bytes the IP header says follow a given point: lets us count payload
            // beyond a snaplen. Saturates for lying headers.
            let declared_after = |p: &[u8]| -> u32 {
                let at = p.as_ptr() as usize;
                declared_end.saturating_sub(at) as u32
            };
            let proto = payload.ip_number.0;
            let fragment = payload.fragmented;
            let l4 = if fragment {
                L4::None
            } else {
                match &sliced.transport {
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
                        let declared = (u.length() as u32).saturating_sub(8);
                        L4::Udp {
                            sport: u.source_port(),
                            dport: u.destination_port(),
                            payload_len: declared.max(p.len() as u32),
                            payload: p,
                        }
                    }
                    Some(TransportSlice::Icmpv4(i)) => L4::Icmp {
                        v6: false,
                        icmp_type: i.type_u8(),
                        code: i.code_u8(),
                        payload_len: declared_after(i.slice()).saturating_sub(8),
                    },
                    Some(TransportSlice::Icmpv6(i)) => L4::Icmp {
                        v6: true,
                        icmp_type: i.type_u8(),
                        code: i.code_u8(),
                        payload_len: declared_after(i.slice()).saturating_sub(8),
                    },
                    Some(TransportSlice::Igmp(_)) | None => {
                        if let Some((err, layer)) = &sliced.stop_err {
                            return Err(stop_reason(err, *layer));
                        }
                        L4::None
                    }
                }
            };
            Ok(base(Net::Ip(IpPacket {
                src,
                dst,
                proto,
                ttl,
                fragment,
                l4,
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

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
        let d = decode(LinkType::Ethernet, &f).unwrap();
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
        let d = decode(LinkType::Ethernet, &f[..14 + 20 + 20 + 10]).unwrap();
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
        let d = decode(LinkType::Ethernet, &v).unwrap();
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
            if let Err(r) = decode(LinkType::Ethernet, &f[..n]) {
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
            decode(LinkType::Ethernet, &f).unwrap_err(),
            Malformed::BadTcpHeader
        );
        let mut f = tcp_frame(b"hello");
        f[14] = 0x43; // IPv4 IHL 3 (< 5)
        assert_eq!(
            decode(LinkType::Ethernet, &f).unwrap_err(),
            Malformed::BadIpHeader
        );
        let mut f = tcp_frame(b"hello");
        f[14] = 0x55; // IP version 5 behind EtherType IPv4
        assert_eq!(
            decode(LinkType::Ethernet, &f).unwrap_err(),
            Malformed::BadIpHeader
        );
        // The same headers cut short are truncations.
        let f = tcp_frame(b"hello");
        assert_eq!(
            decode(LinkType::Ethernet, &f[..14 + 20 + 12]).unwrap_err(),
            Malformed::TruncatedTcp
        );
        assert_eq!(
            decode(LinkType::Ethernet, &f[..14 + 12]).unwrap_err(),
            Malformed::TruncatedIp
        );
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
                let _ = decode(link, &buf);
            }
            // Make it look like IPv4 so the deeper layers get exercised.
            if len > 20 {
                buf[0] = 0x45;
                let _ = decode(LinkType::RawIp, &buf);
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
        let d = decode(LinkType::Ethernet, &v).unwrap();
        let Net::Arp(a) = d.net else {
            panic!("not arp")
        };
        assert_eq!(a.operation, 1);
        assert_eq!(a.sender_ip.to_string(), "192.168.1.10");
        assert_eq!(a.target_ip.to_string(), "192.168.1.1");
    }
}
