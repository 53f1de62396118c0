//! Detection on real captures from the corpus (`../shared/corpus/ndpi/pcap`, see its
//! README): attacks raise their alert, nearby benign traffic does not. Each capture
//! is analyzed alone into a fresh database, with the default configuration; a test
//! skips with a one-line message when the corpus (or one capture) is absent.

mod common;

use std::path::{Path, PathBuf};

use netguardian::store::Store;

/// One stored alert: rule, severity, peer.
type Row = (String, String, Option<String>);

fn pcap_dir(test: &str) -> Option<PathBuf> {
    let d = common::corpus_subdir("ndpi/pcap");
    if d.is_none() {
        common::skip(test);
    }
    d
}

/// Alerts stored for one capture (new_device left out: every capture has some).
fn alerts_of(dir: &Path, name: &str) -> Option<Vec<Row>> {
    let file = dir.join(name);
    if !file.is_file() {
        eprintln!("skipping {name}: not in the corpus");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("t.duckdb")).unwrap();
    common::analyze_files(&store, vec![file]).expect("pipeline run");
    let conn = store.connection().unwrap();
    let mut st = conn
        .prepare("SELECT rule, severity, peer FROM alerts WHERE rule <> 'new_device' ORDER BY id")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    Some(rows)
}

fn has(rows: &[Row], rule: &str, severity: &str, peer: Option<&str>) -> bool {
    rows.iter()
        .any(|(r, s, p)| r == rule && s == severity && (peer.is_none() || p.as_deref() == peer))
}

#[test]
fn corpus_attacks_raise_their_alerts() {
    let Some(dir) = pcap_dir("corpus_attacks_raise_their_alerts") else {
        return;
    };
    // (capture, rule, severity, peer)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        // iodine: 222 NULL queries with encoded names under one zone.
        (
            "dns-tunnel-iodine.pcap",
            "dns_tunnel",
            "high",
            Some("pirate.sea"),
        ),
        // dnscat2 without a zone: 150 hex-encoded names to one resolver.
        (
            "dns_exfiltration.pcap",
            "dns_tunnel",
            "high",
            Some("192.168.203.167"),
        ),
        // nmap SYN scan of one internet host from a home address.
        ("synscan.pcap", "port_scan", "medium", Some("64.13.134.52")),
        // What nDPI names dns2tcp is DNS over HTTPS to 1.1.1.1 without a server name.
        ("dns2tcp_tunnel.pcap", "dns_bypass", "low", Some("1.1.1.1")),
        ("dns_dot.pcap", "dns_bypass", "low", Some("8.8.8.8")),
        (
            "dns_doh.pcap",
            "dns_bypass",
            "low",
            Some("mozilla.cloudflare-dns.com"),
        ),
        // Cleartext logins: telnet and IMAP on a LAN, POP3 and HTTP Basic to the internet.
        (
            "telnet.pcap",
            "cleartext_credentials",
            "low",
            Some("192.168.0.1"),
        ),
        (
            "telnet.pcap",
            "insecure_protocol",
            "low",
            Some("192.168.0.1"),
        ),
        (
            "imap.pcap",
            "cleartext_credentials",
            "low",
            Some("10.40.3.2"),
        ),
        ("pop3.pcap", "cleartext_credentials", "high", None),
        ("http_auth.pcap", "cleartext_credentials", "high", None),
        // SMBv1 negotiated.
        (
            "smbv1.pcap",
            "insecure_protocol",
            "medium",
            Some("10.128.0.243"),
        ),
        // badssl.com's certificate for wrong.host.badssl.com.
        (
            "ssl-cert-name-mismatch.pcap",
            "tls_anomaly",
            "medium",
            Some("wrong.host.badssl.com"),
        ),
        // Emotet's command server: the sample self-signed subject.
        ("emotet.pcap", "tls_anomaly", "medium", None),
        // TLS without a server name.
        ("no_sni.pcap", "tls_anomaly", "low", None),
    ];
    let mut failures = Vec::new();
    let mut cache: std::collections::HashMap<&str, Option<Vec<Row>>> = Default::default();
    for (file, rule, sev, peer) in cases {
        let rows = cache.entry(file).or_insert_with(|| alerts_of(&dir, file));
        let Some(rows) = rows else { continue };
        if !has(rows, rule, sev, *peer) {
            failures.push(format!(
                "{file}: expected {rule} {sev} {peer:?}, got {rows:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_encrypted_and_anonymous_logins_raise_no_credential_alert() {
    let Some(dir) = pcap_dir("corpus_encrypted_and_anonymous_logins_raise_no_credential_alert")
    else {
        return;
    };
    // STARTTLS before the login, and anonymous FTP (not a secret).
    for file in [
        "ftp-start-tls.pcap",
        "pop3_stls.pcap",
        "imap-starttls.pcap",
        "ftp.pcap",
    ] {
        let Some(rows) = alerts_of(&dir, file) else {
            continue;
        };
        assert!(
            !rows.iter().any(|(r, _, _)| r == "cleartext_credentials"),
            "{file}: {rows:?}"
        );
    }
}

#[test]
fn corpus_everyday_apps_raise_nothing_medium_or_worse() {
    let Some(dir) = pcap_dir("corpus_everyday_apps_raise_nothing_medium_or_worse") else {
        return;
    };
    // Browsers, streaming, chat, smart speakers and plugs, P2P, NTP, discovery,
    // and apps that pin self-signed certificates (KakaoTalk, Windscribe, Code42).
    let benign = [
        "chrome.pcap",
        "firefox.pcap",
        "netflix.pcap",
        "google_ssl.pcap",
        "dropbox.pcap",
        "facebook.pcap",
        "instagram.pcap",
        "dns.pcap",
        "NTPv4.pcap",
        "alexa-app.pcapng",
        "android.pcap",
        "iphone.pcap",
        "nest_log_sink.pcap",
        "sonos.pcapng",
        "spotify_tcp.pcap",
        "ssdp-m-search.pcap",
        "steam.pcapng",
        "teams.pcap",
        "tuya_lp.pcap",
        "whatsapp.pcap",
        "youtube_quic.pcap",
        "youtubeupload.pcap",
        "zoom.pcap",
        "bittorrent.pcap",
        "skype-conference-call.pcap",
        "googledns_android10.pcap",
        "netbios.pcap",
        "discord.pcap",
        "protonvpn.pcap",
        "KakaoTalk_talk.pcap",
        "windscribe.pcapng",
        "anyconnect-vpn.pcap",
        "line.pcap",
    ];
    let mut loud = Vec::new();
    for file in benign {
        let Some(rows) = alerts_of(&dir, file) else {
            continue;
        };
        for (r, s, p) in rows {
            if matches!(s.as_str(), "medium" | "high" | "critical") {
                loud.push(format!("{file}: {r} {s} {p:?}"));
            }
        }
    }
    assert!(loud.is_empty(), "{}", loud.join("\n"));
}
