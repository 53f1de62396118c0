//! Device features for the anomaly models (feature schema v1): what each home device
//! did per epoch-aligned 60 s window of packet time, aggregated from the flow records
//! and protocol records on the event bus. The definitions here are written into
//! `feature_schema` next to the flow features (see [`super::features`]).
//!
//! Attribution: a flow or record belongs to its local side ([`super::features::device_of`]);
//! "out" is what that device sent. A flow counts in the window of its latest packet
//! (`last_ts`); long flows' active-timeout updates add only the bytes since the previous
//! record, and the flow itself counts once. Windows stay open for [`GRACE_SECS`] after
//! they end (flow records arrive after their idle timeout); anything later for a
//! closed window is counted in the oldest open one. Devices without traffic in a window
//! get no row. Every per-window set and the per-device "seen destinations" memory is
//! capped, so a flood of spoofed peers costs a fixed amount of memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use super::features::{FeatureDef, StateClass, def, state_class};
use crate::event::MetaRecord;
use crate::flow::FlowRecord;
use crate::proto::ProtoRecord;

/// Window length (the trainer's `WINDOW_SECS`).
pub const WINDOW_SECS: i64 = 60;
const WINDOW_US: i64 = WINDOW_SECS * 1_000_000;
/// How long a window waits for late flow records after it ends.
pub const GRACE_SECS: i64 = 60;
/// Most distinct items a window counts per set (peers, ports, SNIs).
const SET_CAP: usize = 4096;
/// Most (device, destination) pairs remembered for "new destinations"; when full the
/// memory starts over (everything is new once more).
const SEEN_CAP: usize = 200_000;
/// Most devices per window; more are ignored for that window (and counted).
const DEVICES_CAP: usize = 4096;
/// Most long flows whose byte counts are remembered between updates.
const OPEN_CAP: usize = 200_000;

pub const DEVICE_N: usize = 10;

/// Device features, schema v1, in column order (per MAC per 60 s window).
pub const DEVICE_FEATURES: [FeatureDef; DEVICE_N] = [
    def(
        "flows_log",
        "flows",
        "log1p",
        "flows of the device (either side) counted in the window",
    ),
    def(
        "distinct_peers_log",
        "addresses",
        "log1p",
        "distinct addresses on the other side of those flows",
    ),
    def(
        "distinct_ports_log",
        "ports",
        "log1p",
        "distinct responder ports of those flows (TCP/UDP)",
    ),
    def(
        "bytes_out_log",
        "bytes",
        "log1p",
        "wire bytes the device sent",
    ),
    def(
        "bytes_in_log",
        "bytes",
        "log1p",
        "wire bytes the device received",
    ),
    def(
        "new_destinations_log",
        "addresses",
        "log1p",
        "peers the device had not talked to before in this run",
    ),
    def(
        "dns_queries_log",
        "queries",
        "log1p",
        "DNS transactions the device made",
    ),
    def(
        "nxdomain_ratio",
        "ratio",
        "ratio",
        "share of those DNS transactions answered NXDOMAIN (0 without queries)",
    ),
    def(
        "distinct_snis_log",
        "names",
        "log1p",
        "distinct TLS server names the device asked for",
    ),
    def(
        "failed_connections_log",
        "flows",
        "log1p",
        "TCP connections the device initiated that were rejected or unanswered",
    ),
];

pub fn device_feature_names() -> [&'static str; DEVICE_N] {
    DEVICE_FEATURES.map(|d| d.name)
}

/// One device window, ready to be stored and scored.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRow {
    /// Window start, µs since the epoch (a multiple of 60 s).
    pub window_start: i64,
    pub mac: [u8; 6],
    pub values: [f64; DEVICE_N],
}

#[derive(Default, Debug)]
struct Acc {
    flows: u64,
    peers: HashSet<IpAddr>,
    ports: HashSet<u16>,
    bytes_out: u64,
    bytes_in: u64,
    new_dest: u64,
    dns: u64,
    nxdomain: u64,
    snis: HashSet<String>,
    failed: u64,
}

impl Acc {
    fn row(&self, window_start: i64, mac: [u8; 6]) -> DeviceRow {
        let l = |x: u64| (x as f64).ln_1p();
        let nx = if self.dns > 0 {
            (self.nxdomain as f64 / self.dns as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        DeviceRow {
            window_start,
            mac,
            values: [
                l(self.flows),
                l(self.peers.len() as u64),
                l(self.ports.len() as u64),
                l(self.bytes_out),
                l(self.bytes_in),
                l(self.new_dest),
                l(self.dns),
                nx,
                l(self.snis.len() as u64),
                l(self.failed),
            ],
        }
    }
}

/// Aggregates device windows from events (packet time only).
pub struct DeviceWindows {
    is_local: Box<dyn Fn(IpAddr) -> bool + Send>,
    windows: BTreeMap<i64, HashMap<[u8; 6], Acc>>,
    /// Start of the oldest window still open; earlier windows have been emitted.
    open_from: i64,
    seen: HashSet<([u8; 6], IpAddr)>,
    /// Bytes (out, in as seen from the flow's initiator) already counted per long flow.
    counted: HashMap<u64, (u64, u64)>,
    /// Records dropped because a window had too many devices.
    pub overflow: u64,
}

fn window_of(ts: i64) -> i64 {
    ts.div_euclid(WINDOW_US) * WINDOW_US
}

impl DeviceWindows {
    pub fn new(is_local: Box<dyn Fn(IpAddr) -> bool + Send>) -> DeviceWindows {
        DeviceWindows {
            is_local,
            windows: BTreeMap::new(),
            open_from: i64::MIN,
            seen: HashSet::new(),
            counted: HashMap::new(),
            overflow: 0,
        }
    }

    /// Marks (device, peer) pairs as already seen, so that a restart does not make
    /// every destination of the first windows look new. Returns how many were added.
    pub fn prime(&mut self, pairs: impl IntoIterator<Item = ([u8; 6], IpAddr)>) -> usize {
        let before = self.seen.len();
        for p in pairs {
            if self.seen.len() >= SEEN_CAP {
                break;
            }
            self.seen.insert(p);
        }
        self.seen.len() - before
    }

    /// The (device, peer) pairs of the stored flows of the last `days` before the newest
    /// one (packet time), as [`DeviceWindows::on_flow`] would have seen them: what
    /// [`DeviceWindows::prime`] takes at start.
    pub fn seen_in_store(
        conn: &duckdb::Connection,
        is_local: &dyn Fn(IpAddr) -> bool,
        days: u32,
    ) -> duckdb::Result<Vec<([u8; 6], IpAddr)>> {
        let mut st = conn.prepare(&format!(
            "SELECT DISTINCT orig_mac, orig_addr, resp_mac, resp_addr FROM flows \
             WHERE ts >= (SELECT max(ts) FROM flows) - INTERVAL {days} DAY LIMIT {SEEN_CAP}"
        ))?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mac = |m: Option<String>| m.as_deref().and_then(crate::detect::config::parse_mac);
        let mut out = Vec::new();
        for row in rows {
            let (om, oa, rm, ra) = row?;
            let (Ok(oa), Ok(ra)) = (oa.parse::<IpAddr>(), ra.parse::<IpAddr>()) else {
                continue;
            };
            if let Some((m, is_orig)) =
                super::features::device_of(is_local, (oa, mac(om)), (ra, mac(rm)))
            {
                out.push((m, if is_orig { ra } else { oa }));
            }
        }
        Ok(out)
    }

    fn acc(&mut self, ts: i64, mac: [u8; 6]) -> Option<&mut Acc> {
        let w = window_of(ts).max(self.open_from);
        let win = self.windows.entry(w).or_default();
        if win.len() >= DEVICES_CAP && !win.contains_key(&mac) {
            self.overflow += 1;
            return None;
        }
        Some(win.entry(mac).or_default())
    }

    /// Accounts a flow record (final or an active-timeout update).
    pub fn on_flow(&mut self, f: &FlowRecord) {
        let Some((mac, is_orig)) = super::features::device_of(
            &*self.is_local,
            (f.orig_addr, f.orig_mac),
            (f.resp_addr, f.resp_mac),
        ) else {
            return;
        };
        let (o, r) = (f.orig.bytes, f.resp.bytes);
        let first = !self.counted.contains_key(&f.id);
        let (po, pr) = self.counted.get(&f.id).copied().unwrap_or((0, 0));
        if f.is_final {
            self.counted.remove(&f.id);
        } else if !first || self.counted.len() < OPEN_CAP {
            self.counted.insert(f.id, (o, r));
        }
        let (d_o, d_r) = (o.saturating_sub(po), r.saturating_sub(pr));
        let (peer, out, inn) = if is_orig {
            (f.resp_addr, d_o, d_r)
        } else {
            (f.orig_addr, d_r, d_o)
        };
        let new_peer = first && !self.seen.contains(&(mac, peer));
        if new_peer {
            if self.seen.len() >= SEEN_CAP {
                self.seen.clear();
            }
            self.seen.insert((mac, peer));
        }
        let failed = first
            && is_orig
            && f.proto == 6
            && matches!(
                state_class(f.conn_state),
                StateClass::Rejected | StateClass::Unanswered
            );
        let ported = matches!(f.proto, 6 | 17);
        let Some(a) = self.acc(f.last_ts, mac) else {
            return;
        };
        a.bytes_out = a.bytes_out.saturating_add(out);
        a.bytes_in = a.bytes_in.saturating_add(inn);
        if first {
            a.flows += 1;
            if a.peers.len() < SET_CAP {
                a.peers.insert(peer);
            }
            if ported && a.ports.len() < SET_CAP {
                a.ports.insert(f.resp_port);
            }
        }
        if new_peer {
            a.new_dest += 1;
        }
        if failed {
            a.failed += 1;
        }
    }

    /// Accounts a protocol record: DNS transactions and TLS server names of the device
    /// that initiated them.
    pub fn on_meta(&mut self, m: &MetaRecord) {
        let (ts, sni, nx) = match &m.record {
            ProtoRecord::Dns(d) => (d.ts, None, d.rcode == Some(3)),
            ProtoRecord::Tls(t) => (t.ts, t.sni.as_deref().filter(|s| !s.is_empty()), false),
            _ => return,
        };
        let Some((mac, true)) = super::features::device_of(
            &*self.is_local,
            (m.orig_addr, m.orig_mac),
            (m.resp_addr, m.resp_mac),
        ) else {
            return;
        };
        let dns = matches!(m.record, ProtoRecord::Dns(_));
        let Some(a) = self.acc(ts, mac) else { return };
        if dns {
            a.dns += 1;
            if nx {
                a.nxdomain += 1;
            }
        } else if let Some(s) = sni
            && a.snis.len() < SET_CAP
            && !a.snis.contains(s)
        {
            a.snis.insert(s.to_string());
        }
    }

    /// Emits (in window, then MAC order) every window that ended more than
    /// [`GRACE_SECS`] before packet time `now`.
    pub fn advance(&mut self, now: i64, out: &mut Vec<DeviceRow>) {
        if now == i64::MIN {
            return;
        }
        let limit = window_of(now.saturating_sub(GRACE_SECS * 1_000_000)) - WINDOW_US;
        while let Some((&w, _)) = self.windows.first_key_value() {
            if w > limit {
                break;
            }
            if let Some((w, win)) = self.windows.pop_first() {
                emit(w, win, out);
            }
        }
        self.open_from = self.open_from.max(limit + WINDOW_US);
    }

    /// Emits every window (end of input).
    pub fn finish(&mut self, out: &mut Vec<DeviceRow>) {
        while let Some((w, win)) = self.windows.pop_first() {
            self.open_from = self.open_from.max(w + WINDOW_US);
            emit(w, win, out);
        }
    }
}

fn emit(w: i64, win: HashMap<[u8; 6], Acc>, out: &mut Vec<DeviceRow>) {
    let mut rows: Vec<DeviceRow> = win.iter().map(|(m, a)| a.row(w, *m)).collect();
    rows.sort_by_key(|r| r.mac);
    out.extend(rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{DirSummary, EndReason};

    const T0: i64 = 1_700_000_020_000_000; // 40 s into a minute
    const DEV: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const GW: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

    fn windows() -> DeviceWindows {
        DeviceWindows::new(Box::new(|ip| matches!(ip, IpAddr::V4(v) if v.is_private())))
    }

    fn flow(
        id: u64,
        dst: &str,
        port: u16,
        state: &'static str,
        ob: u64,
        rb: u64,
        t: i64,
    ) -> FlowRecord {
        FlowRecord {
            id,
            community_id: String::new(),
            proto: 6,
            vlan: 0,
            orig_addr: "192.168.1.10".parse().unwrap(),
            orig_port: 40000,
            resp_addr: dst.parse().unwrap(),
            resp_port: port,
            orig_mac: Some(DEV),
            resp_mac: Some(GW),
            first_ts: t,
            last_ts: t,
            orig: DirSummary {
                bytes: ob,
                pkts: 1,
                ..Default::default()
            },
            resp: DirSummary {
                bytes: rb,
                ..Default::default()
            },
            conn_state: state,
            history: String::new(),
            app_proto: None,
            end_reason: EndReason::Idle,
            is_final: true,
        }
    }

    fn dns(t: i64, rcode: u16) -> MetaRecord {
        MetaRecord {
            flow_id: 99,
            proto: 17,
            orig_addr: "192.168.1.10".parse().unwrap(),
            orig_port: 5000,
            resp_addr: "192.168.1.1".parse().unwrap(),
            resp_port: 53,
            orig_mac: Some(DEV),
            resp_mac: Some(GW),
            record: ProtoRecord::Dns(crate::proto::DnsRecord {
                ts: t,
                trans_id: 1,
                query: "a.example".into(),
                qtype: 1,
                qclass: 1,
                rcode: Some(rcode),
                answers: vec![],
                rtt_us: None,
                over_tcp: false,
            }),
        }
    }

    /// Destinations primed from stored flows (a restart) are not new; others still are.
    #[test]
    fn primed_destinations_are_not_new() {
        let mut w = windows();
        assert_eq!(
            w.prime([
                (DEV, "8.8.8.8".parse().unwrap()),
                (DEV, "8.8.8.8".parse().unwrap())
            ]),
            1
        );
        w.on_flow(&flow(1, "8.8.8.8", 443, "SF", 100, 1000, T0));
        w.on_flow(&flow(2, "1.1.1.1", 443, "SF", 100, 1000, T0 + 1));
        let mut out = Vec::new();
        w.advance(T0 + 200_000_000, &mut out);
        let new_dest = DEVICE_FEATURES
            .iter()
            .position(|d| d.name == "new_destinations_log")
            .unwrap();
        assert_eq!(out[0].values[new_dest], 2f64.ln(), "only 1.1.1.1 is new");
    }

    #[test]
    fn one_window_by_hand() {
        let mut w = windows();
        w.on_flow(&flow(1, "8.8.8.8", 443, "SF", 100, 1000, T0));
        w.on_flow(&flow(2, "8.8.8.8", 80, "SF", 50, 0, T0 + 1));
        w.on_flow(&flow(3, "1.1.1.1", 22, "REJ", 60, 40, T0 + 2));
        w.on_flow(&flow(4, "1.1.1.1", 23, "S0", 60, 0, T0 + 3));
        for rc in [0, 3, 3, 0] {
            w.on_meta(&dns(T0 + 5, rc));
        }
        let mut out = Vec::new();
        w.advance(T0 + 60_000_000, &mut out);
        assert!(out.is_empty(), "still within the grace period");
        w.advance(T0 + 200_000_000, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.mac, DEV);
        assert_eq!(r.window_start, 1_699_999_980_000_000);
        let want = [
            5f64.ln(),    // 4 flows
            3f64.ln(),    // 2 peers
            5f64.ln(),    // 4 ports
            271f64.ln(),  // 100 + 50 + 60 + 60 out
            1041f64.ln(), // 1000 + 40 in
            3f64.ln(),    // 2 new destinations
            5f64.ln(),    // 4 DNS queries
            0.5,          // 2 of them NXDOMAIN
            0.0,          // no SNI
            3f64.ln(),    // REJ and S0
        ];
        for (i, (g, e)) in r.values.iter().zip(want).enumerate() {
            assert!(
                (g - e).abs() < 1e-12,
                "{}: {g} vs {e}",
                DEVICE_FEATURES[i].name
            );
        }
        // The same destination in a later window is no longer new.
        w.on_flow(&flow(5, "8.8.8.8", 443, "SF", 1, 1, T0 + 300_000_000));
        let mut out = Vec::new();
        w.finish(&mut out);
        assert_eq!(out[0].values[5], 0.0);
    }

    #[test]
    fn long_flows_count_bytes_once_and_late_records_go_to_an_open_window() {
        let mut w = windows();
        let mut f = flow(1, "8.8.8.8", 443, "S1", 1000, 10, T0);
        f.is_final = false;
        w.on_flow(&f);
        let mut out = Vec::new();
        w.advance(T0 + 300_000_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].values[3], 1001f64.ln());
        // The final record, with the start still in an emitted window.
        f.is_final = true;
        f.orig.bytes = 1500;
        f.last_ts = T0 + 1_000_000;
        w.on_flow(&f);
        let mut out = Vec::new();
        w.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].window_start > T0);
        assert_eq!(out[0].values[0], 0.0, "the flow counted once");
        assert_eq!(out[0].values[3], 501f64.ln(), "only the new bytes");
    }

    #[test]
    fn inbound_flow_belongs_to_the_local_responder() {
        let mut w = windows();
        let mut f = flow(1, "192.168.1.10", 22, "REJ", 60, 40, T0);
        f.orig_addr = "203.0.113.9".parse().unwrap();
        f.orig_mac = Some(GW);
        f.resp_mac = Some(DEV);
        w.on_flow(&f);
        let mut out = Vec::new();
        w.finish(&mut out);
        assert_eq!(out[0].mac, DEV);
        assert_eq!(out[0].values[3], 41f64.ln(), "out = what the device sent");
        assert_eq!(
            out[0].values[9], 0.0,
            "not a connection the device initiated"
        );
    }

    #[test]
    fn names_match_the_trainer_contract() {
        use crate::flow::features::{CONTRACT, contract_names};
        assert_eq!(
            contract_names("DEVICE_FEATURES"),
            device_feature_names().to_vec()
        );
        assert!(CONTRACT.contains(&format!("WINDOW_SECS = {WINDOW_SECS}")));
    }
}
