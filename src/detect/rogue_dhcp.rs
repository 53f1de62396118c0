//! `rogue_dhcp`: a second DHCP server on the network.
//!
//! A rogue DHCP server hands out its own gateway and DNS server, putting itself in the
//! middle of new devices' traffic. Server messages (OFFER, ACK, NAK) are attributed to
//! their server identifier (option 54, else the sender's address). The legitimate
//! servers are `detect.rogue_dhcp.allowed_servers`, or — when that is empty — the first
//! server seen, in this run or (from the `dhcp` table) an earlier one. Any other server
//! is reported once (high), and the context never learns resolvers or a gateway from it.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, Severity, mac_text};
use crate::event::Event;
use crate::proto::ProtoRecord;

const MAX_SERVERS: usize = 64;

pub struct RogueDhcp {
    reported: HashSet<IpAddr>,
}

impl RogueDhcp {
    pub fn new(_cfg: &DetectConfig) -> Self {
        RogueDhcp {
            reported: HashSet::new(),
        }
    }
}

impl Rule for RogueDhcp {
    fn ids(&self) -> &'static [&'static str] {
        &["rogue_dhcp"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Meta(m) = ev else { return };
        let ProtoRecord::Dhcp(d) = &m.record else {
            return;
        };
        if !matches!(d.msg_type, 2 | 5 | 6) {
            return;
        }
        let sender_mac = if m.orig_port == 67 {
            m.orig_mac
        } else {
            m.resp_mac
        };
        let Some(server) = super::dhcp_server(m, d) else {
            return;
        };
        // Which server is the network's own is the context's call (allowed servers, or
        // the first seen in this or an earlier run), shared with what it learns.
        if ctx.is_dhcp_server(server)
            || self.reported.contains(&server)
            || self.reported.len() >= MAX_SERVERS
        {
            return;
        }
        self.reported.insert(server);
        let known = ctx.dhcp_servers_text();
        let offers = |what: &str, v: String| {
            if v.is_empty() {
                String::new()
            } else {
                format!(" {what} {v};")
            }
        };
        out.push(
            Alert::new(d.ts, "rogue_dhcp", Severity::High, format!("Second DHCP server {server}"))
                .explain(format!(
                    "{server} ({}) answered DHCP requests, but the network's DHCP server is {known}. It hands \
                     out{}{} a rogue server can send devices' traffic through itself. Find the device and turn \
                     its DHCP server off (a second router or an access point in router mode is the usual culprit).",
                    mac_text(sender_mac),
                    offers("gateway", d.router.map(|r| r.to_string()).unwrap_or_default()),
                    offers(
                        "DNS servers",
                        d.dns_servers.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                ))
                .device(sender_mac)
                .peer(server.to_string())
                .mitre("T1557.003")
                .flows([m.flow_id])
                .evidence(json!({
                    "server": server.to_string(), "server_mac": mac_text(sender_mac), "legitimate": known,
                    "message": crate::proto::dhcp_msg_type_name(d.msg_type),
                    "router": d.router.map(|r| r.to_string()),
                    "dns_servers": d.dns_servers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "client_mac": mac_text(Some(d.client_mac)),
                })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn offer(ts: i64, server: [u8; 4], mac: [u8; 6]) -> Event {
        let s = Ipv4Addr::from(server);
        let mut e = meta(
            IpAddr::V4(s),
            67,
            ip("255.255.255.255"),
            68,
            17,
            ProtoRecord::Dhcp(dhcp_rec(ts, 2, DEV_MAC, s)),
        );
        if let Event::Meta(m) = &mut e {
            m.orig_mac = Some(mac);
        }
        e
    }

    #[test]
    fn second_server_reported_once() {
        let mut ctx = ctx();
        let mut r = RogueDhcp::new(&ctx.cfg);
        let evs = [
            offer(T0, [192, 168, 1, 1], GW_MAC),
            dhcp_ack(T0 + SEC, DEV_MAC),
            offer(T0 + 2 * SEC, [192, 168, 1, 66], ATT_MAC),
            offer(T0 + 3 * SEC, [192, 168, 1, 66], ATT_MAC),
            offer(T0 + 4 * SEC, [192, 168, 1, 1], GW_MAC),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].severity, a[0].device_mac),
            (Severity::High, Some(ATT_MAC))
        );
        assert_eq!(a[0].peer.as_deref(), Some("192.168.1.66"));
        assert_eq!(a[0].mitre, Some("T1557.003"));
        // The rogue's offers taught the context nothing: its DNS server and gateway
        // are not the home's.
        assert!(ctx.is_resolver(ip("192.168.1.1")));
        assert!(!ctx.is_resolver(ip("192.168.1.66")));
        assert!(!ctx.is_gateway(ip("192.168.1.66")));
    }

    #[test]
    fn the_server_of_an_earlier_run_stays_the_legitimate_one() {
        // A later run whose first DHCP answer comes from the rogue: the server seeded
        // from the store (the first to answer in earlier runs) is still the real one.
        let cfg = crate::config::Config::default();
        let mut engine = super::super::Engine::new(&cfg);
        engine.seed_dhcp(
            Some(ip("192.168.1.1")),
            [ip("192.168.1.1")],
            [ip("192.168.1.1")],
        );
        let mut alerts = Vec::new();
        engine.on_events(
            &[
                offer(T0, [192, 168, 1, 66], ATT_MAC),
                offer(T0 + SEC, [192, 168, 1, 1], GW_MAC),
            ],
            &mut alerts,
        );
        let rogue: Vec<_> = alerts.iter().filter(|a| a.rule == "rogue_dhcp").collect();
        assert_eq!(rogue.len(), 1, "{alerts:?}");
        assert_eq!(rogue[0].peer.as_deref(), Some("192.168.1.66"));
    }

    #[test]
    fn configured_servers_and_client_messages() {
        let mut ctx = ctx_with(|c| c.detect.rogue_dhcp.allowed_servers = vec![ip("192.168.1.66")]);
        let mut r = RogueDhcp::new(&ctx.cfg);
        let request = meta(
            DEV_IP,
            68,
            ip("255.255.255.255"),
            67,
            17,
            ProtoRecord::Dhcp(dhcp_rec(T0, 3, DEV_MAC, Ipv4Addr::new(192, 168, 1, 1))),
        );
        let evs = [
            request,
            offer(T0, [192, 168, 1, 66], ATT_MAC),
            offer(T0, [192, 168, 1, 1], GW_MAC),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].peer.as_deref(), Some("192.168.1.1"));
    }
}
