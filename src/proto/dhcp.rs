//! DHCPv4 messages: one [`DhcpRecord`] per packet, carrying what identifies a
//! device (MAC, host name, vendor class, parameter-request-list fingerprint) and
//! what the server handed out (address, lease, router, DNS servers).
//!
//! Uses the zero-copy `dhcproto::v4::borrowed::Message`, whose option iterator
//! stops cleanly at malformed options. The client MAC is read from the fixed
//! chaddr field directly because the crate's accessor trusts the hlen byte.

use std::net::Ipv4Addr;

use dhcproto::v4::borrowed::Message;
use serde::Serialize;

use super::dns::lossy;
use super::{ProtoRecord, Ts};

const MAX_LIST: usize = 64;

/// One DHCP message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DhcpRecord {
    pub ts: Ts,
    /// Option 53 (0 when absent: plain BOOTP).
    pub msg_type: u8,
    pub xid: u32,
    /// chaddr (first 6 bytes).
    pub client_mac: [u8; 6],
    /// ciaddr.
    pub client_ip: Option<Ipv4Addr>,
    /// yiaddr.
    pub your_ip: Option<Ipv4Addr>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 60.
    pub vendor_class: Option<String>,
    /// Option 55 in order: the client's fingerprint.
    pub param_list: Vec<u8>,
    /// Option 51.
    pub lease_secs: Option<u32>,
    /// Option 3 (first router).
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
}

/// Name of a DHCP message type (option 53).
pub fn dhcp_msg_type_name(t: u8) -> &'static str {
    match t {
        1 => "DISCOVER",
        2 => "OFFER",
        3 => "REQUEST",
        4 => "DECLINE",
        5 => "ACK",
        6 => "NAK",
        7 => "RELEASE",
        8 => "INFORM",
        9 => "FORCERENEW",
        10 => "LEASEQUERY",
        11 => "LEASEUNASSIGNED",
        12 => "LEASEUNKNOWN",
        13 => "LEASEACTIVE",
        _ => "UNKNOWN",
    }
}

fn nonzero(a: Ipv4Addr) -> Option<Ipv4Addr> {
    (!a.is_unspecified()).then_some(a)
}

/// First address of an option, unless absent or 0.0.0.0.
fn ipv4(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data.get(..4)?)
        .ok()
        .map(Ipv4Addr::from)
        .and_then(nonzero)
}

/// Decodes one DHCP packet; `None` if it is not DHCPv4/BOOTP.
pub(crate) fn parse(ts: Ts, payload: &[u8]) -> Option<DhcpRecord> {
    let msg = Message::new(payload).ok()?;
    let op = payload[0];
    if op != 1 && op != 2 {
        return None;
    }
    let mut client_mac = [0u8; 6];
    client_mac.copy_from_slice(&payload[28..34]);
    let mut rec = DhcpRecord {
        ts,
        msg_type: 0,
        xid: msg.xid(),
        client_mac,
        client_ip: nonzero(msg.ciaddr()),
        your_ip: nonzero(msg.yiaddr()),
        requested_ip: None,
        server_id: None,
        hostname: None,
        vendor_class: None,
        param_list: Vec::new(),
        lease_secs: None,
        router: None,
        dns_servers: Vec::new(),
    };
    for opt in msg.opts() {
        let data = opt.data();
        match u8::from(opt.code()) {
            53 => rec.msg_type = data.first().copied().unwrap_or(0),
            50 => rec.requested_ip = ipv4(data),
            54 => rec.server_id = ipv4(data),
            12 => rec.hostname = Some(lossy(data, 255)),
            60 => rec.vendor_class = Some(lossy(data, 255)),
            55 => rec.param_list = data.iter().copied().take(MAX_LIST).collect(),
            51 => {
                rec.lease_secs = data
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            3 => rec.router = ipv4(data),
            6 => {
                rec.dns_servers = data
                    .chunks_exact(4)
                    .take(MAX_LIST)
                    .filter_map(ipv4)
                    .collect();
            }
            _ => {}
        }
    }
    Some(rec)
}

/// Handles one UDP payload on a DHCP port; false when it was not DHCP.
pub(crate) fn on_udp(ts: Ts, payload: &[u8], out: &mut Vec<ProtoRecord>) -> bool {
    match parse(ts, payload) {
        Some(r) => {
            out.push(ProtoRecord::Dhcp(r));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(op: u8, mac: [u8; 6], yiaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = op;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        p[16..20].copy_from_slice(&yiaddr);
        p[28..34].copy_from_slice(&mac);
        p[236..240].copy_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(opts);
        p.push(255);
        p
    }

    const MAC: [u8; 6] = [0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03];

    fn discover() -> Vec<u8> {
        let mut o = vec![53, 1, 1];
        o.extend_from_slice(&[55, 6, 1, 121, 3, 6, 15, 119]);
        o.extend_from_slice(&[50, 4, 192, 168, 1, 23]);
        o.extend_from_slice(&[12, 11]);
        o.extend_from_slice(b"Johns-Phone");
        o.extend_from_slice(&[60, 14]);
        o.extend_from_slice(b"android-dhcp-1");
        o.extend_from_slice(&[0, 0]); // padding
        packet(1, MAC, [0; 4], &o)
    }

    #[test]
    fn client_discover() {
        let r = parse(7, &discover()).unwrap();
        assert_eq!(r.msg_type, 1);
        assert_eq!(dhcp_msg_type_name(r.msg_type), "DISCOVER");
        assert_eq!(r.xid, 0xdead_beef);
        assert_eq!(r.client_mac, MAC);
        assert_eq!(r.param_list, vec![1, 121, 3, 6, 15, 119]);
        assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 168, 1, 23)));
        assert_eq!(r.hostname.as_deref(), Some("Johns-Phone"));
        assert_eq!(r.vendor_class.as_deref(), Some("android-dhcp-1"));
        assert_eq!(r.client_ip, None);
    }

    #[test]
    fn server_ack() {
        let mut o = vec![53, 1, 5, 54, 4, 192, 168, 1, 1, 51, 4, 0, 0, 0x0e, 0x10];
        o.extend_from_slice(&[3, 4, 192, 168, 1, 1, 6, 8, 1, 1, 1, 1, 8, 8, 8, 8]);
        let r = parse(0, &packet(2, MAC, [192, 168, 1, 23], &o)).unwrap();
        assert_eq!(dhcp_msg_type_name(r.msg_type), "ACK");
        assert_eq!(r.your_ip, Some(Ipv4Addr::new(192, 168, 1, 23)));
        assert_eq!(r.server_id, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(r.lease_secs, Some(3600));
        assert_eq!(r.router, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(
            r.dns_servers,
            vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)]
        );
    }

    #[test]
    fn zero_addresses_are_absent() {
        let o = [53, 1, 1, 50, 4, 0, 0, 0, 0];
        let r = parse(0, &packet(1, MAC, [0; 4], &o)).unwrap();
        assert_eq!(r.requested_ip, None);
        assert_eq!(r.your_ip, None);
    }

    #[test]
    fn truncated_and_garbage() {
        let d = discover();
        for n in 0..d.len() {
            let r = parse(0, &d[..n]);
            if n < 240 {
                assert!(r.is_none());
            }
        }
        // Huge hlen, option lengths running past the end, short addresses.
        let mut bad = packet(1, MAC, [0; 4], &[50, 2, 1, 2, 6, 3, 1, 2, 3, 55, 200, 1]);
        bad[2] = 255;
        let r = parse(0, &bad).unwrap();
        assert_eq!(r.requested_ip, None);
        assert!(r.dns_servers.is_empty());
        assert!(parse(0, &[0u8; 300]).is_none());
        let mut x: u32 = 7;
        for _ in 0..500 {
            let mut buf = packet(1, MAC, [0; 4], &[]);
            buf.pop();
            for _ in 0..(x % 100) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(x as u8);
            }
            let _ = parse(0, &buf);
        }
    }
}
