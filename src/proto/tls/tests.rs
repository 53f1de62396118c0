//! Tests of the TLS session parser with hand-built handshakes and real certificates
//! (EC P-256, made with openssl: a self-signed one and a CA-signed leaf).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

pub(crate) const SELF_SIGNED: &str = "MIIBujCCAWCgAwIBAgIULKa4Bp6lIH/ok/0FProRkMJDvDQwCgYIKoZIzj0EAwIwJDETMBEGA1UEAwwKcm91dGVyLmxhbjENMAsGA1UECgwESG9tZTAeFw0yNjExMjMwNTM5MzBaFw0zNjExMjAwNTM5MzBaMCQxEzARBgNVBAMMCnJvdXRlci5sYW4xDTALBgNVBAoMBEhvbWUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASvTIws0nFioDBEgvZHxFPEHe5/WMeLBClHdUqPnih4cNVIYujhc3jQVrns44z1nEjbRMbiHUGlYy77DSv8ka2no3AwbjAdBgNVHQ4EFgQU1tryW8QnQTPcMH732rdItLyzv1swHwYDVR0jBBgwFoAU1tryW8QnQTPcMH732rdItLyzv1swDwYDVR0TAQH/BAUwAwEB/zAbBgNVHREEFDASggpyb3V0ZXIubGFuhwTAqAEBMAoGCCqGSM49BAMCA0gAMEUCIC9P/a4NScbVQ1V3Vjx9rnsti0FFKZXitNOlA1eOPDWuAiEA/cN2GLhPgPxb1iHrwtLjdv9CGwDujaO95A7IiTacaF0=";
pub(crate) const LEAF: &str = "MIIBmTCCAT+gAwIBAgIUTQR1NjkZDWuirD5ZM7IxDJQ9VZ0wCgYIKoZIzj0EAwIwEjEQMA4GA1UEAwwHVGVzdCBDQTAeFw0yNjExMjMwNTM5MzBaFw0yNzExMjMwNTM5MzBaMBoxGDAWBgNVBAMMD3d3dy5leGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABBmb/BLYj30ap+7Yw94BdMJyOl+iM4y2xvEi9AVEe1UjzMRZdS3WFjUp8pUAu81t6NG+ev1DTS6+4N1nx5O3tBejazBpMCcGA1UdEQQgMB6CD3d3dy5leGFtcGxlLmNvbYILZXhhbXBsZS5jb20wHQYDVR0OBBYEFOKQXLIUcfow4uA10R60LzryR5YwMB8GA1UdIwQYMBaAFBP/3jFEnauDR4YjDdvJAQemKQv4MAoGCCqGSM49BAMCA0gAMEUCIQCz9deuPXD3CKdl/iE4hvLlV29ZiHXB4FJYYK30PRY3WgIgTqTJ79rGWuxWDvxe8n3Dw+DcGoS+9KKlTMrTAVZnZRY=";
pub(crate) const CA: &str = "MIIBeDCCAR+gAwIBAgIUUMzNkFsOhvDuTWeqDwq7x+LDpXUwCgYIKoZIzj0EAwIwEjEQMA4GA1UEAwwHVGVzdCBDQTAeFw0yNjExMjMwNTM5MzBaFw0zNjExMjAwNTM5MzBaMBIxEDAOBgNVBAMMB1Rlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATifRmp6JRDmx61zlEbBO92U3/iCFBBcCgw/LwoEP8x+TCIEoeAkI6MWk2RmXqte9UqvUcA4nbYkXTECCPGDBeBo1MwUTAdBgNVHQ4EFgQUE//eMUSdq4NHhiMN28kBB6YpC/gwHwYDVR0jBBgwFoAUE//eMUSdq4NHhiMN28kBB6YpC/gwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBYwAWj0YAbx4lwmdyuWaGXHBWbWdgslwBVbP04TpF+QQIgCsIQsL4MUnkYx9f89NM3xtMpTsGKVkpKs7sE9soOXd8=";

pub(crate) fn der(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64).unwrap()
}

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn with_len16(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn ext(t: u16, data: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&with_len16(data));
    v
}

fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut v = vec![t, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    v.extend_from_slice(body);
    v
}

/// Wraps bytes in TLS records of at most `max` payload bytes.
pub(crate) fn records(ct: u8, body: &[u8], max: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for part in body.chunks(max.max(1)) {
        v.extend_from_slice(&[ct, 3, 3]);
        v.extend_from_slice(&with_len16(part));
    }
    v
}

/// A Chrome-like ClientHello (the JA4 specification's example) with a 1216-byte
/// ML-KEM key share, so it needs two segments.
pub(crate) fn chrome_hello(sni: &str) -> Vec<u8> {
    let ciphers = [
        0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let mut sni_list = vec![0u8];
    sni_list.extend_from_slice(&with_len16(sni.as_bytes()));
    let alpn = with_len16(&[
        2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
    ]);
    let sigs = with_len16(&u16s(&[
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ]));
    let mut key_share = Vec::new();
    key_share.extend_from_slice(&u16s(&[0x11ec, 1216]));
    key_share.extend(std::iter::repeat_n(0x42, 1216));
    key_share.extend_from_slice(&u16s(&[0x001d, 32]));
    key_share.extend(std::iter::repeat_n(0x24, 32));
    let exts = [
        ext(0x0a0a, &[]),
        ext(0x001b, &[2, 0, 2]),
        ext(0x0000, &with_len16(&sni_list)),
        ext(0x0033, &with_len16(&key_share)),
        ext(0x0010, &alpn),
        ext(0x4469, &[0, 3, 2, b'h', b'2']),
        ext(0x0017, &[]),
        ext(0x002d, &[1, 1]),
        ext(0x000d, &sigs),
        ext(0x0005, &[1, 0, 0, 0, 0]),
        ext(0x0023, &[]),
        ext(0x0012, &[]),
        ext(0x002b, &[6, 0x8a, 0x8a, 3, 4, 3, 3]),
        ext(0xff01, &[0]),
        ext(0x000b, &[1, 0]),
        ext(
            0x000a,
            &with_len16(&u16s(&[0x2a2a, 0x11ec, 0x001d, 0x0017, 0x0018])),
        ),
        ext(0x0015, &[0; 10]),
        ext(0xfafa, &[0]),
    ];
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(32);
    body.extend_from_slice(&[9; 32]);
    body.extend_from_slice(&with_len16(&u16s(&ciphers)));
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&with_len16(&exts.concat()));
    handshake(1, &body)
}

pub(crate) fn server_hello(cipher: u16, exts: &[Vec<u8>], random: [u8; 32]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&random);
    body.push(32);
    body.extend_from_slice(&[9; 32]);
    body.extend_from_slice(&cipher.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&with_len16(&exts.concat()));
    handshake(2, &body)
}

pub(crate) fn sh13() -> Vec<u8> {
    server_hello(
        0x1301,
        &[ext(0x0033, &[0, 0x1d, 0, 1, 0]), ext(0x002b, &[3, 4])],
        [1; 32],
    )
}

pub(crate) fn sh12() -> Vec<u8> {
    server_hello(
        0xc02f,
        &[ext(0xff01, &[0]), ext(0x0017, &[]), ext(0x000b, &[1, 0])],
        [1; 32],
    )
}

pub(crate) fn certificate(certs: &[Vec<u8>]) -> Vec<u8> {
    let mut list = Vec::new();
    for c in certs {
        let n = c.len();
        list.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
        list.extend_from_slice(c);
    }
    let n = list.len();
    let mut body = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8];
    body.extend_from_slice(&list);
    handshake(11, &body)
}

pub(crate) fn server_done() -> Vec<u8> {
    handshake(14, &[])
}

/// Runs a client and a server byte stream through a session, in `seg`-byte segments.
fn run(client: &[u8], server: &[u8], seg: usize) -> (Vec<ProtoRecord>, TlsSession) {
    let mut s = TlsSession::new();
    let mut rs = [Reassembler::new(), Reassembler::new()];
    let mut out = Vec::new();
    for (d, bytes) in [(0usize, client), (1usize, server)] {
        rs[d].push(0, true, &[]);
        let mut seq = 1u32;
        for part in bytes.chunks(seg.max(1)) {
            rs[d].push(seq, false, part);
            seq += part.len() as u32;
            s.on_data(1000 + d as i64, d, &mut rs[d], &mut out);
        }
    }
    s.on_close(&mut out);
    (out, s)
}

fn tls(out: &[ProtoRecord]) -> Vec<&TlsRecord> {
    out.iter()
        .filter_map(|r| match r {
            ProtoRecord::Tls(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn tls13_client_and_server() {
    let client = records(22, &chrome_hello("www.Example.com"), 16384);
    let server = records(22, &sh13(), 16384);
    let (out, s) = run(&client, &server, 1000);
    assert!(s.finished);
    let t = tls(&out);
    assert_eq!(t.len(), 1);
    let t = t[0];
    assert_eq!(t.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(t.sni.as_deref(), Some("www.Example.com"));
    assert_eq!(t.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
    assert_eq!(t.supported_versions, vec![0x0304, 0x0303]);
    assert_eq!(t.client_version, 0x0303);
    assert_eq!(t.cipher_count, 15);
    assert!(t.ja3_string.starts_with("771,4865-4866-4867-49195-"));
    assert!(
        t.ja3_string.ends_with(",4588-29-23-24,0"),
        "{}",
        t.ja3_string
    );
    assert_eq!(t.ja3, md5_hex(&t.ja3_string));
    assert_eq!(t.server_version, Some(0x0304));
    assert_eq!(t.server_cipher, Some(0x1301));
    assert_eq!(t.ja3s, Some(md5_hex("771,4865,51-43")));
    assert_eq!(t.cert_subject, None);
    assert_eq!(t.ts, 1000);
}

#[test]
fn tls12_with_chain_in_small_records() {
    let client = records(22, &chrome_hello("www.example.com"), 16384);
    let flight = [sh12(), certificate(&[der(LEAF), der(CA)]), server_done()].concat();
    // Tiny records force handshake messages across records and segments.
    let server = records(22, &flight, 100);
    let (out, _) = run(&client, &server, 77);
    let t = tls(&out);
    assert_eq!(t.len(), 1);
    let t = t[0];
    assert_eq!(t.server_version, Some(0x0303));
    assert_eq!(t.cert_subject.as_deref(), Some("CN=www.example.com"));
    assert_eq!(t.cert_issuer.as_deref(), Some("CN=Test CA"));
    assert_eq!(t.cert_san, vec!["www.example.com", "example.com"]);
    assert_eq!(t.cert_not_before, Some(1_795_412_370_000_000));
    assert_eq!(t.cert_not_after, Some(1_826_948_370_000_000));
    assert_eq!(t.cert_self_signed, Some(false));
}

#[test]
fn self_signed_and_oversized_chain() {
    let client = records(22, &chrome_hello("router.lan"), 16384);
    // A chain far beyond the buffer: the leaf is still taken.
    let junk = vec![0x30; 40_000];
    let flight = [sh12(), certificate(&[der(SELF_SIGNED), junk])].concat();
    let server = records(22, &flight, 16384);
    let (out, _) = run(&client, &server, 1448);
    let t = tls(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].cert_subject.as_deref(), Some("CN=router.lan, O=Home"));
    assert_eq!(t[0].cert_self_signed, Some(true));
    assert_eq!(t[0].cert_san, vec!["router.lan", "192.168.1.1"]);
}

#[test]
fn resumption_hrr_and_missing_server() {
    let client = records(22, &chrome_hello("a.b"), 16384);
    // Abbreviated handshake: ServerHello then ChangeCipherSpec, no certificate.
    let mut server = records(22, &sh12(), 16384);
    server.extend_from_slice(&records(20, &[1], 16));
    let (out, _) = run(&client, &server, 500);
    let t = tls(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].server_cipher, Some(0xc02f));
    assert_eq!(t[0].cert_subject, None);

    // HelloRetryRequest is not the real ServerHello.
    let hrr = server_hello(0x1301, &[ext(0x002b, &[3, 4])], HRR_RANDOM);
    let (out, s) = run(&client, &records(22, &hrr, 16384), 500);
    assert!(s.finished); // closed after
    assert_eq!(tls(&out)[0].server_version, None);

    // No reply at all: emitted at close with the client side only.
    let (out, _) = run(&client, &[], 500);
    let t = tls(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].server_cipher, None);
    assert_eq!(t[0].sni.as_deref(), Some("a.b"));
}

#[test]
fn server_hello_without_client_hello_is_skipped() {
    let (out, s) = run(&[], &records(22, &sh13(), 16384), 100);
    assert!(tls(&out).is_empty());
    assert!(s.finished);
}

#[test]
fn prefixes_and_garbage_never_panic() {
    let client = records(22, &chrome_hello("x.y"), 16384);
    let server = records(
        22,
        &[sh12(), certificate(&[der(LEAF)]), server_done()].concat(),
        300,
    );
    for n in (0..client.len()).step_by(7) {
        let (out, _) = run(&client[..n], &server, 200);
        assert!(tls(&out).is_empty(), "prefix {n}");
    }
    for n in 0..server.len() {
        let (out, _) = run(&client, &server[..n], 333);
        assert_eq!(tls(&out).len(), 1);
    }
    let mut x: u32 = 2024;
    let mut rnd = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    for i in 0..300 {
        // Valid record framing with random handshake content, and raw noise.
        let mut body = vec![1u8, 0, 1, 0];
        body.extend(rnd(256));
        let c = records(22, &body, 16384);
        let s = rnd(i * 3);
        let _ = run(&c, &s, 1 + i % 50);
        let mut flipped = client.clone();
        let pos = (i * 37) % flipped.len();
        flipped[pos] ^= 0xff;
        let _ = run(&flipped, &server, 1 + i % 40);
        let _ = parse_cert(&rnd(i));
    }
}
