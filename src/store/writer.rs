//! The store writer: one thread, one connection, appending event batches to DuckDB.
//!
//! Batches are gathered for up to [`FLUSH_INTERVAL`] (or [`FLUSH_EVENTS`] events) and
//! written in one transaction through DuckDB's Appender; devices and their addresses
//! are upserted. A failed transaction is logged and counted and the writer carries on:
//! rows already committed are never touched by a later failure.
//!
//! Long flows arrive first as active-timeout updates (`is_final = false`) and later
//! again; the writer replaces the earlier row so `flows` holds one row per flow.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params};

use crate::event::{Event, MetaRecord};
use crate::flow::FlowRecord;
use crate::inventory::oui::format_mac;
use crate::pipeline::EventBatch;
use crate::proto::{self, ProtoRecord};

pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
pub const FLUSH_EVENTS: usize = 50_000;

/// What the writer did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    pub flows: u64,
    pub dns: u64,
    pub tls: u64,
    pub http: u64,
    pub dhcp: u64,
    pub names: u64,
    pub device_updates: u64,
    pub address_updates: u64,
    pub capture_stats: u64,
    pub transactions: u64,
    pub failed_transactions: u64,
    pub failed_events: u64,
}

pub struct Writer {
    conn: Connection,
    run_id: i64,
    /// Flows written as non-final updates, whose row a later record replaces.
    open_flows: HashSet<u64>,
    pub stats: WriterStats,
}

fn ts(us: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, us)
}

fn opt_ts(us: Option<i64>) -> Value {
    us.map(ts).unwrap_or(Value::Null)
}

fn mac(m: Option<[u8; 6]>) -> Option<String> {
    m.map(format_mac)
}

fn text_list<I: IntoIterator<Item = String>>(it: I) -> Value {
    Value::List(it.into_iter().map(Value::Text).collect())
}

pub fn tls_version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        0x0002 => "SSL 2.0".into(),
        other => format!("0x{other:04x}"),
    }
}

impl Writer {
    pub fn new(conn: Connection, run_id: i64) -> Self {
        Writer {
            conn,
            run_id,
            open_flows: HashSet::new(),
            stats: WriterStats::default(),
        }
    }

    /// Runs until every sender of `rx` is gone, then writes what is pending.
    pub fn run(mut self, rx: Receiver<EventBatch>) -> WriterStats {
        let mut pending: Vec<EventBatch> = Vec::new();
        let mut pending_events = 0usize;
        let mut since = Instant::now();
        loop {
            let wait = FLUSH_INTERVAL.saturating_sub(since.elapsed());
            match rx.recv_timeout(wait) {
                Ok(b) => {
                    pending_events += b.len();
                    pending.push(b);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if pending_events >= FLUSH_EVENTS || since.elapsed() >= FLUSH_INTERVAL {
                if !pending.is_empty() {
                    self.write(&pending);
                    pending.clear();
                    pending_events = 0;
                }
                since = Instant::now();
            }
        }
        if !pending.is_empty() {
            self.write(&pending);
        }
        if let Err(e) = self.conn.execute_batch("CHECKPOINT") {
            tracing::warn!(error = %e, "checkpoint after writing failed");
        }
        self.stats
    }

    /// Writes a group of batches in one transaction.
    pub fn write(&mut self, batches: &[EventBatch]) {
        let n: usize = batches.iter().map(|b| b.len()).sum();
        let before = self.stats.clone();
        let open_before = self.open_flows.clone();
        let res = (|| -> duckdb::Result<()> {
            self.conn.execute_batch("BEGIN TRANSACTION")?;
            self.write_inner(batches)?;
            self.conn.execute_batch("COMMIT")
        })();
        match res {
            Ok(()) => self.stats.transactions += 1,
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, events = n, "store write failed; batch discarded");
                let failed = self.stats.failed_transactions + 1;
                let failed_events = self.stats.failed_events + n as u64;
                self.stats = before;
                self.open_flows = open_before;
                self.stats.failed_transactions = failed;
                self.stats.failed_events = failed_events;
            }
        }
    }

    fn write_inner(&mut self, batches: &[EventBatch]) -> duckdb::Result<()> {
        let events = || batches.iter().flat_map(|b| b.iter());
        // Replace rows of long flows written earlier as updates.
        let mut replace: Vec<u64> = Vec::new();
        for e in events() {
            if let Event::Flow(f) = e {
                if self.open_flows.contains(&f.id) {
                    replace.push(f.id);
                }
                if f.is_final {
                    self.open_flows.remove(&f.id);
                } else {
                    self.open_flows.insert(f.id);
                }
            }
        }
        // Only the last record of a flow within this group is kept.
        let mut last_of: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for (i, e) in events().enumerate() {
            if let Event::Flow(f) = e {
                last_of.insert(f.id, i);
            }
        }
        if !replace.is_empty() {
            for chunk in replace.chunks(500) {
                let list = chunk
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                self.conn
                    .execute(&format!("DELETE FROM flows WHERE id IN ({list})"), [])?;
            }
        }
        {
            let mut app = self.conn.appender("flows")?;
            for (i, e) in events().enumerate() {
                if let Event::Flow(f) = e {
                    if last_of.get(&f.id) == Some(&i) {
                        append_flow(&mut app, f)?;
                        self.stats.flows += 1;
                    }
                }
            }
            app.flush()?;
        }
        self.write_meta(batches)?;
        self.write_devices(batches)?;
        for e in events() {
            if let Event::CaptureStats(s) = e {
                let reasons = serde_json::to_string(&s.malformed_by_reason).unwrap_or_default();
                self.conn.execute(
                    "INSERT INTO capture_stats VALUES (?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        self.run_id,
                        s.source,
                        s.link_type,
                        opt_ts(s.first_ts),
                        opt_ts(s.last_ts),
                        s.packets,
                        s.bytes,
                        s.ip_packets,
                        s.arp_packets,
                        s.non_ip_packets,
                        s.fragments,
                        s.unsupported_link,
                        s.malformed,
                        reasons,
                        s.flows_created,
                        s.flows_evicted,
                        s.source_stats.kernel_dropped,
                        s.source_stats.if_dropped,
                        s.source_stats.queue_dropped,
                        s.store_dropped,
                        s.source_stats.error,
                    ],
                )?;
                self.stats.capture_stats += 1;
            }
        }
        Ok(())
    }

    fn write_meta(&mut self, batches: &[EventBatch]) -> duckdb::Result<()> {
        let metas = || {
            batches
                .iter()
                .flat_map(|b| b.iter())
                .filter_map(|e| match e {
                    Event::Meta(m) => Some(m.as_ref()),
                    _ => None,
                })
        };
        let mut dns = self.conn.appender("dns")?;
        let mut tls = self.conn.appender("tls")?;
        let mut http = self.conn.appender("http")?;
        let mut dhcp = self.conn.appender("dhcp")?;
        let mut names = self.conn.appender("names")?;
        for m in metas() {
            let fid = m.flow_id as i64;
            let (oa, ra) = (m.orig_addr.to_string(), m.resp_addr.to_string());
            match &m.record {
                ProtoRecord::Dns(d) => {
                    dns.append_row(params![
                        ts(d.ts),
                        fid,
                        oa,
                        m.orig_port,
                        ra,
                        m.resp_port,
                        mac(m.orig_mac),
                        if d.over_tcp { "tcp" } else { "udp" },
                        d.trans_id,
                        d.query,
                        d.qtype,
                        proto::qtype_name(d.qtype),
                        d.qclass,
                        d.rcode,
                        d.rcode.map(proto::rcode_name),
                        text_list(d.answers.iter().map(|a| a.data.clone())),
                        text_list(d.answers.iter().map(|a| proto::qtype_name(a.rtype))),
                        Value::List(d.answers.iter().map(|a| Value::UInt(a.ttl)).collect()),
                        d.rtt_us.map(|r| r as f64 / 1e6),
                    ])?;
                    self.stats.dns += 1;
                }
                ProtoRecord::Tls(t) => {
                    tls.append_row(params![
                        ts(t.ts),
                        fid,
                        oa,
                        m.orig_port,
                        ra,
                        m.resp_port,
                        mac(m.orig_mac),
                        tls_version_name(t.client_version),
                        text_list(t.supported_versions.iter().map(|v| tls_version_name(*v))),
                        t.server_version.map(tls_version_name),
                        t.server_cipher.map(|c| format!("0x{c:04x}")),
                        t.sni,
                        text_list(t.alpn.iter().cloned()),
                        t.ja3,
                        t.ja3_string,
                        t.ja4,
                        t.ja3s,
                        t.cert_subject,
                        t.cert_issuer,
                        opt_ts(t.cert_not_before),
                        opt_ts(t.cert_not_after),
                        text_list(t.cert_san.iter().cloned()),
                        t.cert_self_signed,
                    ])?;
                    self.stats.tls += 1;
                }
                ProtoRecord::Http(h) => {
                    http.append_row(params![
                        ts(h.ts),
                        fid,
                        oa,
                        m.orig_port,
                        ra,
                        m.resp_port,
                        mac(m.orig_mac),
                        h.method,
                        h.host,
                        h.uri,
                        h.user_agent,
                        h.referrer,
                        h.content_type,
                        h.request_body_len,
                        h.status,
                        h.status_msg,
                        h.response_body_len,
                        h.auth_scheme,
                        h.auth_user,
                    ])?;
                    self.stats.http += 1;
                }
                ProtoRecord::Dhcp(d) => {
                    let ip = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string());
                    dhcp.append_row(params![
                        ts(d.ts),
                        fid,
                        oa,
                        m.orig_port,
                        ra,
                        m.resp_port,
                        format_mac(d.client_mac),
                        proto::dhcp_msg_type_name(d.msg_type),
                        d.xid,
                        ip(d.client_ip),
                        ip(d.your_ip),
                        ip(d.requested_ip),
                        ip(d.server_id),
                        d.hostname,
                        d.vendor_class,
                        d.param_list
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        d.lease_secs,
                        ip(d.router),
                        text_list(d.dns_servers.iter().map(|a| a.to_string())),
                    ])?;
                    self.stats.dhcp += 1;
                }
                ProtoRecord::Name(n) => {
                    let (side_mac, side_addr) = side(m, n.dir);
                    names.append_row(params![
                        ts(n.ts),
                        fid,
                        n.source,
                        n.kind,
                        n.name,
                        mac(side_mac),
                        n.address.unwrap_or(side_addr).to_string(),
                    ])?;
                    self.stats.names += 1;
                }
            }
        }
        for a in [&mut dns, &mut tls, &mut http, &mut dhcp, &mut names] {
            a.flush()?;
        }
        Ok(())
    }

    fn write_devices(&mut self, batches: &[EventBatch]) -> duckdb::Result<()> {
        let events = || batches.iter().flat_map(|b| b.iter());
        if !events().any(|e| matches!(e, Event::Device(_) | Event::DeviceAddress(_))) {
            return Ok(());
        }
        let mut dev = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        let mut addr = self.conn.prepare_cached(
            "INSERT INTO device_addresses VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (mac, addr) DO UPDATE SET
               first_seen = least(device_addresses.first_seen, excluded.first_seen),
               last_seen = greatest(device_addresses.last_seen, excluded.last_seen)",
        )?;
        for e in events() {
            match e {
                Event::Device(d) => {
                    dev.execute(params![
                        format_mac(d.mac),
                        d.vendor,
                        d.randomized,
                        ts(d.first_seen),
                        ts(d.last_seen),
                        d.hostname,
                        d.hostname_source,
                        d.dhcp_vendor_class,
                        d.dhcp_fingerprint,
                        d.last_ipv4.map(|a| a.to_string()),
                        d.last_ipv6.map(|a| a.to_string()),
                        d.pkts_sent,
                        d.bytes_sent,
                        d.pkts_recv,
                        d.bytes_recv,
                        d.flows,
                    ])?;
                    self.stats.device_updates += 1;
                }
                Event::DeviceAddress(a) => {
                    addr.execute(params![
                        format_mac(a.mac),
                        a.addr.to_string(),
                        if a.addr.is_ipv4() { 4u8 } else { 6u8 },
                        ts(a.first_seen),
                        ts(a.last_seen),
                        a.source,
                    ])?;
                    self.stats.address_updates += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn side(m: &MetaRecord, dir: crate::flow::Direction) -> (Option<[u8; 6]>, std::net::IpAddr) {
    match dir {
        crate::flow::Direction::Orig => (m.orig_mac, m.orig_addr),
        crate::flow::Direction::Resp => (m.resp_mac, m.resp_addr),
    }
}

fn append_flow(app: &mut duckdb::Appender<'_>, f: &FlowRecord) -> duckdb::Result<()> {
    let (o, r) = (&f.orig, &f.resp);
    let s = |us: f64| us / 1e6;
    app.append_row(params![
        f.id as i64,
        ts(f.first_ts),
        ts(f.last_ts),
        (f.last_ts - f.first_ts) as f64 / 1e6,
        f.proto_name(),
        f.proto,
        f.app_proto,
        f.vlan,
        f.orig_addr.to_string(),
        f.orig_port,
        f.resp_addr.to_string(),
        f.resp_port,
        mac(f.orig_mac),
        mac(f.resp_mac),
        f.community_id,
        f.conn_state,
        f.history,
        o.pkts,
        o.bytes,
        o.payload_bytes,
        r.pkts,
        r.bytes,
        r.payload_bytes,
        o.syn,
        o.fin,
        o.rst,
        o.psh,
        o.ack,
        o.urg,
        r.syn,
        r.fin,
        r.rst,
        r.psh,
        r.ack,
        r.urg,
        o.size_min,
        o.size_mean,
        o.size_std,
        o.size_max,
        r.size_min,
        r.size_mean,
        r.size_std,
        r.size_max,
        s(o.iat_min_us as f64),
        s(o.iat_mean_us),
        s(o.iat_std_us),
        s(o.iat_max_us as f64),
        s(r.iat_min_us as f64),
        s(r.iat_mean_us),
        s(r.iat_std_us),
        s(r.iat_max_us as f64),
        f.end_reason.as_str(),
        f.is_final,
    ])
}
