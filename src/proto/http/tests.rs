//! Tests of the HTTP/1 session parser with hand-written requests and responses.

use super::*;

struct Conn {
    s: HttpSession,
    rs: [Reassembler; 2],
    seq: [u32; 2],
    out: Vec<ProtoRecord>,
}

impl Conn {
    fn new() -> Self {
        let mut rs = [Reassembler::new(), Reassembler::new()];
        rs[0].push(0, true, &[]);
        rs[1].push(0, true, &[]);
        Conn {
            s: HttpSession::new(),
            rs,
            seq: [1, 1],
            out: Vec::new(),
        }
    }
    fn send(&mut self, d: usize, bytes: &[u8]) {
        self.rs[d].push(self.seq[d], false, bytes);
        self.seq[d] = self.seq[d].wrapping_add(bytes.len() as u32);
        self.s
            .on_data(100 + d as i64, d, &mut self.rs[d], &mut self.out);
    }
    fn recs(&self) -> Vec<&HttpRecord> {
        self.out
            .iter()
            .filter_map(|r| match r {
                ProtoRecord::Http(h) => Some(h),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn sniffing() {
    assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Some(true));
    assert_eq!(sniff(b"M-SEARCH * HTTP/1.1"), Some(true));
    assert_eq!(sniff(b"PO"), None);
    assert_eq!(sniff(b"SSH-2.0-OpenSSH"), Some(false));
    assert_eq!(sniff(b"\x16\x03\x01"), Some(false));
    assert_eq!(sniff(b""), None);
}

#[test]
fn pipelined_with_lengths_and_basic_auth() {
    let mut c = Conn::new();
    c.send(
        REQ,
        b"GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\n\
          Authorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n\
          POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\
          Content-Type: text/plain\r\nReferer: http://example.com/a\r\n\r\nhello",
    );
    c.send(REQ, b" world");
    c.send(
        RESP,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nab",
    );
    c.send(RESP, b"cde");
    c.send(RESP, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let r = c.recs();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].method, "GET");
    assert_eq!(r[0].host.as_deref(), Some("example.com"));
    assert_eq!(r[0].uri, "/a");
    assert_eq!(r[0].auth_scheme.as_deref(), Some("Basic"));
    assert_eq!(r[0].auth_user.as_deref(), Some("user"));
    assert!(!format!("{:?}", r[0]).contains("secret"));
    assert_eq!(r[0].status, Some(200));
    assert_eq!(r[0].response_body_len, 5);
    assert_eq!(r[0].content_type.as_deref(), Some("text/html"));
    assert_eq!(r[1].method, "POST");
    assert_eq!(r[1].request_body_len, 11);
    assert_eq!(r[1].status, Some(201));
    assert_eq!(r[1].status_msg.as_deref(), Some("Created"));
    assert_eq!(r[1].referrer.as_deref(), Some("http://example.com/a"));
    assert_eq!(r[1].ts, 100);
}

#[test]
fn chunked_response_then_next() {
    let mut c = Conn::new();
    c.send(
        REQ,
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    c.send(
        RESP,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    );
    c.send(
        RESP,
        b"lo\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n",
    );
    c.send(
        RESP,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop",
    );
    let r = c.recs();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].response_body_len, 21);
    assert_eq!(r[1].status, Some(404));
    assert!(!c.s.finished);
}

#[test]
fn head_interim_until_close_and_unanswered() {
    let mut c = Conn::new();
    c.send(
        REQ,
        b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.0\r\n\r\nGET /z HTTP/1.0\r\n\r\n",
    );
    c.send(
        RESP,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n",
    );
    c.send(RESP, b"HTTP/1.0 200 OK\r\n\r\nstreaming");
    c.send(RESP, b" more");
    assert_eq!(c.recs().len(), 1);
    c.s.on_close(&mut c.out);
    let r = c.recs();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].response_body_len, 0);
    assert_eq!(r[1].response_body_len, 14);
    assert_eq!(r[2].uri, "/z");
    assert_eq!(r[2].status, None);
}

#[test]
fn connect_tunnel_stops() {
    let mut c = Conn::new();
    c.send(
        REQ,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    c.send(
        RESP,
        b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01",
    );
    assert!(c.s.finished && c.s.tunnel);
    assert_eq!(
        c.rs[RESP].data(),
        b"\x16\x03\x01",
        "tunnel bytes stay for the next parser"
    );
    assert_eq!(c.recs().len(), 1);
    assert_eq!(c.recs()[0].status, Some(200));
}

#[test]
fn digest_and_other_auth() {
    assert_eq!(
        auth(b"Digest username=\"bob\", realm=\"r\", response=\"x\""),
        (Some("Digest".into()), Some("bob".into()))
    );
    assert_eq!(auth(b"Bearer abc.def"), (Some("Bearer".into()), None));
    assert_eq!(auth(b"Basic !!!"), (Some("Basic".into()), None));
    assert_eq!(auth(b""), (None, None));
}

#[test]
fn prefixes_and_garbage_never_panic() {
    let req: &[u8] =
        b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    for n in 0..=req.len() {
        let mut c = Conn::new();
        c.send(REQ, &req[..n]);
        c.send(RESP, &resp[..n.min(resp.len())]);
        c.s.on_close(&mut c.out);
        assert!(c.recs().len() <= 1);
    }
    // Byte-at-a-time delivery gives the full result.
    let mut c = Conn::new();
    for b in req {
        c.send(REQ, &[*b]);
    }
    for b in resp {
        c.send(RESP, &[*b]);
    }
    let r = c.recs();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].request_body_len, 4);
    assert_eq!(r[0].response_body_len, 3);
    let mut x: u32 = 99;
    for _ in 0..300 {
        let mut c = Conn::new();
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..(x % 400) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push(x as u8);
        }
        c.send(REQ, &buf);
        c.send(RESP, &buf);
        c.s.on_close(&mut c.out);
    }
}

#[test]
fn endless_headers_give_up() {
    let mut c = Conn::new();
    c.send(REQ, b"GET / HTTP/1.1\r\n");
    for _ in 0..200 {
        c.send(REQ, b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert!(c.s.finished);
    assert!(c.rs[0].buffered() <= MAX_BUF);
}
