//! Test support: craft packets with etherparse and write them as a pcap file, so the
//! tests describe their traffic in code instead of shipping binary captures.
#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use etherparse::PacketBuilder;

pub const CLIENT_MAC: [u8; 6] = [0xb8, 0x27, 0xeb, 0x11, 0x22, 0x33]; // Raspberry Pi Foundation OUI
pub const ROUTER_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0x44, 0x55, 0x66]; // Intel OUI
pub const PHONE_MAC: [u8; 6] = [0x7a, 0x11, 0x22, 0x33, 0x44, 0x55]; // locally administered

/// A capture being built: packets with timestamps (µs).
#[derive(Default)]
pub struct Pcap {
    pub packets: Vec<(i64, Vec<u8>)>,
}

pub const T0: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

impl Pcap {
    pub fn push(&mut self, ts: i64, frame: Vec<u8>) {
        self.packets.push((ts, frame));
    }

    /// Writes a classic little-endian microsecond pcap with link type Ethernet.
    pub fn write(&self, path: &Path) {
        self.write_link(path, 1, 65535, None)
    }

    /// Writes with a given link type, snaplen, and optional per-packet truncation.
    pub fn write_link(&self, path: &Path, linktype: u32, snaplen: u32, cut: Option<usize>) {
        self.write_records(path, linktype, snaplen, cut, &[])
    }

    /// Writes a classic Ethernet pcap whose records `claimed` (packet index, wire length)
    /// claim another wire length than their bytes: as fuzzed or broken files do.
    pub fn write_claiming(&self, path: &Path, claimed: &[(usize, u32)]) {
        self.write_records(path, 1, 65535, None, claimed)
    }

    fn write_records(
        &self,
        path: &Path,
        linktype: u32,
        snaplen: u32,
        cut: Option<usize>,
        claimed: &[(usize, u32)],
    ) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        f.write_all(&0xa1b2c3d4u32.to_le_bytes()).unwrap();
        f.write_all(&2u16.to_le_bytes()).unwrap();
        f.write_all(&4u16.to_le_bytes()).unwrap();
        f.write_all(&0i32.to_le_bytes()).unwrap();
        f.write_all(&0u32.to_le_bytes()).unwrap();
        f.write_all(&snaplen.to_le_bytes()).unwrap();
        f.write_all(&linktype.to_le_bytes()).unwrap();
        for (i, (ts, data)) in self.packets.iter().enumerate() {
            let caplen = cut.map_or(data.len(), |c| c.min(data.len()));
            let len = claimed
                .iter()
                .find(|c| c.0 == i)
                .map_or(data.len() as u32, |c| c.1);
            f.write_all(&((ts / 1_000_000) as u32).to_le_bytes())
                .unwrap();
            f.write_all(&((ts % 1_000_000) as u32).to_le_bytes())
                .unwrap();
            f.write_all(&(caplen as u32).to_le_bytes()).unwrap();
            f.write_all(&len.to_le_bytes()).unwrap();
            f.write_all(&data[..caplen]).unwrap();
        }
        f.flush().unwrap();
    }
}

fn build(b: PacketBuilder_, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    match b {
        PacketBuilder_::Tcp(b) => b.write(&mut v, payload).unwrap(),
        PacketBuilder_::Udp(b) => b.write(&mut v, payload).unwrap(),
        PacketBuilder_::Icmp(b) => b.write(&mut v, payload).unwrap(),
    }
    v
}

enum PacketBuilder_ {
    Tcp(etherparse::PacketBuilderStep<etherparse::TcpHeader>),
    Udp(etherparse::PacketBuilderStep<etherparse::UdpHeader>),
    Icmp(etherparse::PacketBuilderStep<etherparse::Icmpv4Header>),
}

/// TCP flag set for [`tcp`].
#[derive(Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
    psh: false,
};
pub const SYNACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const PSHACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: true,
};
pub const FINACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
    psh: false,
};
pub const RSTACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: true,
    psh: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
    psh: false,
};

#[allow(clippy::too_many_arguments)]
pub fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 64240);
    if flags.syn {
        b = b.syn();
    }
    if flags.ack {
        b = b.ack(ack);
    }
    if flags.fin {
        b = b.fin();
    }
    if flags.rst {
        b = b.rst();
    }
    if flags.psh {
        b = b.psh();
    }
    build(PacketBuilder_::Tcp(b), payload)
}

pub fn udp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    build(PacketBuilder_::Udp(b), payload)
}

pub fn icmp_echo(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    reply: bool,
    id: u16,
    seq: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac).ipv4(src, dst, 64);
    let b = if reply {
        b.icmpv4_echo_reply(id, seq)
    } else {
        b.icmpv4_echo_request(id, seq)
    };
    build(PacketBuilder_::Icmp(b), &[0u8; 32])
}

/// An ARP frame (request when `target_mac` is all zeros, else a reply).
pub fn arp(
    sender_mac: [u8; 6],
    sender_ip: [u8; 4],
    target_mac: [u8; 6],
    target_ip: [u8; 4],
) -> Vec<u8> {
    let reply = target_mac != [0; 6];
    let mut v = Vec::new();
    v.extend_from_slice(if reply { &target_mac } else { &[0xff; 6] });
    v.extend_from_slice(&sender_mac);
    v.extend_from_slice(&[
        0x08,
        0x06,
        0,
        1,
        0x08,
        0,
        6,
        4,
        0,
        if reply { 2 } else { 1 },
    ]);
    v.extend_from_slice(&sender_mac);
    v.extend_from_slice(&sender_ip);
    v.extend_from_slice(&target_mac);
    v.extend_from_slice(&target_ip);
    v
}

/// A DNS message with one question and A answers (empty `answers`: a query).
pub fn dns_message(
    id: u16,
    response: bool,
    rcode: u8,
    name: &str,
    qtype: u16,
    answers: &[(Ipv4Addr, u32)],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = if response {
        0x8180 | rcode as u16
    } else {
        0x0100
    };
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    for (ip, ttl) in answers {
        v.extend_from_slice(&[0xc0, 0x0c]);
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&4u16.to_be_bytes());
        v.extend_from_slice(&ip.octets());
    }
    v
}

/// A DHCP message (BOOTP + options) from `client_mac`.
#[allow(clippy::too_many_arguments)]
pub fn dhcp_message(
    op: u8,
    msg_type: u8,
    xid: u32,
    client_mac: [u8; 6],
    yiaddr: [u8; 4],
    hostname: Option<&str>,
    vendor: Option<&str>,
    params: &[u8],
) -> Vec<u8> {
    let mut v = vec![op, 1, 6, 0];
    v.extend_from_slice(&xid.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0x80, 0]);
    v.extend_from_slice(&[0; 4]); // ciaddr
    v.extend_from_slice(&yiaddr);
    v.extend_from_slice(&[0; 4]); // siaddr
    v.extend_from_slice(&[0; 4]); // giaddr
    v.extend_from_slice(&client_mac);
    v.extend_from_slice(&[0; 10]);
    v.extend_from_slice(&[0; 64]); // sname
    v.extend_from_slice(&[0; 128]); // file
    v.extend_from_slice(&[99, 130, 83, 99]);
    v.extend_from_slice(&[53, 1, msg_type]);
    if let Some(h) = hostname {
        v.push(12);
        v.push(h.len() as u8);
        v.extend_from_slice(h.as_bytes());
    }
    if let Some(vc) = vendor {
        v.push(60);
        v.push(vc.len() as u8);
        v.extend_from_slice(vc.as_bytes());
    }
    if !params.is_empty() {
        v.push(55);
        v.push(params.len() as u8);
        v.extend_from_slice(params);
    }
    if op == 2 {
        v.extend_from_slice(&[54, 4, 192, 168, 1, 1]);
        v.extend_from_slice(&[51, 4, 0, 0, 0x0e, 0x10]);
        v.extend_from_slice(&[3, 4, 192, 168, 1, 1]);
        v.extend_from_slice(&[6, 4, 192, 168, 1, 1]);
    }
    v.push(255);
    v
}

/// A complete HTTP exchange between `client` and `server` (port 80) through the router:
/// handshake, GET request, a 200 response carrying `body`, FIN/FIN and the last ACK.
pub fn http_exchange(
    p: &mut Pcap,
    t: i64,
    (mac, client): ([u8; 6], [u8; 4]),
    sport: u16,
    server: [u8; 4],
    body: &[u8],
) {
    let req = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\n\r\n";
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    let (c, s, ip, srv) = (mac, ROUTER_MAC, client, server);
    p.push(t, tcp(c, s, ip, sport, srv, 80, 100, 0, SYN, &[]));
    p.push(
        t + 1000,
        tcp(s, c, srv, 80, ip, sport, 500, 101, SYNACK, &[]),
    );
    p.push(t + 2000, tcp(c, s, ip, sport, srv, 80, 101, 501, ACK, &[]));
    p.push(
        t + 3000,
        tcp(c, s, ip, sport, srv, 80, 101, 501, PSHACK, req),
    );
    let r = 101 + req.len() as u32;
    p.push(
        t + 4000,
        tcp(s, c, srv, 80, ip, sport, 501, r, PSHACK, &resp),
    );
    let a = 501 + resp.len() as u32;
    p.push(t + 5000, tcp(c, s, ip, sport, srv, 80, r, a, FINACK, &[]));
    p.push(
        t + 6000,
        tcp(s, c, srv, 80, ip, sport, a, r + 1, FINACK, &[]),
    );
    p.push(
        t + 7000,
        tcp(c, s, ip, sport, srv, 80, r + 1, a + 1, ACK, &[]),
    );
}

/// A UDP datagram (header + `payload`, checksum left 0) as the bytes IP carries.
pub fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let h = etherparse::UdpHeader::without_ipv4_checksum(sport, dport, payload.len()).unwrap();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// An IPv4 fragment in an Ethernet frame: `bytes` of the datagram `id` of protocol
/// `proto`, starting at byte `offset` of its payload (a multiple of 8), `more` when
/// fragments follow.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_fragment(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    offset: usize,
    more: bool,
    bytes: &[u8],
) -> Vec<u8> {
    assert_eq!(offset % 8, 0);
    let mut ip = etherparse::Ipv4Header::new(
        bytes.len() as u16,
        64,
        etherparse::IpNumber(proto),
        src,
        dst,
    )
    .unwrap();
    ip.identification = id;
    ip.more_fragments = more;
    ip.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    let mut v = etherparse::Ethernet2Header {
        source: smac,
        destination: dmac,
        ether_type: etherparse::EtherType::IPV4,
    }
    .to_bytes()
    .to_vec();
    ip.write(&mut v).unwrap();
    v.extend_from_slice(bytes);
    v
}

/// An IPv6 fragment (fragment header right after the IPv6 header) in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub fn ipv6_fragment(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    id: u32,
    offset: usize,
    more: bool,
    bytes: &[u8],
) -> Vec<u8> {
    assert_eq!(offset % 8, 0);
    let ip = etherparse::Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: (8 + bytes.len()) as u16,
        next_header: etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER,
        hop_limit: 64,
        source: src,
        destination: dst,
    };
    let frag = etherparse::Ipv6FragmentHeader::new(
        etherparse::IpNumber(proto),
        etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap(),
        more,
        id,
    );
    let mut v = etherparse::Ethernet2Header {
        source: smac,
        destination: dmac,
        ether_type: etherparse::EtherType::IPV6,
    }
    .to_bytes()
    .to_vec();
    ip.write(&mut v).unwrap();
    frag.write(&mut v).unwrap();
    v.extend_from_slice(bytes);
    v
}
