//! DNS transactions (Zeek dns.log style): one [`DnsRecord`] per query/response pair.
//!
//! Wire decoding is done record by record with `hickory-proto`, so a message whose
//! tail is malformed still yields its header, question and the answers before the
//! damage. The same decoder serves mDNS and LLMNR in `names.rs`. Pending queries
//! are capped per flow, strings are capped, and nothing here can panic on input.

use std::fmt::Write as _;

use hickory_proto::op::{Header, MessageType, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use serde::Serialize;

use super::stream::{Broken, MAX_BUF, Reassembler};
use super::{ProtoRecord, Ts};

/// Queries kept waiting for their response, per flow.
const MAX_PENDING: usize = 64;
/// Records decoded from one message (all sections together).
const MAX_RECORDS: usize = 64;
/// Answers kept in one [`DnsRecord`].
const MAX_ANSWERS: usize = 32;
/// Longest text kept for a name or answer data.
const MAX_TEXT: usize = 512;

/// One DNS transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRecord {
    /// Query time, or response time if no query was seen.
    pub ts: Ts,
    pub trans_id: u16,
    /// Lowercase, no trailing dot; empty when the message had no question.
    pub query: String,
    pub qtype: u16,
    pub qclass: u16,
    /// `None` when no response was seen.
    pub rcode: Option<u16>,
    pub answers: Vec<DnsAnswer>,
    pub rtt_us: Option<i64>,
    pub over_tcp: bool,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsAnswer {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    /// Text form: address, target name, TXT strings joined by spaces, else presentation form.
    pub data: String,
}

/// Mnemonic of a query/record type ("A", "AAAA", ... else "TYPE123").
pub fn qtype_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        10 => "NULL",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// Mnemonic of a response code ("NOERROR", "NXDOMAIN", ... else "RCODE23").
pub fn rcode_name(r: u16) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return format!("RCODE{r}"),
    };
    s.to_string()
}

/// Which section a decoded record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    Answer,
    Authority,
    Additional,
}

/// The parts of a DNS-format message we use.
pub(crate) struct Parsed {
    pub header: Header,
    pub queries: Vec<Query>,
    pub records: Vec<(Section, Record)>,
    /// Full 12-bit response code (EDNS high bits merged when an OPT record was read).
    pub rcode: u16,
}

/// Decodes as much of a DNS-format message as is well formed. `None` when even the
/// header is missing or the section counts cannot fit in the message.
pub(crate) fn parse_message(buf: &[u8]) -> Option<Parsed> {
    parse_message_part(buf, buf.len())
}

/// [`parse_message`] for the first `buf.len()` bytes of a `full_len`-byte message (cut
/// by a snaplen, or the first IP fragment of a datagram): the section counts must fit
/// in the whole message; the records are read up to where `buf` ends.
pub(crate) fn parse_message_part(buf: &[u8], full_len: usize) -> Option<Parsed> {
    let mut dec = BinDecoder::new(buf);
    let header = Header::read(&mut dec).ok()?;
    let qd = header.query_count() as usize;
    let rr = header.answer_count() as usize
        + header.name_server_count() as usize
        + header.additional_count() as usize;
    // A question takes at least 5 bytes and a record 11: reject absurd counts early.
    let missing = full_len.saturating_sub(buf.len());
    if qd * 5 + rr * 11 > dec.len() + missing {
        return None;
    }
    let mut queries = Vec::new();
    for _ in 0..qd.min(8) {
        match Query::read(&mut dec) {
            Ok(q) => queries.push(q),
            Err(_) => break,
        }
    }
    let mut rcode = u16::from(header.response_code()) & 0x0f;
    let mut records = Vec::new();
    if queries.len() == qd {
        let sections = [
            (Section::Answer, header.answer_count()),
            (Section::Authority, header.name_server_count()),
            (Section::Additional, header.additional_count()),
        ];
        'outer: for (section, count) in sections {
            for _ in 0..count {
                let Ok(rec) = Record::read(&mut dec) else {
                    break 'outer;
                };
                if rec.record_type() == RecordType::OPT {
                    rcode |= ((rec.ttl() >> 24) as u16) << 4;
                    continue;
                }
                if records.len() < MAX_RECORDS {
                    records.push((section, rec));
                }
            }
        }
    }
    Some(Parsed {
        header,
        queries,
        records,
        rcode,
    })
}

/// Text form of a name: labels joined by '.', no trailing dot, unprintable bytes escaped.
pub(crate) fn name_text(name: &Name) -> String {
    let mut out = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_label(&mut out, label);
        if out.len() > MAX_TEXT {
            truncate(&mut out, MAX_TEXT);
            break;
        }
    }
    out
}

fn push_label(out: &mut String, label: &[u8]) {
    match std::str::from_utf8(label) {
        Ok(s) => {
            for c in s.chars() {
                match c {
                    '.' => out.push_str("\\."),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => {
                        let _ = write!(out, "\\x{:02x}", c as u32 & 0xff);
                    }
                    c => out.push(c),
                }
            }
        }
        Err(_) => {
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Lossy UTF-8 of at most `max` bytes of input.
pub(crate) fn lossy(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    truncate(&mut s, max);
    s
}

/// Text form of record data.
pub(crate) fn rdata_text(data: &RData) -> String {
    let mut s = match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(n) => name_text(&n.0).to_ascii_lowercase(),
        RData::NS(n) => name_text(&n.0).to_ascii_lowercase(),
        RData::PTR(n) => name_text(&n.0),
        RData::ANAME(n) => name_text(&n.0).to_ascii_lowercase(),
        RData::MX(mx) => name_text(mx.exchange()).to_ascii_lowercase(),
        RData::SRV(srv) => name_text(srv.target()),
        RData::TXT(txt) => {
            let mut s = String::new();
            for (i, part) in txt.txt_data().iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(&String::from_utf8_lossy(part));
                if s.len() > MAX_TEXT {
                    break;
                }
            }
            s
        }
        RData::Update0(_) => String::new(),
        other => {
            let mut s = String::new();
            let _ = write!(s, "{other}");
            s
        }
    };
    truncate(&mut s, MAX_TEXT);
    s
}

fn answer_of(rec: &Record) -> DnsAnswer {
    DnsAnswer {
        name: name_text(rec.name()).to_ascii_lowercase(),
        rtype: u16::from(rec.record_type()),
        ttl: rec.ttl(),
        data: rdata_text(rec.data()),
    }
}

/// Pairs queries and responses of one flow.
#[derive(Debug, Default)]
pub(crate) struct DnsTracker {
    pending: Vec<DnsRecord>,
    over_tcp: bool,
}

impl DnsTracker {
    pub fn new(over_tcp: bool) -> Self {
        DnsTracker {
            pending: Vec::new(),
            over_tcp,
        }
    }

    /// Handles one DNS message; returns false when it was not DNS.
    pub fn on_message(&mut self, ts: Ts, buf: &[u8], out: &mut Vec<ProtoRecord>) -> bool {
        self.on_message_part(ts, buf, buf.len(), out)
    }

    /// Handles the first `buf.len()` bytes of a `full_len`-byte DNS message: a response
    /// keeps the answers that fit in what was captured.
    pub fn on_message_part(
        &mut self,
        ts: Ts,
        buf: &[u8],
        full_len: usize,
        out: &mut Vec<ProtoRecord>,
    ) -> bool {
        let Some(msg) = parse_message_part(buf, full_len) else {
            return false;
        };
        let (query, qtype, qclass) = match msg.queries.first() {
            Some(q) => (
                name_text(q.name()).to_ascii_lowercase(),
                u16::from(q.query_type()),
                u16::from(q.query_class()),
            ),
            None => (String::new(), 0, 0),
        };
        let id = msg.header.id();
        if msg.header.message_type() == MessageType::Query {
            let dup = self
                .pending
                .iter()
                .any(|p| p.trans_id == id && p.query == query && p.qtype == qtype);
            if dup {
                return true; // retransmission: keep the first query time
            }
            if self.pending.len() >= MAX_PENDING {
                let old = self.pending.remove(0);
                out.push(ProtoRecord::Dns(old));
            }
            self.pending.push(DnsRecord {
                ts,
                trans_id: id,
                query,
                qtype,
                qclass,
                rcode: None,
                answers: Vec::new(),
                rtt_us: None,
                over_tcp: self.over_tcp,
            });
            return true;
        }
        let answers: Vec<DnsAnswer> = msg
            .records
            .iter()
            .filter(|(s, _)| *s == Section::Answer)
            .take(MAX_ANSWERS)
            .map(|(_, r)| answer_of(r))
            .collect();
        let found = self.pending.iter().position(|p| {
            p.trans_id == id && (msg.queries.is_empty() || (p.query == query && p.qtype == qtype))
        });
        let rec = match found {
            Some(i) => {
                let mut p = self.pending.remove(i);
                p.rcode = Some(msg.rcode);
                p.answers = answers;
                p.rtt_us = Some(ts.saturating_sub(p.ts).max(0));
                p
            }
            None => DnsRecord {
                ts,
                trans_id: id,
                query,
                qtype,
                qclass,
                rcode: Some(msg.rcode),
                answers,
                rtt_us: None,
                over_tcp: self.over_tcp,
            },
        };
        out.push(ProtoRecord::Dns(rec));
        true
    }

    /// Emits the queries that never got an answer.
    pub fn flush(&mut self, out: &mut Vec<ProtoRecord>) {
        out.extend(self.pending.drain(..).map(ProtoRecord::Dns));
        self.pending = Vec::new();
    }
}

/// DNS over TCP: messages framed by a 2-byte length, both directions into one tracker.
#[derive(Debug)]
pub(crate) struct DnsTcp {
    tracker: DnsTracker,
    pub seen_dns: bool,
    pub failed: bool,
}

impl DnsTcp {
    pub fn new() -> Self {
        DnsTcp {
            tracker: DnsTracker::new(true),
            seen_dns: false,
            failed: false,
        }
    }

    /// Consumes every complete message buffered in `rs`.
    pub fn on_data(&mut self, ts: Ts, rs: &mut Reassembler, out: &mut Vec<ProtoRecord>) {
        loop {
            let data = rs.data();
            if data.len() < 2 {
                break;
            }
            let len = u16::from_be_bytes([data[0], data[1]]) as usize;
            if len + 2 > MAX_BUF {
                rs.skip(2 + len as u64); // zone transfer or similar: too big to keep
                continue;
            }
            let Some(msg) = data.get(2..2 + len) else {
                break;
            };
            if self.tracker.on_message(ts, msg, out) {
                self.seen_dns = true;
            } else if !self.seen_dns {
                self.failed = true; // not DNS at all
                return;
            }
            rs.consume(2 + len);
        }
        if rs.broken() != Broken::No {
            self.failed = true;
        }
    }

    pub fn flush(&mut self, out: &mut Vec<ProtoRecord>) {
        self.tracker.flush(out);
    }
}

#[cfg(test)]
pub(crate) mod tests;
