//! Detection: rules over the event stream, producing [`Alert`]s.
//!
//! The [`Engine`] owns one [`Rule`] per file of this folder and a shared [`Ctx`] (what
//! every rule needs to know about the network: which addresses are local, the home's
//! resolvers and gateways, names that resolved to an address, devices known from
//! earlier runs). Events go through [`Engine::on_events`]; time-based evaluations run
//! in [`Engine::tick`]. Time is always packet time — the events' own timestamps — never
//! the wall clock, so replaying a capture gives the same alerts as watching it live.
//!
//! Rules only report. Deduplication (rule × device × peer), states, mutes, the device
//! risk score and storage live in [`lifecycle`].
//!
//! | file | rule ids |
//! |---|---|
//! | `high_risk_port.rs` | `high_risk_port` |
//! | `dns_tunnel.rs` | `dns_tunnel` |
//! | `tls_anomaly.rs` | `tls_anomaly` |
//! | `local_only.rs` | `local_only_egress` |
//! | `scan.rs` | `port_scan`, `host_scan` |
//! | `flood.rs` | `flood` |
//! | `brute_force.rs` | `brute_force` |
//! | `arp_spoof.rs` | `arp_spoof` |
//! | `rogue_dhcp.rs` | `rogue_dhcp` |
//! | `rogue_ra.rs` | `rogue_ra` |
//! | `new_device.rs` | `new_device` |
//! | `dga_rule.rs` (scoring in `dga.rs`) | `dga`, `nxdomain_burst` |
//! | `dns_bypass.rs` | `dns_bypass` |
//! | `beaconing.rs` | `beaconing` |
//! | `exfiltration.rs` | `exfiltration` |
//! | `cleartext.rs` | `cleartext_credentials`, `insecure_protocol` |
//!
//! `anomaly` is reserved for the ML models.
//!
//! Memory is bounded: every per-key table a rule keeps is a [`Tracked`] with the cap
//! `detect.max_tracked`, forgetting the least recently active keys when full.

pub mod alert;
pub mod config;
pub mod dga;
pub mod lifecycle;
pub mod ml;

mod arp_spoof;
mod beaconing;
mod brute_force;
mod cleartext;
mod dga_rule;
mod dns_bypass;
mod dns_tunnel;
mod exfiltration;
mod flood;
mod high_risk_port;
mod local_only;
mod new_device;
mod rogue_dhcp;
mod rogue_ra;
mod scan;
mod tls_anomaly;

#[cfg(test)]
pub(crate) mod testutil;

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;

pub use alert::{Alert, Severity};
pub use config::DetectConfig;

use crate::event::Event;
use crate::flow::FlowRecord;
use crate::proto::ProtoRecord;

/// Every rule id an alert can carry.
pub const RULE_IDS: [&str; 20] = [
    "high_risk_port",
    "dns_tunnel",
    "tls_anomaly",
    "local_only_egress",
    "port_scan",
    "host_scan",
    "flood",
    "brute_force",
    "arp_spoof",
    "rogue_dhcp",
    "rogue_ra",
    "new_device",
    "dga",
    "nxdomain_burst",
    "dns_bypass",
    "beaconing",
    "exfiltration",
    "cleartext_credentials",
    "insecure_protocol",
    "anomaly",
];

pub(crate) const SEC: i64 = 1_000_000;

/// One detection rule. Rules see every event after the [`Ctx`] has learned from it.
pub trait Rule: Send {
    /// The rule ids this rule emits.
    fn ids(&self) -> &'static [&'static str];
    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>);
    /// Time-based evaluation and cleanup; called at most once per second of packet time.
    fn tick(&mut self, _ctx: &Ctx, _now: i64, _out: &mut Vec<Alert>) {}
    /// End of input (end of the capture files, shutdown): report what is pending.
    fn finish(&mut self, _ctx: &Ctx, _out: &mut Vec<Alert>) {}
    /// What the rule learned that should survive a restart (a baseline), as JSON;
    /// `None`: nothing. Saved in `detect_state` every hour of packet time and at the end.
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Takes back what [`Rule::save_state`] returned in an earlier run. Malformed or
    /// foreign state is ignored.
    fn load_state(&mut self, _ctx: &Ctx, _state: &serde_json::Value) {}
}

/// A device known before this run (a row of the `devices` table).
#[derive(Clone, Debug, Default)]
pub struct KnownDevice {
    pub mac: [u8; 6],
    pub hostname: Option<String>,
}

/// What the rules share about the network, learned from the events.
pub struct Ctx {
    pub cfg: DetectConfig,
    local: crate::inventory::local::LocalNets,
    /// Latest packet time seen (µs).
    pub now: i64,
    configured_resolvers: HashSet<IpAddr>,
    learned_resolvers: HashSet<IpAddr>,
    gateways: HashSet<IpAddr>,
    pub local_only: HashSet<[u8; 6]>,
    /// Address → a name that resolved to it (two generations: bounded, recent first).
    resolved: [HashMap<IpAddr, String>; 2],
    /// Devices seen in earlier runs, and their host names (lowercase).
    pub known_devices: HashSet<[u8; 6]>,
    pub known_hostnames: HashSet<String>,
    /// `detect.rogue_dhcp.allowed_servers`.
    allowed_dhcp: HashSet<IpAddr>,
    /// Without allowed servers: the first DHCP server seen (in this run or, seeded, in
    /// earlier ones) is taken as the network's own.
    learned_dhcp: Option<IpAddr>,
    /// `detect.rogue_ra.allowed_routers`; without them, the first IPv6 default router
    /// seen (this run or, seeded, an earlier one).
    allowed_routers: HashSet<[u8; 6]>,
    learned_router: Option<[u8; 6]>,
}

/// The local and remote sides of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sides {
    /// MAC of the local device (None when neither side is local or the MAC is unknown).
    pub device: Option<[u8; 6]>,
    pub device_ip: IpAddr,
    pub peer_ip: IpAddr,
    /// The device started the flow.
    pub outbound: bool,
    pub peer_local: bool,
    /// At least one side is local.
    pub any_local: bool,
}

const MAX_LEARNED: usize = 16;
const RESOLVED_GENERATION: usize = 32_768;

impl Ctx {
    pub fn new(cfg: &crate::config::Config) -> Ctx {
        let d = cfg.detect.clone();
        Ctx {
            local: crate::inventory::local::LocalNets::new(cfg),
            now: i64::MIN,
            configured_resolvers: d.dns_servers.iter().copied().collect(),
            learned_resolvers: HashSet::new(),
            gateways: HashSet::new(),
            local_only: d.local_only_macs().into_iter().collect(),
            resolved: [HashMap::new(), HashMap::new()],
            known_devices: HashSet::new(),
            known_hostnames: HashSet::new(),
            allowed_dhcp: d.rogue_dhcp.allowed_servers.iter().copied().collect(),
            learned_dhcp: None,
            allowed_routers: d
                .rogue_ra
                .allowed_routers
                .iter()
                .filter_map(|m| config::parse_mac(m))
                .collect(),
            learned_router: None,
            cfg: d,
        }
    }

    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.local.contains(ip)
    }

    /// IPv6 prefixes earlier runs learned from router advertisements.
    pub fn seed_prefixes(&mut self, nets: &[ipnet::IpNet]) {
        self.local.learn_all(nets);
    }

    /// A unicast internet address: not local, multicast, broadcast, loopback or unspecified.
    pub fn is_public(&self, ip: IpAddr) -> bool {
        !self.is_local(ip) && !is_special(ip)
    }

    /// [`is_special`], or an IPv4 address ending in .255 inside the local networks (a
    /// home subnet's broadcast, most likely; the prefix of the home's subnet is not
    /// known, local networks being whole private ranges). Internet hosts at .255 are
    /// ordinary hosts.
    pub fn is_special(&self, ip: IpAddr) -> bool {
        is_special(ip) || matches!(ip, IpAddr::V4(v) if v.octets()[3] == 255 && self.is_local(ip))
    }

    /// The home's resolvers: configured, else learned from DHCP.
    pub fn is_resolver(&self, ip: IpAddr) -> bool {
        if self.configured_resolvers.is_empty() {
            self.learned_resolvers.contains(&ip)
        } else {
            self.configured_resolvers.contains(&ip)
        }
    }

    /// Whether the home's resolvers for `server`'s address family are known: configured,
    /// or learned (DHCP for IPv4, router advertisements' RDNSS for IPv6). A network whose
    /// IPv6 resolvers were seen but not yet its DHCP lease must not call every IPv4
    /// query a bypass.
    pub fn resolvers_known_for(&self, server: IpAddr) -> bool {
        !self.configured_resolvers.is_empty()
            || self
                .learned_resolvers
                .iter()
                .any(|r| r.is_ipv4() == server.is_ipv4())
    }

    /// Routers advertised by DHCP (option 3).
    pub fn is_gateway(&self, ip: IpAddr) -> bool {
        self.gateways.contains(&ip)
    }

    /// A name some device resolved to `ip` recently.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.resolved[0]
            .get(&ip)
            .or_else(|| self.resolved[1].get(&ip))
            .map(|s| s.as_str())
    }

    pub fn sides(&self, f: &FlowRecord) -> Sides {
        self.sides_of(f.orig_addr, f.orig_mac, f.resp_addr, f.resp_mac)
    }

    pub fn sides_of(
        &self,
        orig: IpAddr,
        orig_mac: Option<[u8; 6]>,
        resp: IpAddr,
        resp_mac: Option<[u8; 6]>,
    ) -> Sides {
        let (ol, rl) = (self.is_local(orig), self.is_local(resp));
        if ol || !rl {
            Sides {
                device: if ol { orig_mac } else { None },
                device_ip: orig,
                peer_ip: resp,
                outbound: true,
                peer_local: rl,
                any_local: ol || rl,
            }
        } else {
            Sides {
                device: resp_mac,
                device_ip: resp,
                peer_ip: orig,
                outbound: false,
                peer_local: false,
                any_local: true,
            }
        }
    }

    /// Whether `server` is the network's DHCP server: one of the allowed servers, else
    /// the first one seen.
    pub fn is_dhcp_server(&self, server: IpAddr) -> bool {
        if self.allowed_dhcp.is_empty() {
            self.learned_dhcp == Some(server)
        } else {
            self.allowed_dhcp.contains(&server)
        }
    }

    /// Whether `mac` is the network's IPv6 router: one of the allowed routers, else the
    /// first default router seen.
    pub fn is_ipv6_router(&self, mac: [u8; 6]) -> bool {
        if self.allowed_routers.is_empty() {
            self.learned_router == Some(mac)
        } else {
            self.allowed_routers.contains(&mac)
        }
    }

    /// The network's IPv6 router(s) as text, for explanations.
    pub fn ipv6_routers_text(&self) -> String {
        let mut v: Vec<String> = if self.allowed_routers.is_empty() {
            self.learned_router
                .iter()
                .copied()
                .map(crate::inventory::oui::format_mac)
                .collect()
        } else {
            self.allowed_routers
                .iter()
                .copied()
                .map(crate::inventory::oui::format_mac)
                .collect()
        };
        v.sort();
        v.join(", ")
    }

    /// The network's DHCP server(s) as text, for explanations.
    pub fn dhcp_servers_text(&self) -> String {
        if self.allowed_dhcp.is_empty() {
            self.learned_dhcp.map(|l| l.to_string()).unwrap_or_default()
        } else {
            let mut v: Vec<String> = self.allowed_dhcp.iter().map(|a| a.to_string()).collect();
            v.sort();
            v.join(", ")
        }
    }

    /// Learns from one event before the rules see it.
    fn observe(&mut self, ev: &Event) {
        if let Some(ts) = event_ts(ev) {
            self.now = self.now.max(ts);
        }
        let Event::Meta(m) = ev else { return };
        match &m.record {
            ProtoRecord::Dhcp(d) if matches!(d.msg_type, 2 | 5 | 6) => {
                let Some(server) = dhcp_server(m, d) else {
                    return;
                };
                if self.allowed_dhcp.is_empty() && self.learned_dhcp.is_none() {
                    self.learned_dhcp = Some(server);
                }
                // Only the network's own server says which resolvers and gateway are
                // legitimate: a rogue's offers must not make its DNS server "the home's".
                if d.msg_type == 6 || !self.is_dhcp_server(server) {
                    return;
                }
                for s in &d.dns_servers {
                    if self.learned_resolvers.len() < MAX_LEARNED {
                        self.learned_resolvers.insert(IpAddr::V4(*s));
                    }
                }
                if let Some(r) = d.router
                    && self.gateways.len() < MAX_LEARNED
                {
                    self.gateways.insert(IpAddr::V4(r));
                }
            }
            ProtoRecord::RouterAdvert(ra) => {
                self.local.learn_from(&m.record);
                // Only a default router (lifetime > 0) is a candidate: Thread border
                // routers and the like advertise prefixes with lifetime 0.
                let Some(mac) = ra.router_mac.or(ra.source_mac) else {
                    return;
                };
                if ra.router_lifetime_s == 0 {
                    return;
                }
                if self.allowed_routers.is_empty() && self.learned_router.is_none() {
                    self.learned_router = Some(mac);
                }
                // Resolvers the home's router hands out by RDNSS, next to DHCP's; never a
                // rogue router's.
                if self.is_ipv6_router(mac) {
                    for s in &ra.rdnss {
                        if self.learned_resolvers.len() < MAX_LEARNED {
                            self.learned_resolvers.insert(IpAddr::V6(*s));
                        }
                    }
                }
            }
            ProtoRecord::Dns(d) => {
                for a in &d.answers {
                    if matches!(a.rtype, 1 | 28)
                        && let Ok(ip) = a.data.parse::<IpAddr>()
                    {
                        if self.resolved[0].len() >= RESOLVED_GENERATION {
                            self.resolved[1] = std::mem::take(&mut self.resolved[0]);
                        }
                        self.resolved[0].insert(ip, d.query.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

/// Multicast, limited broadcast (255.255.255.255), loopback, unspecified or link-local.
/// Rules use [`Ctx::is_special`], which also knows the local subnets' broadcasts.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_multicast()
                || v.is_broadcast()
                || v.is_loopback()
                || v.is_unspecified()
                || v.is_link_local()
        }
        IpAddr::V6(v) => {
            v.is_multicast() || v.is_loopback() || v.is_unspecified() || v.is_unicast_link_local()
        }
    }
}

/// The server a DHCP server message (OFFER, ACK, NAK) came from: its server identifier
/// (option 54), else the sender's address. `None` when neither is usable.
pub fn dhcp_server(m: &crate::event::MetaRecord, d: &crate::proto::DhcpRecord) -> Option<IpAddr> {
    let sender = if m.orig_port == 67 {
        m.orig_addr
    } else {
        m.resp_addr
    };
    let server = d
        .server_id
        .map(IpAddr::V4)
        .filter(|s| !s.is_unspecified())
        .unwrap_or(sender);
    (!server.is_unspecified()).then_some(server)
}

/// The packet time an event is about.
pub fn event_ts(ev: &Event) -> Option<i64> {
    Some(match ev {
        Event::Flow(f) => f.last_ts,
        Event::Meta(m) => match &m.record {
            ProtoRecord::Dns(d) => d.ts,
            ProtoRecord::Tls(t) => t.ts,
            ProtoRecord::Http(h) => h.ts,
            ProtoRecord::Dhcp(d) => d.ts,
            ProtoRecord::Name(n) => n.ts,
            ProtoRecord::Cleartext(c) => c.ts,
            ProtoRecord::RouterAdvert(r) => r.ts,
        },
        Event::Device(d) => d.last_seen,
        Event::DeviceAddress(a) => a.last_seen,
        Event::CaptureStats(s) => s.last_ts?,
        Event::ArpRequest(a) => a.ts,
    })
}

/// Per-key rule state with a cap on keys: when full, the least recently touched
/// sixteenth is forgotten.
pub(crate) struct Tracked<K, V> {
    map: HashMap<K, (i64, V), foldhash::fast::RandomState>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Tracked<K, V> {
    pub fn new(cap: usize) -> Self {
        Tracked {
            map: HashMap::with_hasher(Default::default()),
            cap: cap.max(16),
        }
    }

    /// The entry of `k`, created with `make` if missing; `now` marks it as touched.
    pub fn touch(&mut self, k: &K, now: i64, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(k) && self.map.len() >= self.cap {
            self.shed();
        }
        let e = self.map.entry(k.clone()).or_insert_with(|| (now, make()));
        e.0 = e.0.max(now);
        &mut e.1
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|e| &e.1)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|e| e.1)
    }

    /// Forgets keys not touched since `before`.
    pub fn prune(&mut self, before: i64) {
        self.map.retain(|_, e| e.0 >= before);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, e)| (k, &e.1))
    }

    fn shed(&mut self) {
        let n = (self.cap / 16).max(1);
        let mut ts: Vec<i64> = self.map.values().map(|e| e.0).collect();
        let idx = n.min(ts.len()) - 1;
        let (_, cut, _) = ts.select_nth_unstable(idx);
        let cut = *cut;
        let mut left = n;
        self.map.retain(|_, e| {
            if left > 0 && e.0 <= cut {
                left -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// Formats a MAC for titles.
pub(crate) fn mac_text(m: Option<[u8; 6]>) -> String {
    m.map(crate::inventory::oui::format_mac)
        .unwrap_or_else(|| "unknown MAC".into())
}

/// "the device 192.168.1.20 (aa:bb:...)" for titles and explanations.
pub(crate) fn who(ip: IpAddr, mac: Option<[u8; 6]>) -> String {
    match mac {
        Some(m) => format!("{ip} ({})", crate::inventory::oui::format_mac(m)),
        None => ip.to_string(),
    }
}

/// The detection engine: all enabled rules over one event stream.
pub struct Engine {
    ctx: Ctx,
    rules: Vec<Box<dyn Rule>>,
    last_tick: i64,
}

impl Engine {
    pub fn new(cfg: &crate::config::Config) -> Engine {
        let ctx = Ctx::new(cfg);
        let d = &ctx.cfg;
        let mut rules: Vec<Box<dyn Rule>> = Vec::new();
        if d.high_risk_port.enabled {
            rules.push(Box::new(high_risk_port::HighRiskPort::new(d)));
        }
        if d.dns_tunnel.enabled {
            rules.push(Box::new(dns_tunnel::DnsTunnel::new(d)));
        }
        if d.tls_anomaly.enabled {
            rules.push(Box::new(tls_anomaly::TlsAnomaly::new(d)));
        }
        if d.local_only_egress.enabled {
            rules.push(Box::new(local_only::LocalOnly::new(d)));
        }
        if d.port_scan.enabled || d.host_scan.enabled {
            rules.push(Box::new(scan::Scan::new(d)));
        }
        if d.flood.enabled {
            rules.push(Box::new(flood::Flood::new(d)));
        }
        if d.brute_force.enabled {
            rules.push(Box::new(brute_force::BruteForce::new(d)));
        }
        if d.arp_spoof.enabled {
            rules.push(Box::new(arp_spoof::ArpSpoof::new(d)));
        }
        if d.rogue_dhcp.enabled {
            rules.push(Box::new(rogue_dhcp::RogueDhcp::new(d)));
        }
        if d.rogue_ra.enabled {
            rules.push(Box::new(rogue_ra::RogueRa::new(d)));
        }
        if d.new_device.enabled {
            rules.push(Box::new(new_device::NewDevice::new(d)));
        }
        if d.dga.enabled || d.nxdomain_burst.enabled {
            rules.push(Box::new(dga_rule::DgaRule::new(d)));
        }
        if d.dns_bypass.enabled {
            rules.push(Box::new(dns_bypass::DnsBypass::new(d)));
        }
        if d.beaconing.enabled {
            rules.push(Box::new(beaconing::Beaconing::new(d)));
        }
        if d.exfiltration.enabled {
            rules.push(Box::new(exfiltration::Exfiltration::new(d)));
        }
        if d.cleartext_credentials.enabled || d.insecure_protocol.enabled {
            rules.push(Box::new(cleartext::Cleartext::new(d)));
        }
        Engine {
            ctx,
            rules,
            last_tick: i64::MIN,
        }
    }

    /// Devices known from earlier runs: `new_device` does not report them again, and a
    /// randomized MAC whose host name is among theirs is a known device rejoining.
    pub fn seed_known_devices(&mut self, devices: impl IntoIterator<Item = KnownDevice>) {
        for d in devices {
            self.ctx.known_devices.insert(d.mac);
            if let Some(h) = d.hostname.filter(|h| !h.is_empty()) {
                self.ctx.known_hostnames.insert(h.to_ascii_lowercase());
            }
        }
    }

    /// The DHCP server that answered first in earlier runs, and the resolvers (option 6)
    /// and gateways (option 3) it advertised (the `dhcp` table), so `rogue_dhcp`,
    /// `dns_bypass` and `arp_spoof` know them before the next lease.
    pub fn seed_dhcp(
        &mut self,
        server: Option<IpAddr>,
        resolvers: impl IntoIterator<Item = IpAddr>,
        gateways: impl IntoIterator<Item = IpAddr>,
    ) {
        if self.ctx.learned_dhcp.is_none() {
            self.ctx.learned_dhcp = server;
        }
        for r in resolvers {
            if self.ctx.learned_resolvers.len() < MAX_LEARNED {
                self.ctx.learned_resolvers.insert(r);
            }
        }
        for g in gateways {
            if self.ctx.gateways.len() < MAX_LEARNED {
                self.ctx.gateways.insert(g);
            }
        }
    }

    /// Rule ids of the enabled rules.
    pub fn rule_ids(&self) -> Vec<&'static str> {
        self.rules
            .iter()
            .flat_map(|r| r.ids().iter().copied())
            .collect()
    }

    /// Latest packet time seen (µs), `i64::MIN` before any event.
    pub fn now(&self) -> i64 {
        self.ctx.now
    }

    pub fn on_events(&mut self, events: &[Event], out: &mut Vec<Alert>) {
        for ev in events {
            self.ctx.observe(ev);
            for r in self.rules.iter_mut() {
                r.on_event(&self.ctx, ev, out);
            }
        }
    }

    /// Time-based evaluation at packet time `now_us`; runs the rules at most once per
    /// second of packet time (calling it after every batch is cheap).
    pub fn tick(&mut self, now_us: i64, out: &mut Vec<Alert>) {
        self.ctx.now = self.ctx.now.max(now_us);
        if self.last_tick != i64::MIN && now_us < self.last_tick + SEC {
            return;
        }
        self.last_tick = now_us;
        let start = out.len();
        for r in self.rules.iter_mut() {
            r.tick(&self.ctx, now_us, out);
        }
        sort_alerts(&mut out[start..]);
    }

    /// Each rule's state worth keeping across restarts, by its first rule id.
    pub fn save_states(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.rules
            .iter()
            .filter_map(|r| Some((r.ids()[0], r.save_state()?)))
            .collect()
    }

    /// Gives the rule whose first id is `rule` the state an earlier run saved.
    pub fn load_state(&mut self, rule: &str, state: &serde_json::Value) {
        for r in self.rules.iter_mut().filter(|r| r.ids()[0] == rule) {
            r.load_state(&self.ctx, state);
        }
    }

    /// End of input: rules report what they were holding back.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let start = out.len();
        for r in self.rules.iter_mut() {
            r.finish(&self.ctx, out);
        }
        sort_alerts(&mut out[start..]);
    }
}

/// A stable order for alerts produced by walking hash maps.
pub(crate) fn sort_alerts(v: &mut [Alert]) {
    v.sort_by(|a, b| {
        (a.ts, a.rule, a.device_mac, &a.peer, &a.title).cmp(&(
            b.ts,
            b.rule,
            b.device_mac,
            &b.peer,
            &b.title,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn tracked_sheds_oldest_when_full() {
        let mut t: Tracked<u32, u32> = Tracked::new(32);
        for i in 0..32 {
            *t.touch(&i, i as i64, || 0) += 1;
        }
        assert_eq!(t.len(), 32);
        t.touch(&100, 100, || 0);
        assert_eq!(t.len(), 31);
        assert!(t.get(&0).is_none() && t.get(&1).is_none() && t.get(&31).is_some());
        t.prune(20);
        assert!(t.get(&19).is_none() && t.get(&20).is_some());
    }

    #[test]
    fn sides_and_context() {
        let ctx = ctx();
        let f = FlowB::tcp(DEV_IP, 40000, WAN_IP, 443).build();
        let s = ctx.sides(&f);
        assert!(s.outbound && !s.peer_local && s.device == Some(DEV_MAC));
        let f = FlowB::tcp(WAN_IP, 40000, DEV_IP, 22).build();
        let s = ctx.sides(&f);
        assert!(!s.outbound && s.device == Some(DEV_MAC) && s.peer_ip == WAN_IP);
        assert!(ctx.is_public(WAN_IP));
        assert!(!ctx.is_public("239.255.255.250".parse().unwrap()));
        assert!(!ctx.is_public("192.168.1.1".parse().unwrap()));
    }

    /// x.x.x.255 is a broadcast only inside the local networks: an internet host at
    /// .255 is an ordinary host every rule sees.
    #[test]
    fn dot_255_is_broadcast_only_on_the_local_networks() {
        let ctx = ctx();
        assert!(ctx.is_special(ip("192.168.1.255")));
        assert!(ctx.is_special(ip("10.0.3.255")));
        assert!(ctx.is_special(ip("255.255.255.255")));
        assert!(ctx.is_special(ip("224.0.0.251")));
        assert!(!ctx.is_special(ip("45.1.2.255")));
        assert!(ctx.is_public(ip("45.1.2.255")));
        assert!(!ctx.is_special(ip("192.168.1.10")));
        let ctx = ctx_with(|c| c.network.local_networks = vec!["10.1.0.0/16".parse().unwrap()]);
        assert!(!ctx.is_special(ip("192.168.1.255")));
        assert!(ctx.is_special(ip("10.1.7.255")));
    }

    #[test]
    fn engine_learns_resolvers_gateways_and_names() {
        let mut e = Engine::new(&crate::config::Config::default());
        let mut out = Vec::new();
        e.on_events(
            &[
                dhcp_ack(T0, DEV_MAC),
                dns(T0, "example.com", 0, &["93.184.216.34"]),
            ],
            &mut out,
        );
        assert!(e.ctx.is_resolver(GW_IP));
        assert!(e.ctx.is_gateway(GW_IP));
        assert_eq!(
            e.ctx.name_of("93.184.216.34".parse().unwrap()),
            Some("example.com")
        );
        assert_eq!(e.now(), T0);
        assert_eq!(e.rule_ids().len(), RULE_IDS.len() - 1);
    }

    /// A mix of ordinary home traffic raises nothing of medium severity or more.
    #[test]
    fn benign_home_traffic_is_quiet() {
        let cfg = crate::config::Config::default();
        let mut e = Engine::new(&cfg);
        e.seed_known_devices([KnownDevice {
            mac: DEV_MAC,
            hostname: None,
        }]);
        let mut out = Vec::new();
        let evs = benign_day();
        for chunk in evs.chunks(64) {
            e.on_events(chunk, &mut out);
            let now = e.now();
            e.tick(now, &mut out);
        }
        e.finish(&mut out);
        let loud: Vec<_> = out
            .iter()
            .filter(|a| a.severity >= Severity::Medium)
            .collect();
        assert!(loud.is_empty(), "{loud:#?}");
    }
}
