//! `rogue_ra`: a second IPv6 router on the network.
//!
//! IPv6 hosts take their default route, their addresses and (RDNSS) their DNS servers
//! from whichever router advertises them, with no authentication: one advertisement
//! from a laptop running `fake_router6` or `mitm6`-style tooling puts it in the middle
//! of every dual-stack device's traffic — the IPv6 twin of a rogue DHCP server.
//!
//! Only advertisements offering a default route (router lifetime > 0) count; Thread
//! border routers (HomePod, Nest hubs) and other lifetime-0 advertisers only announce
//! their own prefixes. The legitimate router is `detect.rogue_ra.allowed_routers`, or —
//! when that is empty — the first default router seen, in this run or (from the
//! `router_adverts` table) an earlier one. Any other router MAC is reported once (high);
//! the context never learns resolvers from it.

use std::collections::HashSet;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, Severity, mac_text};
use crate::event::Event;
use crate::proto::ProtoRecord;

const MAX_ROUTERS: usize = 64;

pub struct RogueRa {
    reported: HashSet<[u8; 6]>,
}

impl RogueRa {
    pub fn new(_cfg: &DetectConfig) -> Self {
        RogueRa {
            reported: HashSet::new(),
        }
    }
}

impl Rule for RogueRa {
    fn ids(&self) -> &'static [&'static str] {
        &["rogue_ra"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Meta(m) = ev else { return };
        let ProtoRecord::RouterAdvert(ra) = &m.record else {
            return;
        };
        let Some(mac) = ra.router_mac.or(ra.source_mac) else {
            return;
        };
        if ra.router_lifetime_s == 0
            || ctx.is_ipv6_router(mac)
            || self.reported.contains(&mac)
            || self.reported.len() >= MAX_ROUTERS
        {
            return;
        }
        self.reported.insert(mac);
        let prefixes: Vec<String> = ra.prefixes.iter().map(|p| p.net.to_string()).collect();
        let rdnss: Vec<String> = ra.rdnss.iter().map(|a| a.to_string()).collect();
        let offers = |what: &str, v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(", {what} {}", v.join(", "))
            }
        };
        let known = ctx.ipv6_routers_text();
        out.push(
            Alert::new(
                ra.ts,
                "rogue_ra",
                Severity::High,
                format!("Second IPv6 router {} ({})", ra.router_addr, mac_text(Some(mac))),
            )
            .explain(format!(
                "{} ({}) advertised itself as an IPv6 default router for {} s{}{}, but the network's \
                 router is {known}. Devices with IPv6 may now send their traffic, and their DNS \
                 lookups, through it. Find the device: a second router or a mesh node in router \
                 mode is the usual harmless cause; a laptop or unknown device is an attack \
                 (allow a legitimate one in detect.rogue_ra.allowed_routers).",
                ra.router_addr,
                mac_text(Some(mac)),
                ra.router_lifetime_s,
                offers("prefixes", &prefixes),
                offers("DNS servers", &rdnss),
            ))
            .device(Some(mac))
            .peer(ra.router_addr.to_string())
            .mitre("T1557")
            .flows([m.flow_id])
            .evidence(json!({
                "router": ra.router_addr.to_string(), "router_mac": mac_text(Some(mac)),
                "legitimate": known, "router_lifetime_s": ra.router_lifetime_s,
                "prefixes": prefixes, "rdnss": rdnss,
            })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::proto::{RaPrefix, RouterAdvertRecord};

    fn advert(
        ts: i64,
        router: &str,
        mac: [u8; 6],
        lifetime: u16,
        prefix: &str,
        dns: &str,
    ) -> Event {
        meta(
            ip(router),
            134,
            ip("ff02::1"),
            0,
            58,
            ProtoRecord::RouterAdvert(RouterAdvertRecord {
                ts,
                router_addr: ip(router),
                router_mac: Some(mac),
                router_lifetime_s: lifetime,
                managed: false,
                other_config: false,
                prefixes: vec![RaPrefix {
                    net: prefix.parse().unwrap(),
                    on_link: true,
                    autonomous: true,
                    valid_s: 3600,
                    preferred_s: 3600,
                }],
                rdnss: vec![dns.parse().unwrap()],
                mtu: None,
                source_mac: None,
            }),
        )
    }

    #[test]
    fn second_default_router_reported_once_and_taught_nothing() {
        let mut ctx = ctx();
        let mut r = RogueRa::new(&ctx.cfg);
        let evs = [
            advert(
                T0,
                "fe80::1",
                GW_MAC,
                1800,
                "2001:db8:1:2::/64",
                "2001:db8:1:2::1",
            ),
            // A Thread border router: lifetime 0, its own ULA prefix.
            advert(
                T0 + SEC,
                "fe80::77",
                DEV2_MAC,
                0,
                "fd12:3456::/64",
                "fd12:3456::1",
            ),
            advert(
                T0 + 2 * SEC,
                "fe80::66",
                ATT_MAC,
                1800,
                "2001:db8:66::/64",
                "2001:db8:66::53",
            ),
            advert(
                T0 + 3 * SEC,
                "fe80::66",
                ATT_MAC,
                1800,
                "2001:db8:66::/64",
                "2001:db8:66::53",
            ),
            advert(
                T0 + 4 * SEC,
                "fe80::1",
                GW_MAC,
                1800,
                "2001:db8:1:2::/64",
                "2001:db8:1:2::1",
            ),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(
            (a[0].severity, a[0].device_mac),
            (Severity::High, Some(ATT_MAC))
        );
        assert_eq!(a[0].peer.as_deref(), Some("fe80::66"));
        assert_eq!(a[0].mitre, Some("T1557"));
        assert_eq!(a[0].evidence["rdnss"][0], "2001:db8:66::53");
        // The legitimate router's resolver is the home's, the rogue's is not.
        assert!(ctx.is_resolver(ip("2001:db8:1:2::1")));
        assert!(!ctx.is_resolver(ip("2001:db8:66::53")));
        assert!(!ctx.is_resolver(ip("fd12:3456::1")));
    }

    #[test]
    fn allowed_routers_are_the_legitimate_ones() {
        let mut ctx = ctx_with(|c| {
            c.detect.rogue_ra.allowed_routers = vec![crate::inventory::oui::format_mac(GW_MAC)];
        });
        let mut r = RogueRa::new(&ctx.cfg);
        // The first router seen is the rogue: with an allowed list it is still reported.
        let evs = [
            advert(
                T0,
                "fe80::66",
                ATT_MAC,
                1800,
                "2001:db8:66::/64",
                "2001:db8:66::53",
            ),
            advert(
                T0 + SEC,
                "fe80::1",
                GW_MAC,
                1800,
                "2001:db8:1:2::/64",
                "2001:db8:1:2::1",
            ),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].device_mac, Some(ATT_MAC));
        assert!(
            a[0].explanation
                .contains(&crate::inventory::oui::format_mac(GW_MAC))
        );
    }
}
