//! Tests of the name parsers with hand-built mDNS, LLMNR, NetBIOS-NS and SSDP packets.

use super::super::dns::tests::{encode_name, msg, rr};
use super::*;

fn names(out: &[ProtoRecord]) -> Vec<&NameRecord> {
    out.iter()
        .filter_map(|r| match r {
            ProtoRecord::Name(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// mDNS response: A for the host, PTR to the service instance, SRV, reverse PTR.
fn mdns_announce() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&[0, 0, 0x84, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    m.extend_from_slice(&rr(
        "Johns-iPhone.local",
        1,
        0x8001,
        120,
        &[192, 168, 1, 42],
    ));
    m.extend_from_slice(&rr(
        "_airplay._tcp.local",
        12,
        1,
        4500,
        &encode_name("Johns iPhone._airplay._tcp.local"),
    ));
    let mut srv = vec![0, 0, 0, 0, 0x1b, 0x58];
    srv.extend_from_slice(&encode_name("Johns-iPhone.local"));
    m.extend_from_slice(&rr(
        "Johns iPhone._airplay._tcp.local",
        33,
        0x8001,
        120,
        &srv,
    ));
    m.extend_from_slice(&rr(
        "42.1.168.192.in-addr.arpa",
        12,
        0x8001,
        120,
        &encode_name("Johns-iPhone.local"),
    ));
    m
}

#[test]
fn mdns_names_and_dedup() {
    let mut s = NameSession::new(NameProto::Mdns);
    let mut out = Vec::new();
    assert!(s.on_udp(5, Direction::Orig, &mdns_announce(), &mut out));
    let n = names(&out);
    let ip: IpAddr = "192.168.1.42".parse().unwrap();
    assert!(
        n.iter().any(|r| r.name == "Johns-iPhone.local"
            && r.kind == "hostname"
            && r.address == Some(ip))
    );
    assert!(
        n.iter()
            .any(|r| r.name == "Johns iPhone._airplay._tcp.local" && r.kind == "service")
    );
    assert!(
        n.iter()
            .any(|r| r.name == "Johns-iPhone.local" && r.address.is_none())
    );
    assert!(
        n.iter()
            .all(|r| r.source == "mdns" && r.dir == Direction::Orig)
    );
    let before = out.len();
    s.on_udp(6, Direction::Orig, &mdns_announce(), &mut out);
    assert_eq!(out.len(), before, "repeats are suppressed");
    // A query names nothing, known answers included.
    let mut out = Vec::new();
    let known = rr(
        "_googlecast._tcp.local",
        12,
        1,
        4500,
        &encode_name("TV._googlecast._tcp.local"),
    );
    let q = msg(0, 0, "_googlecast._tcp.local", 12, &[known]);
    assert!(s.on_udp(7, Direction::Orig, &q, &mut out));
    assert!(out.is_empty());
}

#[test]
fn mdns_probe_authority_names_the_prober() {
    let mut m = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
    m.extend_from_slice(&encode_name("Living-Room.local"));
    m.extend_from_slice(&[0, 255, 0x80, 1]);
    m.extend_from_slice(&rr("Living-Room.local", 1, 1, 120, &[192, 168, 1, 77]));
    let mut s = NameSession::new(NameProto::Mdns);
    let mut out = Vec::new();
    s.on_udp(1, Direction::Orig, &m, &mut out);
    let n = names(&out);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].name, "Living-Room.local");
    assert_eq!(n[0].address, Some("192.168.1.77".parse().unwrap()));
}

#[test]
fn reverse_names() {
    assert_eq!(
        reverse_address("4.3.2.1.in-addr.arpa"),
        Some("1.2.3.4".parse().unwrap())
    );
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
    assert_eq!(reverse_address(v6), Some("2001:db8::1".parse().unwrap()));
    assert_eq!(reverse_address("x.in-addr.arpa"), None);
    assert_eq!(reverse_address("a.ip6.arpa"), None);
}

#[test]
fn llmnr_query_and_answer() {
    let mut s = NameSession::new(NameProto::Llmnr);
    let mut out = Vec::new();
    s.on_udp(1, Direction::Orig, &msg(9, 0, "wpad", 1, &[]), &mut out);
    let ans = msg(
        9,
        0x8000,
        "fileserver",
        1,
        &[rr("fileserver", 1, 1, 30, &[10, 0, 0, 5])],
    );
    s.on_udp(2, Direction::Resp, &ans, &mut out);
    let n = names(&out);
    assert_eq!(n.len(), 2);
    assert_eq!(
        (n[0].name.as_str(), n[0].kind, n[0].dir),
        ("wpad", "query", Direction::Orig)
    );
    assert_eq!(n[1].kind, "hostname");
    assert_eq!(n[1].address, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(n[1].dir, Direction::Resp);
}

fn nb_label(name: &str, suffix: u8) -> Vec<u8> {
    let mut raw = [b' '; 16];
    raw[..name.len()].copy_from_slice(name.as_bytes());
    raw[15] = suffix;
    let mut v = vec![32u8];
    for b in raw {
        v.push(b'A' + (b >> 4));
        v.push(b'A' + (b & 0x0f));
    }
    v.push(0);
    v
}

fn nbns(flags: u16, name: &str, suffix: u8, additional: Option<[u8; 6]>) -> Vec<u8> {
    let mut m = vec![0x12, 0x34];
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, additional.is_some() as u8]);
    m.extend_from_slice(&nb_label(name, suffix));
    m.extend_from_slice(&[0, 0x20, 0, 1]);
    if let Some(rd) = additional {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 0x20, 0, 1, 0, 4, 0x93, 0xe0, 0, 6]);
        m.extend_from_slice(&rd);
    }
    m
}

#[test]
fn netbios_registration_and_query() {
    assert_eq!(
        netbios_name(&nb_label("DESKTOP-ABC", 0x20)[1..33]),
        Some(("DESKTOP-ABC<20>".to_string(), 0x20))
    );
    assert_eq!(netbios_name(b"short"), None);
    assert_eq!(netbios_name(&[b'Z'; 32]), None);
    let mut s = NameSession::new(NameProto::NetbiosNs);
    let mut out = Vec::new();
    let reg = nbns(0x2910, "DESKTOP-ABC", 0, Some([0, 0, 192, 168, 1, 50]));
    assert!(s.on_udp(1, Direction::Orig, &reg, &mut out));
    let grp = nbns(0x2910, "WORKGROUP", 0, Some([0x80, 0, 192, 168, 1, 50]));
    s.on_udp(2, Direction::Orig, &grp, &mut out);
    let q = nbns(0x0110, "FILESRV", 0x20, None);
    s.on_udp(3, Direction::Orig, &q, &mut out);
    let n = names(&out);
    assert_eq!(n.len(), 3);
    assert_eq!(n[0].name, "DESKTOP-ABC<00>");
    assert_eq!(n[0].kind, "hostname");
    assert_eq!(n[0].address, Some("192.168.1.50".parse().unwrap()));
    assert_eq!((n[1].name.as_str(), n[1].kind), ("WORKGROUP<00>", "group"));
    assert_eq!((n[2].name.as_str(), n[2].kind), ("FILESRV<20>", "query"));
}

#[test]
fn ssdp_notify_and_response() {
    let notify =
        b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n\
LOCATION: http://192.168.1.20:49152/description.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\
SERVER: Linux/3.14 UPnP/1.0 Sonos/70.3\r\nUSN: uuid:RINCON_000E58::upnp:rootdevice\r\n\r\n";
    let mut s = NameSession::new(NameProto::Ssdp);
    let mut out = Vec::new();
    assert!(s.on_udp(1, Direction::Orig, notify, &mut out));
    let n = names(&out);
    assert_eq!(n.len(), 3);
    let addr = Some("192.168.1.20".parse().unwrap());
    assert!(
        n.iter()
            .any(|r| r.kind == "server" && r.name == "Linux/3.14 UPnP/1.0 Sonos/70.3")
    );
    assert!(
        n.iter()
            .any(|r| r.kind == "usn" && r.name.starts_with("uuid:RINCON"))
    );
    assert!(n.iter().all(|r| r.address == addr));
    let resp = b"HTTP/1.1 200 OK\r\nLOCATION: http://[fe80::1]:80/d.xml\r\nSERVER: MiniUPnPd/2.0\r\nST: ssdp:all\r\n\r\n";
    let mut out = Vec::new();
    s.on_udp(2, Direction::Resp, resp, &mut out);
    let n = names(&out);
    assert_eq!(n.len(), 2);
    assert_eq!(n[0].address, Some("fe80::1".parse().unwrap()));
    let search =
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n";
    let mut out = Vec::new();
    assert!(s.on_udp(3, Direction::Orig, search, &mut out));
    assert!(out.is_empty());
}

#[test]
fn prefixes_and_garbage_never_panic() {
    let samples: Vec<(NameProto, Vec<u8>)> = vec![
        (NameProto::Mdns, mdns_announce()),
        (
            NameProto::NetbiosNs,
            nbns(0x2910, "HOST", 0, Some([0, 0, 1, 2, 3, 4])),
        ),
        (
            NameProto::Llmnr,
            msg(1, 0x8000, "h", 1, &[rr("h", 28, 1, 1, &[0; 16])]),
        ),
        (
            NameProto::Ssdp,
            b"NOTIFY * HTTP/1.1\r\nSERVER: x\r\nLOCATION: http://1.2.3.4/\r\n\r\n".to_vec(),
        ),
    ];
    for (proto, pkt) in &samples {
        for n in 0..=pkt.len() {
            let mut s = NameSession::new(*proto);
            let mut out = Vec::new();
            s.on_udp(0, Direction::Orig, &pkt[..n], &mut out);
            assert!(out.len() <= MAX_PER_PACKET);
        }
    }
    let mut x: u32 = 77;
    for i in 0..2000 {
        let buf: Vec<u8> = (0..(i % 200))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for proto in [
            NameProto::Mdns,
            NameProto::NetbiosNs,
            NameProto::Llmnr,
            NameProto::Ssdp,
        ] {
            let mut s = NameSession::new(proto);
            let mut out = Vec::new();
            s.on_udp(0, Direction::Resp, &buf, &mut out);
        }
    }
    assert_eq!(
        url_address("http://10.1.2.3:8080/x"),
        Some("10.1.2.3".parse().unwrap())
    );
    assert_eq!(url_address("http://printer.local/x"), None);
    assert_eq!(url_address("nonsense"), None);
}
