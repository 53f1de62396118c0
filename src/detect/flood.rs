//! `flood`: SYN, ICMP echo and UDP floods towards one target, from flow records.
//!
//! Packets are counted per target address in a window of `detect.flood.window_secs`
//! that starts with the first packets counted:
//! - SYN: SYNs in connections that never carried data (half-open, rejected; flow
//!   records count SYNs up to 255, beyond which the originator's packets without ACK,
//!   RST or FIN are counted);
//! - ICMP: echo requests;
//! - UDP: packets of flows the target answered at most once per 20 packets.
//!
//! A long flow's active-timeout updates carry running totals: only the increase is
//! counted, as sent between the previous update and this one. An increase spread over
//! longer than the window counts at its rate, as the packets that fell in one window
//! (a ping a second for an hour is 60 per minute, never a flood).
//!
//! SYN and UDP floods must also span `min_flows` flows (many source ports or spoofed
//! addresses): a single steady stream, like a camera sending video to a recorder, is
//! not a flood. The exceptions: one flow whose SYNs (no data either way) came
//! `single_flow_factor` times faster than the SYN threshold's rate is a flood from a
//! fixed source port (`hping3 -S -k`); so is one unanswered UDP flow from a home
//! device to an internet host that fast (a bot's UDP flood from one port: 1,667
//! packets/s by default). Within the home (cameras, screen mirroring) and from the
//! internet (unicast IPTV) a fast one-way UDP stream is ordinary video. Multicast and broadcast targets (IPTV,
//! discovery) are ignored. Severity is high: a home device flooding someone is
//! probably part of a botnet, and a flood reaching a home device is an attack on it.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::flow::{DirSummary, FlowRecord};

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
    /// Packets counted, as reported.
    pkts: [u64; 3],
    /// Packets that fell within one window (increases spread over longer than the
    /// window scaled down to it): what the thresholds are compared with.
    in_window: [f64; 3],
    /// A single flow was fast enough to be a flood on its own.
    fast_flow: [bool; 3],
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
    /// Flows still running: packets already counted (from their updates) and the
    /// time of the update that counted them.
    counted: Tracked<u64, (u64, i64)>,
}

/// SYNs the originator sent. Flow records count SYNs up to 255 (more is anomalous
/// either way); beyond, its packets without ACK, RST or FIN are taken as SYNs.
fn syns(d: &DirSummary) -> u64 {
    let syn = d.syn as u64;
    if syn < u8::MAX as u64 {
        return syn;
    }
    d.pkts
        .saturating_sub(d.ack as u64 + d.rst as u64 + d.fin as u64)
        .max(syn)
}

fn classify(f: &FlowRecord) -> Option<(Kind, u64)> {
    match f.proto {
        6 if f.orig.payload_bytes == 0 && f.resp.payload_bytes == 0 && f.orig.syn > 0 => {
            Some((Kind::Syn, syns(&f.orig)))
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
        let prev = if f.is_final {
            self.counted.remove(&f.id)
        } else {
            let prev = self.counted.get(&f.id).copied();
            *self.counted.touch(&f.id, f.last_ts, || (0, 0)) = (total, f.last_ts);
            prev
        };
        let new_flow = prev.is_none();
        let (before, since) = prev.unwrap_or((0, f.first_ts));
        let pkts = total.saturating_sub(before);
        // These packets were sent between `since` and the flow's last packet.
        let since = since.max(f.first_ts).min(f.last_ts);
        let span = f.last_ts.saturating_sub(since).max(0);
        let c = &ctx.cfg.flood;
        let window = c.window_secs as i64 * SEC;
        let in_window = if span > window {
            pkts as f64 * window as f64 / span as f64
        } else {
            pkts as f64
        };
        let (limit, need_flows) = match kind {
            Kind::Syn => (c.syn_packets, c.min_flows),
            Kind::Icmp => (c.icmp_packets, 1),
            Kind::Udp => (c.udp_packets, c.min_flows),
        };
        // Packets per second of this flow since its previous record (at least 1 s).
        let rate = pkts as f64 * SEC as f64 / span.max(SEC) as f64;
        let fast_rate = rate >= c.single_flow_factor * limit as f64 / c.window_secs.max(1) as f64;
        let fast = match kind {
            Kind::Syn => fast_rate,
            Kind::Udp => fast_rate && src_local && ctx.is_public(f.resp_addr),
            Kind::Icmp => false,
        };
        let t = self.targets.touch(&f.resp_addr, f.last_ts, Target::default);
        if t.pkts == [0; 3] || since >= t.start.saturating_add(window) || f.last_ts < t.start {
            *t = Target {
                start: since,
                ..Default::default()
            };
        }
        let k = kind as usize;
        t.pkts[k] += pkts;
        t.in_window[k] += in_window;
        t.fast_flow[k] |= fast && pkts > 0;
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
        if t.alerted[k]
            || t.in_window[k] < limit as f64
            || (t.flows[k] < need_flows && !t.fast_flow[k])
        {
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
                    "{from} sent {} {} packets to {target} in about {secs:.0} s over {} flow{}. {}",
                    t.pkts[k],
                    kind.name(),
                    t.flows[k],
                    if t.flows[k] == 1 { "" } else { "s" },
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

    /// A ping a second for 55 minutes: 3300 echo requests, more than `icmp_packets`,
    /// but 60 a minute. Neither as active-timeout updates nor as one record.
    #[test]
    fn slow_steady_ping_in_a_long_flow_is_quiet() {
        let mut ctx = ctx();
        let dst = ip("9.9.9.9");
        let f = FlowB::ping(DEV_IP, dst);
        let mut evs: Vec<_> = (1..=11i64)
            .map(|i| {
                let n = (i * 300).min(3300) as u64;
                let u = f
                    .clone()
                    .dur(i * 300 * SEC)
                    .orig(n, n * 98, 0)
                    .resp(n, n * 98, 0);
                if i < 11 { u.update() } else { u }.ev()
            })
            .collect();
        evs.push(
            FlowB::ping(DEV_IP, dst)
                .at(T0 + 3400 * SEC)
                .dur(3300 * SEC)
                .orig(3300, 323_400, 0)
                .resp(3300, 323_400, 0)
                .ev(),
        );
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }

    /// `hping3 -S -k`: 20,000 SYNs at 5,000/s from one source port, one flow.
    #[test]
    fn syn_flood_in_one_flow_is_reported_a_slow_one_is_not() {
        let one = |n: u64, secs: i64| {
            let mut f = FlowB::tcp(ATT_IP, 5555, DEV_IP, 22)
                .s0()
                .orig(n, n * 60, 0)
                .dur(secs * SEC);
            f.0.orig.syn = n.min(255) as u32; // flow records saturate there
            f.ev()
        };
        let mut ctx = ctx();
        let a = run_rule(&mut rule(), &mut ctx, &[one(20_000, 4)]);
        assert_eq!(ids(&a), ["flood"]);
        assert_eq!(a[0].evidence["flows"], 1);
        assert_eq!(a[0].evidence["packets"], 20_000);
        // A home device flooding: it is the device concerned.
        assert_eq!(a[0].device_mac, Some(ATT_MAC));
        assert_eq!(a[0].peer.as_deref(), Some("192.168.1.10"));
        // 3000 SYNs in a minute from one port: 50/s, far from 10 × the threshold rate.
        let mut ctx = super::super::testutil::ctx();
        assert!(run_rule(&mut rule(), &mut ctx, &[one(3000, 60)]).is_empty());
    }

    /// One unanswered UDP flow from a home device to an internet host at 2,500
    /// packets/s for a minute (a bot flooding from one port) is a flood; the same
    /// stream to another home device (screen mirroring) or from the internet to a
    /// home device (unicast IPTV) is video.
    #[test]
    fn one_flow_udp_flood_only_from_home_to_the_internet() {
        let stream = |src: IpAddr, dst: IpAddr| {
            FlowB::udp(src, 40000, dst, 27015)
                .dur(60 * SEC)
                .orig(150_000, 78_000_000, 73_800_000)
                .resp(0, 0, 0)
                .ev()
        };
        let mut ctx = ctx();
        let a = run_rule(&mut rule(), &mut ctx, &[stream(DEV_IP, WAN_IP)]);
        assert_eq!(ids(&a), ["flood"]);
        assert_eq!(a[0].evidence["kind"], "UDP");
        assert_eq!(a[0].evidence["flows"], 1);
        assert_eq!(
            (a[0].device_mac, a[0].mitre),
            (Some(DEV_MAC), Some("T1498.001"))
        );
        for (src, dst) in [(DEV2_IP, DEV_IP), (WAN_IP, DEV_IP)] {
            let mut ctx = super::super::testutil::ctx();
            assert!(run_rule(&mut rule(), &mut ctx, &[stream(src, dst)]).is_empty());
        }
        // Half the rate: below single_flow_factor x the threshold's rate.
        let mut ctx = super::super::testutil::ctx();
        let slow = FlowB::udp(DEV_IP, 40000, WAN_IP, 27015)
            .dur(60 * SEC)
            .orig(60_000, 31_200_000, 29_520_000)
            .resp(0, 0, 0)
            .ev();
        assert!(run_rule(&mut rule(), &mut ctx, &[slow]).is_empty());
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
