//! `beaconing`: a device connecting to one internet destination like clockwork, as
//! malware checks in with its command server.
//!
//! Connection start times are kept per device and destination (port, protocol, and
//! the DNS name that resolved to the address, else the address itself: a command
//! server behind a CDN or a round-robin name changes address from one check-in to the
//! next, its name stays), the latest 48 (so `min_connections` is at most 48; the configuration
//! check refuses more). Once there are `min_connections` spanning `min_span_secs`, the
//! intervals between consecutive starts are examined: their median is the period, and
//! the jitter is the median absolute deviation divided by the period. A period between
//! `min_interval_secs` and `max_interval_secs` with jitter up to `max_jitter` is a beacon.
//!
//! The series are saved in `detect_state` (hourly and at the end of a run) and taken
//! back by the next run: an hourly beacon needs a day of check-ins, more than many
//! services stay up between updates.
//!
//! Lots of legitimate software polls too (smart plugs, weather stations, update
//! checks), so a beacon to a destination the device looked up by name is low; medium
//! only when no DNS answer ever named the address (hard-coded addresses are a malware
//! habit). NTP, and DNS / DNS-over-TLS to the home resolvers, are never considered.

use std::net::IpAddr;

use serde_json::json;

use super::dga::is_dga;
use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;

/// Connection starts kept per destination: the most `min_connections` can be.
pub(crate) const KEEP: usize = 48;
/// Destinations tracked at once (each keeps up to `KEEP` times).
const MAX_KEYS: usize = 20_000;

/// Where a device connects: the name it looked up, else the bare address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Dest {
    Name(Box<str>),
    Addr(IpAddr),
}

type Key = (IpAddr, Dest, u16, u8);

#[derive(Default)]
struct Series {
    starts: Vec<i64>,
    /// Distinct addresses seen (up to 8, for the evidence).
    addrs: Vec<IpAddr>,
    mac: Option<[u8; 6]>,
    flows: Vec<u64>,
    reported_at: Option<i64>,
}

pub struct Beaconing {
    series: Tracked<Key, Series>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (period, jitter) of sorted start times, in seconds and as a fraction.
fn periodicity(starts: &[i64]) -> Option<(f64, f64)> {
    if starts.len() < 3 {
        return None;
    }
    let mut gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / SEC as f64)
        .collect();
    let period = median(&mut gaps.clone());
    if period <= 0.0 {
        return None;
    }
    let mut dev: Vec<f64> = gaps.iter_mut().map(|g| (*g - period).abs()).collect();
    Some((period, median(&mut dev) / period))
}

impl Beaconing {
    pub fn new(cfg: &DetectConfig) -> Self {
        Beaconing {
            series: Tracked::new(cfg.max_tracked.min(MAX_KEYS)),
        }
    }
}

impl Rule for Beaconing {
    fn ids(&self) -> &'static [&'static str] {
        &["beaconing"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Flow(f) = ev else { return };
        if !f.is_final
            || !matches!(f.proto, 6 | 17)
            || !ctx.is_local(f.orig_addr)
            || !ctx.is_public(f.resp_addr)
        {
            return;
        }
        let port = f.resp_port;
        if port == 123 || (matches!(port, 53 | 853) && ctx.is_resolver(f.resp_addr)) {
            return;
        }
        let c = &ctx.cfg.beaconing;
        let name = ctx.name_of(f.resp_addr);
        let dest = match name {
            Some(n) => Dest::Name(n.into()),
            None => Dest::Addr(f.resp_addr),
        };
        let key = (f.orig_addr, dest, port, f.proto);
        let s = self.series.touch(&key, f.first_ts, Series::default);
        s.mac = f.orig_mac.or(s.mac);
        if s.addrs.len() < 8 && !s.addrs.contains(&f.resp_addr) {
            s.addrs.push(f.resp_addr);
        }
        let at = s.starts.partition_point(|&t| t <= f.first_ts);
        s.starts.insert(at, f.first_ts);
        if s.starts.len() > KEEP {
            s.starts.remove(0);
        }
        if s.flows.len() >= super::alert::MAX_ALERT_FLOWS {
            s.flows.remove(0);
        }
        s.flows.push(f.id);
        let n = s.starts.len();
        let span = s.starts[n - 1] - s.starts[0];
        if n < c.min_connections || span < c.min_span_secs as i64 * SEC {
            return;
        }
        if s.reported_at.is_some_and(|r| f.first_ts < r + 86_400 * SEC) {
            return;
        }
        let Some((period, jitter)) = periodicity(&s.starts) else {
            return;
        };
        if period < c.min_interval_secs as f64
            || period > c.max_interval_secs as f64
            || jitter > c.max_jitter
        {
            return;
        }
        s.reported_at = Some(f.first_ts);
        let suspicious_name = name.is_some_and(|n| is_dga(super::dga::registrable(n)));
        let sev = if name.is_none() || suspicious_name {
            Severity::Medium
        } else {
            Severity::Low
        };
        let dev = who(f.orig_addr, s.mac);
        let dst = match (name, s.addrs.len()) {
            (Some(n), 1) => format!("{n} ({})", f.resp_addr),
            (Some(n), k) => format!("{n} ({k} addresses)"),
            (None, _) => f.resp_addr.to_string(),
        };
        let peer = name.map_or_else(|| f.resp_addr.to_string(), str::to_string);
        out.push(
            Alert::new(f.first_ts, "beaconing", sev, format!("{dev} checks in with {dst} every {period:.0} s"))
                .explain(format!(
                    "{dev} connected to {dst} port {port} {n} times over {:.1} hours, every {period:.0} s with \
                     {:.0}% jitter. Malware calls home on a timer like this; so do many smart devices and update \
                     checkers. {}",
                    span as f64 / 3600.0 / SEC as f64,
                    jitter * 100.0,
                    if name.is_none() {
                        "The address was never looked up in DNS (hard-coded), which is more suspicious."
                    } else {
                        "If the name belongs to the device's maker, this is probably normal."
                    }
                ))
                .device(s.mac)
                .peer(peer)
                .mitre("T1071")
                .flows(s.flows.iter().copied())
                .evidence(json!({
                    "destination": f.resp_addr.to_string(), "name": name, "port": port, "proto": f.proto_name(),
                    "addresses": s.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "connections": n, "period_secs": period, "jitter": jitter,
                    "span_secs": span / SEC,
                })),
        );
    }

    /// Series with at least two check-ins survive a restart (an hourly beacon needs a
    /// day of them); flow ids do not (they belong to the earlier run's evidence).
    fn save_state(&self) -> Option<serde_json::Value> {
        let mut series: Vec<serde_json::Value> = self
            .series
            .iter()
            .filter(|(_, s)| s.starts.len() >= 2)
            .map(|((dev, dest, port, proto), s)| {
                let (name, addr) = match dest {
                    Dest::Name(n) => (Some(n.to_string()), None),
                    Dest::Addr(a) => (None, Some(a.to_string())),
                };
                json!({
                    "device": dev.to_string(), "name": name, "addr": addr, "port": port,
                    "proto": proto, "starts": s.starts, "mac": s.mac.map(crate::inventory::oui::format_mac),
                    "addrs": s.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "reported_at": s.reported_at,
                })
            })
            .collect();
        series.sort_by_key(|v| v.to_string());
        Some(json!({"version": 1, "series": series}))
    }

    fn load_state(&mut self, _ctx: &Ctx, state: &serde_json::Value) {
        if state["version"] != 1 {
            return;
        }
        for v in state["series"].as_array().into_iter().flatten() {
            let dev = v["device"].as_str().and_then(|s| s.parse::<IpAddr>().ok());
            let dest = match (
                v["name"].as_str(),
                v["addr"].as_str().and_then(|s| s.parse().ok()),
            ) {
                (Some(n), _) => Some(Dest::Name(n.into())),
                (None, Some(a)) => Some(Dest::Addr(a)),
                _ => None,
            };
            let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
            let proto = v["proto"].as_u64().and_then(|p| u8::try_from(p).ok());
            let mut starts: Vec<i64> = v["starts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_i64())
                .collect();
            let (Some(dev), Some(dest), Some(port), Some(proto)) = (dev, dest, port, proto) else {
                continue;
            };
            if starts.is_empty() {
                continue;
            }
            starts.sort_unstable();
            starts.drain(..starts.len().saturating_sub(KEEP));
            let last = *starts.last().unwrap_or(&0);
            let s = self
                .series
                .touch(&(dev, dest, port, proto), last, Series::default);
            if !s.starts.is_empty() {
                continue; // this run's own series wins
            }
            s.starts = starts;
            s.mac = v["mac"].as_str().and_then(super::config::parse_mac);
            s.addrs = v["addrs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str()?.parse().ok())
                .take(8)
                .collect();
            s.reported_at = v["reported_at"].as_i64();
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.series
            .prune(now - 2 * ctx.cfg.beaconing.max_interval_secs as i64 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> Beaconing {
        Beaconing::new(&DetectConfig::default())
    }

    fn conns(dst: IpAddr, period: i64, jitter: &[i64], n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let t = T0 + i * period * SEC + jitter[i as usize % jitter.len()] * SEC / 10;
                FlowB::tcp(DEV_IP, 40000 + i as u16, dst, 8443)
                    .at(t)
                    .dur(SEC)
                    .ev()
            })
            .collect()
    }

    #[test]
    fn regular_check_ins_to_an_unnamed_address_are_medium() {
        let mut ctx = ctx();
        let a = run_rule(
            &mut rule(),
            &mut ctx,
            &conns(ip("185.10.10.10"), 120, &[0, 3, -2, 1], 40),
        );
        assert_eq!(ids(&a), ["beaconing"]);
        assert_eq!(a[0].severity, Severity::Medium);
        assert!((a[0].evidence["period_secs"].as_f64().unwrap() - 120.0).abs() < 1.0);
    }

    #[test]
    fn named_poller_is_low_irregular_and_short_series_quiet() {
        let mut ctx = ctx();
        let mut evs = vec![dns(T0 - SEC, "api.vendor.example", 0, &["52.1.2.3"])];
        evs.extend(conns(ip("52.1.2.3"), 60, &[0, 2, -1], 60));
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].severity, Severity::Low);

        // Browsing-like irregular visits.
        let irregular: Vec<i64> = vec![0, 170, -90, 400, 33, -250, 610, 5];
        let mut ctx = super::super::testutil::ctx();
        assert!(run_rule(&mut rule(), &mut ctx, &conns(WAN_IP, 120, &irregular, 40)).is_empty());
        // Regular but only for ten minutes.
        let mut ctx = super::super::testutil::ctx();
        assert!(run_rule(&mut rule(), &mut ctx, &conns(WAN_IP, 20, &[0], 30)).is_empty());
    }

    /// A command server behind a round-robin name: every check-in goes to another of
    /// four addresses, so no address alone has enough connections; the name does.
    #[test]
    fn check_ins_to_one_name_over_rotating_addresses() {
        let mut ctx = ctx();
        let addrs = [
            "198.51.100.11",
            "198.51.100.12",
            "198.51.100.13",
            "198.51.100.14",
        ];
        let mut evs = Vec::new();
        for i in 0..40i64 {
            let t = T0 + i * 120 * SEC;
            let a = addrs[i as usize % 4];
            evs.push(dns(t - SEC, "cdn.updates-check.example", 0, &[a]));
            evs.push(
                FlowB::tcp(DEV_IP, 40000 + i as u16, ip(a), 443)
                    .at(t)
                    .dur(SEC)
                    .ev(),
            );
        }
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["beaconing"]);
        assert_eq!(a[0].peer.as_deref(), Some("cdn.updates-check.example"));
        assert_eq!(a[0].evidence["addresses"].as_array().unwrap().len(), 4);
        assert!(a[0].title.contains("4 addresses"), "{}", a[0].title);
    }

    /// Half the check-ins before a restart, half after: the restarted rule, given the
    /// saved state, sees the whole series; a fresh one sees too few.
    #[test]
    fn series_survive_a_restart() {
        let all = conns(ip("185.10.10.10"), 120, &[0, 3, -2, 1], 40);
        let (before, after) = all.split_at(20);
        let mut ctx = ctx();
        let mut first = rule();
        assert!(run_rule(&mut first, &mut ctx, before).is_empty());
        let state: serde_json::Value =
            serde_json::from_str(&first.save_state().unwrap().to_string()).unwrap();
        assert_eq!(state["series"][0]["starts"].as_array().unwrap().len(), 20);

        let mut ctx = super::super::testutil::ctx();
        assert!(run_rule(&mut rule(), &mut ctx, after).is_empty());

        let mut ctx = super::super::testutil::ctx();
        let mut restarted = rule();
        restarted.load_state(&ctx, &state);
        let a = run_rule(&mut restarted, &mut ctx, after);
        assert_eq!(ids(&a), ["beaconing"]);
        assert_eq!(a[0].device_mac, Some(mac_of(DEV_IP)));

        // Broken state is ignored.
        let mut other = rule();
        other.load_state(&ctx, &json!({"version": 1, "series": [{"device": "x"}, 3]}));
        assert!(
            other.save_state().unwrap()["series"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn periodicity_math() {
        let s: Vec<i64> = (0..10).map(|i| i * 60 * SEC).collect();
        assert_eq!(periodicity(&s), Some((60.0, 0.0)));
    }
}
