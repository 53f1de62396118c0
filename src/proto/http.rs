//! HTTP/1.x transactions: request line and selected headers, response status, and
//! body sizes, as one [`HttpRecord`] per request (pipelined requests paired FIFO).
//!
//! Headers are parsed with `httparse`; bodies are never buffered: Content-Length
//! bodies are skipped in the reassembler, chunked bodies are walked chunk by chunk,
//! and anything unparseable ends the session with what was already seen. Basic
//! credentials are decoded only to keep the user name; the password is dropped.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use httparse::{EMPTY_HEADER, Header, ParserConfig, Status};
use serde::Serialize;

use super::dns::lossy;
use super::stream::{Broken, MAX_BUF, Reassembler};
use super::{ProtoRecord, Ts};

const MAX_HEADERS: usize = 96;
const MAX_TXS: usize = 16;
const MAX_CHUNK_LINE: usize = 1024;

/// One HTTP request and (if seen) its response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRecord {
    /// Request time.
    pub ts: Ts,
    pub method: String,
    pub host: Option<String>,
    pub uri: String,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    /// Response Content-Type, else the request's.
    pub content_type: Option<String>,
    pub request_body_len: u64,
    pub status: Option<u16>,
    pub status_msg: Option<String>,
    pub response_body_len: u64,
    /// Authorization scheme, e.g. "Basic".
    pub auth_scheme: Option<String>,
    /// User name of Basic or Digest authorization; the password is never kept.
    pub auth_user: Option<String>,
}

const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"TRACE",
    b"CONNECT",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"NOTIFY",
    b"M-SEARCH",
];

/// Whether the first client bytes start an HTTP/1 request. `None`: need more bytes.
pub(crate) fn sniff(data: &[u8]) -> Option<bool> {
    let mut maybe = false;
    for m in METHODS {
        let need = m.len() + 1;
        if data.len() >= need {
            if data[..m.len()] == **m && data[m.len()] == b' ' {
                return Some(true);
            }
        } else if m.starts_with(data) {
            maybe = true;
        }
    }
    if maybe { None } else { Some(false) }
}

fn header<'a>(headers: &'a [Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn header_text(headers: &[Header<'_>], name: &str, max: usize) -> Option<String> {
    header(headers, name).map(|v| lossy(v, max))
}

/// How the body after a header block is delimited.
fn framing(headers: &[Header<'_>]) -> Result<Option<u64>, Framing> {
    if let Some(te) = header(headers, "transfer-encoding") {
        if te.to_ascii_lowercase().windows(7).any(|w| w == b"chunked") {
            return Err(Framing::Chunk(ChunkStep::Size));
        }
        return Err(Framing::UntilClose);
    }
    match header(headers, "content-length") {
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or(Framing::Dead),
        None => Ok(None),
    }
}

/// Scheme and (for Basic/Digest) user name of an Authorization header value.
fn auth(value: &[u8]) -> (Option<String>, Option<String>) {
    let value = &value[..value.len().min(4096)];
    let text = String::from_utf8_lossy(value);
    let mut parts = text.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    if scheme.is_empty() {
        return (None, None);
    }
    let rest = parts.next().unwrap_or_default().trim();
    let user = if scheme.eq_ignore_ascii_case("basic") {
        STANDARD.decode(rest).ok().and_then(|raw| {
            let user = raw.split(|&b| b == b':').next().unwrap_or_default();
            (raw.contains(&b':') || !user.is_empty()).then(|| lossy(user, 128))
        })
    } else if scheme.eq_ignore_ascii_case("digest") {
        rest.split(',').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("username")
                .then(|| lossy(v.trim().trim_matches('"').as_bytes(), 128))
        })
    } else {
        None
    };
    (Some(lossy(scheme.as_bytes(), 32)), user)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkStep {
    Size,
    DataEnd,
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Headers,
    Chunk(ChunkStep),
    UntilClose,
    Dead,
}

#[derive(Debug)]
struct Tx {
    rec: HttpRecord,
    req_done: bool,
    has_resp: bool,
    resp_done: bool,
    head: bool,
    connect: bool,
}

/// HTTP parser state of one TCP connection.
#[derive(Debug)]
pub(crate) struct HttpSession {
    txs: VecDeque<Tx>,
    side: [Framing; 2],
    /// Set when nothing more will be parsed (tunnel, garbage, gap).
    pub finished: bool,
    /// A CONNECT succeeded: the rest of the connection is the tunnelled protocol.
    pub tunnel: bool,
}

const REQ: usize = 0;
const RESP: usize = 1;

fn config() -> ParserConfig {
    let mut c = ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    c
}

impl HttpSession {
    pub fn new() -> Self {
        HttpSession {
            txs: VecDeque::new(),
            side: [Framing::Headers; 2],
            finished: false,
            tunnel: false,
        }
    }

    /// Feeds the bytes buffered in `rs` for side `d` (0 = client, 1 = server).
    pub fn on_data(&mut self, ts: Ts, d: usize, rs: &mut Reassembler, out: &mut Vec<ProtoRecord>) {
        while !self.finished {
            let before = (rs.data().len(), self.side[d], rs.pending_skip());
            match self.side[d] {
                Framing::Headers if d == REQ => self.request(ts, rs),
                Framing::Headers => self.response(rs),
                Framing::Chunk(step) => self.chunk(d, step, rs),
                Framing::UntilClose => {
                    let n = rs.data().len();
                    if let Some(t) = self.body_tx(d) {
                        *self.body_len(t, d) += n as u64;
                    }
                    rs.consume(n);
                }
                Framing::Dead => {}
            }
            self.flush_ready(out);
            if self.side[d] == Framing::Dead {
                self.finish(out);
            }
            if before == (rs.data().len(), self.side[d], rs.pending_skip()) {
                break; // no progress: wait for more bytes
            }
        }
        if rs.broken() != Broken::No || self.finished {
            self.finish(out);
            if !self.tunnel {
                rs.stop();
            }
        }
    }

    fn request(&mut self, ts: Ts, rs: &mut Reassembler) {
        let data = rs.data();
        if data.is_empty() {
            return;
        }
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match config().parse_request(&mut req, data) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) => {
                if data.len() >= MAX_BUF {
                    self.side[REQ] = Framing::Dead;
                }
                return;
            }
            Err(_) => {
                self.side[REQ] = Framing::Dead;
                return;
            }
        };
        let method = req.method.unwrap_or_default();
        let (auth_scheme, auth_user) = header(req.headers, "authorization")
            .or_else(|| header(req.headers, "proxy-authorization"))
            .map(auth)
            .unwrap_or_default();
        let mut tx = Tx {
            rec: HttpRecord {
                ts,
                method: lossy(method.as_bytes(), 32),
                host: header_text(req.headers, "host", 255),
                uri: lossy(req.path.unwrap_or_default().as_bytes(), 2048),
                user_agent: header_text(req.headers, "user-agent", 512),
                referrer: header_text(req.headers, "referer", 2048),
                content_type: header_text(req.headers, "content-type", 255),
                request_body_len: 0,
                status: None,
                status_msg: None,
                response_body_len: 0,
                auth_scheme,
                auth_user,
            },
            req_done: true,
            has_resp: false,
            resp_done: false,
            head: method.eq_ignore_ascii_case("HEAD"),
            connect: method.eq_ignore_ascii_case("CONNECT"),
        };
        let body = framing(req.headers);
        rs.consume(n);
        match body {
            Ok(len) => {
                let len = len.unwrap_or(0);
                tx.rec.request_body_len = len;
                rs.skip(len);
            }
            // A request body without a length cannot be delimited.
            Err(Framing::UntilClose) | Err(Framing::Dead) => self.side[REQ] = Framing::Dead,
            Err(f) => {
                tx.req_done = false;
                self.side[REQ] = f;
            }
        }
        self.txs.push_back(tx);
    }

    fn response(&mut self, rs: &mut Reassembler) {
        let data = rs.data();
        if data.is_empty() {
            return;
        }
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match config().parse_response(&mut resp, data) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) => {
                if data.len() >= MAX_BUF {
                    self.side[RESP] = Framing::Dead;
                }
                return;
            }
            Err(_) => {
                self.side[RESP] = Framing::Dead;
                return;
            }
        };
        let code = resp.code.unwrap_or(0);
        let reason = resp.reason.map(|r| lossy(r.as_bytes(), 128));
        let ctype = header_text(resp.headers, "content-type", 255);
        let body = framing(resp.headers);
        rs.consume(n);
        if (100..200).contains(&code) && code != 101 {
            return; // interim response; the final one follows
        }
        let idx = self.txs.iter().position(|t| !t.has_resp);
        let (head, connect) =
            idx.map_or((false, false), |i| (self.txs[i].head, self.txs[i].connect));
        if let Some(i) = idx {
            let t = &mut self.txs[i];
            t.has_resp = true;
            t.resp_done = true;
            t.rec.status = Some(code);
            t.rec.status_msg = reason;
            if ctype.is_some() {
                t.rec.content_type = ctype;
            }
        }
        if code == 101 || (connect && (200..300).contains(&code)) {
            self.side = [Framing::Dead; 2]; // tunnel or protocol switch: not HTTP any more
            self.tunnel = connect && rs.broken() == Broken::No;
            return;
        }
        if head || code == 204 || code == 304 {
            return;
        }
        match body {
            Ok(Some(len)) => {
                if let Some(i) = idx {
                    self.txs[i].rec.response_body_len = len;
                }
                rs.skip(len);
            }
            Err(Framing::Dead) => self.side[RESP] = Framing::Dead,
            // No length (the body runs to the end of the connection) or chunked.
            other => {
                if let Some(i) = idx {
                    self.txs[i].resp_done = false;
                }
                self.side[RESP] = other.err().unwrap_or(Framing::UntilClose);
            }
        }
    }

    fn chunk(&mut self, d: usize, step: ChunkStep, rs: &mut Reassembler) {
        let data = rs.data();
        match step {
            ChunkStep::Size => match httparse::parse_chunk_size(data) {
                Ok(Status::Complete((n, size))) => {
                    rs.consume(n);
                    if size == 0 {
                        self.side[d] = Framing::Chunk(ChunkStep::Trailer);
                    } else {
                        if let Some(t) = self.body_tx(d) {
                            let len = self.body_len(t, d);
                            *len = len.saturating_add(size);
                        }
                        rs.skip(size);
                        self.side[d] = Framing::Chunk(ChunkStep::DataEnd);
                    }
                }
                Ok(Status::Partial) if data.len() < MAX_CHUNK_LINE => {}
                _ => self.side[d] = Framing::Dead,
            },
            ChunkStep::DataEnd => {
                if data.starts_with(b"\r\n") {
                    rs.consume(2);
                    self.side[d] = Framing::Chunk(ChunkStep::Size);
                } else if data.starts_with(b"\n") {
                    rs.consume(1);
                    self.side[d] = Framing::Chunk(ChunkStep::Size);
                } else if !data.is_empty() && data != b"\r" {
                    self.side[d] = Framing::Dead;
                }
            }
            ChunkStep::Trailer => match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let empty = end == 0 || (end == 1 && data[0] == b'\r');
                    rs.consume(end + 1);
                    if empty {
                        if let Some(t) = self.body_tx(d) {
                            self.set_done(t, d);
                        }
                        self.side[d] = Framing::Headers;
                    }
                }
                None if data.len() < MAX_CHUNK_LINE => {}
                None => self.side[d] = Framing::Dead,
            },
        }
    }

    /// Index of the transaction whose body side `d` is reading.
    fn body_tx(&self, d: usize) -> Option<usize> {
        if d == REQ {
            self.txs.iter().rposition(|t| !t.req_done)
        } else {
            self.txs.iter().position(|t| t.has_resp && !t.resp_done)
        }
    }

    fn body_len(&mut self, t: usize, d: usize) -> &mut u64 {
        let rec = &mut self.txs[t].rec;
        if d == REQ {
            &mut rec.request_body_len
        } else {
            &mut rec.response_body_len
        }
    }

    fn set_done(&mut self, t: usize, d: usize) {
        if d == REQ {
            self.txs[t].req_done = true;
        } else {
            self.txs[t].resp_done = true;
        }
    }

    fn flush_ready(&mut self, out: &mut Vec<ProtoRecord>) {
        while let Some(front) = self.txs.front() {
            let ready = front.req_done && front.has_resp && front.resp_done;
            if !ready && self.txs.len() <= MAX_TXS {
                break;
            }
            if let Some(t) = self.txs.pop_front() {
                out.push(ProtoRecord::Http(t.rec));
            }
        }
        if self.side == [Framing::Dead; 2] {
            self.finish(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<ProtoRecord>) {
        out.extend(self.txs.drain(..).map(|t| ProtoRecord::Http(t.rec)));
        self.txs = VecDeque::new();
        self.finished = true;
    }

    /// Connection over: a body read until close ends here; emit everything.
    pub fn on_close(&mut self, out: &mut Vec<ProtoRecord>) {
        self.finish(out);
    }
}

#[cfg(test)]
mod tests;
