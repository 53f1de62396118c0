//! `cleartext_credentials` and `insecure_protocol`.
//!
//! - `cleartext_credentials`: a password anyone on the path can read — HTTP Basic
//!   authorization, FTP `USER`/`PASS`, POP3 `USER`/`PASS` or `AUTH PLAIN`, IMAP `LOGIN`,
//!   a telnet login (see `proto/login.rs`; the password itself is never kept). Across
//!   the internet (a device logging in to an internet server, or an internet client
//!   logging in to a home device) → high; on the home network → low (a router's or
//!   NAS's admin page). Anonymous FTP is not a secret and is skipped unless
//!   `anonymous_ftp` is set.
//! - `insecure_protocol`: telnet sessions (low on the home network, medium with the
//!   internet), SMBv1 negotiated (medium: the protocol of WannaCry), and TLS below 1.2
//!   (low; SSL 2/3 medium) — negotiated, or offered at most by a client when the
//!   server's answer was not seen.
//!
//! The alert's device is the home device of the session (the client if local, else
//! the server); its peer is the other side, whichever of the two started it.

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::{Event, MetaRecord};
use crate::proto::ProtoRecord;
use crate::store::writer::tls_version_name;

pub struct Cleartext {
    creds: bool,
    insecure: bool,
    /// (client, server, what) reported in the last hour: one TLS or telnet alert per
    /// pair, not one per connection.
    seen: Tracked<(std::net::IpAddr, std::net::IpAddr, &'static str), ()>,
}

impl Cleartext {
    pub fn new(cfg: &DetectConfig) -> Self {
        Cleartext {
            creds: cfg.cleartext_credentials.enabled,
            insecure: cfg.insecure_protocol.enabled,
            seen: Tracked::new(cfg.max_tracked),
        }
    }

    fn first(&mut self, m: &MetaRecord, what: &'static str, ts: i64) -> bool {
        let k = (m.orig_addr, m.resp_addr, what);
        if self.seen.get(&k).is_some() {
            return false;
        }
        self.seen.touch(&k, ts, || ());
        true
    }
}

/// Who is who in a session with a home device: the device (the client if local, else
/// the server), the other side (the alert's peer), and the texts naming each.
struct Parties {
    device: Option<[u8; 6]>,
    /// The device, with its MAC.
    dev: String,
    /// The remote side of the session: the server for a device's own session, the
    /// client when someone connected to the device.
    peer: std::net::IpAddr,
    /// The client and the server, the device among them with its MAC.
    client: String,
    server: String,
    /// The peer is on the internet.
    internet: bool,
    /// Where the other side is, for explanations.
    where_: &'static str,
    /// The device started the session.
    outbound: bool,
}

fn parties(ctx: &Ctx, m: &MetaRecord) -> Parties {
    let s = ctx.sides_of(m.orig_addr, m.orig_mac, m.resp_addr, m.resp_mac);
    let dev = who(s.device_ip, s.device);
    let internet = ctx.is_public(s.peer_ip);
    let (client, server) = if s.outbound {
        (dev.clone(), s.peer_ip.to_string())
    } else {
        (s.peer_ip.to_string(), dev.clone())
    };
    Parties {
        device: s.device,
        dev,
        peer: s.peer_ip,
        client,
        server,
        internet,
        where_: match (internet, s.outbound) {
            (true, true) => "on the internet",
            (true, false) => "from the internet",
            (false, _) => "on the home network",
        },
        outbound: s.outbound,
    }
}

fn protocol_name(p: &str) -> &'static str {
    match p {
        "ftp" => "FTP",
        "pop3" => "POP3",
        "imap" => "IMAP",
        "telnet" => "telnet",
        "smb1" => "SMBv1",
        _ => "a cleartext protocol",
    }
}

impl Rule for Cleartext {
    fn ids(&self) -> &'static [&'static str] {
        &["cleartext_credentials", "insecure_protocol"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Meta(m) = ev else { return };
        if !(ctx.is_local(m.orig_addr) || ctx.is_local(m.resp_addr)) {
            return;
        }
        let p = parties(ctx, m);
        let (device, internet, where_) = (p.device, p.internet, p.where_);
        let (dev, client) = (&p.dev, &p.client);
        let server_ip = m.resp_addr;
        let server = &p.server;
        let peer = p.peer.to_string();
        match &m.record {
            ProtoRecord::Http(h) if self.creds => {
                if !h
                    .auth_scheme
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("basic"))
                {
                    return;
                }
                let host = h.host.clone().unwrap_or_else(|| server_ip.to_string());
                let sev = if internet {
                    Severity::High
                } else {
                    Severity::Low
                };
                out.push(
                    Alert::new(h.ts, "cleartext_credentials", sev, format!("Password sent in clear to {host}"))
                        .explain(format!(
                            "{client} logged in to {host} ({server}, {where_}) with HTTP Basic authorization over \
                             plain HTTP{}. Anyone on the path can read the password. Use HTTPS, and change the \
                             password if this crossed the internet.",
                            h.auth_user.as_deref().map(|u| format!(" as \"{u}\"")).unwrap_or_default()
                        ))
                        .device(device)
                        .peer(peer)
                        .mitre("T1040")
                        .flows([m.flow_id])
                        .evidence(json!({"protocol": "http", "scheme": h.auth_scheme, "user": h.auth_user,
                                         "host": h.host, "uri": h.uri, "server": server_ip.to_string()})),
                );
            }
            ProtoRecord::Cleartext(l) => {
                let name = protocol_name(l.protocol);
                let anonymous = l.protocol == "ftp"
                    && l.user
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case("anonymous") || u == "ftp");
                if self.creds
                    && l.credentials
                    && (!anonymous || ctx.cfg.cleartext_credentials.anonymous_ftp)
                {
                    let sev = if internet {
                        Severity::High
                    } else {
                        Severity::Low
                    };
                    let title = if p.outbound {
                        format!("{name} password sent in clear to {server_ip}")
                    } else {
                        format!("{name} password sent in clear to {server_ip} from {peer}")
                    };
                    out.push(
                        Alert::new(l.ts, "cleartext_credentials", sev, title)
                            .explain(format!(
                                "{client} logged in to {name} on {server} ({where_}){} without encryption. Anyone on the \
                                 path can read the password. Switch to the encrypted variant (SFTP/FTPS, POP3S, \
                                 IMAPS, SSH) and change the password{}.",
                                l.user.as_deref().map(|u| format!(" as \"{u}\"")).unwrap_or_default(),
                                if internet { " now" } else { "" }
                            ))
                            .device(device)
                            .peer(peer.clone())
                            .mitre("T1040")
                            .flows([m.flow_id])
                            .evidence(json!({"protocol": l.protocol, "user": l.user, "accepted": l.success,
                                             "server": server_ip.to_string(), "port": m.resp_port})),
                    );
                }
                if !self.insecure
                    || !matches!(l.protocol, "telnet" | "smb1")
                    || !self.first(m, l.protocol, l.ts)
                {
                    return;
                }
                let (sev, mitre, why) = if l.protocol == "smb1" {
                    (
                        Severity::Medium,
                        "T1210",
                        "SMBv1 is obsolete and has wormable flaws (WannaCry, NotPetya); disable it on both devices.",
                    )
                } else {
                    (
                        if internet {
                            Severity::Medium
                        } else {
                            Severity::Low
                        },
                        "T1040",
                        "Telnet sends everything, passwords included, unencrypted; use SSH instead.",
                    )
                };
                out.push(
                    Alert::new(l.ts, "insecure_protocol", sev, format!("{name} in use between {dev} and {peer}"))
                        .explain(format!("{client} used {name} with {server} ({where_}). {why}"))
                        .device(device)
                        .peer(peer)
                        .mitre(mitre)
                        .flows([m.flow_id])
                        .evidence(json!({"protocol": l.protocol, "server": server_ip.to_string(), "port": m.resp_port})),
                );
            }
            ProtoRecord::Tls(t) if self.insecure && ctx.cfg.insecure_protocol.old_tls => {
                let known = |v: u16| v == 0x0002 || (0x0300..=0x0304).contains(&v);
                let (version, negotiated) = match t.server_version.filter(|v| known(*v)) {
                    Some(v) => (v, true),
                    None => {
                        let best = t
                            .supported_versions
                            .iter()
                            .copied()
                            .chain([t.client_version])
                            .filter(|v| known(*v))
                            .max();
                        match best {
                            Some(v) => (v, false),
                            None => return,
                        }
                    }
                };
                if version >= 0x0303 || !self.first(m, "tls", t.ts) {
                    return;
                }
                let sev = if version <= 0x0300 {
                    Severity::Medium
                } else {
                    Severity::Low
                };
                let vname = tls_version_name(version);
                let name = t.sni.clone().unwrap_or_else(|| server_ip.to_string());
                let title = if p.outbound {
                    format!("{vname} used with {name}")
                } else {
                    format!("{vname} used by {peer} with {name}")
                };
                out.push(
                    Alert::new(t.ts, "insecure_protocol", sev, title)
                        .explain(format!(
                            "{client} and {name} ({server}, {where_}) {} {vname}, which is deprecated and has known \
                             weaknesses. Update the software on the {} side.",
                            if negotiated { "negotiated" } else { "offered at most" },
                            if negotiated { "outdated" } else { "client" }
                        ))
                        .device(device)
                        .peer(peer)
                        .mitre("T1040")
                        .flows([m.flow_id])
                        .evidence(json!({"protocol": "tls", "version": vname, "negotiated": negotiated,
                                         "sni": t.sni, "server": server_ip.to_string()})),
                );
            }
            _ => {}
        }
    }

    fn tick(&mut self, _ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.seen.prune(now - 3600 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> Cleartext {
        Cleartext::new(&DetectConfig::default())
    }

    #[test]
    fn passwords_to_the_internet_are_high_on_the_lan_low() {
        let mut ctx = ctx();
        let evs = [
            cleartext(
                T0,
                DEV_IP,
                WAN_IP,
                110,
                "pop3",
                true,
                Some("anna"),
                Some(true),
            ),
            meta(
                DEV_IP,
                50000,
                WAN_IP,
                80,
                6,
                ProtoRecord::Http(http_rec(T0, "cam.example", Some(("Basic", "admin")))),
            ),
            meta(
                DEV_IP,
                50000,
                GW_IP,
                80,
                6,
                ProtoRecord::Http(http_rec(T0, "192.168.1.1", Some(("Basic", "admin")))),
            ),
            cleartext(
                T0,
                DEV_IP,
                DEV2_IP,
                21,
                "ftp",
                true,
                Some("scanner"),
                Some(true),
            ),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let got: Vec<_> = a.iter().map(|a| (a.rule, a.severity)).collect();
        assert_eq!(
            got,
            [
                ("cleartext_credentials", Severity::High),
                ("cleartext_credentials", Severity::High),
                ("cleartext_credentials", Severity::Low),
                ("cleartext_credentials", Severity::Low),
            ]
        );
        assert_eq!(a[0].evidence["user"], "anna");
        assert_eq!(a[0].mitre, Some("T1040"));
    }

    #[test]
    fn telnet_smb1_and_old_tls_are_insecure_protocols() {
        let mut ctx = ctx();
        let mut old = tls_rec(T0, Some("legacy.example"));
        old.server_version = Some(0x0301);
        let mut ssl3 = tls_rec(T0, None);
        ssl3.server_version = None;
        ssl3.client_version = 0x0300;
        ssl3.supported_versions = vec![];
        let evs = [
            cleartext(T0, DEV_IP, DEV2_IP, 23, "telnet", true, Some("root"), None),
            cleartext(T0 + SEC, DEV_IP, DEV2_IP, 23, "telnet", false, None, None),
            cleartext(T0, DEV_IP, DEV2_IP, 445, "smb1", false, None, Some(true)),
            tls(DEV_IP, WAN_IP, old),
            tls(DEV2_IP, WAN_IP, ssl3),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let got: Vec<_> = a.iter().map(|a| (a.rule, a.severity)).collect();
        assert_eq!(
            got,
            [
                ("cleartext_credentials", Severity::Low),
                ("insecure_protocol", Severity::Low),
                ("insecure_protocol", Severity::Medium),
                ("insecure_protocol", Severity::Low),
                ("insecure_protocol", Severity::Medium),
            ]
        );
    }

    /// A client on the internet logging in to a home device's telnet server: the peer
    /// is the client, not the device itself.
    #[test]
    fn inbound_telnet_names_the_internet_client_as_peer() {
        let mut ctx = ctx();
        let evs = [cleartext(
            T0,
            WAN_IP,
            DEV_IP,
            23,
            "telnet",
            true,
            Some("root"),
            Some(true),
        )];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let got: Vec<_> = a.iter().map(|a| (a.rule, a.severity)).collect();
        assert_eq!(
            got,
            [
                ("cleartext_credentials", Severity::High),
                ("insecure_protocol", Severity::Medium),
            ]
        );
        for x in &a {
            assert_eq!(x.device_mac, Some(DEV_MAC));
            assert_eq!(x.peer.as_deref(), Some("93.184.216.34"), "{x:?}");
            assert_eq!(x.evidence["server"], "192.168.1.10");
        }
        assert_eq!(
            a[0].title,
            "telnet password sent in clear to 192.168.1.10 from 93.184.216.34"
        );
        assert_eq!(
            a[1].title,
            "telnet in use between 192.168.1.10 (b8:27:eb:11:22:33) and 93.184.216.34"
        );
        assert!(
            a[1].explanation.starts_with(
                "93.184.216.34 used telnet with 192.168.1.10 (b8:27:eb:11:22:33) (from the internet)"
            ),
            "{}",
            a[1].explanation
        );
    }

    #[test]
    fn modern_tls_digest_auth_anonymous_ftp_and_starttls_are_quiet() {
        let mut ctx = ctx();
        let evs = [
            tls(DEV_IP, WAN_IP, tls_rec(T0, Some("www.example.com"))),
            meta(
                DEV_IP,
                50000,
                WAN_IP,
                80,
                6,
                ProtoRecord::Http(http_rec(T0, "x", Some(("Digest", "u")))),
            ),
            cleartext(
                T0,
                DEV_IP,
                WAN_IP,
                21,
                "ftp",
                true,
                Some("anonymous"),
                Some(true),
            ),
            // A login record without credentials (APOP).
            cleartext(
                T0,
                DEV_IP,
                WAN_IP,
                110,
                "pop3",
                false,
                Some("u"),
                Some(true),
            ),
        ];
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
