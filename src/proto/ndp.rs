//! IPv6 router advertisements (ICMPv6 type 134, RFC 4861 §4.2): how the home's IPv6
//! network is configured. A dual-stack home's devices talk to the internet from global
//! addresses under the prefix its router advertises, so that prefix is what makes
//! IPv6 traffic "local" (`inventory::local`); the RDNSS option (RFC 8106) names the
//! resolvers the router hands out.
//!
//! The caller only passes messages that arrived with hop limit 255 from a link-local
//! source (RFC 4861 §6.1.2: anything else was forwarded by a router and must be
//! ignored). Every length is checked against the captured bytes; an option of length
//! zero ends parsing, as the RFC requires.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv6Net;
use serde::Serialize;

use super::{ProtoRecord, Ts};

/// Prefixes and resolvers kept per advertisement; more are ignored.
const MAX_PREFIXES: usize = 16;
const MAX_RDNSS: usize = 8;

/// One router advertisement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouterAdvertRecord {
    pub ts: Ts,
    /// The sender (a link-local address) and the frame's source MAC.
    pub router_addr: IpAddr,
    pub router_mac: Option<[u8; 6]>,
    /// Seconds the sender may be used as default router (0: it is not one).
    pub router_lifetime_s: u16,
    /// M flag: addresses from DHCPv6.
    pub managed: bool,
    /// O flag: other configuration (DNS) from DHCPv6.
    pub other_config: bool,
    pub prefixes: Vec<RaPrefix>,
    /// Recursive DNS servers (option 25).
    pub rdnss: Vec<Ipv6Addr>,
    /// Link MTU (option 5).
    pub mtu: Option<u32>,
    /// Source link-layer address (option 1).
    pub source_mac: Option<[u8; 6]>,
}

/// A prefix information option (type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RaPrefix {
    pub net: Ipv6Net,
    /// L flag: addresses under the prefix are on this link.
    pub on_link: bool,
    /// A flag: hosts form their addresses under it (SLAAC).
    pub autonomous: bool,
    pub valid_s: u32,
    pub preferred_s: u32,
}

impl RaPrefix {
    /// Whether the prefix describes the home network: on-link or used for SLAAC, still
    /// valid, global unicast, and no shorter than /32 (an advertised `::/0` or a
    /// too-wide prefix must not turn the internet into "local").
    pub fn is_home_prefix(&self) -> bool {
        let a = self.net.network();
        (self.on_link || self.autonomous)
            && self.valid_s > 0
            && self.net.prefix_len() >= 32
            && !a.is_unspecified()
            && !a.is_loopback()
            && !a.is_multicast()
            && !a.is_unicast_link_local()
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn v6_at(b: &[u8], i: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[i..i + 16]);
    Ipv6Addr::from(a)
}

/// Parses an ICMPv6 message (from its type byte) if it is a router advertisement.
pub fn router_advert(ts: Ts, msg: &[u8]) -> Option<RouterAdvertRecord> {
    // type, code, checksum, cur hop limit, flags, router lifetime, reachable time,
    // retrans timer: 16 bytes before the options.
    if msg.len() < 16 || msg[0] != 134 || msg[1] != 0 {
        return None;
    }
    let mut rec = RouterAdvertRecord {
        ts,
        router_addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        router_mac: None,
        router_lifetime_s: u16_at(msg, 6),
        managed: msg[5] & 0x80 != 0,
        other_config: msg[5] & 0x40 != 0,
        prefixes: Vec::new(),
        rdnss: Vec::new(),
        mtu: None,
        source_mac: None,
    };
    let mut opts = &msg[16..];
    while opts.len() >= 2 {
        let len = opts[1] as usize * 8;
        if len == 0 || len > opts.len() {
            // Zero length is invalid (RFC 4861 §4.6); a longer one was cut by the snaplen.
            break;
        }
        let o = &opts[..len];
        match o[0] {
            1 if len >= 8 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(&o[2..8]);
                rec.source_mac = Some(m);
            }
            3 if len == 32 && rec.prefixes.len() < MAX_PREFIXES => {
                let plen = o[2];
                if let Ok(net) = Ipv6Net::new(v6_at(o, 16), plen) {
                    rec.prefixes.push(RaPrefix {
                        net: net.trunc(),
                        on_link: o[3] & 0x80 != 0,
                        autonomous: o[3] & 0x40 != 0,
                        valid_s: u32_at(o, 4),
                        preferred_s: u32_at(o, 8),
                    });
                }
            }
            5 if len == 8 => rec.mtu = Some(u32_at(o, 4)),
            25 if len >= 24 => {
                for a in o[8..].chunks_exact(16) {
                    if rec.rdnss.len() < MAX_RDNSS {
                        rec.rdnss.push(v6_at(a, 0));
                    }
                }
            }
            _ => {}
        }
        opts = &opts[len..];
    }
    Some(rec)
}

/// The parser entry for the flow table: an ICMPv6 message from `src` (frame source
/// `src_mac`) that passed the hop-limit and source checks.
pub fn on_icmpv6(
    ts: Ts,
    src: IpAddr,
    src_mac: Option<[u8; 6]>,
    msg: &[u8],
    out: &mut Vec<ProtoRecord>,
) {
    if let Some(mut r) = router_advert(ts, msg) {
        r.router_addr = src;
        r.router_mac = src_mac;
        out.push(ProtoRecord::RouterAdvert(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The advertisement of Comcast's gateway in nDPI's `anyconnect-vpn.pcap`, as
    /// tcpdump decodes it: M and O set, lifetime 180 s, RDNSS, one /64, a route
    /// information option, the source link-layer address.
    pub(crate) fn comcast_ra() -> Vec<u8> {
        let mut m = vec![134, 0, 0, 0, 64, 0xc0, 0, 180, 0, 0, 0, 0, 0, 0, 0, 0];
        // RDNSS, length 5 (40 bytes), lifetime 86400, 2001:558:feed::1 and ::2.
        m.extend([25, 5, 0, 0, 0, 1, 0x51, 0x80]);
        m.extend("2001:558:feed::1".parse::<Ipv6Addr>().unwrap().octets());
        m.extend("2001:558:feed::2".parse::<Ipv6Addr>().unwrap().octets());
        // Prefix information: /64, L and A, valid 195869 s, preferred 195869 s.
        m.extend([
            3, 4, 64, 0xc0, 0, 2, 0xfd, 0x1d, 0, 2, 0xfd, 0x1d, 0, 0, 0, 0,
        ]);
        m.extend("2601:646:8402:44b0::".parse::<Ipv6Addr>().unwrap().octets());
        // Route information ::/0.
        m.extend([24, 3, 0, 0, 0, 0, 0, 0xb4]);
        m.extend([0u8; 16]);
        // Source link-layer address.
        m.extend([1, 1, 0x2c, 0x7e, 0x81, 0xb0, 0x4a, 0xa1]);
        m
    }

    #[test]
    fn parses_prefix_rdnss_flags_and_source_mac() {
        let r = router_advert(7, &comcast_ra()).unwrap();
        assert_eq!(r.ts, 7);
        assert_eq!(r.router_lifetime_s, 180);
        assert!(r.managed && r.other_config);
        assert_eq!(
            r.prefixes,
            vec![RaPrefix {
                net: "2601:646:8402:44b0::/64".parse().unwrap(),
                on_link: true,
                autonomous: true,
                valid_s: 195_869,
                preferred_s: 195_869,
            }]
        );
        assert!(r.prefixes[0].is_home_prefix());
        assert_eq!(
            r.rdnss,
            vec![
                "2001:558:feed::1".parse::<Ipv6Addr>().unwrap(),
                "2001:558:feed::2".parse().unwrap()
            ]
        );
        assert_eq!(r.source_mac, Some([0x2c, 0x7e, 0x81, 0xb0, 0x4a, 0xa1]));
        assert_eq!(r.mtu, None);
    }

    #[test]
    fn only_real_home_prefixes_count() {
        let p = |net: &str, on_link, autonomous, valid_s| RaPrefix {
            net: net.parse().unwrap(),
            on_link,
            autonomous,
            valid_s,
            preferred_s: 0,
        };
        assert!(p("2001:db8:cc:dd::/64", true, false, 3600).is_home_prefix());
        assert!(p("2001:db8:cc::/48", false, true, 3600).is_home_prefix());
        // Neither flag, expired, too wide, the default route, link-local, multicast.
        assert!(!p("2001:db8:cc:dd::/64", false, false, 3600).is_home_prefix());
        assert!(!p("2001:db8:cc:dd::/64", true, true, 0).is_home_prefix());
        assert!(!p("2000::/3", true, true, 3600).is_home_prefix());
        assert!(!p("::/0", true, true, 3600).is_home_prefix());
        assert!(!p("fe80::/64", true, true, 3600).is_home_prefix());
        assert!(!p("ff02::/64", true, true, 3600).is_home_prefix());
    }

    #[test]
    fn host_bits_in_the_prefix_are_cleared() {
        let mut m = comcast_ra();
        // The prefix option starts at 16 + 40; its address at +16. Set a host bit.
        m[16 + 40 + 16 + 15] = 1;
        let r = router_advert(0, &m).unwrap();
        assert_eq!(
            r.prefixes[0].net,
            "2601:646:8402:44b0::/64".parse().unwrap()
        );
    }

    #[test]
    fn bad_messages_and_options_are_refused_or_cut_short() {
        let m = comcast_ra();
        assert!(router_advert(0, &m[..15]).is_none());
        let mut other = m.clone();
        other[0] = 135;
        assert!(router_advert(0, &other).is_none());
        let mut code = m.clone();
        code[1] = 1;
        assert!(router_advert(0, &code).is_none());
        // A zero-length option ends parsing: nothing after it is read.
        let mut zero = m.clone();
        zero[16 + 1] = 0;
        let r = router_advert(0, &zero).unwrap();
        assert!(r.rdnss.is_empty() && r.prefixes.is_empty() && r.source_mac.is_none());
        // A prefix length above 128 is not a prefix.
        let mut plen = m.clone();
        plen[16 + 40 + 2] = 200;
        assert!(router_advert(0, &plen).unwrap().prefixes.is_empty());
        // Every prefix of the message parses without a panic.
        for n in 0..m.len() {
            let _ = router_advert(0, &m[..n]);
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let n = (x % 200) as usize;
            let mut m = vec![134u8, 0];
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                m.push(x as u8);
            }
            if let Some(r) = router_advert(0, &m) {
                assert!(r.prefixes.len() <= MAX_PREFIXES && r.rdnss.len() <= MAX_RDNSS);
            }
        }
    }
}
