//! TLS handshake metadata: ClientHello fields with JA3/JA4, ServerHello with JA3S,
//! and the server's leaf certificate, as one [`TlsRecord`] per flow.
//!
//! TLS records are unwrapped here and their handshake bytes gathered in a bounded
//! buffer, so handshake messages that span records and segments are seen whole;
//! each complete message is then decoded with `tls-parser`, certificates with
//! `x509-parser`. A leaf certificate is taken as soon as it is complete, even when
//! the rest of a large chain does not fit the buffer.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extension,
    parse_tls_extension_unknown, parse_tls_message_handshake, parse_tls_server_hello_extension,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::dns::lossy;
use super::fingerprint::{HelloFields, is_grease, ja3_string, ja3s_string, ja4, md5_hex};
use super::stream::{Broken, Reassembler};
use super::{ProtoRecord, Ts};

/// Handshake bytes kept per direction while a message is incomplete.
const MAX_HS: usize = 16 * 1024;
/// Largest legal TLS record payload (2^14 plus expansion).
const MAX_RECORD: usize = 18 * 1024;
const MAX_EXTENSIONS: usize = 128;
const MAX_ALPN: usize = 16;
const MAX_SAN: usize = 64;
const MAX_TEXT: usize = 512;

/// Random value marking a TLS 1.3 HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// TLS metadata of one connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsRecord {
    /// ClientHello time.
    pub ts: Ts,
    /// ClientHello legacy_version.
    pub client_version: u16,
    /// Versions offered in supported_versions, GREASE removed.
    pub supported_versions: Vec<u16>,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// Cipher suites offered, GREASE excluded.
    pub cipher_count: u16,
    pub ja3: String,
    pub ja3_string: String,
    pub ja4: String,
    /// Negotiated: supported_versions of the ServerHello, else its legacy version.
    pub server_version: Option<u16>,
    pub server_cipher: Option<u16>,
    pub ja3s: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    pub cert_not_before: Option<Ts>,
    pub cert_not_after: Option<Ts>,
    pub cert_san: Vec<String>,
    /// Subject equals issuer (and key identifiers, when both present, agree).
    pub cert_self_signed: Option<bool>,
}

/// Whether the first client bytes look like a TLS ClientHello record.
/// `None`: too few bytes to tell yet.
pub(crate) fn sniff(data: &[u8]) -> Option<bool> {
    let want = [0x16, 0x03];
    let n = data.len().min(2);
    if data[..n] != want[..n] {
        return Some(false);
    }
    if data.len() < 6 {
        return None;
    }
    Some(data[2] <= 0x04 && data[5] == 0x01)
}

/// Raw view of each extension: (type, whole extension bytes including its header).
fn raw_extensions(mut ext: &[u8]) -> Vec<(u16, &[u8])> {
    let mut v = Vec::new();
    while !ext.is_empty() && v.len() < MAX_EXTENSIONS {
        let Ok((rest, parsed)) = parse_tls_extension_unknown(ext) else {
            break;
        };
        let TlsExtension::Unknown(t, _) = parsed else {
            break;
        };
        let used = ext.len() - rest.len();
        v.push((t.0, &ext[..used]));
        ext = rest;
    }
    v
}

#[derive(Debug)]
struct ClientInfo {
    ts: Ts,
    fields: HelloFields,
    sni: Option<String>,
    alpn: Vec<String>,
}

fn parse_client_hello(ts: Ts, ch: &tls_parser::TlsClientHelloContents) -> ClientInfo {
    let mut f = HelloFields {
        legacy_version: ch.version.0,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        ..Default::default()
    };
    let mut sni = None;
    let mut alpn = Vec::new();
    for (t, raw) in raw_extensions(ch.ext.unwrap_or_default()) {
        f.extensions.push(t);
        let Ok((_, ext)) = parse_tls_client_hello_extension(raw) else {
            continue;
        };
        match ext {
            TlsExtension::SNI(names) => {
                sni = names
                    .iter()
                    .find(|(kind, _)| kind.0 == 0)
                    .map(|(_, n)| lossy(n, 255));
            }
            TlsExtension::ALPN(protos) => {
                f.first_alpn = protos.first().map(|p| p.to_vec()).unwrap_or_default();
                alpn = protos.iter().take(MAX_ALPN).map(|p| lossy(p, 64)).collect();
            }
            TlsExtension::SignatureAlgorithms(s) => f.sig_algs = s,
            TlsExtension::EllipticCurves(g) => f.groups = g.iter().map(|g| g.0).collect(),
            TlsExtension::EcPointFormats(p) => f.point_formats = p.to_vec(),
            TlsExtension::SupportedVersions(v) => {
                f.supported_versions = v.iter().map(|v| v.0).collect();
            }
            _ => {}
        }
    }
    ClientInfo {
        ts,
        fields: f,
        sni,
        alpn,
    }
}

#[derive(Debug)]
struct ServerInfo {
    version: u16,
    cipher: u16,
    ja3s: String,
}

fn parse_server_hello(sh: &tls_parser::TlsServerHelloContents) -> ServerInfo {
    let mut exts = Vec::new();
    let mut version = sh.version.0;
    for (t, raw) in raw_extensions(sh.ext.unwrap_or_default()) {
        exts.push(t);
        if t == 0x002b
            && let Ok((_, TlsExtension::SupportedVersions(v))) =
                parse_tls_server_hello_extension(raw)
            && let Some(v) = v.first()
        {
            version = v.0;
        }
    }
    let ja3s = md5_hex(&ja3s_string(sh.version.0, sh.cipher.0, &exts));
    ServerInfo {
        version,
        cipher: sh.cipher.0,
        ja3s,
    }
}

#[derive(Debug, Default)]
struct CertInfo {
    subject: String,
    issuer: String,
    not_before: Ts,
    not_after: Ts,
    san: Vec<String>,
    self_signed: bool,
}

fn text(s: String) -> String {
    let mut s = s;
    super::dns::truncate(&mut s, MAX_TEXT);
    s
}

fn parse_cert(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut san = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in ext.value.general_names.iter() {
            if san.len() >= MAX_SAN {
                break;
            }
            match name {
                GeneralName::DNSName(s) => san.push(lossy(s.as_bytes(), 255)),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        san.push(Ipv4Addr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        san.push(Ipv6Addr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let (mut ski, mut aki) = (None, None);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0);
            }
            _ => {}
        }
    }
    let same_name = cert.subject().as_raw() == cert.issuer().as_raw();
    let keys_agree = match (ski, aki) {
        (Some(s), Some(a)) => s == a,
        _ => true,
    };
    let v = cert.validity();
    Some(CertInfo {
        subject: text(cert.subject().to_string()),
        issuer: text(cert.issuer().to_string()),
        not_before: v.not_before.timestamp().saturating_mul(1_000_000),
        not_after: v.not_after.timestamp().saturating_mul(1_000_000),
        san,
        self_signed: same_name && keys_agree,
    })
}

/// The leaf of a Certificate message body whose tail may still be missing.
fn partial_leaf(body: &[u8]) -> Option<&[u8]> {
    let u24 = |b: &[u8]| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize;
    let first = body.get(3..6).map(u24)?;
    body.get(6..6 + first)
}

/// Per-direction record-layer state.
#[derive(Debug, Default)]
struct Side {
    rec_type: u8,
    rec_left: usize,
    hs: Vec<u8>,
    done: bool,
}

/// TLS parser state of one TCP connection.
#[derive(Debug, Default)]
pub(crate) struct TlsSession {
    client: Option<ClientInfo>,
    server: Option<ServerInfo>,
    cert: Option<CertInfo>,
    sides: [Side; 2],
    emitted: bool,
    /// Set when there is nothing more to get from this connection.
    pub finished: bool,
}

const ORIG: usize = 0;
const RESP: usize = 1;

impl TlsSession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the bytes buffered in `rs` for side `d` (0 = client, 1 = server).
    pub fn on_data(&mut self, ts: Ts, d: usize, rs: &mut Reassembler, out: &mut Vec<ProtoRecord>) {
        if self.finished || self.sides[d].done {
            rs.stop();
            return;
        }
        loop {
            if self.sides[d].done || self.finished {
                rs.stop();
                return;
            }
            let side = &mut self.sides[d];
            let data = rs.data();
            if side.rec_left == 0 {
                if data.len() < 5 {
                    break;
                }
                let len = u16::from_be_bytes([data[3], data[4]]) as usize;
                if !(20..=24).contains(&data[0]) || data[1] != 3 || len > MAX_RECORD {
                    self.side_failed(d, out);
                    continue;
                }
                side.rec_type = data[0];
                side.rec_left = len;
                rs.consume(5);
                if side.rec_type != 22 {
                    rs.skip(len as u64);
                    side.rec_left = 0;
                    self.on_other_record(d, out);
                }
                continue;
            }
            if data.is_empty() {
                break;
            }
            let take = side.rec_left.min(data.len());
            let room = MAX_HS.saturating_sub(side.hs.len());
            side.hs.extend_from_slice(&data[..take.min(room)]);
            side.rec_left -= take;
            rs.consume(take);
            self.on_handshake_bytes(ts, d, out);
            if take > room && !self.sides[d].done {
                self.side_failed(d, out); // a handshake message larger than we keep
            }
        }
        if rs.broken() != Broken::No {
            self.side_failed(d, out);
            rs.stop();
        }
    }

    fn on_handshake_bytes(&mut self, ts: Ts, d: usize, out: &mut Vec<ProtoRecord>) {
        loop {
            if self.sides[d].done || self.finished {
                return;
            }
            let hs = &self.sides[d].hs;
            if hs.len() < 4 {
                return;
            }
            let len = (hs[1] as usize) << 16 | (hs[2] as usize) << 8 | hs[3] as usize;
            if hs.len() < 4 + len {
                if hs[0] == 11
                    && d == RESP
                    && self.cert.is_none()
                    && let Some(leaf) = partial_leaf(&hs[4..])
                {
                    self.cert = parse_cert(leaf);
                    self.maybe_emit(out);
                }
                return;
            }
            let msg = hs[..4 + len].to_vec();
            self.sides[d].hs.drain(..4 + len);
            self.on_message(ts, d, &msg, out);
        }
    }

    fn on_message(&mut self, ts: Ts, d: usize, msg: &[u8], out: &mut Vec<ProtoRecord>) {
        let parsed = parse_tls_message_handshake(msg);
        let hs = match parsed {
            Ok((_, TlsMessage::Handshake(hs))) => hs,
            _ => {
                // Undecodable: fatal only for the hellos we depend on.
                if matches!(msg.first(), Some(1) | Some(2)) {
                    self.side_failed(d, out);
                }
                return;
            }
        };
        match (d, hs) {
            (ORIG, TlsMessageHandshake::ClientHello(ch)) => {
                if self.client.is_none() {
                    self.client = Some(parse_client_hello(ts, &ch));
                }
                // Only the first ClientHello counts; the client side is over.
                self.sides[ORIG] = Side {
                    done: true,
                    ..Side::default()
                };
            }
            (RESP, TlsMessageHandshake::ServerHello(sh)) => {
                if sh.random == HRR_RANDOM || self.server.is_some() {
                    return;
                }
                if self.client.is_none() {
                    self.finished = true; // ServerHello without ClientHello: skip
                    return;
                }
                self.server = Some(parse_server_hello(&sh));
                self.maybe_emit(out);
            }
            (RESP, TlsMessageHandshake::Certificate(c)) => {
                if self.cert.is_none()
                    && let Some(leaf) = c.cert_chain.first()
                {
                    self.cert = parse_cert(leaf.data);
                }
                self.force_emit(out);
            }
            (RESP, TlsMessageHandshake::ServerDone(_)) => self.force_emit(out),
            _ => {}
        }
    }

    /// A non-handshake record (change cipher spec, alert, application data):
    /// everything after it is encrypted or over.
    fn on_other_record(&mut self, d: usize, out: &mut Vec<ProtoRecord>) {
        self.sides[d].done = true;
        self.sides[d].hs = Vec::new();
        if d == RESP {
            self.force_emit(out);
        }
    }

    fn side_failed(&mut self, d: usize, out: &mut Vec<ProtoRecord>) {
        self.sides[d].done = true;
        self.sides[d].hs = Vec::new();
        self.sides[d].rec_left = 0;
        if d == ORIG && self.client.is_none() {
            self.finished = true;
        } else if d == RESP {
            self.force_emit(out);
        }
    }

    /// Emits once the server side has told all we want.
    fn maybe_emit(&mut self, out: &mut Vec<ProtoRecord>) {
        let Some(server) = &self.server else { return };
        if server.version >= 0x0304 || self.cert.is_some() {
            self.force_emit(out);
        }
    }

    fn force_emit(&mut self, out: &mut Vec<ProtoRecord>) {
        if !self.emitted
            && let Some(c) = &self.client
        {
            out.push(ProtoRecord::Tls(self.record(c)));
            self.emitted = true;
        }
        self.finished = true;
        self.sides = Default::default();
    }

    fn record(&self, c: &ClientInfo) -> TlsRecord {
        let ja3_string = ja3_string(&c.fields);
        let cert = self.cert.as_ref();
        TlsRecord {
            ts: c.ts,
            client_version: c.fields.legacy_version,
            supported_versions: c
                .fields
                .supported_versions
                .iter()
                .copied()
                .filter(|&v| !is_grease(v))
                .collect(),
            sni: c.sni.clone(),
            alpn: c.alpn.clone(),
            cipher_count: c.fields.ciphers.iter().filter(|&&x| !is_grease(x)).count() as u16,
            ja3: md5_hex(&ja3_string),
            ja3_string,
            ja4: ja4(&c.fields, 't'),
            server_version: self.server.as_ref().map(|s| s.version),
            server_cipher: self.server.as_ref().map(|s| s.cipher),
            ja3s: self.server.as_ref().map(|s| s.ja3s.clone()),
            cert_subject: cert.map(|c| c.subject.clone()),
            cert_issuer: cert.map(|c| c.issuer.clone()),
            cert_not_before: cert.map(|c| c.not_before),
            cert_not_after: cert.map(|c| c.not_after),
            cert_san: cert.map(|c| c.san.clone()).unwrap_or_default(),
            cert_self_signed: cert.map(|c| c.self_signed),
        }
    }

    /// Connection over: emit what was seen if there was a ClientHello.
    pub fn on_close(&mut self, out: &mut Vec<ProtoRecord>) {
        self.force_emit(out);
    }
}

#[cfg(test)]
pub(crate) mod tests;
