//! `flood`: SYN, ICMP echo and UDP floods towards one target, from flow records.
//!
//! Packets are counted per target address in a window of `detect.flood.window_secs`
//! (a long flow's active-timeout updates carry running totals; only the increase is
//! counted):
//! - SYN: SYNs in connections that never carried data (half-open, rejected);
//! - ICMP: echo requests;
//! - UDP: packets of flows the target answered at most once per 20 packets.
//!
//! SYN and UDP floods must also span `min_flows` flows (many source ports or spoofed
//! addresses): a single steady stream, like a camera sending video to a recorder, is
//! not a flood. Multicast and broadcast targets (IPTV, discovery) are ignored.
//! Severity is high: a home device flooding someone is probably part of a botnet, and
//! a flood reaching a home device is an attack on it.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::flow::FlowRecord;

const MAX_SOURCES: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Syn,
    Icmp,
    Udp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Syn => "SYN",
            Kind::Icmp => "ICMP echo",
            Kind::Udp => "UDP",
        }
    }
}

#[derive(Default)]
struct Target {
    start: i64,
    pkts: [u64; 3],
    flows: [u64; 3],
    sources: HashSet<IpAddr>,
    more_sources: bool,
    source_mac: Option<[u8; 6]>,
    target_mac: Option<[u8; 6]>,
    sample: Vec<u64>,
    alerted: [bool; 3],
}

pub struct Flood {
    targets: Tracked<IpAddr, Target>,
    /// Packets already counted of flows still running (from their updates).
    counted: Tracked<u64, u64>,
}

fn classify(f: &FlowRecord) -> Option<(Kind, u64)> {
    match f.proto {
        6 if f.orig.payload_bytes == 0 && f.resp.payload_bytes == 0 && f.orig.syn > 0 => {
            Some((Kind::Syn, f.orig.syn as u64))
        }
        1 if f.orig_port == 8 => Some((Kind::Icmp, f.orig.pkts)),
        58 if f.orig_port == 128 => Some((Kind::Icmp, f.orig.pkts)),
        17 if f.resp.pkts * 20 < f.orig.pkts.max(1) => Some((Kind::Udp, f.orig.pkts)),
        _ => None,
    }
}

impl Flood {
    pub fn new(cfg: &DetectConfig) -> Self {
        Flood {
            targets: Tracked::new(cfg.max_tracked),
            counted: Tracked::new(cfg.max_tracked),
        }
    }
}

impl Rule for Flood {
    fn ids(&self) -> &'static [&'static str] {
        &["flood"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Flow(f) = ev else { return };
        let Some((kind, total)) = classify(f) else {
            return;
        };
        let (src_local, dst_local) = (ctx.is_local(f.orig_addr), ctx.is_local(f.resp_addr));
        if !(src_local || dst_local) || ctx.is_special(f.resp_addr) {
            return;
        }
        let before = if f.is_final {
            self.counted.remove(&f.id)
        } else {
            let prev = self.counted.get(&f.id).copied();
            *self.counted.touch(&f.id, f.last_ts, || 0) = total;
            prev
        };
        let pkts = total.saturating_sub(before.unwrap_or(0));
        let new_flow = before.is_none();
        let c = &ctx.cfg.flood;
        let window = c.window_secs as i64 * SEC;
        let t = self.targets.touch(&f.resp_addr, f.last_ts, Target::default);
        if t.pkts == [0; 3] || f.first_ts >= t.start + window || f.last_ts < t.start {
            *t = Target {
                start: f.first_ts,
                ..Default::default()
            };
        }
        let k = kind as usize;
        t.pkts[k] += pkts;
        t.flows[k] += new_flow as u64;
        if t.sources.len() < MAX_SOURCES {
            t.sources.insert(f.orig_addr);
        } else if !t.sources.contains(&f.orig_addr) {
            t.more_sources = true;
        }
        if src_local && t.source_mac.is_none() {
            t.source_mac = f.orig_mac;
        }
        if dst_local {
            t.target_mac = f.resp_mac;
        }
        if t.sample.len() < super::alert::MAX_ALERT_FLOWS {
            t.sample.push(f.id);
        }
        let (limit, need_flows) = match kind {
            Kind::Syn => (c.syn_packets, c.min_flows),
            Kind::Icmp => (c.icmp_packets, 1),
            Kind::Udp => (c.udp_packets, c.min_flows),
        };
        if t.alerted[k] || t.pkts[k] < limit || t.flows[k] < need_flows {
            return;
        }
        t.alerted[k] = true;
        let single = (t.sources.len() == 1 && !t.more_sources).then_some(f.orig_addr);
        let target = who(f.resp_addr, if dst_local { t.target_mac } else { None });
        let from = match single {
            Some(s) => who(s, if src_local { t.source_mac } else { None }),
            None => format!(
                "{}{} sources",
                t.sources.len(),
                if t.more_sources { "+" } else { "" }
            ),
        };
        // The home device concerned: the flooder when it is local, else the victim.
        let (device, peer) = if src_local && single.is_some() {
            (t.source_mac, f.resp_addr.to_string())
        } else {
            (
                t.target_mac,
                single
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("{} flood", kind.name())),
            )
        };
        let secs = ((f.last_ts - t.start) as f64 / SEC as f64).max(1.0);
        out.push(
            Alert::new(f.first_ts, "flood", Severity::High, format!("{} flood against {target}", kind.name()))
                .explain(format!(
                    "{from} sent {} {} packets to {target} in about {secs:.0} s over {} flows. {}",
                    t.pkts[k],
                    kind.name(),
                    t.flows[k],
                    if src_local && !dst_local {
                        "A home device flooding an internet host is usually part of a botnet: disconnect it and check it."
                    } else {
                        "This is a denial-of-service attack or a badly broken device."
                    }
                ))
                .device(device)
                .peer(peer)
                .mitre(if kind == Kind::Syn { "T1499.001" } else { "T1498.001" })
                .flows(t.sample.iter().copied())
                .evidence(json!({
                    "kind": kind.name(), "packets": t.pkts[k], "flows": t.flows[k],
                    "sources": t.sources.len(), "more_sources": t.more_sources,
                    "target": f.resp_addr.to_string(), "window_secs": c.window_secs,
                })),
        );
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.targets
            .prune(now - 2 * ctx.cfg.flood.window_secs as i64 * SEC - 300 * SEC);
        // Running flows send an update at least every active timeout.
        self.counted.prune(now - 86_400 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> Flood {
        Flood::new(&DetectConfig::default())
    }

    #[test]
    fn spoofed_syn_flood_against_a_device() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..1000u32)
            .map(|i| {
                let src = ip(&format!("100.{}.{}.{}", i % 200, (i / 200) % 250, 7));
                let mut f = FlowB::tcp(src, 1024 + i as u16, DEV_IP, 80)
                    .at(T0 + i as i64 * 10_000)
                    .s0();
                f.0.orig.syn = 4; // retransmitted SYNs
                f.ev()
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["flood"]);
        assert_eq!(a[0].device_mac, Some(DEV_MAC));
        assert_eq!(a[0].peer.as_deref(), Some("SYN flood"));
        assert_eq!(a[0].mitre, Some("T1499.001"));
    }

    #[test]
    fn ping_flood_in_one_long_flow_counts_updates_once() {
        let mut ctx = ctx();
        let f = FlowB::ping(DEV_IP, WAN_IP).dur(30 * SEC);
        let evs = [
            f.clone()
                .orig(2000, 196_000, 0)
                .resp(2000, 196_000, 0)
                .update()
                .ev(),
            f.orig(3100, 303_800, 0).resp(3100, 303_800, 0).ev(),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["flood"]);
        assert_eq!(a[0].evidence["packets"], 3100);
        assert_eq!(a[0].device_mac, Some(DEV_MAC));
        assert_eq!(a[0].peer.as_deref(), Some("93.184.216.34"));
    }

    #[test]
    fn camera_stream_and_normal_pings_are_quiet() {
        let mut ctx = ctx();
        let evs = [
            // One-way RTP video to a recorder: 60 s at 1500 packets/s, one flow.
            FlowB::udp(DEV2_IP, 5004, DEV_IP, 5004)
                .dur(60 * SEC)
                .orig(90_000, 120_000_000, 117_000_000)
                .resp(0, 0, 0)
                .ev(),
            // A ping a second for a minute.
            FlowB::ping(DEV_IP, GW_IP)
                .dur(60 * SEC)
                .orig(60, 5880, 0)
                .resp(60, 5880, 0)
                .ev(),
            // IPTV multicast.
            FlowB::udp(GW_IP, 5000, ip("239.1.1.1"), 5000)
                .orig(200_000, 270_000_000, 260_000_000)
                .resp(0, 0, 0)
                .ev(),
        ];
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
