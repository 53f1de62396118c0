//! What counts as "local": the configured networks (`network.local_networks`: private
//! ranges by default) plus the IPv6 prefixes the home's routers advertise.
//!
//! A dual-stack home's devices reach the internet from global IPv6 addresses under the
//! prefix of the router advertisements (a /64 the ISP delegates, often changing), so
//! without learning it their IPv6 traffic would belong to no device. Every stage that
//! asks "is this address a home device?" (inventory, detection context, the models)
//! keeps its own `LocalNets` and learns from the same `RouterAdvert` records in stream
//! order, so a replay decides exactly as live capture did. Prefixes of earlier runs are
//! read from the store when a run starts ([`stored_prefixes`]).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::proto::ProtoRecord;

/// Learned prefixes kept at most; the oldest goes first.
pub const MAX_LEARNED: usize = 16;

#[derive(Clone, Debug)]
pub struct LocalNets {
    configured: Vec<IpNet>,
    /// Learned prefixes, oldest first.
    learned: Vec<IpNet>,
    learn: bool,
}

impl LocalNets {
    pub fn new(cfg: &crate::config::Config) -> Self {
        LocalNets {
            configured: cfg.network.local_networks.clone(),
            learned: Vec::new(),
            learn: cfg.network.learn_ipv6_prefixes,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.configured.iter().any(|n| n.contains(&ip))
            || self.learned.iter().any(|n| n.contains(&ip))
    }

    /// Adds a prefix unless a known network covers it; true if it was new.
    pub fn learn(&mut self, net: IpNet) -> bool {
        if !self.learn
            || self
                .configured
                .iter()
                .chain(&self.learned)
                .any(|n| n.contains(&net))
        {
            return false;
        }
        if self.learned.len() >= MAX_LEARNED {
            self.learned.remove(0);
        }
        self.learned.push(net);
        true
    }

    /// Learns prefixes stored by earlier runs (oldest first, see [`stored_prefixes`]).
    pub fn learn_all(&mut self, nets: &[IpNet]) {
        for n in nets {
            self.learn(*n);
        }
    }

    /// Learns the home prefixes of a router advertisement; true if any was new.
    pub fn learn_from(&mut self, rec: &ProtoRecord) -> bool {
        let ProtoRecord::RouterAdvert(ra) = rec else {
            return false;
        };
        let mut new = false;
        for p in ra.prefixes.iter().filter(|p| p.is_home_prefix()) {
            new |= self.learn(IpNet::V6(p.net));
        }
        new
    }

    pub fn learned(&self) -> &[IpNet] {
        &self.learned
    }
}

/// Home prefixes advertised in the 30 days before the newest stored advertisement,
/// most recent last (the order [`LocalNets::learn`] keeps), at most [`MAX_LEARNED`].
pub fn stored_prefixes(conn: &duckdb::Connection) -> duckdb::Result<Vec<IpNet>> {
    let mut st = conn.prepare(
        "SELECT p FROM (SELECT unnest(home_prefixes) AS p, max(ts) AS last FROM router_adverts \
         WHERE ts >= (SELECT max(ts) FROM router_adverts) - INTERVAL 30 DAY GROUP BY p) \
         ORDER BY last DESC, p LIMIT ?",
    )?;
    let mut v: Vec<IpNet> = st
        .query_map([MAX_LEARNED as i64], |r| r.get::<_, String>(0))?
        .filter_map(|r| r.ok()?.parse().ok())
        .collect();
    v.reverse();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{RaPrefix, RouterAdvertRecord};

    fn ra(prefixes: &[(&str, bool)]) -> ProtoRecord {
        ProtoRecord::RouterAdvert(RouterAdvertRecord {
            ts: 0,
            router_addr: "fe80::1".parse().unwrap(),
            router_mac: None,
            router_lifetime_s: 1800,
            managed: false,
            other_config: false,
            prefixes: prefixes
                .iter()
                .map(|(n, auto)| RaPrefix {
                    net: n.parse().unwrap(),
                    on_link: false,
                    autonomous: *auto,
                    valid_s: 3600,
                    preferred_s: 3600,
                })
                .collect(),
            rdnss: vec![],
            mtu: None,
            source_mac: None,
        })
    }

    #[test]
    fn advertised_prefixes_become_local() {
        let mut l = LocalNets::new(&crate::config::Config::default());
        let host: IpAddr = "2601:646:8402:44b0:1c2d:3e4f:5a6b:7c8d".parse().unwrap();
        assert!(!l.contains(host));
        assert!(l.learn_from(&ra(&[("2601:646:8402:44b0::/64", true)])));
        assert!(l.contains(host));
        assert!(!l.contains("2601:646:8402:44b1::1".parse().unwrap()));
        // Known already; a prefix without flags is not the home's.
        assert!(!l.learn_from(&ra(&[("2601:646:8402:44b0::/64", true)])));
        assert!(!l.learn_from(&ra(&[("2001:db8::/64", false)])));
        // ULA is configured already.
        assert!(!l.learn_from(&ra(&[("fd00:1::/64", true)])));
        assert_eq!(l.learned().len(), 1);
    }

    #[test]
    fn learning_is_bounded_and_can_be_switched_off() {
        let mut l = LocalNets::new(&crate::config::Config::default());
        for i in 0..40u16 {
            l.learn(format!("2001:db8:{i:x}::/64").parse().unwrap());
        }
        assert_eq!(l.learned().len(), MAX_LEARNED);
        assert!(l.contains("2001:db8:27::1".parse().unwrap()), "newest kept");
        assert!(
            !l.contains("2001:db8:0::1".parse().unwrap()),
            "oldest dropped"
        );

        let mut cfg = crate::config::Config::default();
        cfg.network.learn_ipv6_prefixes = false;
        let mut off = LocalNets::new(&cfg);
        assert!(!off.learn_from(&ra(&[("2601:646:8402:44b0::/64", true)])));
        assert!(!off.contains("2601:646:8402:44b0::1".parse().unwrap()));
    }
}
