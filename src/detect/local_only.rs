//! `local_only_egress`: a device listed in `detect.local_only_devices` (a camera, a NAS,
//! a printer you keep off the internet) talking to an internet address.
//!
//! "Internet" is any unicast address outside `network.local_networks` (by default the
//! RFC 1918 ranges, link-local and unique-local IPv6). Answered connections → medium
//! (data left the home); attempts nobody answered → low (something on the device
//! tried, and a firewall may have stopped it). Multicast and broadcast are never
//! reported.

use serde_json::json;

use super::high_risk_port::answered;
use super::{Alert, Ctx, DetectConfig, Rule, Severity, Tracked, who};
use crate::event::Event;

pub struct LocalOnly {
    seen: Tracked<u64, ()>,
}

impl LocalOnly {
    pub fn new(cfg: &DetectConfig) -> Self {
        LocalOnly {
            seen: Tracked::new(cfg.max_tracked),
        }
    }
}

impl Rule for LocalOnly {
    fn ids(&self) -> &'static [&'static str] {
        &["local_only_egress"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Flow(f) = ev else { return };
        let Some(mac) = f.orig_mac.filter(|m| ctx.local_only.contains(m)) else {
            return;
        };
        if !ctx.is_public(f.resp_addr) || self.seen.get(&f.id).is_some() {
            return;
        }
        self.seen.touch(&f.id, f.last_ts, || ());
        let ok = answered(f);
        let dev = who(f.orig_addr, Some(mac));
        let (sev, text) = if ok {
            (
                Severity::Medium,
                format!(
                    "{dev} is marked local-only but exchanged data with {} ({}/{}). Check the device's settings and \
                     firmware, and block it at the router if it should stay off the internet.",
                    f.resp_addr,
                    f.proto_name(),
                    f.resp_port
                ),
            )
        } else {
            (
                Severity::Low,
                format!(
                    "{dev} is marked local-only and tried to reach {} ({}/{}); nothing answered.",
                    f.resp_addr,
                    f.proto_name(),
                    f.resp_port
                ),
            )
        };
        out.push(
            Alert::new(
                f.first_ts,
                "local_only_egress",
                sev,
                format!("Local-only device {dev} contacted the internet"),
            )
            .explain(text)
            .device(Some(mac))
            .peer(f.resp_addr.to_string())
            .flows([f.id])
            .evidence(json!({
                "remote": f.resp_addr.to_string(), "port": f.resp_port, "proto": f.proto_name(),
                "answered": ok, "orig_bytes": f.orig.bytes, "resp_bytes": f.resp.bytes,
            })),
        );
    }

    fn tick(&mut self, _ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.seen.prune(now - 86_400 * super::SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn listed_device_to_internet_fires_lan_and_multicast_do_not() {
        let mut ctx = ctx_with(|c| c.detect.local_only_devices = vec!["B8:27:EB:11:22:33".into()]);
        let mut r = LocalOnly::new(&ctx.cfg);
        let evs = [
            FlowB::tcp(DEV_IP, 40000, WAN_IP, 443).ev(),
            FlowB::tcp(DEV_IP, 40001, ip("8.8.4.4"), 443).s0().ev(),
            FlowB::udp(DEV_IP, 40000, GW_IP, 53).ev(),
            FlowB::udp(DEV_IP, 5353, ip("224.0.0.251"), 5353).ev(),
            FlowB::udp(DEV_IP, 68, ip("255.255.255.255"), 67).ev(),
            // Another device going out is not this rule's business.
            FlowB::tcp(DEV2_IP, 40000, WAN_IP, 443).ev(),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        let sev: Vec<_> = a.iter().map(|a| a.severity).collect();
        assert_eq!(sev, [Severity::Medium, Severity::Low]);
        assert_eq!(a[0].peer.as_deref(), Some("93.184.216.34"));
    }
}
