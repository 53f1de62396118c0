//! `high_risk_port`: services that should never face the internet (telnet, SMB, RDP,
//! VNC, UPnP, ... — `detect.high_risk_ports`).
//!
//! - From the internet to a home device on such a port: answered → high (the service
//!   is exposed, typically by a port forward or UPnP); unanswered → low (the router
//!   forwards the port but nothing answers).
//! - From a home device to such a port on the internet, answered: medium for telnet,
//!   SMB/NetBIOS/RPC and UPnP (botnet spreading, leaked Windows credentials), low for the
//!   remote-desktop kind (often a person doing remote work).
//!
//! Traffic between home devices is left to `insecure_protocol`. The peer of an
//! inbound alert is the service (`tcp/3389`), so one exposed port makes one alert
//! however many internet hosts knock; outbound alerts use the remote address.

use std::collections::HashSet;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, Severity, Tracked, who};
use crate::event::Event;
use crate::flow::FlowRecord;

pub struct HighRiskPort {
    ports: HashSet<u16>,
    /// Flows already reported (a long flow arrives as updates and a final record).
    seen: Tracked<u64, ()>,
}

pub(crate) fn service_name(port: u16) -> &'static str {
    match port {
        21 => "FTP",
        22 => "SSH",
        23 | 2323 => "telnet",
        110 => "POP3",
        135 => "MS-RPC",
        139 => "NetBIOS session",
        143 => "IMAP",
        445 => "SMB",
        1900 => "UPnP (SSDP)",
        3389 => "RDP",
        5555 => "Android debug bridge",
        5900 | 5901 => "VNC",
        _ => "a high-risk service",
    }
}

/// The responder took part: a TCP handshake answered with SYN-ACK or data, or a UDP reply.
pub(crate) fn answered(f: &FlowRecord) -> bool {
    if f.proto == 6 {
        f.resp.payload_bytes > 0 || (f.history.contains('h') && f.conn_state != "REJ")
    } else {
        f.resp.pkts > 0
    }
}

impl HighRiskPort {
    pub fn new(cfg: &DetectConfig) -> Self {
        HighRiskPort {
            ports: cfg.high_risk_ports.iter().copied().collect(),
            seen: Tracked::new(cfg.max_tracked),
        }
    }
}

impl Rule for HighRiskPort {
    fn ids(&self) -> &'static [&'static str] {
        &["high_risk_port"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Flow(f) = ev else { return };
        if !matches!(f.proto, 6 | 17) || !self.ports.contains(&f.resp_port) {
            return;
        }
        let s = ctx.sides(f);
        if !s.any_local || s.peer_local || !ctx.is_public(s.peer_ip) {
            return;
        }
        let ok = answered(f);
        if self.seen.get(&f.id).is_some() {
            return;
        }
        let proto = f.proto_name();
        let port = f.resp_port;
        let name = service_name(port);
        let evidence = json!({
            "port": port, "proto": proto, "remote": s.peer_ip.to_string(),
            "direction": if s.outbound { "outbound" } else { "inbound" },
            "conn_state": f.conn_state, "answered": ok,
            "orig_bytes": f.orig.bytes, "resp_bytes": f.resp.bytes,
        });
        let dev = who(s.device_ip, s.device);
        let alert = if !s.outbound {
            let (sev, title, text) = if ok {
                (
                    Severity::High,
                    format!("{name} on {dev} is reachable from the internet"),
                    format!(
                        "{} connected from the internet to {name} ({proto}/{port}) on {dev}, and the device answered. \
                         {name} is a frequent target of automated attacks and should not be exposed. Remove the port \
                         forward or UPnP mapping on the router, or put the service behind a VPN.",
                        s.peer_ip
                    ),
                )
            } else {
                (
                    Severity::Low,
                    format!("Internet connection attempt to {name} on {dev}"),
                    format!(
                        "{} tried to reach {name} ({proto}/{port}) on {dev} from the internet; the device did not answer. \
                         The router seems to forward this port: remove the forward if it is not needed.",
                        s.peer_ip
                    ),
                )
            };
            Alert::new(f.first_ts, "high_risk_port", sev, title)
                .explain(text)
                .peer(format!("{proto}/{port}"))
                .mitre("T1133")
        } else {
            if !ok {
                return;
            }
            let worrying = matches!(port, 23 | 2323 | 135 | 139 | 445 | 1900);
            let sev = if worrying {
                Severity::Medium
            } else {
                Severity::Low
            };
            let text = if matches!(port, 139 | 445) {
                format!(
                    "{dev} talked SMB ({proto}/{port}) with {} on the internet. Windows file sharing over the internet \
                     can leak password hashes and is a malware spreading path; check which program did this.",
                    s.peer_ip
                )
            } else {
                format!(
                    "{dev} connected to {name} ({proto}/{port}) on {} on the internet. {name} sends data unencrypted or \
                     is a common remote-access target; make sure this is expected.",
                    s.peer_ip
                )
            };
            Alert::new(
                f.first_ts,
                "high_risk_port",
                sev,
                format!("{dev} used {name} on an internet host"),
            )
            .explain(text)
            .peer(s.peer_ip.to_string())
            .mitre(if matches!(port, 139 | 445) {
                "T1187"
            } else {
                "T1021"
            })
        };
        self.seen.touch(&f.id, f.last_ts, || ());
        out.push(alert.device(s.device).flows([f.id]).evidence(evidence));
    }

    fn tick(&mut self, _ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        // A flow's updates come at most an active timeout apart: a day is plenty.
        self.seen.prune(now - 86_400 * super::SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> HighRiskPort {
        HighRiskPort::new(&DetectConfig::default())
    }

    #[test]
    fn exposed_rdp_is_high_and_attempts_low() {
        let mut ctx = ctx();
        let evs = [
            FlowB::tcp(WAN_IP, 51000, DEV_IP, 3389).ev(),
            FlowB::tcp(ip("45.1.2.3"), 51000, DEV_IP, 3389).ev(),
            FlowB::tcp(ip("45.1.2.4"), 51000, DEV2_IP, 23).s0().ev(),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].severity, Severity::High);
        assert_eq!(a[0].peer.as_deref(), Some("tcp/3389"));
        assert_eq!(a[0].device_mac, Some(DEV_MAC));
        assert_eq!(a[0].mitre, Some("T1133"));
        assert_eq!(a[1].peer, a[0].peer, "same service, same dedup key");
        assert_eq!(a[2].severity, Severity::Low);
    }

    #[test]
    fn outbound_smb_and_telnet_medium_rdp_low() {
        let mut ctx = ctx();
        let evs = [
            FlowB::tcp(DEV_IP, 51000, WAN_IP, 445).ev(),
            FlowB::tcp(DEV_IP, 51001, WAN_IP, 23).ev(),
            FlowB::tcp(DEV_IP, 51002, WAN_IP, 3389).ev(),
            // Unanswered outbound attempts are for the scan rules.
            FlowB::tcp(DEV_IP, 51003, ip("45.1.2.3"), 23).s0().ev(),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let sev: Vec<_> = a.iter().map(|a| a.severity).collect();
        assert_eq!(sev, [Severity::Medium, Severity::Medium, Severity::Low]);
        assert_eq!(a[0].mitre, Some("T1187"));
    }

    #[test]
    fn lan_smb_ssdp_and_web_are_quiet() {
        let mut ctx = ctx();
        let evs = [
            FlowB::tcp(DEV_IP, 51000, DEV2_IP, 445).ev(),
            FlowB::udp(DEV_IP, 51000, ip("239.255.255.250"), 1900).ev(),
            FlowB::tcp(DEV_IP, 51000, WAN_IP, 443).ev(),
            FlowB::tcp(WAN_IP, 443, DEV_IP, 51000).ev(),
        ];
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }

    #[test]
    fn a_long_flow_is_reported_once() {
        let mut ctx = ctx();
        let f = FlowB::tcp(WAN_IP, 51000, DEV_IP, 5900);
        let evs = [f.clone().update().ev(), f.ev()];
        assert_eq!(run_rule(&mut rule(), &mut ctx, &evs).len(), 1);
    }
}
