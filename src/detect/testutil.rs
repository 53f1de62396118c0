//! Synthetic events for the rule tests, built from the real record types.

use std::net::{IpAddr, Ipv4Addr};

use super::{Alert, Ctx, Rule};
use crate::config::Config;
use crate::event::{Event, MetaRecord};
use crate::flow::{DirSummary, EndReason, FlowRecord};
use crate::inventory::{DeviceAddressRecord, DeviceRecord};
use crate::proto::{
    CleartextRecord, DhcpRecord, DnsAnswer, DnsRecord, HttpRecord, ProtoRecord, TlsRecord,
};

pub const T0: i64 = 1_700_000_000_000_000;
pub const S: i64 = 1_000_000;
pub(crate) use super::SEC;

pub const DEV_MAC: [u8; 6] = [0xb8, 0x27, 0xeb, 0x11, 0x22, 0x33];
pub const DEV2_MAC: [u8; 6] = [0xb8, 0x27, 0xeb, 0x11, 0x22, 0x44];
pub const GW_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0x44, 0x55, 0x66];
pub const ATT_MAC: [u8; 6] = [0x00, 0x0c, 0x29, 0x66, 0x66, 0x66];
pub const DEV_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
pub const DEV2_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 11));
pub const GW_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
pub const ATT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 66));
pub const WAN_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The MAC a test address lives at: known constants, other local addresses a MAC made
/// from the address, internet addresses behind the gateway.
pub fn mac_of(a: IpAddr) -> [u8; 6] {
    match a {
        DEV_IP => DEV_MAC,
        DEV2_IP => DEV2_MAC,
        GW_IP => GW_MAC,
        ATT_IP => ATT_MAC,
        IpAddr::V4(v) if v.is_private() => {
            let o = v.octets();
            [0x00, 0x16, 0x3e, o[1], o[2], o[3]]
        }
        _ => GW_MAC,
    }
}

pub fn ctx() -> Ctx {
    Ctx::new(&Config::default())
}

pub fn ctx_with(f: impl FnOnce(&mut Config)) -> Ctx {
    let mut c = Config::default();
    f(&mut c);
    Ctx::new(&c)
}

/// Runs one rule over events (learning into `ctx` first, as the engine does), with a
/// tick after every event and a finish at the end.
pub fn run_rule(rule: &mut dyn Rule, ctx: &mut Ctx, events: &[Event]) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut last_tick = i64::MIN;
    for ev in events {
        ctx.observe(ev);
        rule.on_event(ctx, ev, &mut out);
        if last_tick == i64::MIN || ctx.now >= last_tick + S {
            last_tick = ctx.now;
            rule.tick(ctx, ctx.now, &mut out);
        }
    }
    rule.finish(ctx, &mut out);
    out
}

pub fn ids(alerts: &[Alert]) -> Vec<&'static str> {
    alerts.iter().map(|a| a.rule).collect()
}

/// A flow record under construction. Defaults: a 1 s exchange with data both ways.
#[derive(Clone)]
pub struct FlowB(pub FlowRecord);

fn dir(pkts: u64, bytes: u64, payload: u64) -> DirSummary {
    DirSummary {
        pkts,
        bytes,
        payload_bytes: payload,
        ..Default::default()
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl FlowB {
    pub fn new(proto: u8, o: IpAddr, op: u16, r: IpAddr, rp: u16) -> FlowB {
        FlowB(FlowRecord {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            community_id: String::new(),
            proto,
            vlan: 0,
            orig_addr: o,
            orig_port: op,
            resp_addr: r,
            resp_port: rp,
            orig_mac: Some(mac_of(o)),
            resp_mac: Some(mac_of(r)),
            first_ts: T0,
            last_ts: T0 + S,
            orig: dir(10, 1500, 1000),
            resp: dir(10, 3000, 2500),
            conn_state: "SF",
            history: if proto == 6 {
                "ShADadFf".into()
            } else {
                "Dd".into()
            },
            app_proto: None,
            end_reason: EndReason::Closed,
            is_final: true,
        })
    }
    pub fn tcp(o: IpAddr, op: u16, r: IpAddr, rp: u16) -> FlowB {
        FlowB::new(6, o, op, r, rp)
    }
    pub fn udp(o: IpAddr, op: u16, r: IpAddr, rp: u16) -> FlowB {
        FlowB::new(17, o, op, r, rp)
    }
    /// An ICMP echo exchange (orig port = type 8, resp port = reply type 0).
    pub fn ping(o: IpAddr, r: IpAddr) -> FlowB {
        FlowB::new(1, o, 8, r, 0)
    }
    pub fn at(mut self, ts: i64) -> FlowB {
        let d = self.0.last_ts - self.0.first_ts;
        self.0.first_ts = ts;
        self.0.last_ts = ts + d;
        self
    }
    pub fn dur(mut self, us: i64) -> FlowB {
        self.0.last_ts = self.0.first_ts + us;
        self
    }
    pub fn state(mut self, conn_state: &'static str, history: &str) -> FlowB {
        self.0.conn_state = conn_state;
        self.0.history = history.into();
        self
    }
    pub fn orig(mut self, pkts: u64, bytes: u64, payload: u64) -> FlowB {
        self.0.orig = dir(pkts, bytes, payload);
        self
    }
    pub fn resp(mut self, pkts: u64, bytes: u64, payload: u64) -> FlowB {
        self.0.resp = dir(pkts, bytes, payload);
        self
    }
    /// A SYN that was never answered.
    pub fn s0(self) -> FlowB {
        let mut f = self.state("S0", "S").orig(1, 60, 0).resp(0, 0, 0).dur(0);
        f.0.orig.syn = 1;
        f
    }
    /// A SYN answered by RST.
    pub fn rej(self) -> FlowB {
        let mut f = self
            .state("REJ", "Sr")
            .orig(1, 60, 0)
            .resp(1, 54, 0)
            .dur(1000);
        f.0.orig.syn = 1;
        f.0.resp.rst = 1;
        f
    }
    pub fn macs(mut self, o: Option<[u8; 6]>, r: Option<[u8; 6]>) -> FlowB {
        self.0.orig_mac = o;
        self.0.resp_mac = r;
        self
    }
    pub fn update(mut self) -> FlowB {
        self.0.is_final = false;
        self.0.end_reason = EndReason::ActiveTimeout;
        self
    }
    pub fn build(self) -> FlowRecord {
        self.0
    }
    pub fn ev(self) -> Event {
        Event::Flow(self.0)
    }
}

pub fn meta(o: IpAddr, op: u16, r: IpAddr, rp: u16, proto: u8, record: ProtoRecord) -> Event {
    Event::Meta(Box::new(MetaRecord {
        flow_id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        proto,
        orig_addr: o,
        orig_port: op,
        resp_addr: r,
        resp_port: rp,
        orig_mac: Some(mac_of(o)),
        resp_mac: Some(mac_of(r)),
        record,
    }))
}

pub fn dns_rec(ts: i64, query: &str, qtype: u16, rcode: u16, answers: &[&str]) -> DnsRecord {
    DnsRecord {
        ts,
        trans_id: 1,
        query: query.into(),
        qtype,
        qclass: 1,
        rcode: Some(rcode),
        answers: answers
            .iter()
            .map(|a| DnsAnswer {
                name: query.into(),
                rtype: if a.contains(':') { 28 } else { 1 },
                ttl: 300,
                data: (*a).into(),
            })
            .collect(),
        rtt_us: Some(5000),
        over_tcp: false,
    }
}

/// An A query from the test device to the home resolver.
pub fn dns(ts: i64, query: &str, rcode: u16, answers: &[&str]) -> Event {
    dns_via(DEV_IP, GW_IP, ts, query, 1, rcode, answers)
}

pub fn dns_via(
    client: IpAddr,
    server: IpAddr,
    ts: i64,
    query: &str,
    qtype: u16,
    rcode: u16,
    answers: &[&str],
) -> Event {
    meta(
        client,
        50000,
        server,
        53,
        17,
        ProtoRecord::Dns(dns_rec(ts, query, qtype, rcode, answers)),
    )
}

pub fn tls_rec(ts: i64, sni: Option<&str>) -> TlsRecord {
    TlsRecord {
        ts,
        client_version: 0x0303,
        supported_versions: vec![0x0304, 0x0303],
        sni: sni.map(String::from),
        alpn: vec!["h2".into()],
        cipher_count: 16,
        ja3: String::new(),
        ja3_string: String::new(),
        ja4: String::new(),
        server_version: Some(0x0304),
        server_cipher: Some(0x1301),
        ja3s: None,
        cert_subject: None,
        cert_issuer: None,
        cert_not_before: None,
        cert_not_after: None,
        cert_san: Vec::new(),
        cert_self_signed: None,
    }
}

pub fn tls(client: IpAddr, server: IpAddr, rec: TlsRecord) -> Event {
    meta(client, 50000, server, 443, 6, ProtoRecord::Tls(rec))
}

pub fn http_rec(ts: i64, host: &str, auth: Option<(&str, &str)>) -> HttpRecord {
    HttpRecord {
        ts,
        method: "GET".into(),
        host: Some(host.into()),
        uri: "/".into(),
        user_agent: Some("test".into()),
        referrer: None,
        content_type: None,
        request_body_len: 0,
        status: Some(200),
        status_msg: Some("OK".into()),
        response_body_len: 100,
        auth_scheme: auth.map(|a| a.0.to_string()),
        auth_user: auth.map(|a| a.1.to_string()),
    }
}

pub fn dhcp_rec(ts: i64, msg_type: u8, client_mac: [u8; 6], server: Ipv4Addr) -> DhcpRecord {
    DhcpRecord {
        ts,
        msg_type,
        xid: 7,
        client_mac,
        client_ip: None,
        your_ip: Some(Ipv4Addr::new(192, 168, 1, 10)),
        requested_ip: None,
        server_id: Some(server),
        hostname: None,
        vendor_class: None,
        param_list: Vec::new(),
        lease_secs: Some(3600),
        router: Some(server),
        dns_servers: vec![server],
    }
}

/// A DHCPACK from the home router (resolver and gateway 192.168.1.1).
pub fn dhcp_ack(ts: i64, client: [u8; 6]) -> Event {
    let mut e = meta(
        GW_IP,
        67,
        ip("255.255.255.255"),
        68,
        17,
        ProtoRecord::Dhcp(dhcp_rec(ts, 5, client, Ipv4Addr::new(192, 168, 1, 1))),
    );
    if let Event::Meta(m) = &mut e {
        m.resp_mac = Some([0xff; 6]);
    }
    e
}

#[allow(clippy::too_many_arguments)]
pub fn cleartext(
    ts: i64,
    client: IpAddr,
    server: IpAddr,
    port: u16,
    protocol: &'static str,
    credentials: bool,
    user: Option<&str>,
    success: Option<bool>,
) -> Event {
    meta(
        client,
        50000,
        server,
        port,
        6,
        ProtoRecord::Cleartext(CleartextRecord {
            ts,
            protocol,
            credentials,
            user: user.map(String::from),
            success,
        }),
    )
}

pub fn device(ts: i64, mac: [u8; 6], hostname: Option<&str>, is_new: bool) -> Event {
    Event::Device(Box::new(DeviceRecord {
        mac,
        vendor: None,
        randomized: crate::inventory::oui::is_locally_administered(mac),
        first_seen: ts,
        last_seen: ts,
        hostname: hostname.map(String::from),
        hostname_source: hostname.map(|_| "dhcp"),
        dhcp_vendor_class: None,
        dhcp_fingerprint: None,
        last_ipv4: None,
        last_ipv6: None,
        pkts_sent: 1,
        bytes_sent: 60,
        pkts_recv: 0,
        bytes_recv: 0,
        flows: 0,
        is_new,
    }))
}

pub fn addr(first: i64, last: i64, mac: [u8; 6], a: IpAddr, source: &'static str) -> Event {
    Event::DeviceAddress(DeviceAddressRecord {
        mac,
        addr: a,
        first_seen: first,
        last_seen: last,
        source,
    })
}

/// A day of ordinary home traffic from two devices, in time order: browsing (DNS
/// through the home resolver, then TLS to CDNs), NTP, mDNS and SSDP chatter, a smart
/// plug polling its cloud API every minute, DHCP renewals, ARP refreshes, a phone
/// backing up a few MB, a Chromecast using 8.8.8.8, the router admin page on the LAN.
pub fn benign_day() -> Vec<Event> {
    let mut ev: Vec<Event> = Vec::new();
    let sites = [
        "www.google.com",
        "fonts.gstatic.com",
        "www.bbc.co.uk",
        "static.files.bbci.co.uk",
        "www.netflix.com",
        "occ-0-1234.nflxso.net",
        "github.com",
        "avatars.githubusercontent.com",
        "en.wikipedia.org",
        "upload.wikimedia.org",
        "d1x2y3z4abcd.cloudfront.net",
        "e1234.dscb.akamaiedge.net",
    ];
    let mut x: u64 = 12345;
    let mut rnd = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    ev.push(dhcp_ack(T0, DEV_MAC));
    ev.push(dhcp_ack(T0 + S, DEV2_MAC));
    for hour in 0..24i64 {
        let base = T0 + hour * 3600 * S;
        // Browsing in the evening hours.
        if (17..23).contains(&hour) {
            for i in 0..120 {
                let t = base + i * 29 * S + rnd(5) as i64 * S;
                let site = sites[rnd(sites.len() as u64) as usize];
                let server =
                    IpAddr::V4(Ipv4Addr::new(151, 101, (i % 7) as u8, (rnd(200) + 1) as u8));
                ev.push(dns(t, site, 0, &[&server.to_string()]));
                ev.push(tls(DEV_IP, server, tls_rec(t + 20_000, Some(site))));
                ev.push(
                    FlowB::tcp(DEV_IP, 40000 + i as u16, server, 443)
                        .at(t + 10_000)
                        .dur((5 + rnd(60) as i64) * S)
                        .orig(40, 8000, 5000)
                        .resp(80, 120_000, 110_000)
                        .ev(),
                );
                ev.push(
                    FlowB::udp(DEV_IP, 50000, GW_IP, 53)
                        .at(t)
                        .dur(5000)
                        .orig(1, 80, 40)
                        .resp(1, 120, 80)
                        .ev(),
                );
            }
        }
        // NTP every ~17 minutes to the pool.
        for k in 0..4 {
            let t = base + k * 1024 * S;
            ev.push(
                FlowB::udp(DEV_IP, 123, ip("162.159.200.1"), 123)
                    .at(t)
                    .dur(30_000)
                    .orig(1, 90, 48)
                    .resp(1, 90, 48)
                    .ev(),
            );
        }
        // Smart plug (DEV2) polls its cloud API every 60 s, resolved by name.
        for m in 0..60 {
            let t = base + m * 60 * S + rnd(3) as i64 * S;
            let api = ip("52.28.10.20");
            if m % 10 == 0 {
                ev.push(dns_via(
                    DEV2_IP,
                    GW_IP,
                    t - 50_000,
                    "api.plugcloud.example",
                    1,
                    0,
                    &["52.28.10.20"],
                ));
            }
            ev.push(
                FlowB::tcp(DEV2_IP, 30000 + m as u16, api, 443)
                    .at(t)
                    .dur(400_000)
                    .orig(8, 1200, 400)
                    .resp(8, 4800, 3900)
                    .ev(),
            );
        }
        // mDNS and SSDP chatter.
        for k in 0..12 {
            let t = base + k * 300 * S;
            ev.push(
                FlowB::udp(DEV_IP, 5353, ip("224.0.0.251"), 5353)
                    .at(t)
                    .orig(2, 300, 200)
                    .resp(0, 0, 0)
                    .state("S0", "D")
                    .ev(),
            );
            ev.push(
                FlowB::udp(DEV2_IP, 50123, ip("239.255.255.250"), 1900)
                    .at(t)
                    .orig(3, 500, 400)
                    .resp(0, 0, 0)
                    .state("S0", "D")
                    .ev(),
            );
        }
        // Chromecast (DEV2) asks Google's resolver directly.
        ev.push(dns_via(
            DEV2_IP,
            ip("8.8.8.8"),
            base + 100 * S,
            "clients3.google.com",
            1,
            0,
            &["142.250.1.1"],
        ));
        // Router admin page over HTTP on the LAN, once.
        if hour == 20 {
            ev.push(meta(
                DEV_IP,
                50001,
                GW_IP,
                80,
                6,
                ProtoRecord::Http(http_rec(base, "192.168.1.1", None)),
            ));
        }
        // Phone photo backup: a few MB up, hourly, to a host it looks up.
        ev.push(dns(
            base + 1799 * S,
            "p42-content.icloud.example",
            0,
            &["17.248.1.1"],
        ));
        ev.push(
            FlowB::tcp(DEV_IP, 45000, ip("17.248.1.1"), 443)
                .at(base + 1800 * S)
                .dur(60 * S)
                .orig(3000, 4_000_000, 3_800_000)
                .resp(1500, 100_000, 40_000)
                .ev(),
        );
        // ARP refreshes and DHCP renewals.
        ev.push(addr(T0, base, DEV_MAC, DEV_IP, "arp"));
        ev.push(addr(T0, base, DEV2_MAC, DEV2_IP, "arp"));
        ev.push(addr(T0, base, GW_MAC, GW_IP, "arp"));
        if hour % 12 == 0 {
            ev.push(dhcp_ack(base + 5 * S, DEV_MAC));
        }
    }
    ev.sort_by_key(|e| super::event_ts(e).unwrap_or(0));
    ev
}
