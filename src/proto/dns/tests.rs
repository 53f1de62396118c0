//! Tests of the DNS decoder and query/response pairing with hand-built messages.

use super::*;

/// Builds a DNS message by hand: header, one question, answer records.
pub(crate) fn msg(id: u16, flags: u16, qname: &str, qtype: u16, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&encode_name(qname));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    for a in answers {
        m.extend_from_slice(a);
    }
    m
}

pub(crate) fn encode_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// A resource record with a literal owner name.
pub(crate) fn rr(name: &str, rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut v = encode_name(name);
    v.extend_from_slice(&rtype.to_be_bytes());
    v.extend_from_slice(&class.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

fn ptr_to_question(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut v = vec![0xc0, 0x0c];
    v.extend_from_slice(&rtype.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

fn dns(out: &[ProtoRecord]) -> Vec<&DnsRecord> {
    out.iter()
        .filter_map(|r| match r {
            ProtoRecord::Dns(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn query_and_response_pair() {
    let q = msg(0x1234, 0x0100, "WWW.Example.COM", 1, &[]);
    let ans = vec![
        ptr_to_question(5, 60, &encode_name("edge.example.net")),
        rr("edge.example.net", 1, 1, 30, &[93, 184, 216, 34]),
    ];
    let r = msg(0x1234, 0x8180, "www.example.com", 1, &ans);
    let mut t = DnsTracker::new(false);
    let mut out = Vec::new();
    assert!(t.on_message(1_000, &q, &mut out));
    assert!(out.is_empty());
    assert!(t.on_message(1_000, &q, &mut out)); // retransmission
    assert!(t.on_message(26_000, &r, &mut out));
    let d = dns(&out);
    assert_eq!(d.len(), 1);
    let d = d[0];
    assert_eq!(d.query, "www.example.com");
    assert_eq!(d.qtype, 1);
    assert_eq!(d.rcode, Some(0));
    assert_eq!(d.rtt_us, Some(25_000));
    assert_eq!(d.answers.len(), 2);
    assert_eq!(d.answers[0].data, "edge.example.net");
    assert_eq!(d.answers[0].rtype, 5);
    assert_eq!(d.answers[1].data, "93.184.216.34");
    assert_eq!(d.answers[1].ttl, 30);
    t.flush(&mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn nxdomain_txt_aaaa_and_unanswered() {
    let mut t = DnsTracker::new(false);
    let mut out = Vec::new();
    t.on_message(5, &msg(7, 0x0100, "nope.test", 16, &[]), &mut out);
    t.on_message(6, &msg(8, 0x0100, "lost.test", 28, &[]), &mut out);
    t.on_message(9, &msg(7, 0x8183, "nope.test", 16, &[]), &mut out);
    let txt = [5, b'h', b'e', b'l', b'l', b'o', 2, b'h', b'i'];
    let six = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let r = msg(
        9,
        0x8180,
        "t.test",
        16,
        &[rr("t.test", 16, 1, 1, &txt), rr("t.test", 28, 1, 1, &six)],
    );
    t.on_message(10, &r, &mut out); // response without query
    t.flush(&mut out);
    let d = dns(&out);
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].rcode, Some(3));
    assert_eq!(rcode_name(3), "NXDOMAIN");
    assert_eq!(d[1].answers[0].data, "hello hi");
    assert_eq!(d[1].answers[1].data, "2001:db8::1");
    assert_eq!(d[1].rtt_us, None);
    assert_eq!(d[1].ts, 10);
    assert_eq!(d[2].query, "lost.test");
    assert_eq!(d[2].rcode, None);
    assert_eq!(qtype_name(28), "AAAA");
    assert_eq!(qtype_name(10), "NULL");
    assert_eq!(qtype_name(4242), "TYPE4242");
}

#[test]
fn pending_is_capped() {
    let mut t = DnsTracker::new(false);
    let mut out = Vec::new();
    for id in 0..1000u16 {
        t.on_message(0, &msg(id, 0x0100, "a.b", 1, &[]), &mut out);
    }
    assert!(t.pending.len() <= MAX_PENDING);
    assert_eq!(out.len(), 1000 - MAX_PENDING);
}

#[test]
fn truncated_and_garbage_never_panic() {
    let r = msg(
        9,
        0x8180,
        "t.test",
        1,
        &[
            rr("t.test", 1, 1, 1, &[1, 2, 3, 4]),
            rr("t.test", 16, 1, 1, &[3, b'a', b'b', b'c']),
        ],
    );
    for n in 0..=r.len() {
        let mut t = DnsTracker::new(false);
        let mut out = Vec::new();
        t.on_message(0, &r[..n], &mut out);
        t.flush(&mut out);
        assert!(out.len() <= 1);
    }
    let mut x: u32 = 12345;
    for _ in 0..2000 {
        let len = (x % 300) as usize;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push(x as u8);
        }
        let mut t = DnsTracker::new(false);
        let mut out = Vec::new();
        t.on_message(0, &buf, &mut out);
        let _ = parse_message(&buf);
    }
    // Compression loop must not hang or panic.
    let mut looped = msg(1, 0x8180, "a", 1, &[]);
    looped.extend_from_slice(&[0xc0, 0x0c]);
    let _ = parse_message(&looped);
}

#[test]
fn tcp_framing() {
    let q = msg(0x55, 0x0100, "example.org", 1, &[]);
    let r = msg(
        0x55,
        0x8180,
        "example.org",
        1,
        &[rr("example.org", 1, 1, 5, &[1, 1, 1, 1])],
    );
    let mut rs = Reassembler::new();
    let mut d = DnsTcp::new();
    let mut out = Vec::new();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    rs.push(0, true, &[]);
    rs.push(1, false, &framed[..3]);
    d.on_data(0, &mut rs, &mut out);
    rs.push(4, false, &framed[3..]);
    d.on_data(0, &mut rs, &mut out);
    assert!(d.seen_dns);
    let mut rs2 = Reassembler::new();
    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&r);
    rs2.push(0, false, &framed);
    d.on_data(7, &mut rs2, &mut out);
    let got = dns(&out);
    assert_eq!(got.len(), 1);
    assert!(got[0].over_tcp);
    assert_eq!(got[0].answers[0].data, "1.1.1.1");
}

#[test]
fn name_escaping() {
    let n = Name::from_labels(vec![b"a.b".to_vec(), b"c\x01".to_vec(), vec![0xff, b'x']]).unwrap();
    assert_eq!(name_text(&n), "a\\.b.c\\x01.\\xffx");
}

/// The start of a response (a first IP fragment, a snaplen cut) keeps the answers that
/// are whole in it once the parser knows the message is longer; told nothing, the
/// same bytes look like a message with impossible counts and are refused. Every cut
/// of it is handled without a panic.
#[test]
fn start_of_a_long_response_keeps_the_answers_it_holds() {
    let ans: Vec<Vec<u8>> = (0..40u8)
        .map(|i| ptr_to_question(1, 60, &[10, 0, 0, i]))
        .collect();
    let r = msg(9, 0x8180, "big.example", 1, &ans);
    assert_eq!(r.len(), 12 + 17 + 40 * 16);
    let cut = &r[..12 + 17 + 16 * 16 + 5]; // 16 whole answers and part of one
    let mut out = Vec::new();
    assert!(!DnsTracker::new(false).on_message(0, cut, &mut out));
    assert!(DnsTracker::new(false).on_message_part(0, cut, r.len(), &mut out));
    let got = dns(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].answers.len(), 16);
    assert_eq!(got[0].answers[15].data, "10.0.0.15");
    for n in 0..r.len() {
        let mut out = Vec::new();
        let _ = DnsTracker::new(false).on_message_part(0, &r[..n], r.len(), &mut out);
    }
}
