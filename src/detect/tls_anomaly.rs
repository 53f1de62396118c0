//! `tls_anomaly`: TLS handshakes with internet servers that legitimate software rarely
//! produces.
//!
//! - Certificates (visible for TLS 1.2 and older), one alert per handshake listing every
//!   problem, at the severity of the worst: expired, or not matching the requested
//!   server name → medium; self-signed with a placeholder subject (OpenSSL defaults,
//!   the sample subject Emotet and Trickbot servers use) → medium; other self-signed
//!   certificates → low (apps that pin their own certificate do this); not valid yet
//!   → low (usually a wrong clock).
//! - A server name that is an IP literal (forbidden by RFC 6066, seen in malware) → low.
//! - No server name at all → low (many apps connect by address; it is a hint, not a
//!   verdict). DNS-over-TLS/HTTPS resolvers are left to `dns_bypass`.
//! - SNI churn: one device naming very many distinct registrable domains in a window
//!   (domain rotation, fast flux) → low.
//!
//! Servers on the home network (a router's or NAS's self-signed admin page) are ignored.
//! TLS versions below 1.2 are reported by `insecure_protocol`.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::json;

use super::dga::registrable;
use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::proto::ProtoRecord;

const MAX_NAMES: usize = 4096;

/// Subjects of self-signed certificates generated with default or sample settings
/// (OpenSSL's defaults, the "Global Security / IT Department" sample used by Emotet
/// and Trickbot servers, example and localhost names).
const PLACEHOLDER_SUBJECTS: [&str; 6] = [
    "Internet Widgits Pty Ltd",
    "Some-State",
    "O=Global Security",
    "OU=IT Department",
    "CN=example.com",
    "CN=localhost",
];

struct Churn {
    start: i64,
    names: HashSet<String>,
    alerted: bool,
}

pub struct TlsAnomaly {
    churn: Tracked<IpAddr, Churn>,
}

/// The CN of an X.509 subject in x509-parser's text form (`C=US, O=x, CN=host`).
fn common_name(subject: &str) -> Option<&str> {
    subject
        .split(", ")
        .find_map(|p| p.strip_prefix("CN="))
        .map(str::trim)
}

/// Whether `pattern` (a SAN or CN, maybe `*.example.com`) covers `host`.
fn name_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = p.strip_prefix("*.") {
        return h
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest);
    }
    p == h
}

impl TlsAnomaly {
    pub fn new(cfg: &DetectConfig) -> Self {
        TlsAnomaly {
            churn: Tracked::new(cfg.max_tracked),
        }
    }
}

impl Rule for TlsAnomaly {
    fn ids(&self) -> &'static [&'static str] {
        &["tls_anomaly"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Meta(m) = ev else { return };
        let ProtoRecord::Tls(t) = &m.record else {
            return;
        };
        let c = &ctx.cfg.tls_anomaly;
        let s = ctx.sides_of(m.orig_addr, m.orig_mac, m.resp_addr, m.resp_mac);
        if !s.outbound || !ctx.is_local(m.orig_addr) || !ctx.is_public(m.resp_addr) {
            return;
        }
        let dev = who(m.orig_addr, m.orig_mac);
        let server = m.resp_addr;
        let sni = t.sni.as_deref().filter(|s| !s.is_empty());
        let sni_ip = sni.and_then(|s| s.trim_matches(['[', ']']).parse::<IpAddr>().ok());
        let resolver = m.resp_port == 853 || ctx.cfg.dns_bypass.doh_addresses.contains(&server);
        let base_evidence = || {
            json!({
                "server": server.to_string(), "port": m.resp_port, "sni": sni,
                "version": t.server_version.map(crate::store::writer::tls_version_name),
                "ja3": t.ja3, "ja4": t.ja4,
            })
        };

        // Certificates: each problem with its own weight; the alert takes the worst.
        if c.certificates {
            let mut problems: Vec<(Severity, String)> = Vec::new();
            if t.cert_self_signed == Some(true) {
                let subject = t.cert_subject.as_deref().unwrap_or_default();
                if PLACEHOLDER_SUBJECTS.iter().any(|p| subject.contains(p)) {
                    problems.push((
                        Severity::Medium,
                        format!("self-signed placeholder certificate ({subject}) typical of malware servers"),
                    ));
                } else {
                    // Apps that pin their own certificate (chat, VPN, backup clients) do this.
                    problems.push((Severity::Low, "self-signed certificate".into()));
                }
            }
            if let Some(na) = t.cert_not_after
                && na < t.ts
            {
                problems.push((
                    Severity::Medium,
                    format!(
                        "certificate expired {} days ago",
                        (t.ts - na) / (86_400 * SEC)
                    ),
                ));
            }
            if let Some(nb) = t.cert_not_before
                && nb > t.ts + 86_400 * SEC
            {
                // Far more often a wrong clock (device or capture) than an attack.
                problems.push((
                    Severity::Low,
                    "certificate not valid yet (or a wrong clock)".into(),
                ));
            }
            if let Some(host) = sni.filter(|_| sni_ip.is_none()) {
                let cn = t.cert_subject.as_deref().and_then(common_name);
                let names: Vec<&str> = if t.cert_san.is_empty() {
                    cn.into_iter().collect()
                } else {
                    t.cert_san.iter().map(String::as_str).collect()
                };
                if !names.is_empty() && !names.iter().any(|n| name_matches(n, host)) {
                    let mut shown: Vec<&str> = names.iter().copied().take(5).collect();
                    if names.len() > 5 {
                        shown.push("...");
                    }
                    problems.push((
                        Severity::Medium,
                        format!("certificate for {}, not {host}", shown.join(", ")),
                    ));
                }
            }
            if let Some(sev) = problems.iter().map(|p| p.0).max() {
                let problems: Vec<String> = problems.into_iter().map(|p| p.1).collect();
                let peer = sni.map(String::from).unwrap_or_else(|| server.to_string());
                let mut ev = base_evidence();
                ev["problems"] = json!(problems);
                ev["cert_subject"] = json!(t.cert_subject);
                ev["cert_issuer"] = json!(t.cert_issuer);
                ev["cert_san"] = json!(t.cert_san);
                out.push(
                    Alert::new(t.ts, "tls_anomaly", sev, format!("Untrustworthy certificate from {peer}"))
                        .explain(format!(
                            "{dev} connected to {peer} ({server}) and the server presented a {}. Browsers refuse \
                             such certificates; a program that accepts them can be intercepted, and malware \
                             servers often use them. Check which program made this connection.",
                            problems.join(" and ")
                        ))
                        .device(m.orig_mac)
                        .peer(peer)
                        .mitre("T1573")
                        .flows([m.flow_id])
                        .evidence(ev),
                );
            }
        }

        if let Some(literal) = sni_ip {
            out.push(
                Alert::new(t.ts, "tls_anomaly", Severity::Low, format!("{dev} sent an IP address as TLS server name"))
                    .explain(format!(
                        "{dev} asked {server} for the TLS server name \"{literal}\", an address instead of a host \
                         name. Standards forbid this; some malware and odd embedded clients do it."
                    ))
                    .device(m.orig_mac)
                    .peer(server.to_string())
                    .mitre("T1573")
                    .flows([m.flow_id])
                    .evidence(base_evidence()),
            );
        } else if sni.is_none() && c.missing_sni && !resolver {
            let name = ctx.name_of(server);
            let mut ev = base_evidence();
            ev["resolved_name"] = json!(name);
            out.push(
                Alert::new(t.ts, "tls_anomaly", Severity::Low, format!("TLS without server name from {dev}"))
                    .explain(format!(
                        "{dev} opened a TLS connection to {server}{} without naming the server (no SNI). Browsers \
                         always send it; apps that connect by address, and some malware, do not.",
                        name.map(|n| format!(" ({n})")).unwrap_or_default()
                    ))
                    .device(m.orig_mac)
                    .peer(server.to_string())
                    .mitre("T1573")
                    .flows([m.flow_id])
                    .evidence(ev),
            );
        }

        // SNI churn.
        let Some(host) = sni.filter(|_| sni_ip.is_none()) else {
            return;
        };
        let window = c.sni_churn_window_secs as i64 * SEC;
        let ch = self.churn.touch(&m.orig_addr, t.ts, || Churn {
            start: t.ts,
            names: HashSet::new(),
            alerted: false,
        });
        if t.ts >= ch.start + window || t.ts < ch.start - window {
            ch.start = t.ts;
            ch.names.clear();
            ch.alerted = false;
        }
        if ch.names.len() < MAX_NAMES {
            ch.names.insert(registrable(host).to_string());
        }
        if !ch.alerted && ch.names.len() >= c.sni_churn_distinct {
            ch.alerted = true;
            let mut sample: Vec<&String> = ch.names.iter().collect();
            sample.sort();
            sample.truncate(10);
            out.push(
                Alert::new(t.ts, "tls_anomaly", Severity::Low, format!("{dev} contacted very many TLS domains"))
                    .explain(format!(
                        "{dev} opened TLS connections to {} distinct domains within {} s. Rotating through many \
                         domains is typical of malware looking for its servers or of a crawler.",
                        ch.names.len(),
                        c.sni_churn_window_secs
                    ))
                    .device(m.orig_mac)
                    .mitre("T1568")
                    .flows([m.flow_id])
                    .evidence(json!({"distinct_domains": ch.names.len(), "sample": sample,
                                     "window_secs": c.sni_churn_window_secs})),
            );
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.churn
            .prune(now - 2 * ctx.cfg.tls_anomaly.sni_churn_window_secs as i64 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> TlsAnomaly {
        TlsAnomaly::new(&DetectConfig::default())
    }

    #[test]
    fn bad_certificates_are_medium() {
        let mut ctx = ctx();
        let mut r = tls_rec(T0, Some("www.example.com"));
        r.server_version = Some(0x0303);
        r.cert_subject = Some("CN=evil.test".into());
        r.cert_issuer = Some("CN=evil.test".into());
        r.cert_self_signed = Some(true);
        r.cert_not_after = Some(T0 - 10 * 86_400 * SEC);
        let a = run_rule(&mut rule(), &mut ctx, &[tls(DEV_IP, WAN_IP, r)]);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(a[0].severity, Severity::Medium);
        let problems = a[0].evidence["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(a[0].peer.as_deref(), Some("www.example.com"));
    }

    #[test]
    fn self_signed_is_low_unless_a_placeholder_and_future_validity_is_low() {
        let mut ctx = ctx();
        let mk = |subject: &str| {
            let mut r = tls_rec(T0, None);
            r.cert_subject = Some(subject.into());
            r.cert_self_signed = Some(true);
            tls(DEV_IP, WAN_IP, r)
        };
        let mut future = tls_rec(T0, Some("example.org"));
        future.cert_san = vec!["example.org".into()];
        future.cert_not_before = Some(T0 + 30 * 86_400 * SEC);
        let evs = [
            mk("C=KR, L=Seoul, O=Kakao, CN=Kakao.com"),
            mk("C=GB, ST=London, L=London, O=Global Security, OU=IT Department, CN=example.com"),
            tls(DEV_IP, WAN_IP, future),
        ];
        let a: Vec<_> = run_rule(&mut rule(), &mut ctx, &evs)
            .into_iter()
            .filter(|a| a.title.starts_with("Untrustworthy"))
            .map(|a| a.severity)
            .collect();
        assert_eq!(a, [Severity::Low, Severity::Medium, Severity::Low]);
    }

    #[test]
    fn good_certificates_wildcards_and_lan_servers_are_quiet() {
        let mut ctx = ctx();
        let mut r = tls_rec(T0, Some("img.cdn.example"));
        r.cert_subject = Some("C=US, O=CDN, CN=cdn.example".into());
        r.cert_san = vec!["cdn.example".into(), "*.cdn.example".into()];
        r.cert_self_signed = Some(false);
        r.cert_not_before = Some(T0 - 86_400 * SEC);
        r.cert_not_after = Some(T0 + 86_400 * SEC);
        let mut lan = tls_rec(T0, Some("nas.lan"));
        lan.cert_self_signed = Some(true);
        let evs = [tls(DEV_IP, WAN_IP, r), tls(DEV_IP, DEV2_IP, lan)];
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert_eq!(
            common_name("C=US, O=x, CN=host.example"),
            Some("host.example")
        );
    }

    #[test]
    fn ip_literal_and_missing_sni_are_low_but_not_for_resolvers() {
        let mut ctx = ctx();
        let evs = [
            tls(DEV_IP, WAN_IP, tls_rec(T0, Some("93.184.216.34"))),
            tls(DEV_IP, WAN_IP, tls_rec(T0, None)),
            tls(DEV_IP, ip("1.1.1.1"), tls_rec(T0, None)),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 2, "{a:#?}");
        assert!(a.iter().all(|a| a.severity == Severity::Low));
    }

    #[test]
    fn sni_churn_counts_registrable_domains() {
        let mut ctx = ctx();
        // 400 names under 40 domains: a heavy browsing session, quiet.
        let evs: Vec<_> = (0..400)
            .map(|i| {
                tls(
                    DEV_IP,
                    WAN_IP,
                    tls_rec(T0 + i * 100_000, Some(&format!("h{i}.site{}.com", i % 40))),
                )
            })
            .collect();
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
        // 200 distinct registrable domains in a minute: churn.
        let evs: Vec<_> = (0..200)
            .map(|i| {
                tls(
                    DEV_IP,
                    WAN_IP,
                    tls_rec(T0 + 1000 * SEC + i * 100_000, Some(&format!("x{i}q.biz"))),
                )
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].severity, a[0].mitre), (Severity::Low, Some("T1568")));
    }
}
