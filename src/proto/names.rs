//! Local name announcements that tell who a device is: mDNS, SSDP, NetBIOS-NS and
//! LLMNR, each turned into [`NameRecord`]s.
//!
//! mDNS and LLMNR use the DNS wire decoder of `dns.rs` (hickory-proto); NetBIOS-NS
//! uses the same decoder for its DNS-shaped framing and decodes the first-level
//! encoded name here; SSDP headers are parsed with `httparse`. Devices repeat
//! announcements every few seconds, so each flow remembers a bounded set of
//! recently emitted names and does not repeat them.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::MessageType;
use hickory_proto::rr::{RData, Record};
use serde::{Serialize, Serializer};

use super::dns::{Section, lossy, name_text, parse_message};
use super::{ProtoRecord, Ts};
use crate::flow::Direction;

/// Recently emitted names remembered per flow.
const MAX_SEEN: usize = 128;
/// Names emitted from one packet.
const MAX_PER_PACKET: usize = 32;

/// A name that a device announced, owns or asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameRecord {
    pub ts: Ts,
    /// "mdns", "ssdp", "netbios-ns" or "llmnr".
    pub source: &'static str,
    /// Side of the flow that sent the name (announcer, owner, or asker for "query").
    #[serde(serialize_with = "ser_dir")]
    pub dir: Direction,
    pub name: String,
    /// "hostname", "service", "server", "usn", "location", "group" or "query".
    pub kind: &'static str,
    pub address: Option<IpAddr>,
}

fn ser_dir<S: Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match d {
        Direction::Orig => "orig",
        Direction::Resp => "resp",
    })
}

/// Which name protocol a flow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameProto {
    Mdns,
    Ssdp,
    NetbiosNs,
    Llmnr,
}

impl NameProto {
    pub fn label(self) -> &'static str {
        match self {
            NameProto::Mdns => "mdns",
            NameProto::Ssdp => "ssdp",
            NameProto::NetbiosNs => "netbios-ns",
            NameProto::Llmnr => "llmnr",
        }
    }
}

/// Per-flow state: the protocol and the names already reported.
#[derive(Debug)]
pub(crate) struct NameSession {
    pub proto: NameProto,
    seen: VecDeque<u64>,
}

/// What a packet yielded before de-duplication.
struct Found {
    name: String,
    kind: &'static str,
    address: Option<IpAddr>,
}

impl NameSession {
    pub fn new(proto: NameProto) -> Self {
        NameSession {
            proto,
            seen: VecDeque::new(),
        }
    }

    /// Handles one UDP payload; false when it did not parse as the protocol.
    pub fn on_udp(
        &mut self,
        ts: Ts,
        dir: Direction,
        payload: &[u8],
        out: &mut Vec<ProtoRecord>,
    ) -> bool {
        let found = match self.proto {
            NameProto::Mdns => mdns(payload),
            NameProto::Llmnr => llmnr(payload),
            NameProto::NetbiosNs => netbios(payload),
            NameProto::Ssdp => ssdp(payload),
        };
        let Some(found) = found else { return false };
        for f in found.into_iter().take(MAX_PER_PACKET) {
            let mut h = DefaultHasher::new();
            (&f.name, f.kind, f.address, dir as u8).hash(&mut h);
            let key = h.finish();
            if self.seen.contains(&key) {
                continue;
            }
            if self.seen.len() >= MAX_SEEN {
                self.seen.pop_front();
            }
            self.seen.push_back(key);
            out.push(ProtoRecord::Name(NameRecord {
                ts,
                source: self.proto.label(),
                dir,
                name: f.name,
                kind: f.kind,
                address: f.address,
            }));
        }
        true
    }
}

fn record_address(r: &Record) -> Option<IpAddr> {
    match r.data() {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// Address encoded in a reverse-lookup name (in-addr.arpa / ip6.arpa).
fn reverse_address(name: &str) -> Option<IpAddr> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_suffix(".in-addr.arpa") {
        let mut o: Vec<u8> = rest
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        if o.len() != 4 {
            return None;
        }
        o.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])));
    }
    let rest = lower.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        bytes[i] = pair[1] << 4 | pair[0];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

fn mdns(payload: &[u8]) -> Option<Vec<Found>> {
    let msg = parse_message(payload)?;
    let mut v = Vec::new();
    // A response announces the sender's records. A query only asks, except for
    // the authority section of a probe, where the sender proposes its own names;
    // its answer section lists records of others that it already knows.
    let query = msg.header.message_type() == MessageType::Query;
    for (_, r) in msg
        .records
        .iter()
        .filter(|(s, _)| !query || *s == Section::Authority)
    {
        let owner = name_text(r.name());
        match r.data() {
            RData::A(_) | RData::AAAA(_) => v.push(Found {
                name: owner,
                kind: "hostname",
                address: record_address(r),
            }),
            RData::PTR(target) => {
                let target = name_text(&target.0);
                if let Some(addr) = reverse_address(&owner) {
                    v.push(Found {
                        name: target,
                        kind: "hostname",
                        address: Some(addr),
                    });
                } else if owner != "_services._dns-sd._udp.local" {
                    v.push(Found {
                        name: target,
                        kind: "service",
                        address: None,
                    });
                }
            }
            RData::SRV(srv) => {
                v.push(Found {
                    name: owner,
                    kind: "service",
                    address: None,
                });
                v.push(Found {
                    name: name_text(srv.target()),
                    kind: "hostname",
                    address: None,
                });
            }
            _ => {}
        }
    }
    Some(v)
}

fn llmnr(payload: &[u8]) -> Option<Vec<Found>> {
    let msg = parse_message(payload)?;
    let mut v = Vec::new();
    if msg.header.message_type() == MessageType::Query {
        for q in &msg.queries {
            v.push(Found {
                name: name_text(q.name()),
                kind: "query",
                address: None,
            });
        }
        return Some(v);
    }
    for (section, r) in &msg.records {
        if *section == Section::Answer
            && let Some(addr) = record_address(r)
        {
            v.push(Found {
                name: name_text(r.name()),
                kind: "hostname",
                address: Some(addr),
            });
        }
    }
    Some(v)
}

/// Decodes a NetBIOS first-level encoded label: 32 letters 'A'..'P' → 15 name bytes
/// and a suffix byte. Returns "NAME<xx>" (trailing spaces removed).
pub(crate) fn netbios_name(label: &[u8]) -> Option<(String, u8)> {
    if label.len() != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, pair) in label.chunks_exact(2).enumerate() {
        let hi = pair[0].checked_sub(b'A').filter(|n| *n < 16)?;
        let lo = pair[1].checked_sub(b'A').filter(|n| *n < 16)?;
        raw[i] = hi << 4 | lo;
    }
    let suffix = raw[15];
    let base = &raw[..15];
    let end = base
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |p| p + 1);
    let mut name = String::new();
    for &b in &base[..end] {
        if b.is_ascii_graphic() || b == b' ' {
            name.push(b as char);
        } else {
            name.push_str(&format!("\\x{b:02x}"));
        }
    }
    Some((format!("{name}<{suffix:02x}>"), suffix))
}

fn netbios(payload: &[u8]) -> Option<Vec<Found>> {
    let msg = parse_message(payload)?;
    let opcode = u8::from(msg.header.op_code());
    let response = msg.header.message_type() == MessageType::Response;
    let mut v = Vec::new();
    let decode = |n: &hickory_proto::rr::Name| n.iter().next().and_then(netbios_name);
    // Name query request: the sender asks for a name.
    if opcode == 0 && !response {
        for q in &msg.queries {
            if let Some((name, _)) = decode(q.name()) {
                v.push(Found {
                    name,
                    kind: "query",
                    address: None,
                });
            }
        }
        return Some(v);
    }
    // Registrations, refreshes, positive responses: the sender owns the name.
    let owned = matches!(opcode, 0 | 5 | 8 | 9) && (msg.rcode == 0);
    if !owned {
        return Some(v);
    }
    for (_, r) in &msg.records {
        let Some((name, _)) = decode(r.name()) else {
            continue;
        };
        // NB resource data: 2 flag bytes then an IPv4 address, possibly repeated.
        let rdata = match r.data() {
            RData::Unknown { code: _, rdata } => rdata.anything(),
            _ => &[],
        };
        let group = rdata.first().is_some_and(|f| f & 0x80 != 0);
        let address = rdata
            .get(2..6)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)));
        v.push(Found {
            name,
            kind: if group { "group" } else { "hostname" },
            address,
        });
    }
    if v.is_empty() && !response {
        for q in &msg.queries {
            if let Some((name, _)) = decode(q.name()) {
                v.push(Found {
                    name,
                    kind: "hostname",
                    address: None,
                });
            }
        }
    }
    Some(v)
}

/// Host part of a URL when it is a literal address.
fn url_address(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?']).next()?;
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    host.split(':').next()?.parse().ok()
}

fn ssdp(payload: &[u8]) -> Option<Vec<Found>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let hdrs: &[httparse::Header] = if payload.starts_with(b"HTTP/") {
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(payload).ok()?;
        resp.headers
    } else {
        let mut req = httparse::Request::new(&mut headers);
        req.parse(payload).ok()?;
        if req.method != Some("NOTIFY") {
            return Some(Vec::new()); // M-SEARCH asks; it does not announce
        }
        req.headers
    };
    let mut v = Vec::new();
    let location = hdrs
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .map(|h| lossy(h.value, 512));
    let address = location.as_deref().and_then(url_address);
    for h in hdrs.iter() {
        let kind = if h.name.eq_ignore_ascii_case("server") {
            "server"
        } else if h.name.eq_ignore_ascii_case("usn") {
            "usn"
        } else if h.name.eq_ignore_ascii_case("location") {
            "location"
        } else {
            continue;
        };
        v.push(Found {
            name: lossy(h.value, 512),
            kind,
            address,
        });
    }
    Some(v)
}

#[cfg(test)]
mod tests;
