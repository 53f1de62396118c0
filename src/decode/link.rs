//! Link layers netguardian understands, and how to peel each one off.
//!
//! libpcap tells us the data link type (DLT) of a capture; every other stage only
//! wants "MAC addresses if any, the EtherType, and the bytes after the link header".
//! Keeping the link types here means adding one (say, 802.11 radiotap) touches one file.

/// The link types we decode. Anything else is counted as unsupported, never an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// DLT_EN10MB: Ethernet II, possibly with 802.1Q / 802.1ad (QinQ) tags.
    Ethernet,
    /// DLT_LINUX_SLL: Linux "cooked" capture v1 (`tcpdump -i any` on older libpcap).
    LinuxSll,
    /// DLT_LINUX_SLL2: Linux cooked capture v2.
    LinuxSll2,
    /// DLT_RAW / LINKTYPE_RAW, DLT_IPV4, DLT_IPV6: the packet starts with the IP header.
    RawIp,
    /// DLT_NULL (host byte order family) and DLT_LOOP (network byte order family).
    Null,
    /// A link type we do not decode; the number is libpcap's DLT.
    Unsupported(i32),
}

impl LinkType {
    /// Maps a libpcap DLT / LINKTYPE number to the link types we decode.
    pub fn from_dlt(dlt: i32) -> LinkType {
        match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            // DLT_RAW is 12 on most platforms, 14 on OpenBSD; LINKTYPE_RAW is 101.
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            0 | 108 => LinkType::Null,
            other => LinkType::Unsupported(other),
        }
    }
}

/// What remains of a frame once its link header is removed.
pub struct LinkFrame<'a> {
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    /// EtherType of `payload`; for raw IP this is derived from the IP version nibble.
    pub ether_type: u16,
    /// Set when the link header says the payload starts directly with VLAN tags etc.
    pub payload: &'a [u8],
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// Why a link header could not be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    Truncated,
    /// Null/loopback family or raw IP version we do not know.
    UnknownFamily,
}

/// Copies the first six bytes of `b` (callers check the length).
pub fn mac6(b: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    m
}

/// Strips the link header of `data` (captured bytes) for `link`.
///
/// Ethernet VLAN tags are left in place: etherparse walks them (and QinQ) for us.
pub fn strip(link: LinkType, data: &[u8]) -> Result<LinkFrame<'_>, LinkError> {
    match link {
        LinkType::Ethernet => {
            if data.len() < 14 {
                return Err(LinkError::Truncated);
            }
            Ok(LinkFrame {
                dst_mac: Some(mac6(&data[0..6])),
                src_mac: Some(mac6(&data[6..12])),
                ether_type: u16::from_be_bytes([data[12], data[13]]),
                payload: &data[14..],
            })
        }
        LinkType::LinuxSll => {
            // packet type(2) arphrd(2) addr len(2) addr(8) protocol(2)
            if data.len() < 16 {
                return Err(LinkError::Truncated);
            }
            let arphrd = u16::from_be_bytes([data[2], data[3]]);
            let alen = u16::from_be_bytes([data[4], data[5]]) as usize;
            let src = (arphrd == 1 && alen == 6).then(|| mac6(&data[6..12]));
            Ok(LinkFrame {
                src_mac: src,
                dst_mac: None,
                ether_type: u16::from_be_bytes([data[14], data[15]]),
                payload: &data[16..],
            })
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) addr len(1) addr(8)
            if data.len() < 20 {
                return Err(LinkError::Truncated);
            }
            let arphrd = u16::from_be_bytes([data[8], data[9]]);
            let alen = data[11] as usize;
            let src = (arphrd == 1 && alen == 6).then(|| mac6(&data[12..18]));
            Ok(LinkFrame {
                src_mac: src,
                dst_mac: None,
                ether_type: u16::from_be_bytes([data[0], data[1]]),
                payload: &data[20..],
            })
        }
        LinkType::RawIp => {
            let first = *data.first().ok_or(LinkError::Truncated)?;
            let ether_type = match first >> 4 {
                4 => ETHERTYPE_IPV4,
                6 => ETHERTYPE_IPV6,
                _ => return Err(LinkError::UnknownFamily),
            };
            Ok(LinkFrame {
                src_mac: None,
                dst_mac: None,
                ether_type,
                payload: data,
            })
        }
        LinkType::Null => {
            if data.len() < 4 {
                return Err(LinkError::Truncated);
            }
            // The family is in the writer's byte order (DLT_NULL) or network order
            // (DLT_LOOP); accept both by looking for the known values either way.
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let fam = |v: u32| match v {
                2 => Some(ETHERTYPE_IPV4),
                // AF_INET6 differs per OS: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS.
                10 | 24 | 28 | 30 => Some(ETHERTYPE_IPV6),
                _ => None,
            };
            let ether_type = fam(le)
                .or_else(|| fam(be))
                .ok_or(LinkError::UnknownFamily)?;
            Ok(LinkFrame {
                src_mac: None,
                dst_mac: None,
                ether_type,
                payload: &data[4..],
            })
        }
        LinkType::Unsupported(_) => Err(LinkError::UnknownFamily),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlt_mapping() {
        assert_eq!(LinkType::from_dlt(1), LinkType::Ethernet);
        assert_eq!(LinkType::from_dlt(113), LinkType::LinuxSll);
        assert_eq!(LinkType::from_dlt(276), LinkType::LinuxSll2);
        assert_eq!(LinkType::from_dlt(101), LinkType::RawIp);
        assert_eq!(LinkType::from_dlt(0), LinkType::Null);
        assert_eq!(LinkType::from_dlt(105), LinkType::Unsupported(105));
    }

    #[test]
    fn null_family_both_byte_orders() {
        let mut pkt = vec![2, 0, 0, 0, 0x45];
        assert_eq!(
            strip(LinkType::Null, &pkt).unwrap().ether_type,
            ETHERTYPE_IPV4
        );
        pkt[..4].copy_from_slice(&30u32.to_be_bytes());
        assert_eq!(
            strip(LinkType::Null, &pkt).unwrap().ether_type,
            ETHERTYPE_IPV6
        );
        pkt[..4].copy_from_slice(&99u32.to_be_bytes());
        assert_eq!(
            strip(LinkType::Null, &pkt).err(),
            Some(LinkError::UnknownFamily)
        );
    }

    #[test]
    fn every_prefix_is_handled() {
        let sll2: Vec<u8> = (0..40).collect();
        for link in [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Null,
        ] {
            for n in 0..sll2.len() {
                let _ = strip(link, &sll2[..n]);
            }
        }
    }
}
