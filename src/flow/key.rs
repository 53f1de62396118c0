//! Flow keys: one key for both directions of a conversation.
//!
//! A key holds the two endpoints in a canonical order (smaller address/port first), so
//! a packet and its reply land on the same entry without a second lookup. Which of the
//! two endpoints started the conversation is flow state, not part of the key.

use std::net::IpAddr;

/// An (address, port) endpoint in a compact form: IPv4 is stored as IPv4-mapped IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16,
}

impl Endpoint {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        let addr = match addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Endpoint { addr, port }
    }

    pub fn ip(&self) -> IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.addr);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

/// Canonical bidirectional flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub proto: u8,
    pub vlan: u16,
}

impl FlowKey {
    /// Builds the key for a packet from `src` to `dst`; the bool is true when `src`
    /// is the `lo` endpoint.
    pub fn new(proto: u8, vlan: u16, src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        if src <= dst {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    proto,
                    vlan,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    proto,
                    vlan,
                },
                false,
            )
        }
    }
}

/// ICMP has no ports; like Zeek and Community ID we use the type as the source "port"
/// and, for request/reply pairs, the counterpart type as the destination "port" so that
/// an echo request and its reply share a flow. Other messages use (type, code).
///
/// Returns (src_port, dst_port, is_one_way).
pub fn icmp_ports(v6: bool, icmp_type: u8, code: u8) -> (u16, u16, bool) {
    let counterpart = if v6 {
        match icmp_type {
            128 => Some(129),
            129 => Some(128),
            130 => Some(131),
            131 => Some(130),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            10 => Some(9),
            9 => Some(10),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        }
    };
    match counterpart {
        Some(c) => (icmp_type as u16, c, false),
        None => (icmp_type as u16, code as u16, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let a = Endpoint::new("192.168.1.10".parse().unwrap(), 50000);
        let b = Endpoint::new("8.8.8.8".parse().unwrap(), 53);
        let (k1, a_lo) = FlowKey::new(17, 0, a, b);
        let (k2, b_lo) = FlowKey::new(17, 0, b, a);
        assert_eq!(k1, k2);
        assert_ne!(a_lo, b_lo);
        assert_eq!(a.ip().to_string(), "192.168.1.10");
        let v6 = Endpoint::new("fe80::1".parse().unwrap(), 1);
        assert_eq!(v6.ip().to_string(), "fe80::1");
    }

    #[test]
    fn echo_request_and_reply_pair_up() {
        let (s, d, one_way) = icmp_ports(false, 8, 0);
        let (rs, rd, _) = icmp_ports(false, 0, 0);
        assert!(!one_way);
        assert_eq!((s, d), (rd, rs));
        assert_eq!(icmp_ports(false, 3, 1), (3, 1, true));
        assert_eq!(icmp_ports(true, 128, 0), (128, 129, false));
    }
}
