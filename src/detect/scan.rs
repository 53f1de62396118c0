//! `port_scan` (vertical: many ports of one host) and `host_scan` (horizontal: many
//! hosts), from the outcome of each flow and from ARP requests.
//!
//! A *probe* is a connection attempt that exchanged no data: TCP half-open (`S0`),
//! rejected (`REJ`), SYN-scan style (`SYN, SYN-ACK, RST`), connect-and-close, and
//! stealth scans (NULL/FIN/Xmas: no SYN and no ACK from the originator); a UDP packet
//! nobody answered (vertical only: unanswered UDP to many hosts is normal for P2P and
//! blocked QUIC); an ICMP echo request (horizontal only: ping sweeps); a broadcast ARP
//! request (horizontal only, in a window of its own: `nmap -sn` and arp-scan on the LAN
//! send nothing else). Counted per
//! source address, each kind in its own window (`port_scan.window_secs`,
//! `host_scan.window_secs`).
//!
//! Severity: from the internet into the home → high; a home device sweeping internet
//! hosts on a system port (< 1024) or a high-risk port → high (a worm or botnet
//! looking for victims), on other ports → low (P2P clients do this); a vertical scan by
//! a home device → medium; a home device sweeping the home network → medium when it
//! probes several ports (a scanner) or sweeps by ARP (unless it is the home's router,
//! which resolves addresses for everyone it forwards to), low for one port (apps
//! discovering cast targets, printers or cameras do this).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::flow::FlowRecord;

/// (host, service) pairs remembered per source, kind of scan and window.
const MAX_PAIRS: usize = 8192;
const ICMP: u32 = 1 << 16;
/// A broadcast ARP request for the host: LAN discovery (`nmap -sn`, arp-scan).
const ARP: u32 = 1 << 17;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    Tcp,
    Udp,
    Ping,
}

/// What kind of probe a flow is, if any.
fn probe(f: &FlowRecord) -> Option<Probe> {
    match f.proto {
        6 if f.orig.payload_bytes == 0
            && f.resp.payload_bytes == 0
            && (f.orig.syn > 0 || f.orig.ack == 0) =>
        {
            Some(Probe::Tcp)
        }
        17 if f.resp.pkts == 0 && f.orig.pkts <= 3 => Some(Probe::Udp),
        1 if f.orig_port == 8 => Some(Probe::Ping),
        58 if f.orig_port == 128 => Some(Probe::Ping),
        _ => None,
    }
}

/// One kind of scan's window for one source.
#[derive(Default)]
struct Window {
    start: i64,
    /// host → services probed (proto << 16 | port; ICMP for pings).
    hosts: HashMap<IpAddr, HashSet<u32>>,
    pairs: usize,
    flows: Vec<u64>,
}

impl Window {
    /// Starts a new window at `ts` when this one is empty or `ts` is more than a window
    /// away from its start.
    fn roll(&mut self, ts: i64, window: i64) -> bool {
        if self.hosts.is_empty()
            || ts >= self.start.saturating_add(window)
            || ts < self.start.saturating_sub(window)
        {
            *self = Window {
                start: ts,
                ..Default::default()
            };
            return true;
        }
        false
    }

    /// Records a probe of `service` on `host` (by flow `flow`; ARP requests have none);
    /// true when the pair is new. Beyond [`MAX_PAIRS`] new pairs are not kept.
    fn add(&mut self, host: IpAddr, service: u32, flow: Option<u64>) -> bool {
        if self.pairs >= MAX_PAIRS && !self.hosts.get(&host).is_some_and(|h| h.contains(&service)) {
            return false;
        }
        let new = self.hosts.entry(host).or_default().insert(service);
        self.pairs += new as usize;
        if let Some(f) = flow
            && self.flows.len() < super::alert::MAX_ALERT_FLOWS
        {
            self.flows.push(f);
        }
        new
    }
}

#[derive(Default)]
struct Source {
    mac: Option<[u8; 6]>,
    /// `port_scan`: TCP and UDP probes.
    vertical: Window,
    vertical_done: HashSet<IpAddr>,
    /// `host_scan`: TCP and ICMP probes.
    horizontal: Sweep,
    /// `host_scan` by ARP, apart: a LAN discovery must not mix with the source's
    /// internet connections (a P2P client's two ARP lookups would make "arp" the top
    /// service of its internet sweep).
    arp: Sweep,
}

/// One `host_scan` window, and how many hosts each service was probed on: kept as
/// pairs are added, so the check costs the same whether the source has probed ten
/// hosts or thousands.
#[derive(Default)]
struct Sweep {
    window: Window,
    per_service: HashMap<u32, usize>,
    done: bool,
}

impl Sweep {
    /// Records a host probe, rolling the window when it has passed.
    fn add(&mut self, ctx: &Ctx, ts: i64, dst: IpAddr, service: u32, flow: Option<u64>) {
        if self
            .window
            .roll(ts, ctx.cfg.host_scan.window_secs as i64 * SEC)
        {
            self.per_service.clear();
            self.done = false;
        }
        if self.window.add(dst, service, flow) {
            *self.per_service.entry(service).or_default() += 1;
        }
    }

    /// Reports the window once it holds `host_scan.min_hosts` hosts.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        ctx: &Ctx,
        mac: Option<[u8; 6]>,
        src: IpAddr,
        src_local: bool,
        dst_local: bool,
        ts: i64,
        out: &mut Vec<Alert>,
    ) {
        let cfg = &ctx.cfg;
        let hosts = self.window.hosts.len();
        if self.done || hosts < cfg.host_scan.min_hosts {
            return;
        }
        self.done = true;
        let per_service = &self.per_service;
        let scanner = who(src, mac);
        let (top, top_n) = per_service
            .iter()
            .max_by_key(|(svc, n)| (**n, std::cmp::Reverse(**svc)))
            .map(|(s, n)| (*s, *n))
            .unwrap_or((ICMP, 0));
        let swept = per_service.values().filter(|&&n| n >= 5).count();
        let top_port = (top & 0xffff) as u16;
        // The home's router resolves addresses for everyone it forwards to.
        let router = ctx.is_gateway(src)
            || ctx.is_dhcp_server(src)
            || mac.is_some_and(|m| ctx.is_ipv6_router(m));
        let (sev, device, peer) = if !src_local {
            (Severity::High, None, src.to_string())
        } else if !dst_local {
            let sev = if top == ICMP {
                Severity::Medium
            } else if top_port < 1024 || cfg.high_risk_ports.contains(&top_port) {
                Severity::High
            } else {
                Severity::Low
            };
            (sev, mac, service_text(top))
        } else {
            let sev = if swept >= 3 || (top == ARP && !router) {
                Severity::Medium
            } else {
                Severity::Low
            };
            (sev, mac, service_text(top))
        };
        let mut services: Vec<String> = per_service.keys().map(|&x| service_text(x)).collect();
        services.sort();
        services.truncate(20);
        let where_ = if dst_local {
            "on the home network"
        } else {
            "on the internet"
        };
        out.push(
            Alert::new(ts, "host_scan", sev, format!("{scanner} swept {hosts} hosts {where_}"))
                .explain(format!(
                    "{scanner} probed {hosts} different hosts {where_} within {} s, mostly {} ({top_n} \
                     hosts), without exchanging data. {}",
                    cfg.host_scan.window_secs,
                    if top == ARP {
                        "by asking for their hardware addresses (ARP)".to_string()
                    } else {
                        format!("on {}", service_text(top))
                    },
                    if !src_local {
                        "Someone on the internet is mapping the home network: check the router's port forwards and DMZ."
                    } else if !dst_local {
                        "A device probing random internet hosts on one service is typical of a botnet infection."
                    } else if top == ARP {
                        "This is how a scanner (nmap -sn, arp-scan, a network app) finds every device on the home \
                         network; an unexpected one may be an intruder or malware looking for its next victim."
                    } else {
                        "Network scanners and some discovery apps do this; an unexpected one may be malware looking for its next victim."
                    }
                ))
                .device(device)
                .peer(peer)
                .mitre(if top == ICMP || top == ARP { "T1018" } else { "T1046" })
                .flows(self.window.flows.iter().copied())
                .evidence(json!({
                    "scanner": src.to_string(), "hosts": hosts, "services": services,
                    "top_service": service_text(top), "top_service_hosts": top_n,
                    "window_secs": cfg.host_scan.window_secs,
                })),
        );
    }
}

pub struct Scan {
    sources: Tracked<IpAddr, Source>,
    vertical: bool,
    horizontal: bool,
}

fn service_text(s: u32) -> String {
    match s >> 16 {
        _ if s == ICMP => "icmp".into(),
        _ if s == ARP => "arp".into(),
        6 => format!("tcp/{}", s & 0xffff),
        17 => format!("udp/{}", s & 0xffff),
        p => format!("{p}/{}", s & 0xffff),
    }
}

impl Scan {
    pub fn new(cfg: &DetectConfig) -> Self {
        Scan {
            sources: Tracked::new(cfg.max_tracked),
            vertical: cfg.port_scan.enabled,
            horizontal: cfg.host_scan.enabled,
        }
    }
}

impl Rule for Scan {
    fn ids(&self) -> &'static [&'static str] {
        &["port_scan", "host_scan"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let f = match ev {
            Event::Flow(f) => f,
            Event::ArpRequest(a) if self.horizontal => {
                // Who-has for a LAN address: the sender discovering hosts. The sender is
                // on the LAN whatever its address, so the sweep is a home device's.
                let (src, dst) = (IpAddr::V4(a.sender_ip), IpAddr::V4(a.target_ip));
                if ctx.is_special(dst) {
                    return;
                }
                let s = self.sources.touch(&src, a.ts, Source::default);
                s.mac = Some(a.sender_mac);
                s.arp.add(ctx, a.ts, dst, ARP, None);
                s.arp.check(ctx, s.mac, src, true, true, a.ts, out);
                return;
            }
            _ => return,
        };
        if !f.is_final {
            return; // a probe is short; only its final record counts
        }
        let Some(kind) = probe(f) else { return };
        let (src, dst) = (f.orig_addr, f.resp_addr);
        let (src_local, dst_local) = (ctx.is_local(src), ctx.is_local(dst));
        if !(src_local || dst_local) || ctx.is_special(dst) {
            return;
        }
        let cfg = &ctx.cfg;
        let s = self.sources.touch(&src, f.first_ts, Source::default);
        if src_local && f.orig_mac.is_some() {
            s.mac = f.orig_mac;
        }
        let service = if kind == Probe::Ping {
            ICMP
        } else {
            (f.proto as u32) << 16 | f.resp_port as u32
        };
        let scanner = who(src, s.mac);
        let vertical = self.vertical && kind != Probe::Ping;
        let horizontal = self.horizontal && kind != Probe::Udp;
        if vertical {
            if s.vertical
                .roll(f.first_ts, cfg.port_scan.window_secs as i64 * SEC)
            {
                s.vertical_done.clear();
            }
            s.vertical.add(dst, service, Some(f.id));
        }
        if horizontal {
            s.horizontal.add(ctx, f.first_ts, dst, service, Some(f.id));
        }

        // Vertical: ports of this host (TCP and UDP probes).
        if vertical && !s.vertical_done.contains(&dst) {
            let ports: Vec<u32> = s
                .vertical
                .hosts
                .get(&dst)
                .map(|h| h.iter().copied().collect())
                .unwrap_or_default();
            if ports.len() >= cfg.port_scan.min_ports {
                s.vertical_done.insert(dst);
                let (sev, device, peer) = if !src_local {
                    (Severity::High, f.resp_mac, src)
                } else {
                    (Severity::Medium, s.mac, dst)
                };
                let mut sample: Vec<String> = ports.iter().map(|&p| service_text(p)).collect();
                sample.sort();
                sample.truncate(30);
                let target = who(dst, if dst_local { f.resp_mac } else { None });
                out.push(
                    Alert::new(f.first_ts, "port_scan", sev, format!("Port scan of {target} by {scanner}"))
                        .explain(format!(
                            "{scanner} probed {} ports of {target} within {} s without exchanging data (half-open, \
                             rejected or unanswered connections). This is how attackers map services to attack. \
                             If nobody ran a scanner (nmap, a security app) on purpose, investigate {}.",
                            ports.len(),
                            cfg.port_scan.window_secs,
                            if src_local { "the scanning device" } else { "why the router lets it in" }
                        ))
                        .device(device)
                        .peer(peer.to_string())
                        .mitre("T1046")
                        .flows(s.vertical.flows.iter().copied())
                        .evidence(json!({
                            "scanner": src.to_string(), "target": dst.to_string(), "ports": ports.len(),
                            "sample": sample, "window_secs": cfg.port_scan.window_secs,
                        })),
                );
            }
        }

        // Horizontal: hosts probed over TCP or ICMP (and ARP, above).
        if horizontal {
            s.horizontal
                .check(ctx, s.mac, src, src_local, dst_local, f.first_ts, out);
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        let w = ctx
            .cfg
            .port_scan
            .window_secs
            .max(ctx.cfg.host_scan.window_secs) as i64
            * SEC;
        // Probes arrive when their flow ends (an unanswered SYN after the SYN timeout).
        self.sources.prune(now - 2 * w - 300 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> Scan {
        Scan::new(&DetectConfig::default())
    }

    #[test]
    fn vertical_scan_of_a_lan_host() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..30u16)
            .map(|p| {
                let f = FlowB::tcp(ATT_IP, 40000, DEV_IP, 1000 + p).at(T0 + p as i64 * 10_000);
                if p % 2 == 0 { f.rej() } else { f.s0() }.ev()
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["port_scan"]);
        assert_eq!(a[0].severity, Severity::Medium);
        assert_eq!(a[0].device_mac, Some(ATT_MAC));
        assert_eq!(a[0].peer.as_deref(), Some("192.168.1.10"));
        assert_eq!(
            a[0].evidence["ports"], 25,
            "reported when the threshold is reached"
        );
    }

    #[test]
    fn syn_scan_of_open_ports_counts_and_inbound_is_high() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..25u16)
            .map(|p| {
                // SYN, SYN-ACK, RST from the scanner: no payload.
                let mut f = FlowB::tcp(WAN_IP, 40000, DEV_IP, 20 + p)
                    .state("RSTO", "ShR")
                    .orig(2, 114, 0)
                    .resp(1, 60, 0);
                f.0.orig.syn = 1;
                f.ev()
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["port_scan"]);
        assert_eq!(a[0].severity, Severity::High);
        assert_eq!(a[0].device_mac, Some(DEV_MAC));
        assert_eq!(a[0].peer.as_deref(), Some("93.184.216.34"));
    }

    #[test]
    fn telnet_sweep_of_the_internet_is_high() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..30u8)
            .map(|i| {
                FlowB::tcp(DEV_IP, 40000 + i as u16, ip(&format!("45.33.{i}.7")), 23)
                    .s0()
                    .ev()
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["host_scan"]);
        assert_eq!(
            (a[0].severity, a[0].peer.as_deref()),
            (Severity::High, Some("tcp/23"))
        );
    }

    #[test]
    fn lan_ping_sweep_is_low_multi_port_sweep_medium() {
        let mut ctx = ctx();
        let evs: Vec<_> = (2..40u8)
            .map(|i| {
                FlowB::ping(DEV_IP, ip(&format!("192.168.1.{}", 100 + i)))
                    .resp(0, 0, 0)
                    .ev()
            })
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["host_scan"]);
        assert_eq!((a[0].severity, a[0].mitre), (Severity::Low, Some("T1018")));

        let mut ctx = super::super::testutil::ctx();
        let mut evs = Vec::new();
        for i in 2..30u8 {
            for port in [22, 80, 443] {
                evs.push(
                    FlowB::tcp(ATT_IP, 40000, ip(&format!("192.168.1.{}", 100 + i)), port)
                        .rej()
                        .ev(),
                );
            }
        }
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["host_scan"]);
        assert_eq!(a[0].severity, Severity::Medium);
    }

    fn arp_sweep(sender: IpAddr, mac: [u8; 6], n: u8) -> Vec<Event> {
        let IpAddr::V4(sender_ip) = sender else {
            unreachable!()
        };
        (0..n)
            .map(|i| {
                Event::ArpRequest(crate::event::ArpRequest {
                    ts: T0 + i as i64 * SEC / 10,
                    sender_mac: mac,
                    sender_ip,
                    target_ip: std::net::Ipv4Addr::new(192, 168, 1, 100 + i),
                })
            })
            .collect()
    }

    /// `nmap -sn` on the LAN is ARP only: a device asking for 30 addresses is a sweep
    /// (medium, T1018); the home router asking for its clients is at most low; a few
    /// requests are nothing.
    #[test]
    fn lan_arp_sweep_is_medium_unless_by_the_router() {
        let mut ctx = ctx();
        let a = run_rule(&mut rule(), &mut ctx, &arp_sweep(ATT_IP, ATT_MAC, 30));
        assert_eq!(ids(&a), ["host_scan"]);
        assert_eq!(
            (a[0].severity, a[0].mitre),
            (Severity::Medium, Some("T1018"))
        );
        assert_eq!(
            (a[0].device_mac, a[0].peer.as_deref()),
            (Some(ATT_MAC), Some("arp"))
        );
        assert_eq!(
            a[0].evidence["hosts"],
            DetectConfig::default().host_scan.min_hosts
        );
        assert!(a[0].flow_ids.is_empty());

        let mut ctx = super::super::testutil::ctx();
        let mut evs = vec![dhcp_ack(T0 - SEC, DEV_MAC)];
        evs.extend(arp_sweep(GW_IP, GW_MAC, 30));
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["host_scan"]);
        assert_eq!(a[0].severity, Severity::Low);

        let mut ctx = super::super::testutil::ctx();
        let few = DetectConfig::default().host_scan.min_hosts as u8 - 1;
        assert!(run_rule(&mut rule(), &mut ctx, &arp_sweep(ATT_IP, ATT_MAC, few)).is_empty());

        // A P2P client's ARP lookups do not join its internet sweep (nDPI's gnutella
        // capture): still low, on its TCP port, not "arp".
        let mut ctx = super::super::testutil::ctx();
        let mut evs = arp_sweep(DEV_IP, DEV_MAC, 2);
        for i in 0..30u16 {
            evs.push(
                FlowB::tcp(
                    DEV_IP,
                    40000 + i,
                    ip(&format!("81.2.3.{}", i + 1)),
                    6346 + i,
                )
                .s0()
                .ev(),
            );
        }
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["host_scan"]);
        assert_eq!(a[0].severity, Severity::Low);
        assert_ne!(a[0].peer.as_deref(), Some("arp"));
    }

    /// Hosts first seen through unanswered UDP count for the horizontal sweep only once
    /// they get a TCP probe, and each only once however many ports it gets.
    #[test]
    fn sweep_counts_tcp_hosts_of_a_source_that_also_sends_unanswered_udp() {
        let mut ctx = ctx();
        let min = DetectConfig::default().host_scan.min_hosts;
        let host = |i: usize| ip(&format!("81.2.{}.{}", i / 200, i % 200 + 1));
        let mut evs = Vec::new();
        for i in 0..2000 {
            evs.push(
                FlowB::udp(DEV_IP, 6881, host(i), 443)
                    .resp(0, 0, 0)
                    .orig(1, 1200, 1160)
                    .ev(),
            );
        }
        // TCP probes to min - 1 of those hosts, two ports each.
        for i in 0..min - 1 {
            for port in [23, 2323] {
                evs.push(FlowB::tcp(DEV_IP, 40000, host(i * 7), port).s0().ev());
            }
        }
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
        evs.push(FlowB::tcp(DEV_IP, 40001, host(1999), 23).s0().ev());
        let a = run_rule(&mut rule(), &mut super::super::testutil::ctx(), &evs);
        assert_eq!(ids(&a), ["host_scan"]);
        let ev = &a[0].evidence;
        assert_eq!(ev["hosts"], min);
        assert_eq!(ev["top_service"], "tcp/23");
        assert_eq!(ev["top_service_hosts"], min);
        assert_eq!(ev["services"], serde_json::json!(["tcp/23", "tcp/2323"]));
    }

    /// `port_scan.window_secs` and `host_scan.window_secs` each hold for their own
    /// kind: 30 ports and 30 hosts probed 100 s apart are a scan only for the kind
    /// whose window spans them.
    #[test]
    fn port_and_host_scans_keep_their_own_windows() {
        let mut evs = Vec::new();
        for i in 0..30u8 {
            let t = T0 + i as i64 * 100 * SEC;
            evs.push(
                FlowB::tcp(ATT_IP, 40000, DEV_IP, 1000 + i as u16)
                    .at(t)
                    .s0()
                    .ev(),
            );
            evs.push(
                FlowB::tcp(ATT_IP, 40001, ip(&format!("192.168.1.{}", 100 + i)), 22)
                    .at(t + 50 * SEC)
                    .s0()
                    .ev(),
            );
        }
        let run = |port_secs: u64, host_secs: u64| {
            let mut ctx = ctx_with(|c| {
                c.detect.port_scan.window_secs = port_secs;
                c.detect.host_scan.window_secs = host_secs;
            });
            let mut r = Scan::new(&ctx.cfg);
            ids(&run_rule(&mut r, &mut ctx, &evs))
        };
        assert_eq!(run(60, 3600), ["host_scan"]);
        assert_eq!(run(3600, 60), ["port_scan"]);
        assert!(run(60, 60).is_empty());
    }

    #[test]
    fn normal_connections_p2p_udp_and_spread_out_attempts_are_quiet() {
        let mut ctx = ctx();
        let mut evs = Vec::new();
        for i in 0..60u16 {
            // Ordinary connections with data.
            evs.push(FlowB::tcp(DEV_IP, 40000 + i, WAN_IP, 443).ev());
            // Unanswered UDP to many internet hosts (P2P, blocked QUIC).
            evs.push(
                FlowB::udp(DEV_IP, 6881, ip(&format!("81.2.{}.9", i)), 443)
                    .resp(0, 0, 0)
                    .orig(1, 1200, 1160)
                    .ev(),
            );
        }
        // A few failures to one host, each in its own window.
        for i in 0..40i64 {
            evs.push(
                FlowB::tcp(DEV_IP, 40000, DEV2_IP, 8000 + i as u16)
                    .at(T0 + i * 400 * SEC)
                    .s0()
                    .ev(),
            );
        }
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
