//! Inventory: the devices on the home network, learned from the traffic itself.
//!
//! A device is a local unicast MAC address: the sender of a frame whose source IP is in
//! a configured local network, an ARP sender, or a DHCP client. For each we keep its
//! addresses over time, vendor (IEEE OUI registry), whether the MAC is randomized,
//! names from DHCP / mDNS / NetBIOS / SSDP, first/last seen and traffic counters.
//!
//! New and changed devices are published at once; counters and address refreshes are
//! published at most every `REFRESH` of packet time, so the store sees a few rows per
//! device per minute, not one per packet.

pub mod local;
pub mod oui;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Config;
use crate::decode::Arp;
use crate::event::{Event, MetaRecord};
use crate::flow::Direction;
use crate::proto::ProtoRecord;

const REFRESH_US: i64 = 30 * 1_000_000;

/// A device as published to the store and later stages.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceRecord {
    pub mac: [u8; 6],
    pub vendor: Option<&'static str>,
    /// Locally administered MAC: typically a phone's per-network random address.
    pub randomized: bool,
    pub first_seen: i64,
    pub last_seen: i64,
    pub hostname: Option<String>,
    pub hostname_source: Option<&'static str>,
    pub dhcp_vendor_class: Option<String>,
    /// DHCP option 55 parameter request list, comma-separated.
    pub dhcp_fingerprint: Option<String>,
    pub last_ipv4: Option<IpAddr>,
    pub last_ipv6: Option<IpAddr>,
    pub pkts_sent: u64,
    pub bytes_sent: u64,
    pub pkts_recv: u64,
    pub bytes_recv: u64,
    pub flows: u64,
    /// True on the first publication of this device.
    pub is_new: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceAddressRecord {
    pub mac: [u8; 6],
    pub addr: IpAddr,
    pub first_seen: i64,
    pub last_seen: i64,
    /// How the address was learned: "arp", "dhcp", "ip".
    pub source: &'static str,
}

struct Addr {
    first: i64,
    last: i64,
    published_last: i64,
    source: &'static str,
}

struct Device {
    rec: DeviceRecord,
    addrs: HashMap<IpAddr, Addr>,
    /// Identity changed (name, address, DHCP facts): publish now.
    changed: bool,
    /// Only counters moved: publish at the next refresh.
    dirty: bool,
}

pub struct Inventory {
    devices: HashMap<[u8; 6], Device, foldhash::fast::RandomState>,
    local: local::LocalNets,
    last_refresh: i64,
}

fn usable_mac(mac: [u8; 6]) -> bool {
    !oui::is_multicast(mac) && mac != [0; 6]
}

impl Inventory {
    pub fn new(cfg: &Config) -> Self {
        Inventory {
            devices: HashMap::with_hasher(Default::default()),
            local: local::LocalNets::new(cfg),
            last_refresh: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.local.contains(ip)
    }

    /// Prefixes earlier runs learned (see [`local::stored_prefixes`]).
    pub fn seed_prefixes(&mut self, nets: &[ipnet::IpNet]) {
        self.local.learn_all(nets);
    }

    fn device(&mut self, mac: [u8; 6], ts: i64) -> &mut Device {
        self.devices.entry(mac).or_insert_with(|| Device {
            rec: DeviceRecord {
                mac,
                vendor: oui::vendor(mac),
                randomized: oui::is_locally_administered(mac),
                first_seen: ts,
                last_seen: ts,
                hostname: None,
                hostname_source: None,
                dhcp_vendor_class: None,
                dhcp_fingerprint: None,
                last_ipv4: None,
                last_ipv6: None,
                pkts_sent: 0,
                bytes_sent: 0,
                pkts_recv: 0,
                bytes_recv: 0,
                flows: 0,
                is_new: true,
            },
            addrs: HashMap::new(),
            changed: true,
            dirty: false,
        })
    }

    fn see_addr(&mut self, mac: [u8; 6], ip: IpAddr, ts: i64, source: &'static str) {
        if ip.is_unspecified() || ip.is_multicast() {
            return;
        }
        if let IpAddr::V4(v4) = ip
            && v4.is_broadcast()
        {
            return;
        }
        let d = self.device(mac, ts);
        match d.addrs.get_mut(&ip) {
            Some(a) => {
                a.last = a.last.max(ts);
                a.first = a.first.min(ts);
                // ARP and DHCP say more than "seen in a packet" (the DHCP server's
                // answer to a client passes here before its DHCP record does).
                if a.source == "ip" && source != "ip" {
                    a.source = source;
                    a.published_last = i64::MIN;
                    d.changed = true;
                }
            }
            None => {
                d.addrs.insert(
                    ip,
                    Addr {
                        first: ts,
                        last: ts,
                        published_last: i64::MIN,
                        source,
                    },
                );
                d.changed = true;
            }
        }
        let slot = if ip.is_ipv4() {
            &mut d.rec.last_ipv4
        } else {
            &mut d.rec.last_ipv6
        };
        // A dual-stack device alternates between its link-local address (mDNS,
        // neighbour discovery) and its global ones: the latest routable address is the
        // one worth showing. The address itself is published above when new, so the
        // device row follows at the next refresh.
        let link_local = |a: IpAddr| matches!(a, IpAddr::V6(v) if v.is_unicast_link_local());
        if *slot != Some(ip) && (!link_local(ip) || slot.is_none_or(link_local)) {
            *slot = Some(ip);
            d.dirty = true;
        }
    }

    /// Accounts an IP packet (or any frame, with `src_ip`/`dst_ip` None). A local address
    /// on either side names its MAC's device: a host that only receives (a printer, a
    /// camera whose answers the mirror port misses) is still on the network.
    pub fn on_packet(
        &mut self,
        ts: i64,
        src_mac: Option<[u8; 6]>,
        dst_mac: Option<[u8; 6]>,
        src_ip: Option<IpAddr>,
        dst_ip: Option<IpAddr>,
        wire_len: u32,
    ) {
        if let Some(m) = src_mac.filter(|m| usable_mac(*m)) {
            let local_src = src_ip.map(|ip| ip.is_unspecified() || self.is_local(ip));
            if local_src == Some(true)
                && let Some(ip) = src_ip
            {
                self.see_addr(m, ip, ts, "ip");
            }
            if let Some(d) = self.devices.get_mut(&m) {
                d.rec.last_seen = d.rec.last_seen.max(ts);
                d.rec.pkts_sent += 1;
                d.rec.bytes_sent += wire_len as u64;
                d.dirty = true;
            }
        }
        if let Some(m) = dst_mac.filter(|m| usable_mac(*m))
            && let Some(ip) = dst_ip.filter(|ip| self.is_local(*ip))
        {
            self.see_addr(m, ip, ts, "ip");
        }
        if let Some(m) = dst_mac
            && let Some(d) = self.devices.get_mut(&m)
        {
            d.rec.pkts_recv += 1;
            d.rec.bytes_recv += wire_len as u64;
            d.dirty = true;
        }
    }

    pub fn on_arp(&mut self, ts: i64, arp: &Arp) {
        if usable_mac(arp.sender_mac) && !arp.sender_ip.is_unspecified() {
            self.see_addr(arp.sender_mac, IpAddr::V4(arp.sender_ip), ts, "arp");
        }
    }

    /// A new flow started between these MACs.
    pub fn on_new_flow(&mut self, orig_mac: Option<[u8; 6]>, resp_mac: Option<[u8; 6]>) {
        for m in [orig_mac, resp_mac].into_iter().flatten() {
            if let Some(d) = self.devices.get_mut(&m) {
                d.rec.flows += 1;
                d.dirty = true;
            }
        }
    }

    /// Learns from protocol metadata: DHCP identities and announced names.
    pub fn on_meta(&mut self, m: &MetaRecord) {
        match &m.record {
            ProtoRecord::Dhcp(d) => {
                let mac = d.client_mac;
                if !usable_mac(mac) {
                    return;
                }
                let ts = d.ts;
                // A DHCPACK's yiaddr is the address the client now holds.
                if d.msg_type == 5
                    && let Some(ip) = d.your_ip
                {
                    self.see_addr(mac, IpAddr::V4(ip), ts, "dhcp");
                }
                let dev = self.device(mac, ts);
                dev.rec.last_seen = dev.rec.last_seen.max(ts);
                if let Some(h) = d.hostname.as_ref().filter(|h| !h.is_empty())
                    && dev.rec.hostname.as_deref() != Some(h)
                {
                    dev.rec.hostname = Some(h.clone());
                    dev.rec.hostname_source = Some("dhcp");
                    dev.changed = true;
                }
                if let Some(v) = &d.vendor_class
                    && dev.rec.dhcp_vendor_class.as_ref() != Some(v)
                {
                    dev.rec.dhcp_vendor_class = Some(v.clone());
                    dev.changed = true;
                }
                if !d.param_list.is_empty() {
                    let fp = d
                        .param_list
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",");
                    if dev.rec.dhcp_fingerprint.as_ref() != Some(&fp) {
                        dev.rec.dhcp_fingerprint = Some(fp);
                        dev.changed = true;
                    }
                }
            }
            ProtoRecord::Name(n) if n.kind == "hostname" => {
                let mac = match n.dir {
                    Direction::Orig => m.orig_mac,
                    Direction::Resp => m.resp_mac,
                };
                let Some(mac) = mac.filter(|m| self.devices.contains_key(m)) else {
                    return;
                };
                let dev = self.device(mac, n.ts);
                // DHCP's option 12 is what the device calls itself; keep it over mDNS.
                if dev.rec.hostname_source != Some("dhcp")
                    && dev.rec.hostname.as_ref() != Some(&n.name)
                {
                    dev.rec.hostname = Some(n.name.clone());
                    dev.rec.hostname_source = Some(n.source);
                    dev.changed = true;
                }
            }
            ProtoRecord::RouterAdvert(_) => {
                self.local.learn_from(&m.record);
            }
            _ => {}
        }
    }

    /// Publishes new/changed devices now and counter refreshes every 30 s.
    pub fn publish(&mut self, now: i64, out: &mut Vec<Event>) {
        let refresh = self.last_refresh == i64::MIN || now - self.last_refresh >= REFRESH_US;
        if refresh {
            self.last_refresh = now;
        }
        self.emit_where(out, |d| d.changed || (refresh && d.dirty));
    }

    /// Publishes everything not yet published (end of capture).
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        self.emit_where(out, |d| d.changed || d.dirty);
    }

    /// Emits the devices `due` picks, in MAC order (and each one's addresses in address
    /// order), not in the maps' per-run random order: rules such as `new_device` number
    /// their alerts in the order devices arrive, and a replay must number them alike.
    fn emit_where(&mut self, out: &mut Vec<Event>, due: impl Fn(&Device) -> bool) {
        let mut macs: Vec<[u8; 6]> = self
            .devices
            .iter()
            .filter(|(_, d)| due(d))
            .map(|(m, _)| *m)
            .collect();
        macs.sort_unstable();
        for m in macs {
            if let Some(d) = self.devices.get_mut(&m) {
                Self::emit(d, out);
            }
        }
    }

    fn emit(d: &mut Device, out: &mut Vec<Event>) {
        out.push(Event::Device(Box::new(d.rec.clone())));
        d.rec.is_new = false;
        d.changed = false;
        d.dirty = false;
        let first = out.len();
        for (ip, a) in d.addrs.iter_mut() {
            if a.published_last != a.last {
                a.published_last = a.last;
                out.push(Event::DeviceAddress(DeviceAddressRecord {
                    mac: d.rec.mac,
                    addr: *ip,
                    first_seen: a.first,
                    last_seen: a.last,
                    source: a.source,
                }));
            }
        }
        out[first..].sort_unstable_by_key(|e| match e {
            Event::DeviceAddress(a) => Some(a.addr),
            _ => None,
        });
    }
}
