//! `exfiltration`: a device sending far more to the internet than it usually does.
//!
//! Bytes a home device sends to internet addresses are summed per period of
//! `bucket_secs` (a long flow's updates carry running totals; only the increase is
//! counted, in the period of the update). A device needs `baseline_buckets` periods of
//! history before it is judged; the latest 168 are kept (a week of hours), so
//! `baseline_buckets` is at most 168 (the configuration check refuses more). A period is reported (medium) when it exceeds all of:
//! `factor` × the baseline mean, the mean + `sigmas` standard deviations, and
//! `min_bytes`. The peer is the destination that received the most in the period.
//!
//! The baseline (each device's periods) is saved in `detect_state` every hour of
//! packet time and at the end of a run, and taken back by the next run, so a restart
//! does not blind the rule for `baseline_buckets` periods; the hours a service was
//! down count as periods without uploads. A short capture file alone never reports.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;

/// Periods of history kept per device (a week of hours): the most `baseline_buckets`
/// can be.
pub(crate) const HISTORY: usize = 168;
const MAX_DESTS: usize = 256;

type Key = (Option<[u8; 6]>, Option<IpAddr>);

#[derive(Default)]
struct Device {
    bucket: i64,
    bytes: u64,
    dests: HashMap<IpAddr, u64>,
    history: VecDeque<u64>,
    ip: Option<IpAddr>,
    flows: Vec<u64>,
    alerted: bool,
    started: bool,
}

pub struct Exfiltration {
    devices: Tracked<Key, Device>,
    counted: Tracked<u64, u64>,
}

impl Exfiltration {
    pub fn new(cfg: &DetectConfig) -> Self {
        Exfiltration {
            devices: Tracked::new(cfg.max_tracked.min(10_000)),
            counted: Tracked::new(cfg.max_tracked),
        }
    }
}

fn mean_std(v: &VecDeque<u64>) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl Rule for Exfiltration {
    fn ids(&self) -> &'static [&'static str] {
        &["exfiltration"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Flow(f) = ev else { return };
        let s = ctx.sides(f);
        if !s.any_local || s.peer_local || !ctx.is_public(s.peer_ip) {
            return;
        }
        let total = if s.outbound {
            f.orig.bytes
        } else {
            f.resp.bytes
        };
        let before = if f.is_final {
            self.counted.remove(&f.id)
        } else {
            let prev = self.counted.get(&f.id).copied();
            *self.counted.touch(&f.id, f.last_ts, || 0) = total;
            prev
        };
        let sent = total.saturating_sub(before.unwrap_or(0));
        let c = &ctx.cfg.exfiltration;
        let len = c.bucket_secs as i64 * SEC;
        let bucket = f.last_ts.div_euclid(len);
        let key: Key = match s.device {
            Some(m) => (Some(m), None),
            None => (None, Some(s.device_ip)),
        };
        let d = self.devices.touch(&key, f.last_ts, Device::default);
        d.ip = Some(s.device_ip);
        if !d.started {
            d.started = true;
            d.bucket = bucket;
        }
        if bucket > d.bucket {
            // Close the period, and count empty ones in between as zero.
            let gap = (bucket - d.bucket - 1).min(HISTORY as i64) as usize;
            d.history.push_back(d.bytes);
            d.history.extend(std::iter::repeat_n(0, gap));
            while d.history.len() > HISTORY {
                d.history.pop_front();
            }
            d.bucket = bucket;
            d.bytes = 0;
            d.dests.clear();
            d.flows.clear();
            d.alerted = false;
        }
        d.bytes += sent;
        if d.dests.len() < MAX_DESTS || d.dests.contains_key(&s.peer_ip) {
            *d.dests.entry(s.peer_ip).or_default() += sent;
        }
        if sent > 0 && d.flows.len() < super::alert::MAX_ALERT_FLOWS {
            d.flows.push(f.id);
        }
        if d.alerted || d.history.len() < c.baseline_buckets {
            return;
        }
        let (mean, std) = mean_std(&d.history);
        let limit = (c.factor * mean)
            .max(mean + c.sigmas * std)
            .max(c.min_bytes as f64);
        if (d.bytes as f64) <= limit {
            return;
        }
        d.alerted = true;
        let (top, top_bytes) = d
            .dests
            .iter()
            .max_by_key(|(ip, b)| (**b, std::cmp::Reverse(**ip)))
            .map(|(ip, b)| (*ip, *b))
            .unwrap_or((s.peer_ip, 0));
        let dev = who(s.device_ip, s.device);
        let name = ctx.name_of(top);
        let mb = |b: f64| b / 1e6;
        out.push(
            Alert::new(f.last_ts, "exfiltration", Severity::Medium, format!("{dev} uploaded far more than usual"))
                .explain(format!(
                    "{dev} sent {:.0} MB to the internet in {} minutes; it usually sends {:.1} MB. {:.0} MB went to \
                     {top}{}. Large unexpected uploads can be stolen data; they can also be a backup or a video \
                     call — check what the device was doing.",
                    mb(d.bytes as f64),
                    c.bucket_secs / 60,
                    mb(mean),
                    mb(top_bytes as f64),
                    name.map(|n| format!(" ({n})")).unwrap_or_default()
                ))
                .device(s.device)
                .peer(top.to_string())
                .mitre("T1048")
                .flows(d.flows.iter().copied())
                .evidence(json!({
                    "bytes": d.bytes, "baseline_mean": mean, "baseline_std": std, "limit": limit,
                    "baseline_periods": d.history.len(), "period_secs": c.bucket_secs,
                    "top_destination": top.to_string(), "top_destination_name": name, "top_bytes": top_bytes,
                })),
        );
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        let mut devices: Vec<serde_json::Value> = self
            .devices
            .iter()
            .filter(|(_, d)| d.started)
            .map(|((mac, ip), d)| {
                json!({
                    "mac": mac.map(crate::inventory::oui::format_mac),
                    "ip": d.ip.or(*ip).map(|a| a.to_string()),
                    "keyed_by_ip": mac.is_none(),
                    "bucket": d.bucket, "bytes": d.bytes, "history": d.history,
                })
            })
            .collect();
        devices.sort_by_key(|d| (d["mac"].to_string(), d["ip"].to_string()));
        Some(json!({"version": 1, "devices": devices}))
    }

    fn load_state(&mut self, ctx: &Ctx, state: &serde_json::Value) {
        if state["version"] != 1 {
            return;
        }
        let len = ctx.cfg.exfiltration.bucket_secs as i64 * SEC;
        for d in state["devices"].as_array().into_iter().flatten() {
            let mac = d["mac"].as_str().and_then(super::config::parse_mac);
            let ip = d["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok());
            let (Some(bucket), Some(bytes), Some(history)) = (
                d["bucket"].as_i64(),
                d["bytes"].as_u64(),
                d["history"].as_array(),
            ) else {
                continue;
            };
            let key: Key = match (mac, d["keyed_by_ip"].as_bool()) {
                (Some(m), Some(false)) => (Some(m), None),
                (_, Some(true)) if ip.is_some() => (None, ip),
                _ => continue,
            };
            let mut history: VecDeque<u64> = history.iter().filter_map(|v| v.as_u64()).collect();
            while history.len() > HISTORY {
                history.pop_front();
            }
            let dev = self
                .devices
                .touch(&key, bucket.saturating_mul(len), Device::default);
            if dev.started {
                continue; // this run saw the device already: its own numbers win
            }
            *dev = Device {
                bucket,
                bytes,
                history,
                ip,
                started: true,
                ..Default::default()
            };
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.counted.prune(now - 86_400 * SEC);
        let len = ctx.cfg.exfiltration.bucket_secs as i64 * SEC;
        self.devices.prune(now - (HISTORY as i64) * len);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    const H: i64 = 3600 * SEC;

    fn upload(t: i64, bytes: u64) -> Event {
        FlowB::tcp(DEV_IP, 40000, WAN_IP, 443)
            .at(t)
            .dur(60 * SEC)
            .orig(bytes / 1000, bytes, bytes)
            .ev()
    }

    #[test]
    fn upload_far_above_baseline_is_medium() {
        let mut ctx = ctx();
        let mut evs: Vec<_> = (0..30)
            .map(|h| upload(T0 + h * H, 2_000_000 + (h as u64 % 3) * 500_000))
            .collect();
        evs.push(upload(T0 + 30 * H + 60 * SEC, 900_000_000));
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["exfiltration"]);
        assert_eq!(a[0].peer.as_deref(), Some("93.184.216.34"));
        assert_eq!(a[0].severity, Severity::Medium);
    }

    /// The baseline survives a restart: a rule that takes back the saved state of one
    /// that saw 30 hours reports the spike at once; a fresh one cannot.
    #[test]
    fn baseline_survives_a_restart() {
        let mut ctx = ctx();
        let mut first = rule();
        let evs: Vec<_> = (0..30)
            .map(|h| upload(T0 + h * H, 2_000_000 + (h as u64 % 3) * 500_000))
            .collect();
        assert!(run_rule(&mut first, &mut ctx, &evs).is_empty());
        let state = first.save_state().unwrap();
        let saved = state["devices"][0]["history"].as_array().unwrap().len();
        assert_eq!(saved, 29, "{state}");
        // Through text, as the store keeps it.
        let state: serde_json::Value = serde_json::from_str(&state.to_string()).unwrap();

        let spike = [upload(T0 + 31 * H + 60 * SEC, 900_000_000)];
        let mut ctx = super::super::testutil::ctx();
        let mut fresh = rule();
        assert!(run_rule(&mut fresh, &mut ctx, &spike).is_empty());

        let mut ctx = super::super::testutil::ctx();
        let mut restarted = rule();
        restarted.load_state(&ctx, &state);
        let a = run_rule(&mut restarted, &mut ctx, &spike);
        assert_eq!(ids(&a), ["exfiltration"]);
        assert_eq!(a[0].device_mac, Some(DEV_MAC));
        // The hour the service was down counts as a period without uploads.
        assert_eq!(a[0].evidence["baseline_periods"], 31);

        // Foreign or broken state is ignored.
        let mut other = rule();
        other.load_state(&ctx, &json!({"version": 9, "devices": [1, 2]}));
        other.load_state(&ctx, &json!({"version": 1, "devices": [{"mac": "nope"}]}));
        assert!(
            other.save_state().unwrap()["devices"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    fn rule() -> Exfiltration {
        Exfiltration::new(&DetectConfig::default())
    }

    #[test]
    fn no_baseline_or_usual_volume_is_quiet() {
        // A big upload in a short capture: no baseline yet.
        let mut ctx = ctx();
        assert!(run_rule(&mut rule(), &mut ctx, &[upload(T0, 2_000_000_000)]).is_empty());
        // A device that always uploads a lot (a camera to its cloud).
        let mut ctx = super::super::testutil::ctx();
        let evs: Vec<_> = (0..40)
            .map(|h| upload(T0 + h * H, 800_000_000 + (h as u64 % 5) * 50_000_000))
            .collect();
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
        // Updates of a running flow count once (six records of 9 MB stay under 20 MB).
        let mut ctx = ctx_with(|c| c.detect.exfiltration.min_bytes = 20_000_000);
        let mut evs: Vec<_> = (0..30).map(|h| upload(T0 + h * H, 1_000_000)).collect();
        let f = FlowB::tcp(DEV_IP, 40001, WAN_IP, 443)
            .at(T0 + 30 * H)
            .dur(60 * SEC);
        for _ in 0..5 {
            evs.push(f.clone().orig(100, 9_000_000, 9_000_000).update().ev());
        }
        evs.push(f.orig(100, 9_000_000, 9_000_000).ev());
        let mut r = Exfiltration::new(&ctx.cfg);
        assert!(run_rule(&mut r, &mut ctx, &evs).is_empty());
    }
}
