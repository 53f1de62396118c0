//! `arp_spoof`: ARP cache poisoning and gateway MAC changes (IPv4).
//!
//! Two signals:
//! - **Address conflicts.** The inventory publishes each (MAC, address) pair with how it
//!   was learned. When a MAC starts claiming, by ARP or DHCP, an address that another
//!   MAC used within `conflict_window_secs`, the newcomer is reported: high for the
//!   gateway's address (the classic man-in-the-middle), medium otherwise. Pairs learned
//!   only from forwarded IP packets never count as claims (a router forwards packets of
//!   other subnets with its own MAC). An address that moves after a longer silence is a
//!   DHCP lease reused — not reported, except the gateway's: a router replaced → low.
//! - **The next hop to the internet moves.** Every outbound flow to the internet shows
//!   which MAC the device sent it to. When a device's next hop changes to a MAC that
//!   only just became a next hop and belongs to an ordinary home device (one that
//!   claims an address of its own by ARP or DHCP, not a gateway), while the usual next
//!   hop is still in use, its traffic is being redirected → high. Routers that answer
//!   from one MAC and receive on another are not ordinary devices and stay quiet.

use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, mac_text, who};
use crate::event::Event;

#[derive(Clone, Copy)]
struct Claim {
    mac: [u8; 6],
    first: i64,
    last: i64,
    /// Learned by ARP or DHCP (not only from forwarded packets).
    claimed: bool,
}

/// A unicast MAC that is not all zeros.
fn usable(m: [u8; 6]) -> bool {
    m != [0; 6] && !crate::inventory::oui::is_multicast(m)
}

pub struct ArpSpoof {
    /// Address → MACs that used it (at most 4).
    claims: Tracked<IpAddr, Vec<Claim>>,
    /// Next-hop MAC → (first, last) time it carried internet traffic.
    hops: Tracked<[u8; 6], (i64, i64)>,
    /// Device MAC → its current next hop.
    device_hop: Tracked<[u8; 6], [u8; 6]>,
    alerted: Tracked<(IpAddr, [u8; 6]), ()>,
}

impl ArpSpoof {
    pub fn new(cfg: &DetectConfig) -> Self {
        ArpSpoof {
            claims: Tracked::new(cfg.max_tracked),
            hops: Tracked::new(1024),
            device_hop: Tracked::new(cfg.max_tracked),
            alerted: Tracked::new(cfg.max_tracked),
        }
    }

    /// An address of the home network that `mac` holds (for naming a next hop).
    fn ip_of(&self, mac: [u8; 6]) -> Option<IpAddr> {
        let mut best: Option<(i64, IpAddr)> = None;
        for (ip, cs) in self.claims.iter() {
            for c in cs.iter().filter(|c| c.mac == mac) {
                if best.is_none_or(|(t, _)| c.last > t) {
                    best = Some((c.last, *ip));
                }
            }
        }
        best.map(|b| b.1)
    }
}

impl Rule for ArpSpoof {
    fn ids(&self) -> &'static [&'static str] {
        &["arp_spoof"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let window = ctx.cfg.arp_spoof.conflict_window_secs as i64 * SEC;
        match ev {
            Event::DeviceAddress(a) if a.addr.is_ipv4() && !ctx.is_special(a.addr) => {
                let claimed = matches!(a.source, "arp" | "dhcp");
                let list = self.claims.touch(&a.addr, a.last_seen, Vec::new);
                match list.iter_mut().find(|c| c.mac == a.mac) {
                    Some(c) => {
                        c.last = c.last.max(a.last_seen);
                        c.first = c.first.min(a.first_seen);
                        c.claimed |= claimed;
                    }
                    None => {
                        if list.len() >= 4 {
                            list.sort_by_key(|c| std::cmp::Reverse(c.last));
                            list.truncate(3);
                        }
                        list.push(Claim {
                            mac: a.mac,
                            first: a.first_seen,
                            last: a.last_seen,
                            claimed,
                        });
                    }
                }
                let me = *list.iter().find(|c| c.mac == a.mac).expect("just added");
                if !me.claimed {
                    return;
                }
                let others: Vec<Claim> = list.iter().filter(|c| c.mac != a.mac).copied().collect();
                let gateway = ctx.is_gateway(a.addr);
                for o in others {
                    // The newcomer is the later of the two; report it once.
                    if o.first > me.first || self.alerted.get(&(a.addr, a.mac)).is_some() {
                        continue;
                    }
                    let conflict = o.last >= me.first - window;
                    if !conflict && !gateway {
                        continue;
                    }
                    self.alerted.touch(&(a.addr, a.mac), a.last_seen, || ());
                    let newcomer = mac_text(Some(a.mac));
                    let holder = mac_text(Some(o.mac));
                    let (sev, title, text) = if conflict && gateway {
                        (
                            Severity::High,
                            format!("{newcomer} claims to be the gateway {}", a.addr),
                            format!(
                                "The router's address {} belongs to {holder}, and {newcomer} now answers for it too \
                                 ({}). This is how ARP spoofing puts a device in the middle of everyone's internet \
                                 traffic. Find the device with MAC {newcomer} and disconnect it.",
                                a.addr, a.source
                            ),
                        )
                    } else if conflict {
                        (
                            Severity::Medium,
                            format!("Address conflict on {}: {holder} and {newcomer}", a.addr),
                            format!(
                                "{} is used by {holder} and was just claimed by {newcomer} ({}). Either two devices \
                                 are configured with the same address, or {newcomer} is spoofing ARP to intercept \
                                 traffic meant for {holder}.",
                                a.addr, a.source
                            ),
                        )
                    } else {
                        (
                            Severity::Low,
                            format!("Gateway {} changed MAC to {newcomer}", a.addr),
                            format!(
                                "The router's address {} moved from {holder} (silent since) to {newcomer}. Expected \
                                 after replacing the router; otherwise check what {newcomer} is.",
                                a.addr
                            ),
                        )
                    };
                    out.push(
                        Alert::new(a.last_seen, "arp_spoof", sev, title)
                            .explain(text)
                            .device(Some(a.mac))
                            .peer(a.addr.to_string())
                            .mitre("T1557.002")
                            .evidence(json!({
                                "address": a.addr.to_string(), "new_mac": newcomer, "old_mac": holder,
                                "old_last_seen_us": o.last, "new_first_seen_us": me.first, "source": a.source,
                                "gateway": gateway,
                            })),
                    );
                }
            }
            Event::Flow(f) if f.orig_addr.is_ipv4() && matches!(f.proto, 6 | 17) => {
                let (Some(dev), Some(hop)) = (f.orig_mac, f.resp_mac) else {
                    return;
                };
                if !ctx.is_local(f.orig_addr)
                    || !ctx.is_public(f.resp_addr)
                    || !usable(dev)
                    || !usable(hop)
                {
                    return;
                }
                let ts = f.first_ts;
                let h = self.hops.touch(&hop, ts, || (ts, ts));
                h.0 = h.0.min(ts);
                h.1 = h.1.max(ts);
                let hop_first = h.0;
                let prev = self.device_hop.touch(&dev, ts, || hop);
                let old = std::mem::replace(prev, hop);
                if old == hop || hop == dev {
                    return;
                }
                let Some(&(old_first, old_last)) = self.hops.get(&old) else {
                    return;
                };
                let new_hop = hop_first > ts - window && hop_first > old_first;
                let old_alive = old_last >= ts - window;
                // The new next hop must be an ordinary device of the home network (it
                // claims an address of its own), not a second interface of the router.
                let ordinary_device = self.claims.iter().any(|(ip, cs)| {
                    !ctx.is_gateway(*ip) && cs.iter().any(|c| c.mac == hop && c.claimed)
                });
                if !(new_hop && old_alive && ordinary_device)
                    || self.alerted.get(&(f.orig_addr, hop)).is_some()
                {
                    return;
                }
                self.alerted.touch(&(f.orig_addr, hop), ts, || ());
                let old_name = self
                    .ip_of(old)
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| mac_text(Some(old)));
                let victim = who(f.orig_addr, Some(dev));
                out.push(
                    Alert::new(
                        ts,
                        "arp_spoof",
                        Severity::High,
                        format!("Internet traffic of {victim} redirected through {}", mac_text(Some(hop))),
                    )
                    .explain(format!(
                        "{victim} used to send its internet traffic to the gateway {old_name} ({}) and now sends it \
                         to {}, while the gateway is still in use by others. Someone is likely intercepting this \
                         device's traffic with ARP spoofing.",
                        mac_text(Some(old)),
                        mac_text(Some(hop))
                    ))
                    .device(Some(hop))
                    .peer(old_name.clone())
                    .mitre("T1557.002")
                    .flows([f.id])
                    .evidence(json!({
                        "victim": f.orig_addr.to_string(), "victim_mac": mac_text(Some(dev)),
                        "old_next_hop": mac_text(Some(old)), "new_next_hop": mac_text(Some(hop)),
                        "gateway": old_name,
                    })),
                );
            }
            _ => {}
        }
    }

    fn tick(&mut self, _ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        let day = now - 86_400 * SEC;
        self.claims.prune(day);
        self.hops.prune(day);
        self.device_hop.prune(day);
        self.alerted.prune(day);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> ArpSpoof {
        ArpSpoof::new(&DetectConfig::default())
    }

    #[test]
    fn gateway_claimed_by_a_second_mac_is_high() {
        let mut ctx = ctx();
        let evs = [
            dhcp_ack(T0, DEV_MAC),
            addr(T0, T0 + 10 * SEC, GW_MAC, GW_IP, "arp"),
            addr(T0, T0 + 10 * SEC, DEV_MAC, DEV_IP, "arp"),
            addr(T0 + 60 * SEC, T0 + 60 * SEC, ATT_MAC, GW_IP, "arp"),
            addr(T0, T0 + 90 * SEC, GW_MAC, GW_IP, "arp"),
            addr(T0 + 60 * SEC, T0 + 120 * SEC, ATT_MAC, GW_IP, "arp"),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(a[0].severity, Severity::High);
        assert_eq!(a[0].device_mac, Some(ATT_MAC));
        assert_eq!(a[0].peer.as_deref(), Some("192.168.1.1"));
        assert_eq!(a[0].mitre, Some("T1557.002"));
    }

    #[test]
    fn reused_lease_and_forwarded_packets_are_quiet() {
        let mut ctx = ctx();
        let evs = [
            // A phone left an hour ago; its address goes to a laptop.
            addr(T0, T0 + 10 * SEC, DEV_MAC, DEV_IP, "dhcp"),
            addr(T0 + 3600 * SEC, T0 + 3600 * SEC, DEV2_MAC, DEV_IP, "dhcp"),
            // The router forwards packets of another subnet with its own MAC.
            addr(T0, T0 + 10 * SEC, ip_mac(9), ip("192.168.2.9"), "arp"),
            addr(
                T0 + 20 * SEC,
                T0 + 20 * SEC,
                GW_MAC,
                ip("192.168.2.9"),
                "ip",
            ),
        ];
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }

    fn ip_mac(n: u8) -> [u8; 6] {
        [0x00, 0x16, 0x3e, 0, 0, n]
    }

    #[test]
    fn next_hop_moving_to_a_new_mac_is_high() {
        let mut ctx = ctx();
        let mut evs = vec![addr(T0, T0, ATT_MAC, ATT_IP, "arp")];
        for i in 0..10 {
            evs.push(FlowB::tcp(DEV_IP, 40000, WAN_IP, 443).at(T0 + i * SEC).ev());
            evs.push(
                FlowB::tcp(DEV2_IP, 40000, WAN_IP, 443)
                    .at(T0 + i * SEC)
                    .ev(),
            );
        }
        // The victim's flows now go to the attacker's MAC; the other device still uses the gateway.
        evs.push(
            FlowB::tcp(DEV_IP, 40001, WAN_IP, 443)
                .at(T0 + 20 * SEC)
                .macs(Some(DEV_MAC), Some(ATT_MAC))
                .ev(),
        );
        evs.push(
            FlowB::tcp(DEV2_IP, 40001, WAN_IP, 443)
                .at(T0 + 21 * SEC)
                .ev(),
        );
        evs.push(
            FlowB::tcp(DEV_IP, 40002, WAN_IP, 443)
                .at(T0 + 22 * SEC)
                .macs(Some(DEV_MAC), Some(ATT_MAC))
                .ev(),
        );
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(
            (a[0].severity, a[0].device_mac),
            (Severity::High, Some(ATT_MAC))
        );
        assert_eq!(a[0].evidence["victim"], "192.168.1.10");
    }

    #[test]
    fn router_with_a_second_mac_is_quiet() {
        // The router receives on one MAC and sends (and is sometimes sent to) on another
        // that holds no home address.
        let mut ctx = ctx();
        let other: [u8; 6] = [0xc2, 0xea, 0xe4, 0xb0, 0x29, 0x58];
        let mut evs = vec![addr(T0, T0, GW_MAC, GW_IP, "arp")];
        for i in 0..10 {
            let hop = if i % 3 == 2 { other } else { GW_MAC };
            evs.push(
                FlowB::tcp(DEV_IP, 40000 + i as u16, WAN_IP, 443)
                    .at(T0 + i * SEC)
                    .macs(Some(DEV_MAC), Some(hop))
                    .ev(),
            );
        }
        // A device with an all-zero MAC in a damaged capture.
        evs.push(
            FlowB::tcp(DEV2_IP, 1, WAN_IP, 443)
                .at(T0 + 20 * SEC)
                .macs(Some([0; 6]), Some(ATT_MAC))
                .ev(),
        );
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
