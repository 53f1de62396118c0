//! `dns_tunnel`: data hidden in DNS queries (iodine, dnscat2, dns2tcp, DNS exfiltration).
//!
//! Counted per device and zone (registrable domain) in a window of
//! `detect.dns_tunnel.window_secs`:
//! - many distinct subdomains, most of them encoded-looking (long, high entropy) → high;
//! - many TXT or NULL queries (with at least 20 distinct names) → high;
//! - a very high number of queries with at least 50 distinct names → medium.
//!
//! Tunnels that talk to their server without a registered zone (dnscat2's direct mode
//! puts the data in every label) spread over as many "zones" as queries, so
//! encoded-looking queries whose zone is not shared are also counted per device over
//! all zones (peer: the resolver asked). Reverse lookups, local names and
//! `allow_zones` (antivirus reputation lookups, blocklists) are ignored.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use serde_json::json;

use super::dga::registrable;
use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::flow::features::entropy;
use crate::proto::ProtoRecord;

/// Distinct names remembered per key and window.
const MAX_NAMES: usize = 4096;
const SAMPLES: usize = 5;

#[derive(Default)]
struct Counts {
    start: i64,
    queries: usize,
    names: HashSet<u64>,
    encoded: usize,
    txt_null: usize,
    bytes: usize,
    samples: Vec<String>,
    flows: Vec<u64>,
    alerted: bool,
}

impl Counts {
    fn roll(&mut self, ts: i64, window: i64) {
        if self.queries == 0 || ts >= self.start + window || ts < self.start - window {
            *self = Counts {
                start: ts,
                ..Default::default()
            };
        }
    }

    fn add(&mut self, name: &str, encoded: bool, txt_null: bool, flow: u64) {
        self.queries += 1;
        self.bytes += name.len();
        if self.names.len() < MAX_NAMES {
            self.names.insert(hash(name));
        }
        self.encoded += encoded as usize;
        self.txt_null += txt_null as usize;
        if self.samples.len() < SAMPLES && !self.samples.iter().any(|s| s == name) {
            self.samples.push(name.to_string());
        }
        if self.flows.len() < super::alert::MAX_ALERT_FLOWS && !self.flows.contains(&flow) {
            self.flows.push(flow);
        }
    }
}

fn hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

pub struct DnsTunnel {
    zones: Tracked<(IpAddr, String), Counts>,
    devices: Tracked<IpAddr, Counts>,
}

/// Zones never worth counting: reverse lookups and names of the home network.
fn ignored_zone(query: &str, allow: &[String]) -> bool {
    const LOCAL: [&str; 7] = [
        "arpa",
        "local",
        "lan",
        "home",
        "internal",
        "localdomain",
        "localhost",
    ];
    let tld = query.rsplit('.').next().unwrap_or_default();
    if LOCAL.contains(&tld) || !query.contains('.') {
        return true;
    }
    allow.iter().any(|z| {
        query == z || (query.ends_with(z.as_str()) && query[..query.len() - z.len()].ends_with('.'))
    })
}

impl DnsTunnel {
    pub fn new(cfg: &DetectConfig) -> Self {
        DnsTunnel {
            zones: Tracked::new(cfg.max_tracked),
            devices: Tracked::new(cfg.max_tracked),
        }
    }
}

impl Rule for DnsTunnel {
    fn ids(&self) -> &'static [&'static str] {
        &["dns_tunnel"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Meta(m) = ev else { return };
        let ProtoRecord::Dns(d) = &m.record else {
            return;
        };
        let c = &ctx.cfg.dns_tunnel;
        if m.resp_port != 53 || !ctx.is_local(m.orig_addr) || d.query.is_empty() {
            return;
        }
        let q = d.query.as_str();
        if ignored_zone(q, &c.allow_zones) {
            return;
        }
        let zone = registrable(q);
        // Every label but the TLD: tunnels without a registered zone put data in what
        // looks like the registrable part too, and in the last label (no real TLD has
        // digits, except punycode ones).
        let body = match q.rsplit_once('.') {
            Some((b, tld))
                if tld.bytes().all(|c| c.is_ascii_alphabetic()) || tld.starts_with("xn--") =>
            {
                b
            }
            _ => q,
        };
        let letters: Vec<u8> = body.bytes().filter(|&b| b != b'.').collect();
        let encoded = letters.len() >= c.min_encoded_len && entropy(&letters) >= c.min_entropy;
        let txt_null = matches!(d.qtype, 10 | 16);
        let window = c.window_secs as i64 * SEC;
        let dev = who(m.orig_addr, m.orig_mac);

        let key = (m.orig_addr, zone.to_string());
        let z = self.zones.touch(&key, d.ts, Counts::default);
        z.roll(d.ts, window);
        z.add(q, encoded, txt_null, m.flow_id);
        let (u, n) = (z.names.len(), z.queries);
        let zone_shared = u > 3;
        if !z.alerted {
            let verdict = if u >= c.unique_subdomains && z.encoded * 2 >= u {
                Some((
                    Severity::High,
                    format!(
                        "{u} distinct subdomains, {} of them long random-looking labels",
                        z.encoded
                    ),
                ))
            } else if z.txt_null >= c.txt_null_queries && u >= 20 {
                Some((
                    Severity::High,
                    format!("{} TXT/NULL queries over {u} distinct names", z.txt_null),
                ))
            } else if n >= c.zone_queries && u >= 50 {
                Some((
                    Severity::Medium,
                    format!("{n} queries over {u} distinct names"),
                ))
            } else {
                None
            };
            if let Some((sev, what)) = verdict {
                z.alerted = true;
                out.push(
                    Alert::new(d.ts, "dns_tunnel", sev, format!("Possible DNS tunnel from {dev} through {zone}"))
                        .explain(format!(
                            "{dev} sent {what} under {zone} within {} s. DNS tunnels (iodine, dnscat2, dns2tcp) \
                             hide data in query names and TXT/NULL answers to slip past firewalls. Unless this \
                             device runs such a tool on purpose, look for malware on it.",
                            c.window_secs
                        ))
                        .device(m.orig_mac)
                        .peer(zone)
                        .mitre("T1071.004")
                        .flows(z.flows.iter().copied())
                        .evidence(json!({
                            "zone": zone, "queries": n, "distinct_names": u, "encoded_names": z.encoded,
                            "txt_null_queries": z.txt_null, "query_bytes": z.bytes, "samples": z.samples,
                            "resolver": m.resp_addr.to_string(), "window_secs": c.window_secs,
                        })),
                );
            }
        }
        if !encoded || zone_shared {
            return;
        }
        let dc = self.devices.touch(&m.orig_addr, d.ts, Counts::default);
        dc.roll(d.ts, window);
        dc.add(q, true, txt_null, m.flow_id);
        if !dc.alerted && dc.names.len() >= c.encoded_queries {
            dc.alerted = true;
            let resolver = m.resp_addr.to_string();
            out.push(
                Alert::new(d.ts, "dns_tunnel", Severity::High, format!("Possible DNS tunnel from {dev} via {resolver}"))
                    .explain(format!(
                        "{dev} sent {} distinct long, random-looking query names to {resolver} within {} s, without \
                         a common zone. This is how DNS tunnels such as dnscat2 carry data. Unless this device \
                         runs such a tool on purpose, look for malware on it.",
                        dc.names.len(),
                        c.window_secs
                    ))
                    .device(m.orig_mac)
                    .peer(resolver.clone())
                    .mitre("T1071.004")
                    .flows(dc.flows.iter().copied())
                    .evidence(json!({
                        "resolver": resolver, "queries": dc.queries, "distinct_names": dc.names.len(),
                        "query_bytes": dc.bytes, "samples": dc.samples, "window_secs": c.window_secs,
                    })),
            );
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        let horizon = now - 2 * ctx.cfg.dns_tunnel.window_secs as i64 * SEC;
        self.zones.prune(horizon);
        self.devices.prune(horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> DnsTunnel {
        DnsTunnel::new(&DetectConfig::default())
    }

    fn b32(i: u64, len: usize) -> String {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut x = i.wrapping_mul(0x9e3779b97f4a7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % 32) as usize] as char
            })
            .collect()
    }

    /// `n` random bytes as hex (what dnscat2 puts in its names).
    fn rand_hex(i: u64, n: usize) -> String {
        let mut x = i.wrapping_mul(0x9e3779b97f4a7c15) | 1;
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        hex::encode(bytes)
    }

    #[test]
    fn iodine_like_null_queries_fire() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..120)
            .map(|i| {
                dns_via(
                    DEV_IP,
                    GW_IP,
                    T0 + i * 100_000,
                    &format!("{}.t.pirate.sea", b32(i as u64, 40)),
                    10,
                    0,
                    &[],
                )
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!((a[0].rule, a[0].severity), ("dns_tunnel", Severity::High));
        assert_eq!(a[0].peer.as_deref(), Some("pirate.sea"));
        assert_eq!(a[0].mitre, Some("T1071.004"));
        assert_eq!(a[0].device_mac, Some(DEV_MAC));
    }

    #[test]
    fn zoneless_encoded_names_fire_per_device() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..110)
            .map(|i| {
                let name = format!(
                    "dnscat.{}.{}.{}",
                    rand_hex(i, 30),
                    rand_hex(i + 500, 20),
                    rand_hex(i + 1000, 12)
                );
                dns_via(
                    DEV_IP,
                    ip("192.168.5.5"),
                    T0 + i as i64 * 400_000,
                    &name,
                    16,
                    0,
                    &[],
                )
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(a[0].peer.as_deref(), Some("192.168.5.5"));
    }

    #[test]
    fn browsing_cdns_and_reverse_lookups_stay_quiet() {
        let mut ctx = ctx();
        let mut evs = Vec::new();
        for i in 0..400i64 {
            let t = T0 + i * 500_000;
            // Many distinct but short CDN names under one zone.
            evs.push(dns(
                t,
                &format!("d{}.cloudfront.net", b32(i as u64, 12)),
                0,
                &["1.2.3.4"],
            ));
            // Reverse lookups of many addresses.
            evs.push(dns_via(
                DEV_IP,
                GW_IP,
                t,
                &format!("{}.{}.168.192.in-addr.arpa", i % 250, i / 250),
                12,
                0,
                &[],
            ));
            // Antivirus reputation lookups with long hashes.
            evs.push(dns(
                t,
                &format!("{}.sophosxl.net", rand_hex(i as u64, 20)),
                0,
                &["127.0.0.1"],
            ));
        }
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert!(a.is_empty(), "{a:#?}");
    }
}
