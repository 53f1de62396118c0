//! `brute_force`: password guessing against SSH, telnet, FTP, RDP, VNC, POP3 or IMAP.
//!
//! Per source, target and service in a window of `detect.brute_force.window_secs`:
//! - short sessions: the handshake completed, the server sent something (a banner,
//!   a key exchange, a login prompt) and the connection ended quickly with little
//!   data — what every failed password attempt looks like, even encrypted (SSH, RDP);
//! - rejected cleartext logins (FTP `530`, POP3 `-ERR`, IMAP `NO`) from `proto/login.rs`.
//!
//! Either count over its threshold reports once per window. Severity: from the internet
//! → high; between home devices → medium; a home device against an internet server →
//! low (scripts that fetch over SSH look alike), medium at five times the threshold.
//! A cleartext login accepted after the failure threshold was reached is critical: the
//! guessing probably succeeded.

use std::net::IpAddr;

use serde_json::json;

use super::high_risk_port::service_name;
use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::proto::ProtoRecord;

#[derive(Default)]
struct Attempts {
    start: i64,
    sessions: usize,
    failed: usize,
    users: Vec<String>,
    flows: Vec<u64>,
    alerted: bool,
    cracked: bool,
}

type Key = (IpAddr, IpAddr, u16);

pub struct BruteForce {
    keys: Tracked<Key, Attempts>,
}

impl BruteForce {
    pub fn new(cfg: &DetectConfig) -> Self {
        BruteForce {
            keys: Tracked::new(cfg.max_tracked),
        }
    }
}

impl Rule for BruteForce {
    fn ids(&self) -> &'static [&'static str] {
        &["brute_force"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let c = &ctx.cfg.brute_force;
        let (key, ts, flow, macs, failed, success, user) = match ev {
            Event::Flow(f) => {
                if f.proto != 6 || !f.is_final || !c.ports.contains(&f.resp_port) {
                    return;
                }
                let secs = (f.last_ts - f.first_ts) as f64 / SEC as f64;
                let short = secs <= c.max_session_secs
                    && f.orig.payload_bytes <= c.max_session_bytes
                    && f.resp.payload_bytes <= c.max_session_bytes;
                if !short || f.resp.payload_bytes == 0 || f.orig.payload_bytes == 0 {
                    return;
                }
                (
                    (f.orig_addr, f.resp_addr, f.resp_port),
                    f.first_ts,
                    f.id,
                    (f.orig_mac, f.resp_mac),
                    false,
                    false,
                    None,
                )
            }
            Event::Meta(m) => {
                let ProtoRecord::Cleartext(l) = &m.record else {
                    return;
                };
                let Some(ok) = l.success else { return };
                (
                    (m.orig_addr, m.resp_addr, m.resp_port),
                    l.ts,
                    m.flow_id,
                    (m.orig_mac, m.resp_mac),
                    !ok,
                    ok,
                    l.user.clone(),
                )
            }
            _ => return,
        };
        let (src, dst, port) = key;
        let (src_local, dst_local) = (ctx.is_local(src), ctx.is_local(dst));
        if !(src_local || dst_local) {
            return;
        }
        let window = c.window_secs as i64 * SEC;
        let a = self.keys.touch(&key, ts, Attempts::default);
        if (a.sessions == 0 && a.failed == 0) || ts >= a.start + window || ts < a.start - window {
            *a = Attempts {
                start: ts,
                ..Default::default()
            };
        }
        if let Some(u) = user
            && a.users.len() < 10
            && !a.users.contains(&u)
        {
            a.users.push(u);
        }
        if a.flows.len() < super::alert::MAX_ALERT_FLOWS && !a.flows.contains(&flow) {
            a.flows.push(flow);
        }
        let service = service_name(port);
        let attacker = who(src, if src_local { macs.0 } else { None });
        let target = who(dst, if dst_local { macs.1 } else { None });
        let (device, peer) = if src_local {
            (macs.0, dst)
        } else {
            (macs.1, src)
        };
        if success {
            if a.failed >= c.failed_logins && !a.cracked {
                a.cracked = true;
                out.push(
                    Alert::new(ts, "brute_force", Severity::Critical, format!("{service} password guessed on {target}"))
                        .explain(format!(
                            "{attacker} logged in to {service} on {target} after {} rejected attempts. The \
                             password was probably guessed: change it now and check {target} for intruders.",
                            a.failed
                        ))
                        .device(device)
                        .peer(peer.to_string())
                        .mitre("T1110.001")
                        .flows(a.flows.iter().copied())
                        .evidence(json!({"service": service, "port": port, "failed_logins": a.failed,
                                         "users": a.users})),
                );
            }
            return;
        }
        a.sessions += !failed as usize;
        a.failed += failed as usize;
        if a.alerted || (a.sessions < c.min_sessions && a.failed < c.failed_logins) {
            return;
        }
        let sev = if !src_local {
            Severity::High
        } else if dst_local || a.sessions >= 5 * c.min_sessions {
            Severity::Medium
        } else {
            Severity::Low
        };
        a.alerted = true;
        let what = if a.failed >= c.failed_logins {
            format!("{} rejected logins", a.failed)
        } else {
            format!("{} short sessions", a.sessions)
        };
        out.push(
            Alert::new(ts, "brute_force", sev, format!("Password guessing on {service} of {target}"))
                .explain(format!(
                    "{attacker} made {what} to {service} (port {port}) on {target} within {} s. Many quick \
                     login attempts in a row are how passwords are guessed. {}",
                    c.window_secs,
                    if src_local {
                        "If nobody is testing this on purpose, check the device making the attempts."
                    } else {
                        "Do not expose this service to the internet, or use keys / strong passwords and rate limits."
                    }
                ))
                .device(device)
                .peer(peer.to_string())
                .mitre("T1110.001")
                .flows(a.flows.iter().copied())
                .evidence(json!({
                    "service": service, "port": port, "sessions": a.sessions, "failed_logins": a.failed,
                    "users": a.users, "window_secs": c.window_secs,
                })),
        );
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.keys
            .prune(now - 2 * ctx.cfg.brute_force.window_secs as i64 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> BruteForce {
        BruteForce::new(&DetectConfig::default())
    }

    fn ssh_attempt(src: IpAddr, dst: IpAddr, t: i64) -> Event {
        FlowB::tcp(src, 50000, dst, 22)
            .at(t)
            .dur(3 * SEC)
            .orig(15, 3200, 2100)
            .resp(14, 4400, 3300)
            .ev()
    }

    #[test]
    fn ssh_guessing_from_the_internet_is_high() {
        let mut ctx = ctx();
        let evs: Vec<_> = (0..25)
            .map(|i| ssh_attempt(WAN_IP, DEV_IP, T0 + i * 5 * SEC))
            .collect();
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(ids(&a), ["brute_force"]);
        assert_eq!(
            (a[0].severity, a[0].device_mac),
            (Severity::High, Some(DEV_MAC))
        );
        assert_eq!(a[0].peer.as_deref(), Some("93.184.216.34"));
        assert_eq!(a[0].mitre, Some("T1110.001"));
    }

    #[test]
    fn ftp_failures_then_success_is_critical() {
        let mut ctx = ctx();
        let mut evs: Vec<_> = (0..12)
            .map(|i| {
                cleartext(
                    T0 + i * SEC,
                    ATT_IP,
                    DEV_IP,
                    21,
                    "ftp",
                    true,
                    Some("admin"),
                    Some(false),
                )
            })
            .collect();
        evs.push(cleartext(
            T0 + 20 * SEC,
            ATT_IP,
            DEV_IP,
            21,
            "ftp",
            true,
            Some("admin"),
            Some(true),
        ));
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let sev: Vec<_> = a.iter().map(|a| a.severity).collect();
        assert_eq!(sev, [Severity::Medium, Severity::Critical]);
        assert_eq!(a[1].evidence["users"][0], "admin");
    }

    #[test]
    fn long_sessions_git_fetches_and_slow_attempts_are_quiet() {
        let mut ctx = ctx();
        let mut evs = Vec::new();
        // Interactive SSH sessions: long.
        for i in 0..30 {
            evs.push(
                FlowB::tcp(DEV_IP, 50000, DEV2_IP, 22)
                    .at(T0 + i * SEC)
                    .dur(600 * SEC)
                    .ev(),
            );
        }
        // A script fetching a few repositories over SSH: short but below the threshold.
        for i in 0..8 {
            evs.push(ssh_attempt(DEV_IP, ip("140.82.121.4"), T0 + i * SEC));
        }
        // Attempts spread over hours.
        for i in 0..30 {
            evs.push(ssh_attempt(WAN_IP, DEV2_IP, T0 + i * 600 * SEC));
        }
        // A port nobody guesses passwords on.
        for i in 0..30 {
            evs.push(
                FlowB::tcp(DEV_IP, 50000, WAN_IP, 443)
                    .at(T0 + i * SEC)
                    .dur(SEC)
                    .ev(),
            );
        }
        evs.sort_by_key(|e| super::super::event_ts(e).unwrap());
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
