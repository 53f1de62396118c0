//! `dga` and `nxdomain_burst`: malware looking for its servers.
//!
//! Malware with a domain generation algorithm queries many generated names until one
//! resolves; most of them fail with NXDOMAIN. Per device:
//! - `dga`: distinct registrable domains that the classifier ([`super::dga::is_dga`])
//!   calls generated, within `detect.dga.window_secs`. At `min_domains` of them, with
//!   at least `min_nxdomain_fraction` failing → high; at three times `min_domains`
//!   whatever their answers → medium. One generated-looking name alone is never
//!   reported (classifiers make mistakes on single names).
//! - `nxdomain_burst`: distinct names answered NXDOMAIN within
//!   `detect.nxdomain_burst.window_secs`: at `min_names` → low (a misconfigured device
//!   does this too), → medium when they span `medium_zones` registrable domains.
//!
//! Local names (`.lan`, `.local`, `.home.arpa`...), reverse lookups and single-label
//! names are ignored: search-domain expansion fails on them all day.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::json;

use super::dga::{is_dga, registrable, score};
use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::proto::ProtoRecord;

const MAX_NAMES: usize = 4096;

/// Verdicts of the classifier kept per registrable domain. A home network asks for the
/// same few hundred zones all day, and scoring one costs microseconds (most of this
/// rule's time on the benchmark); the cache starts over when it fills, so memory stays
/// bounded whatever a device looks up.
const VERDICTS_CAP: usize = 8192;

#[derive(Default)]
struct DgaWindow {
    start: i64,
    /// Registrable domain → it failed (NXDOMAIN).
    domains: HashMap<String, bool>,
    flows: Vec<u64>,
    level: Option<Severity>,
}

#[derive(Default)]
struct NxWindow {
    start: i64,
    names: HashSet<String>,
    zones: HashSet<String>,
    flows: Vec<u64>,
    level: Option<Severity>,
}

pub struct DgaRule {
    dga: Tracked<IpAddr, DgaWindow>,
    nx: Tracked<IpAddr, NxWindow>,
    dga_on: bool,
    nx_on: bool,
    verdicts: HashMap<String, bool>,
}

fn ignored(q: &str) -> bool {
    const LOCAL: [&str; 7] = [
        "arpa",
        "local",
        "lan",
        "home",
        "internal",
        "localdomain",
        "localhost",
    ];
    !q.contains('.') || LOCAL.contains(&q.rsplit('.').next().unwrap_or_default())
}

fn sample<'a>(it: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut v: Vec<&String> = it.collect();
    v.sort();
    v.truncate(10);
    v
}

impl DgaRule {
    pub fn new(cfg: &DetectConfig) -> Self {
        DgaRule {
            dga: Tracked::new(cfg.max_tracked),
            nx: Tracked::new(cfg.max_tracked),
            dga_on: cfg.dga.enabled,
            nx_on: cfg.nxdomain_burst.enabled,
            verdicts: HashMap::new(),
        }
    }

    /// [`is_dga`] of a registrable domain, remembered.
    fn is_dga(&mut self, zone: &str) -> bool {
        if let Some(&v) = self.verdicts.get(zone) {
            return v;
        }
        if self.verdicts.len() >= VERDICTS_CAP {
            self.verdicts.clear();
        }
        let v = is_dga(zone);
        self.verdicts.insert(zone.to_string(), v);
        v
    }
}

impl Rule for DgaRule {
    fn ids(&self) -> &'static [&'static str] {
        &["dga", "nxdomain_burst"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Meta(m) = ev else { return };
        let ProtoRecord::Dns(d) = &m.record else {
            return;
        };
        if m.resp_port != 53 || !ctx.is_local(m.orig_addr) || ignored(&d.query) {
            return;
        }
        let nx = d.rcode == Some(3);
        let zone = registrable(&d.query);
        let dev = who(m.orig_addr, m.orig_mac);

        if self.dga_on && self.is_dga(zone) {
            let c = &ctx.cfg.dga;
            let window = c.window_secs as i64 * SEC;
            let w = self.dga.touch(&m.orig_addr, d.ts, DgaWindow::default);
            if w.domains.is_empty() || d.ts >= w.start + window || d.ts < w.start - window {
                *w = DgaWindow {
                    start: d.ts,
                    ..Default::default()
                };
            }
            if w.domains.len() < MAX_NAMES || w.domains.contains_key(zone) {
                *w.domains.entry(zone.to_string()).or_default() |= nx;
            }
            if w.flows.len() < super::alert::MAX_ALERT_FLOWS {
                w.flows.push(m.flow_id);
            }
            let n = w.domains.len();
            let failed = w.domains.values().filter(|&&f| f).count();
            let level = if n >= c.min_domains && failed as f64 >= c.min_nxdomain_fraction * n as f64
            {
                Some(Severity::High)
            } else if n >= 3 * c.min_domains {
                Some(Severity::Medium)
            } else {
                None
            };
            if level > w.level {
                w.level = level;
                let names = sample(w.domains.keys());
                let scores: Vec<f32> = names.iter().map(|n| score(n)).collect();
                out.push(
                    Alert::new(d.ts, "dga", level.expect("above None"), format!("{dev} looks up generated domain names"))
                        .explain(format!(
                            "{dev} queried {n} random-looking domains within {} s ({failed} of them do not \
                             exist), e.g. {}. Malware generates such names to find its command server. Check the \
                             device for malware.",
                            c.window_secs,
                            names.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ))
                        .device(m.orig_mac)
                        .mitre("T1568.002")
                        .flows(w.flows.iter().copied())
                        .evidence(json!({
                            "domains": n, "nxdomain": failed, "sample": names, "scores": scores,
                            "window_secs": c.window_secs,
                        })),
                );
            }
        }

        if self.nx_on && nx {
            let c = &ctx.cfg.nxdomain_burst;
            let window = c.window_secs as i64 * SEC;
            let w = self.nx.touch(&m.orig_addr, d.ts, NxWindow::default);
            if w.names.is_empty() || d.ts >= w.start + window || d.ts < w.start - window {
                *w = NxWindow {
                    start: d.ts,
                    ..Default::default()
                };
            }
            if w.names.len() < MAX_NAMES {
                w.names.insert(d.query.clone());
                w.zones.insert(zone.to_string());
            }
            if w.flows.len() < super::alert::MAX_ALERT_FLOWS {
                w.flows.push(m.flow_id);
            }
            let level = if w.names.len() < c.min_names {
                None
            } else if w.zones.len() >= c.medium_zones {
                Some(Severity::Medium)
            } else {
                Some(Severity::Low)
            };
            if level > w.level {
                w.level = level;
                out.push(
                    Alert::new(
                        d.ts,
                        "nxdomain_burst",
                        level.expect("above None"),
                        format!("Burst of failed DNS lookups from {dev}"),
                    )
                    .explain(format!(
                        "{dev} looked up {} names that do not exist, in {} domains, within {} s. Malware \
                         searching for its servers does this; so does a misconfigured device.",
                        w.names.len(),
                        w.zones.len(),
                        c.window_secs
                    ))
                    .device(m.orig_mac)
                    .mitre("T1568.002")
                    .flows(w.flows.iter().copied())
                    .evidence(json!({
                        "names": w.names.len(), "domains": w.zones.len(), "sample": sample(w.names.iter()),
                        "window_secs": c.window_secs,
                    })),
                );
            }
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.dga
            .prune(now - 2 * ctx.cfg.dga.window_secs as i64 * SEC);
        self.nx
            .prune(now - 2 * ctx.cfg.nxdomain_burst.window_secs as i64 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> DgaRule {
        DgaRule::new(&DetectConfig::default())
    }

    const GENERATED: [&str; 8] = [
        "xkqzvtrwplmn.com",
        "q3x9zk7w2vbn8t.net",
        "bcdfghjklmnpqr.info",
        "zzqxwvtkrpm.org",
        "kq7x2mz9wv4t.biz",
        "vbnmxcvzkq.ru",
        "plmkqwxztr.cn",
        "rrtxqwzv9k.top",
    ];

    /// Remembered verdicts are the classifier's, and the cache stays within its cap.
    #[test]
    fn verdict_cache_agrees_and_is_bounded() {
        let mut r = rule();
        let names: Vec<String> = GENERATED
            .iter()
            .map(|s| s.to_string())
            .chain(["google.com", "wikipedia.org", "netflix.com"].map(String::from))
            .collect();
        for _ in 0..2 {
            for n in &names {
                assert_eq!(r.is_dga(n), is_dga(n), "{n}");
            }
        }
        assert!(names.iter().any(|n| r.is_dga(n)) && names.iter().any(|n| !r.is_dga(n)));
        for i in 0..VERDICTS_CAP + 10 {
            r.is_dga(&format!("host{i}.example"));
        }
        assert!(r.verdicts.len() <= VERDICTS_CAP);
        assert_eq!(r.is_dga("xkqzvtrwplmn.com"), is_dga("xkqzvtrwplmn.com"));
    }

    #[test]
    fn generated_names_that_fail_are_high() {
        let mut ctx = ctx();
        let evs: Vec<_> = GENERATED
            .iter()
            .enumerate()
            .map(|(i, n)| dns(T0 + i as i64 * SEC, n, 3, &[]))
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["dga"]);
        assert_eq!(
            (a[0].severity, a[0].mitre),
            (Severity::High, Some("T1568.002"))
        );
    }

    #[test]
    fn nxdomain_burst_low_then_medium() {
        let mut ctx = ctx();
        // 60 failing names in 3 domains: low; then names in 30 more domains: medium.
        let mut evs: Vec<_> = (0..60)
            .map(|i| dns(T0 + i * 100_000, &format!("h{i}.site{}.com", i % 3), 3, &[]))
            .collect();
        evs.extend((0..30).map(|i| dns(T0 + 10 * SEC + i * 1000, &format!("w.d{i}.net"), 3, &[])));
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let got: Vec<_> = a.iter().map(|a| (a.rule, a.severity)).collect();
        assert_eq!(
            got,
            [
                ("nxdomain_burst", Severity::Low),
                ("nxdomain_burst", Severity::Medium)
            ]
        );
    }

    #[test]
    fn ordinary_lookups_and_search_domain_failures_are_quiet() {
        let mut ctx = ctx();
        let mut evs = Vec::new();
        for i in 0..200i64 {
            evs.push(dns(T0 + i * SEC, "www.google.com", 0, &["142.250.1.1"]));
            evs.push(dns(T0 + i * SEC, &format!("printer{i}.lan"), 3, &[]));
            evs.push(dns(T0 + i * SEC, "wpad", 3, &[]));
        }
        // One generated-looking name, resolving.
        evs.push(dns(T0, "xkqzvtrwplmn.com", 0, &["1.2.3.4"]));
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
