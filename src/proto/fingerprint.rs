//! JA3, JA3S and JA4 (TLS client) fingerprints from already-decoded hello fields.
//!
//! Kept apart from the TLS stream handling so the string rules can be unit-tested
//! against the published examples. JA4 follows the FoxIO specification
//! (technical_details/JA4.md): GREASE ignored everywhere (also in signature
//! algorithms), version from the highest supported_versions entry, ALPN hex rule
//! for non-alphanumeric bytes, `000000000000` for empty lists.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// The ClientHello fields the fingerprints are made of, in wire order, GREASE included.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HelloFields {
    pub legacy_version: u16,
    pub ciphers: Vec<u16>,
    pub extensions: Vec<u16>,
    pub groups: Vec<u16>,
    pub point_formats: Vec<u8>,
    pub sig_algs: Vec<u16>,
    pub supported_versions: Vec<u16>,
    /// First ALPN protocol, raw bytes (empty if none).
    pub first_alpn: Vec<u8>,
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
pub(crate) fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn dec_list<T: Copy + Into<u32>>(v: &[T]) -> String {
    let mut s = String::new();
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        s.push_str(&(*x).into().to_string());
    }
    s
}

fn no_grease(v: &[u16]) -> Vec<u16> {
    v.iter().copied().filter(|&x| !is_grease(x)).collect()
}

pub(crate) fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn sha256_12(s: &str) -> String {
    let mut h = hex::encode(Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

/// JA3 string: version,ciphers,extensions,groups,point formats (decimal, GREASE removed).
pub(crate) fn ja3_string(h: &HelloFields) -> String {
    format!(
        "{},{},{},{},{}",
        h.legacy_version,
        dec_list(&no_grease(&h.ciphers)),
        dec_list(&no_grease(&h.extensions)),
        dec_list(&no_grease(&h.groups)),
        dec_list(&h.point_formats),
    )
}

/// JA3S string: version,cipher,extensions of a ServerHello.
pub(crate) fn ja3s_string(version: u16, cipher: u16, extensions: &[u16]) -> String {
    format!("{version},{cipher},{}", dec_list(&no_grease(extensions)))
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// First and last character of the first ALPN value, or its hex form when either
/// end byte is not an ASCII letter or digit; "00" when there is none.
fn alpn_code(alpn: &[u8]) -> String {
    let (Some(&first), Some(&last)) = (alpn.first(), alpn.last()) else {
        return "00".to_string();
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        return format!("{}{}", first as char, last as char);
    }
    let hex = hex::encode(alpn);
    let b = hex.as_bytes();
    format!("{}{}", b[0] as char, b[b.len() - 1] as char)
}

fn hex_join(v: &[u16]) -> String {
    let mut s = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{x:04x}"));
    }
    s
}

/// JA4 fingerprint; `proto` is 't' (TCP), 'q' (QUIC) or 'd' (DTLS).
pub(crate) fn ja4(h: &HelloFields, proto: char) -> String {
    let offered = no_grease(&h.supported_versions);
    let version = if h.extensions.contains(&0x002b) && !offered.is_empty() {
        offered.iter().copied().max().unwrap_or(h.legacy_version)
    } else {
        h.legacy_version
    };
    let mut ciphers = no_grease(&h.ciphers);
    let exts = no_grease(&h.extensions);
    let sni = if exts.contains(&0x0000) { 'd' } else { 'i' };
    let a = format!(
        "{proto}{}{sni}{:02}{:02}{}",
        version_code(version),
        ciphers.len().min(99),
        exts.len().min(99),
        alpn_code(&h.first_alpn)
    );
    ciphers.sort_unstable();
    let b = if ciphers.is_empty() {
        "000000000000".to_string()
    } else {
        sha256_12(&hex_join(&ciphers))
    };
    let mut sorted: Vec<u16> = exts
        .into_iter()
        .filter(|&e| e != 0x0000 && e != 0x0010)
        .collect();
    sorted.sort_unstable();
    let c = if sorted.is_empty() {
        "000000000000".to_string()
    } else {
        let sigs = no_grease(&h.sig_algs);
        let mut input = hex_join(&sorted);
        if !sigs.is_empty() {
            input.push('_');
            input.push_str(&hex_join(&sigs));
        }
        sha256_12(&input)
    };
    format!("{a}_{b}_{c}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the JA4 specification.
    fn spec_example() -> HelloFields {
        HelloFields {
            legacy_version: 0x0303,
            ciphers: vec![
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extensions: vec![
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
                0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
            ],
            groups: vec![],
            point_formats: vec![],
            sig_algs: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            supported_versions: vec![0x0304, 0x0303],
            first_alpn: b"h2".to_vec(),
        }
    }

    #[test]
    fn ja4_spec_example() {
        assert_eq!(
            ja4(&spec_example(), 't'),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn grease_is_ignored_everywhere() {
        let mut h = spec_example();
        h.ciphers.insert(0, 0x2a2a);
        h.extensions.insert(0, 0xdada);
        h.extensions.push(0x1a1a);
        h.sig_algs.insert(3, 0x9a9a);
        h.supported_versions.insert(0, 0xfafa);
        assert_eq!(ja4(&h, 't'), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x1a2a));
    }

    #[test]
    fn ja4_without_sigalgs_and_without_anything() {
        let mut h = spec_example();
        h.sig_algs.clear();
        let fp = ja4(&h, 't');
        assert!(fp.ends_with("_6d807ffa2a79"), "{fp}");
        let empty = HelloFields {
            legacy_version: 0x0301,
            ..Default::default()
        };
        assert_eq!(ja4(&empty, 't'), "t10i000000_000000000000_000000000000");
    }

    #[test]
    fn alpn_rules() {
        assert_eq!(alpn_code(b""), "00");
        assert_eq!(alpn_code(b"h2"), "h2");
        assert_eq!(alpn_code(b"http/1.1"), "h1");
        assert_eq!(alpn_code(b"a"), "aa");
        assert_eq!(alpn_code(&[0xab]), "ab");
        assert_eq!(alpn_code(&[0xab, 0xcd]), "ad");
        assert_eq!(alpn_code(&[0x30, 0xab]), "3b");
        assert_eq!(alpn_code(&[0x30, 0x31, 0xab, 0xcd]), "3d");
        assert_eq!(alpn_code(&[0x30, 0xab, 0xcd, 0x31]), "01");
    }

    #[test]
    fn ja3_strings() {
        let h = HelloFields {
            legacy_version: 0x0303,
            ciphers: vec![0x0a0a, 0x1301, 0xc02b],
            extensions: vec![0x2a2a, 0, 23, 65281, 10, 11],
            groups: vec![0x3a3a, 29, 23],
            point_formats: vec![0],
            ..Default::default()
        };
        let s = ja3_string(&h);
        assert_eq!(s, "771,4865-49195,0-23-65281-10-11,29-23,0");
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(ja3s_string(771, 4865, &[43, 51]), "771,4865,43-51");
        assert_eq!(ja3s_string(769, 47, &[]), "769,47,");
    }

    #[test]
    fn version_codes() {
        let mut h = spec_example();
        h.supported_versions.clear();
        h.extensions.retain(|&e| e != 0x2b);
        assert!(ja4(&h, 't').starts_with("t12d"));
        h.legacy_version = 0x0300;
        assert!(ja4(&h, 't').starts_with("ts3d"));
        h.legacy_version = 0x1234;
        assert!(ja4(&h, 'q').starts_with("q00d"));
    }
}
