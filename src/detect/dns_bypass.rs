//! `dns_bypass`: name resolution that goes around the home's resolvers (and so around
//! any filtering or logging they do).
//!
//! - Plain DNS (port 53) from a home device to a server other than the home resolvers
//!   (`detect.dns_servers`, else learned from DHCP). Judged only once the resolvers are
//!   known; the resolvers' own upstream queries are not reported.
//! - DNS over TLS (TCP 853) and DNS over QUIC (UDP 853, or 784/8853 used by early
//!   servers) to a server that is not a home resolver, once it answered.
//! - DNS over HTTPS: TLS to a well-known DoH server name (`doh_hosts`), or to a public
//!   resolver's address on port 443 (`doh_addresses`) over TCP or QUIC (HTTP/3).
//!
//! Severity is low: browsers (DoH) and some devices (hard-coded 8.8.8.8) do this on
//! their own; it matters when the home relies on DNS filtering. One alert per device
//! and server (the lifecycle counts repeats).

use std::net::IpAddr;

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, Tracked, who};
use crate::event::Event;
use crate::proto::ProtoRecord;

pub struct DnsBypass {
    /// (device address, server) pairs reported in the last day.
    seen: Tracked<(IpAddr, IpAddr), ()>,
}

impl DnsBypass {
    pub fn new(cfg: &DetectConfig) -> Self {
        DnsBypass {
            seen: Tracked::new(cfg.max_tracked),
        }
    }

    fn first(&mut self, dev: IpAddr, server: IpAddr, ts: i64) -> bool {
        if self.seen.get(&(dev, server)).is_some() {
            return false;
        }
        self.seen.touch(&(dev, server), ts, || ());
        true
    }
}

fn doh_host(host: &str, list: &[String]) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    list.contains(&h)
}

impl Rule for DnsBypass {
    fn ids(&self) -> &'static [&'static str] {
        &["dns_bypass"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let c = &ctx.cfg.dns_bypass;
        match ev {
            Event::Meta(m) => {
                if !ctx.is_local(m.orig_addr) || ctx.is_resolver(m.orig_addr) {
                    return;
                }
                let dev = who(m.orig_addr, m.orig_mac);
                let server = m.resp_addr;
                match &m.record {
                    ProtoRecord::Dns(d) if m.resp_port == 53 => {
                        if !ctx.resolvers_known_for(server)
                            || ctx.is_resolver(server)
                            || ctx.is_special(server)
                            || !self.first(m.orig_addr, server, d.ts)
                        {
                            return;
                        }
                        out.push(
                            Alert::new(d.ts, "dns_bypass", Severity::Low, format!("{dev} uses DNS server {server}"))
                                .explain(format!(
                                    "{dev} sent DNS queries (e.g. {}) to {server} instead of the home's resolver, \
                                     so DNS filtering and logging on the home network do not apply to it. Some \
                                     devices do this by design (hard-coded public resolvers); malware does it to \
                                     avoid blocklists.",
                                    d.query
                                ))
                                .device(m.orig_mac)
                                .peer(server.to_string())
                                .mitre("T1071.004")
                                .flows([m.flow_id])
                                .evidence(json!({"server": server.to_string(), "kind": "dns", "query": d.query})),
                        );
                    }
                    ProtoRecord::Tls(t) => {
                        let by_name = t.sni.as_deref().is_some_and(|s| doh_host(s, &c.doh_hosts));
                        let by_addr = m.resp_port == 443 && c.doh_addresses.contains(&server);
                        if !(by_name || by_addr)
                            || ctx.is_resolver(server)
                            || !self.first(m.orig_addr, server, t.ts)
                        {
                            return;
                        }
                        let name = t.sni.clone().unwrap_or_else(|| server.to_string());
                        out.push(
                            Alert::new(t.ts, "dns_bypass", Severity::Low, format!("{dev} uses DNS over HTTPS ({name})"))
                                .explain(format!(
                                    "{dev} opened an encrypted connection to the DNS-over-HTTPS service {name} \
                                     ({server}). Its lookups are invisible to the home network and bypass its DNS \
                                     filtering. Browsers do this when \"secure DNS\" is on; turn it off or point it \
                                     to the home resolver if filtering matters."
                                ))
                                .device(m.orig_mac)
                                .peer(name.clone())
                                .mitre("T1572")
                                .flows([m.flow_id])
                                .evidence(json!({"server": server.to_string(), "kind": "doh", "sni": t.sni})),
                        );
                    }
                    _ => {}
                }
            }
            Event::Flow(f) => {
                // DNS over TLS (TCP 853), DNS over QUIC (UDP 853, and 784/8853 that
                // early servers such as AdGuard's used), and HTTP/3 (QUIC, UDP 443) to a
                // well-known DoH resolver: encrypted DNS the home's resolver never sees.
                let (kind, what) = match (f.proto, f.resp_port) {
                    (6, 853) => ("dot", "DNS over TLS"),
                    (17, 853 | 784 | 8853) => ("doq", "DNS over QUIC"),
                    (17, 443) if c.doh_addresses.contains(&f.resp_addr) => {
                        ("doh3", "DNS over HTTPS (HTTP/3)")
                    }
                    _ => return,
                };
                if !ctx.is_local(f.orig_addr)
                    || ctx.is_resolver(f.orig_addr)
                    || ctx.is_resolver(f.resp_addr)
                    || f.resp.payload_bytes == 0
                    || !self.first(f.orig_addr, f.resp_addr, f.first_ts)
                {
                    return;
                }
                let dev = who(f.orig_addr, f.orig_mac);
                out.push(
                    Alert::new(
                        f.first_ts,
                        "dns_bypass",
                        Severity::Low,
                        format!("{dev} uses {what} ({})", f.resp_addr),
                    )
                    .explain(format!(
                        "{dev} talked {what} (port {}/{}) with {}. Its lookups are invisible to the home \
                         network and bypass its DNS filtering (Android's \"private DNS\" and browsers' \
                         \"secure DNS\" do this).",
                        if f.proto == 6 { "tcp" } else { "udp" },
                        f.resp_port,
                        f.resp_addr
                    ))
                    .device(f.orig_mac)
                    .peer(f.resp_addr.to_string())
                    .mitre("T1572")
                    .flows([f.id])
                    .evidence(json!({"server": f.resp_addr.to_string(), "kind": kind, "port": f.resp_port})),
                );
            }
            _ => {}
        }
    }

    fn tick(&mut self, _ctx: &Ctx, now: i64, _out: &mut Vec<Alert>) {
        self.seen.prune(now - 86_400 * SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rule() -> DnsBypass {
        DnsBypass::new(&DetectConfig::default())
    }

    #[test]
    fn other_resolver_dot_and_doh_are_low() {
        let mut ctx = ctx();
        let evs = [
            dhcp_ack(T0, DEV_MAC),
            dns(T0 + SEC, "example.com", 0, &["93.184.216.34"]),
            dns_via(
                DEV_IP,
                ip("8.8.8.8"),
                T0 + 2 * SEC,
                "example.com",
                1,
                0,
                &[],
            ),
            dns_via(
                DEV_IP,
                ip("8.8.8.8"),
                T0 + 3 * SEC,
                "example.org",
                1,
                0,
                &[],
            ),
            FlowB::tcp(DEV_IP, 40000, ip("1.1.1.1"), 853).ev(),
            tls(
                DEV_IP,
                ip("104.16.248.249"),
                tls_rec(T0 + 4 * SEC, Some("mozilla.cloudflare-dns.com")),
            ),
            tls(DEV2_IP, ip("9.9.9.9"), tls_rec(T0 + 4 * SEC, None)),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let kinds: Vec<_> = a
            .iter()
            .map(|a| a.evidence["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["dns", "dot", "doh", "doh"]);
        assert!(a.iter().all(|a| a.severity == Severity::Low));
        assert_eq!(a[2].peer.as_deref(), Some("mozilla.cloudflare-dns.com"));
    }

    /// A dual-stack home: the router advertises its prefix and an RDNSS resolver. A
    /// device's global IPv6 address is local, the advertised resolver is the home's and
    /// another IPv6 resolver is a bypass; IPv4 stays unjudged until DHCP is seen.
    #[test]
    fn ipv6_home_learned_from_router_advertisements() {
        let mut ctx = ctx();
        let dev6 = ip("2001:db8:1:2::10");
        let ra = crate::proto::RouterAdvertRecord {
            ts: T0,
            router_addr: ip("fe80::1"),
            router_mac: Some(GW_MAC),
            router_lifetime_s: 1800,
            managed: false,
            other_config: false,
            prefixes: vec![crate::proto::RaPrefix {
                net: "2001:db8:1:2::/64".parse().unwrap(),
                on_link: true,
                autonomous: true,
                valid_s: 3600,
                preferred_s: 3600,
            }],
            rdnss: vec!["2001:db8:1:2::1".parse().unwrap()],
            mtu: None,
            source_mac: None,
        };
        let q = |server: &str, n: i64| {
            dns_via(dev6, ip(server), T0 + n * SEC, "example.com", 28, 0, &[])
        };
        // Before the advertisement the device is not local: nothing to judge.
        let before = run_rule(&mut rule(), &mut ctx, &[q("2001:4860:4860::8888", 1)]);
        assert!(before.is_empty());
        let evs = [
            meta(
                ip("fe80::1"),
                134,
                ip("ff02::1"),
                0,
                58,
                ProtoRecord::RouterAdvert(ra),
            ),
            q("2001:db8:1:2::1", 2),
            q("2001:4860:4860::8888", 3),
            dns_via(
                DEV_IP,
                ip("8.8.8.8"),
                T0 + 4 * SEC,
                "example.com",
                1,
                0,
                &[],
            ),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].peer.as_deref(), Some("2001:4860:4860::8888"));
        assert!(ctx.is_local(dev6) && !ctx.is_local(ip("2001:db8:1:3::10")));
    }

    #[test]
    fn dns_over_quic_and_http3_to_a_public_resolver() {
        let mut ctx = ctx();
        let evs = [
            dhcp_ack(T0, DEV_MAC),
            FlowB::udp(DEV_IP, 40000, ip("94.140.14.14"), 784).ev(),
            FlowB::udp(DEV_IP, 40001, ip("1.1.1.1"), 443).ev(),
            // QUIC to an ordinary web server is not DNS.
            FlowB::udp(DEV_IP, 40002, ip("93.184.216.34"), 443).ev(),
        ];
        let a = run_rule(&mut rule(), &mut ctx, &evs);
        let kinds: Vec<_> = a
            .iter()
            .map(|a| a.evidence["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["doq", "doh3"]);
        assert_eq!(a[0].peer.as_deref(), Some("94.140.14.14"));
    }

    #[test]
    fn home_resolver_router_upstream_and_unknown_resolvers_are_quiet() {
        let mut ctx = ctx();
        let evs = [
            // Before any DHCP: resolvers unknown, nothing judged.
            dns_via(DEV_IP, ip("8.8.8.8"), T0, "example.com", 1, 0, &[]),
            dhcp_ack(T0 + SEC, DEV_MAC),
            dns(T0 + 2 * SEC, "example.com", 0, &[]),
            // The router (the resolver) asking upstream.
            dns_via(GW_IP, ip("1.1.1.1"), T0 + 3 * SEC, "example.com", 1, 0, &[]),
            // Multicast DNS is not DNS bypass.
            dns_via(
                DEV_IP,
                ip("224.0.0.251"),
                T0 + 3 * SEC,
                "x.local",
                1,
                0,
                &[],
            ),
            tls(
                DEV_IP,
                WAN_IP,
                tls_rec(T0 + 4 * SEC, Some("www.example.com")),
            ),
        ];
        assert!(run_rule(&mut rule(), &mut ctx, &evs).is_empty());
    }
}
