//! Community ID v1 flow hashes (https://github.com/corelight/community-id-spec).
//!
//! The same conversation gets the same ID in netguardian, Zeek, Suricata and most
//! SIEMs, so a user can pivot from our flows to other tools' logs.

use base64::Engine;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// Computes the v1 Community ID with seed 0 for a flow from `src` to `dst`.
/// For ICMP/ICMPv6 pass the type as `sport` and the code as `dport`; the one-way
/// mapping of the spec is applied here.
pub fn community_id(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> String {
    community_id_seeded(0, proto, src, sport, dst, dport)
}

pub fn community_id_seeded(
    seed: u16,
    proto: u8,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> String {
    let has_ports = matches!(proto, 1 | 6 | 17 | 58 | 132);
    let (mut sport, mut dport) = (sport, dport);
    let mut one_way = false;
    if proto == 1 || proto == 58 {
        let (s, d, ow) = super::key::icmp_ports(proto == 58, sport as u8, dport as u8);
        sport = s;
        dport = d;
        one_way = ow;
    }
    let src_b = ip_bytes(src);
    let dst_b = ip_bytes(dst);
    // Order the endpoints so that both directions hash the same.
    let swap = !one_way && (src_b.as_slice(), sport) > (dst_b.as_slice(), dport);
    let (a, ap, b, bp) = if swap {
        (&dst_b, dport, &src_b, sport)
    } else {
        (&src_b, sport, &dst_b, dport)
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(a);
    h.update(b);
    h.update([proto, 0]);
    if has_ports {
        h.update(ap.to_be_bytes());
        h.update(bp.to_be_bytes());
    }
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // Vectors from the Community ID spec's baseline (tcp.pcap, udp.pcap, icmp.pcap).
    #[test]
    fn spec_vectors() {
        assert_eq!(
            community_id(6, ip("128.232.110.120"), 34855, ip("66.35.250.204"), 80),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        // Same flow seen from the other side.
        assert_eq!(
            community_id(6, ip("66.35.250.204"), 80, ip("128.232.110.120"), 34855),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(17, ip("192.168.1.52"), 54585, ip("8.8.8.8"), 53),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
        assert_eq!(
            community_id(1, ip("192.168.0.89"), 8, ip("192.168.0.1"), 0),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
        assert_eq!(
            community_id(1, ip("192.168.0.1"), 0, ip("192.168.0.89"), 0),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
    }
}
