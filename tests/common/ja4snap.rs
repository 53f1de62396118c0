//! Expected JA4 values from the JA4 reference implementation (FoxIO-LLC/ja4,
//! Rust tool), stored as insta YAML snapshots in `ja4/expected/`.
//!
//! # The snapshot format (all 38 files checked)
//!
//! ```text
//! ---
//! source: ja4/src/lib.rs
//! expression: output
//! ---
//! - stream: 0            <- one entry per (transport, stream)
//!   transport: tcp        <- "tcp" or "udp" (QUIC)
//!   src: 192.168.1.168    <- client (sender of the first packet / SYN);
//!   dst: 142.251.16.94       IPv6 unbracketed, never quoted
//!   src_port: 50112
//!   dst_port: 443
//!   ja4t: ...             <- optional, TCP SYN fingerprint (FoxIO licence)
//!   tls_server_name: clientservices.googleapis.com   <- optional SNI
//!   ja4: t13d1516h2_8daaf6152771_e5627efa2ab1        <- optional client JA4
//!   ja4s: t1206h2_c030_044dc9b3196d                  <- optional server JA4S
//!   tls_certs: / http: / ja4l_c / ja4l_s / ja4ssh / hassh ... (nested lists
//!   and other JA4+ values, ignored here)
//! ```
//!
//! A file with no stream at all holds `[]` (dhcp.pcapng, dhcpv6.pcap).
//!
//! Facts worth knowing when writing a test against these:
//! * `stream` is tshark's per-transport stream index: `tcp` stream 0 and
//!   `udp` stream 0 are different streams (chrome-cloudflare-quic-with-
//!   secrets has both). Match our flows by (transport, src, src_port, dst,
//!   dst_port), not by stream number.
//! * 303 stream entries in total, 202 with a client `ja4` (TLS over TCP and
//!   QUIC Initial over UDP; `ja4` starts with `t` or `q`), 201 of them with
//!   `tls_server_name`; the others are HTTP, SSH, or TCP without a hello.
//!   Each stream has at most one `ja4` (the first ClientHello).
//! * `ja4__insta@gtp-iphone.pcap.snap` has no capture in `ja4/pcap/`, and
//!   `ja4/pcap/dtls-udp.notest.cap` has no snapshot. Use
//!   [`Ja4Expect::pcap_path`] and skip entries whose capture is missing.
//! * Only the JA4 (TLS client) value is BSD-3-Clause; JA4S and the other
//!   JA4+ values are under the FoxIO licence.

use std::path::{Path, PathBuf};

/// One stream of a JA4 snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ja4Expect {
    /// Capture file name in `ja4/pcap/`, e.g. `"tls-sni.pcapng"` (taken from
    /// the snapshot name `ja4__insta@<pcap>.snap`).
    pub pcap: String,
    /// `ja4/pcap/<pcap>` when that capture exists.
    pub pcap_path: Option<PathBuf>,
    /// tshark stream index (per transport).
    pub stream: Option<u64>,
    /// "tcp" or "udp".
    pub transport: Option<String>,
    /// Client address (text as written, e.g. "2001:db8:1::1").
    pub src: Option<String>,
    /// Server address.
    pub dst: Option<String>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// Client JA4 fingerprint (`t13d1516h2_8daaf6152771_e5627efa2ab1`).
    pub ja4: Option<String>,
    /// SNI from the ClientHello (`tls_server_name`).
    pub sni: Option<String>,
    /// Server JA4S fingerprint.
    pub ja4s: Option<String>,
}

impl Ja4Expect {
    /// Client address parsed.
    pub fn src_ip(&self) -> Option<std::net::IpAddr> {
        self.src.as_deref()?.parse().ok()
    }

    /// Server address parsed.
    pub fn dst_ip(&self) -> Option<std::net::IpAddr> {
        self.dst.as_deref()?.parse().ok()
    }
}

/// `ja4/expected` of the corpus, if present.
pub fn ja4_expected_dir() -> Option<PathBuf> {
    super::corpus_subdir("ja4/expected")
}

/// `ja4/pcap` of the corpus, if present.
pub fn ja4_pcap_dir() -> Option<PathBuf> {
    super::corpus_subdir("ja4/pcap")
}

/// Loads every `ja4__insta@*.snap` in `dir` (sorted by file name) and returns
/// all stream entries, including those without a `ja4`. For the client
/// fingerprints only, filter on `e.ja4.is_some()`. `pcap_path` is filled from
/// the sibling `../pcap` folder of `dir`.
pub fn load_ja4_expectations(dir: &Path) -> Vec<Ja4Expect> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    let pcap_dir = dir.parent().map(|p| p.join("pcap"));
    let mut out = Vec::new();
    for f in files {
        let Some(name) = f.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(pcap) = name
            .strip_prefix("ja4__insta@")
            .and_then(|n| n.strip_suffix(".snap"))
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let pcap_path = pcap_dir
            .as_ref()
            .map(|d| d.join(pcap))
            .filter(|p| p.is_file());
        for mut e in parse_ja4_snapshot(&text) {
            e.pcap = pcap.to_string();
            e.pcap_path = pcap_path.clone();
            out.push(e);
        }
    }
    out
}

/// Parses the text of one snapshot (the `pcap` fields are left empty).
pub fn parse_ja4_snapshot(text: &str) -> Vec<Ja4Expect> {
    let mut out: Vec<Ja4Expect> = Vec::new();
    // Skip the insta header: everything up to and including the second "---".
    let mut dashes = 0;
    let mut body_started = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if !body_started {
            if line == "---" {
                dashes += 1;
                if dashes == 2 {
                    body_started = true;
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("- ") {
            // New top-level entry: "- stream: 0"
            let mut e = Ja4Expect::default();
            if let Some((k, v)) = key_value(rest) {
                apply(&mut e, k, v);
            }
            out.push(e);
        } else if let Some(rest) = line.strip_prefix("  ") {
            // Top-level keys of the current entry have exactly two spaces of
            // indentation; deeper lines and "  - " list items are nested.
            if rest.starts_with(' ') || rest.starts_with('-') {
                continue;
            }
            if let (Some(e), Some((k, v))) = (out.last_mut(), key_value(rest)) {
                apply(e, k, v);
            }
        }
    }
    out
}

fn key_value(s: &str) -> Option<(&str, &str)> {
    let (k, v) = s.split_once(':')?;
    Some((k.trim(), v.trim()))
}

fn apply(e: &mut Ja4Expect, key: &str, raw: &str) {
    let v = unquote(raw);
    let opt = || if v.is_empty() { None } else { Some(v.clone()) };
    match key {
        "stream" => e.stream = v.parse().ok(),
        "transport" => e.transport = opt(),
        "src" => e.src = opt(),
        "dst" => e.dst = opt(),
        "src_port" => e.src_port = v.parse().ok(),
        "dst_port" => e.dst_port = v.parse().ok(),
        "ja4" => e.ja4 = opt(),
        "tls_server_name" => e.sni = opt(),
        "ja4s" => e.ja4s = opt(),
        _ => {}
    }
}

/// Minimal YAML scalar unquoting: `'it''s'` and `"a\"b"` (the snapshots
/// quote values starting with `*`, e.g. `'*.adnxs.com'`).
fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        return v[1..v.len() - 1].replace("''", "'");
    }
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut s = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                s.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('0') => s.push('\0'),
                Some('x') => {
                    let h: String = chars.by_ref().take(2).collect();
                    if let Some(ch) = u32::from_str_radix(&h, 16).ok().and_then(char::from_u32) {
                        s.push(ch);
                    }
                }
                Some('u') => {
                    let h: String = chars.by_ref().take(4).collect();
                    if let Some(ch) = u32::from_str_radix(&h, 16).ok().and_then(char::from_u32) {
                        s.push(ch);
                    }
                }
                Some(other) => s.push(other),
                None => s.push('\\'),
            }
        }
        return s;
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAP: &str = "---
source: ja4/src/lib.rs
expression: output
---
- stream: 0
  transport: tcp
  src: 172.27.7.31
  dst: 13.107.21.239
  src_port: 54524
  dst_port: 443
  ja4t: 64240_2-1-3-1-1-4_1460_8
  tls_server_name: edge.microsoft.com
  ja4: t13d1516h2_8daaf6152771_e5627efa2ab1
  ja4s: t1206h2_c030_044dc9b3196d
  tls_certs:
  - x509:
    - ja4x: a373a9f83c6b_2bab15409345_0f2217ba412e
      issuerCountryName: US
      subjectCommonName: '*.adnxs.com'
  ja4l_c: 56_128
  ja4l_s: 1907_112
- stream: 15
  transport: tcp
  src: 172.16.225.48
  dst: 184.150.157.177
  src_port: 57380
  dst_port: 80
  http:
  - ja4h: ge11nn030000_9ab90a797ba7_000000000000_000000000000
- stream: 0
  transport: udp
  src: 2001:db8:1::1
  dst: 2606:4700:10::6816:826
  src_port: 50280
  dst_port: 443
  tls_server_name: cloudflare-quic.com
  ja4: q13d0310h3_55b375c5d22e_cd85d2d88918
  ja4s: q130200_1301_234ea6891581
";

    #[test]
    fn parses_inline_snapshot() {
        let v = parse_ja4_snapshot(SNAP);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].stream, Some(0));
        assert_eq!(v[0].transport.as_deref(), Some("tcp"));
        assert_eq!(v[0].src.as_deref(), Some("172.27.7.31"));
        assert_eq!(v[0].dst.as_deref(), Some("13.107.21.239"));
        assert_eq!((v[0].src_port, v[0].dst_port), (Some(54524), Some(443)));
        assert_eq!(v[0].sni.as_deref(), Some("edge.microsoft.com"));
        assert_eq!(
            v[0].ja4.as_deref(),
            Some("t13d1516h2_8daaf6152771_e5627efa2ab1")
        );
        assert_eq!(v[0].ja4s.as_deref(), Some("t1206h2_c030_044dc9b3196d"));
        assert_eq!(v[1].stream, Some(15));
        assert_eq!(v[1].ja4, None);
        assert_eq!(v[1].sni, None);
        assert_eq!(v[2].transport.as_deref(), Some("udp"));
        assert_eq!(v[2].src_ip(), Some("2001:db8:1::1".parse().unwrap()));
        assert_eq!(
            v[2].ja4.as_deref(),
            Some("q13d0310h3_55b375c5d22e_cd85d2d88918")
        );
        assert!(parse_ja4_snapshot("---\nsource: x\nexpression: output\n---\n[]\n").is_empty());
        assert_eq!(unquote("'it''s'"), "it's");
        assert_eq!(unquote("\"a\\\"b\""), "a\"b");
    }

    #[test]
    fn real_snapshots_load() {
        let Some(dir) = ja4_expected_dir() else {
            return super::super::skip("ja4snap::real_snapshots_load");
        };
        let all = load_ja4_expectations(&dir);
        assert!(all.len() >= 300, "{} entries", all.len());
        let with_ja4: Vec<_> = all.iter().filter(|e| e.ja4.is_some()).collect();
        assert!(with_ja4.len() >= 200, "{} with ja4", with_ja4.len());
        for e in &all {
            assert!(e.stream.is_some() && e.transport.is_some(), "{e:?}");
            assert!(e.src_ip().is_some() && e.dst_ip().is_some(), "{e:?}");
            assert!(e.src_port.is_some() && e.dst_port.is_some(), "{e:?}");
            if let Some(j) = &e.ja4 {
                assert_eq!(j.len(), 36, "{e:?}");
                assert!(j.starts_with('t') || j.starts_with('q'), "{e:?}");
            }
        }
        assert!(
            all.iter()
                .any(|e| e.pcap == "tls-sni.pcapng" && e.pcap_path.is_some())
        );
        assert!(
            all.iter()
                .any(|e| e.pcap == "gtp-iphone.pcap" && e.pcap_path.is_none())
        );
    }
}
