//! Contract tests: flows driven through [`AppState`] the way the flow layer does.

use super::*;
use crate::flow::Direction::{Orig, Resp};
use dns::tests::{msg, rr};
use tls::tests::{CA, LEAF, certificate, chrome_hello, der, records, server_done, sh12, sh13};

/// A TCP connection fed segment by segment.
struct Tcp {
    app: Box<AppState>,
    seq: [u32; 2],
    out: Vec<ProtoRecord>,
    ts: Ts,
}

impl Tcp {
    fn open(resp_port: u16) -> Self {
        let mut t = Tcp {
            app: AppState::for_flow(Transport::Tcp, 50000, resp_port).unwrap(),
            seq: [1000, 9_000_000],
            out: Vec::new(),
            ts: 1_700_000_000_000_000,
        };
        t.seg_at(Orig, t.seq[0], true, false, &[]);
        t.seg_at(Resp, t.seq[1], true, false, &[]);
        t.seq[0] += 1;
        t.seq[1] += 1;
        t
    }
    fn seg_at(&mut self, dir: Direction, seq: u32, syn: bool, fin: bool, p: &[u8]) {
        self.ts += 10;
        self.app
            .on_tcp(self.ts, dir, seq, syn, fin, p, &mut self.out);
    }
    /// Sends bytes in segments of `mss`, advancing the sequence number.
    fn send(&mut self, dir: Direction, bytes: &[u8], mss: usize) {
        let d = side(dir);
        for part in bytes.chunks(mss) {
            let seq = self.seq[d];
            self.seg_at(dir, seq, false, false, part);
            self.seq[d] = seq.wrapping_add(part.len() as u32);
        }
    }
    fn close(&mut self) {
        self.app.on_close(self.ts, &mut self.out);
    }
}

fn tls_recs(out: &[ProtoRecord]) -> Vec<&TlsRecord> {
    out.iter()
        .filter_map(|r| match r {
            ProtoRecord::Tls(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn for_flow_ports() {
    assert!(AppState::for_flow(Transport::Tcp, 1234, 5678).is_some());
    for p in [53, 5353, 67, 68, 1900, 137, 5355] {
        assert!(
            AppState::for_flow(Transport::Udp, 40000, p).is_some(),
            "{p}"
        );
        assert!(
            AppState::for_flow(Transport::Udp, p, 40000).is_some(),
            "{p}"
        );
    }
    assert!(AppState::for_flow(Transport::Udp, 40000, 443).is_none());
    assert!(AppState::for_flow(Transport::Udp, 123, 123).is_none());
    let a = AppState::for_flow(Transport::Udp, 40000, 53).unwrap();
    assert_eq!(a.app_proto(), None);
    assert!(!a.is_done());
    assert!(std::mem::size_of::<AppState>() <= 64);
}

#[test]
fn tls_on_odd_port_with_reordering_and_retransmission() {
    let mut c = Tcp::open(8443);
    let hello = records(22, &chrome_hello("example.com"), 16384);
    // Second half first, then the first half twice.
    let (a, b) = hello.split_at(1200);
    let s0 = c.seq[0];
    c.seg_at(Orig, s0 + 1200, false, false, b);
    assert_eq!(c.app.app_proto(), None);
    c.seg_at(Orig, s0, false, false, a);
    c.seg_at(Orig, s0, false, false, a);
    c.seq[0] += hello.len() as u32;
    assert_eq!(c.app.app_proto(), Some("tls"));
    let flight = [sh12(), certificate(&[der(LEAF), der(CA)]), server_done()].concat();
    c.send(Resp, &records(22, &flight, 16384), 1448);
    let t = tls_recs(&c.out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(t[0].cert_issuer.as_deref(), Some("CN=Test CA"));
    assert!(c.app.is_done());
    assert_eq!(c.app.app_proto(), Some("tls"));
    // Nothing more, even after more bytes and close.
    c.send(Orig, &[23, 3, 3, 0, 1, 0], 100);
    c.close();
    assert_eq!(tls_recs(&c.out).len(), 1);
}

#[test]
fn tls13_emitted_on_server_hello() {
    let mut c = Tcp::open(443);
    c.send(Orig, &records(22, &chrome_hello("x.org"), 16384), 1448);
    c.send(Resp, &records(22, &sh13(), 16384), 1448);
    assert!(c.app.is_done());
    assert_eq!(tls_recs(&c.out)[0].server_version, Some(0x0304));
}

#[test]
fn tls_lost_segment_still_reports_at_close() {
    let mut c = Tcp::open(443);
    c.send(Orig, &records(22, &chrome_hello("x.org"), 16384), 1448);
    let server = records(22, &[sh12(), certificate(&[der(LEAF)])].concat(), 16384);
    // The server's first segment is lost.
    c.seq[1] += 100;
    c.send(Resp, &server[100..], 100);
    c.close();
    let t = tls_recs(&c.out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].server_cipher, None);
    assert_eq!(t[0].sni.as_deref(), Some("x.org"));
}

#[test]
fn tls_inside_connect_and_socks_tunnels() {
    let hello = records(22, &chrome_hello("inner.example"), 16384);
    let mut c = Tcp::open(3128);
    c.send(
        Orig,
        b"CONNECT inner.example:443 HTTP/1.1\r\nHost: inner.example:443\r\n\r\n",
        1448,
    );
    c.send(Resp, b"HTTP/1.1 200 Connection established\r\n\r\n", 1448);
    assert!(!c.app.is_done());
    c.send(Orig, &hello, 1448);
    c.send(Resp, &records(22, &sh13(), 16384), 1448);
    assert!(
        matches!(&c.out[0], ProtoRecord::Http(h) if h.method == "CONNECT" && h.status == Some(200))
    );
    assert_eq!(tls_recs(&c.out).len(), 1);
    assert_eq!(tls_recs(&c.out)[0].sni.as_deref(), Some("inner.example"));
    assert!(c.app.is_done());

    let mut c = Tcp::open(1080);
    c.send(Orig, &[5, 1, 0], 1448);
    assert_eq!(c.app.app_proto(), None);
    c.send(Resp, &[5, 0], 1448);
    c.send(Orig, &[5, 1, 0, 1, 93, 184, 216, 34, 1, 187], 1448);
    c.send(Resp, &[5, 0, 0, 1, 0, 0, 0, 0, 0, 0], 1448);
    c.send(Orig, &hello, 1448);
    assert_eq!(c.app.app_proto(), Some("tls"));
    c.close();
    assert_eq!(tls_recs(&c.out).len(), 1);
}

#[test]
fn http_over_tcp() {
    let mut c = Tcp::open(8080);
    c.send(
        Orig,
        b"GET /index.html HTTP/1.1\r\nHost: nas.lan:8080\r\nUser-Agent: Mozilla/5.0\r\n\r\n",
        10,
    );
    assert_eq!(c.app.app_proto(), Some("http"));
    let body = vec![b'x'; 100_000];
    let mut resp =
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: text/html\r\n\r\n".to_vec();
    resp.extend_from_slice(&body);
    c.send(Resp, &resp, 1448);
    let http: Vec<_> = c
        .out
        .iter()
        .filter_map(|r| match r {
            ProtoRecord::Http(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0].host.as_deref(), Some("nas.lan:8080"));
    assert_eq!(http[0].response_body_len, 100_000);
    assert!(!c.app.is_done());
    c.close();
    assert!(c.app.is_done());
}

#[test]
fn server_first_and_unknown_protocols_are_dropped() {
    let mut c = Tcp::open(22);
    c.send(Resp, b"SSH-2.0-OpenSSH_9.6\r\n", 1448);
    assert!(c.app.is_done());
    assert_eq!(c.app.app_proto(), None);
    let mut c = Tcp::open(5432);
    c.send(Orig, &[0, 0, 0, 8, 4, 210, 22, 47], 1448);
    assert!(c.app.is_done());
    let mut c = Tcp::open(80);
    c.send(Orig, b"GE", 1448);
    assert!(!c.app.is_done());
    c.close();
    assert!(c.out.is_empty());
}

#[test]
fn dns_over_tcp_and_udp() {
    let q = msg(0x99, 0x0100, "nas.lan", 1, &[]);
    let r = msg(
        0x99,
        0x8180,
        "nas.lan",
        1,
        &[rr("nas.lan", 1, 1, 60, &[192, 168, 1, 10])],
    );
    let mut c = Tcp::open(53);
    let frame = |m: &[u8]| {
        let mut v = (m.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(m);
        v
    };
    c.send(Orig, &frame(&q), 5);
    assert_eq!(c.app.app_proto(), Some("dns"));
    c.send(Resp, &frame(&r), 1448);
    c.close();
    assert!(matches!(&c.out[..], [ProtoRecord::Dns(d)] if d.over_tcp && d.rcode == Some(0)));

    let mut u = AppState::for_flow(Transport::Udp, 40000, 53).unwrap();
    let mut out = Vec::new();
    u.on_udp(100, Orig, &q, &mut out);
    assert_eq!(u.app_proto(), Some("dns"));
    u.on_udp(130, Resp, &r, &mut out);
    u.on_udp(140, Orig, &msg(0x77, 0x0100, "lost.lan", 28, &[]), &mut out);
    u.on_close(200, &mut out);
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[0], ProtoRecord::Dns(d) if d.rtt_us == Some(30)));
    assert!(matches!(&out[1], ProtoRecord::Dns(d) if d.rcode.is_none() && d.query == "lost.lan"));
    assert!(u.is_done());
}

#[test]
fn udp_non_protocol_gives_up() {
    let mut u = AppState::for_flow(Transport::Udp, 40000, 53).unwrap();
    let mut out = Vec::new();
    for _ in 0..MAX_UDP_MISSES {
        u.on_udp(1, Orig, b"junk", &mut out);
    }
    assert!(u.is_done());
    assert_eq!(u.app_proto(), None);
}

#[test]
fn record_serializes() {
    let mut u = AppState::for_flow(Transport::Udp, 5353, 5353).unwrap();
    let mut out = Vec::new();
    let m = msg(
        0,
        0x8400,
        "h.local",
        1,
        &[rr("h.local", 1, 0x8001, 120, &[10, 0, 0, 9])],
    );
    u.on_udp(1, Resp, &m, &mut out);
    assert_eq!(u.app_proto(), Some("mdns"));
    let json = serde_json::to_string(&out).unwrap();
    assert!(json.contains("\"dir\":\"resp\""), "{json}");
    assert!(json.contains("\"address\":\"10.0.0.9\""), "{json}");
}

#[test]
fn random_tcp_segments_never_panic() {
    let mut x: u32 = 4242;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for round in 0..200 {
        let port = [443u16, 80, 53, 9999][round % 4];
        let mut app = AppState::for_flow(Transport::Tcp, 40000, port).unwrap();
        let mut out = Vec::new();
        let prefix: &[u8] = match round % 3 {
            0 => &[22, 3, 1, 2, 0, 1],
            1 => b"GET / HTTP/1.1\r\n",
            _ => &[],
        };
        app.on_tcp(0, Orig, 0, false, false, prefix, &mut out);
        for _ in 0..50 {
            let dir = if next() % 2 == 0 { Orig } else { Resp };
            let seq = next() % 4000;
            let len = (next() % 1500) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            app.on_tcp(
                1,
                dir,
                seq,
                next() % 50 == 0,
                next() % 50 == 0,
                &payload,
                &mut out,
            );
        }
        app.on_close(2, &mut out);
        assert!(app.is_done());
    }
}

#[test]
fn login_protocols_are_chosen_by_server_port() {
    let mut c = Tcp::open(21);
    c.send(Resp, b"220 FTP ready\r\n", 1448);
    assert_eq!(c.app.app_proto(), Some("ftp"));
    c.send(Orig, b"USER pi\r\nPASS raspberry\r\n", 1448);
    c.send(Resp, b"230 Logged in\r\n", 1448);
    assert!(c.app.is_done());
    assert!(matches!(&c.out[..], [ProtoRecord::Cleartext(r)]
        if r.protocol == "ftp" && r.credentials && r.user.as_deref() == Some("pi") && r.success == Some(true)));
    // Port 21 used by something else: no label, nothing recorded.
    let mut c = Tcp::open(21);
    c.send(Resp, &[22, 3, 3, 0, 5, 1, 2, 3, 4, 5], 1448);
    assert!(c.app.is_done());
    assert_eq!(c.app.app_proto(), None);
    assert!(c.out.is_empty());
    // The client port does not select the parser.
    let mut c = Tcp::open(5555);
    c.send(Resp, b"220 hi\r\n", 1448);
    assert_eq!(c.app.app_proto(), None);
}
