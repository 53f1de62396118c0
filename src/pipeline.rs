//! The pipeline: capture → decode → flow / inventory / proto → events → subscribers.
//!
//! Threads and channels (see ARCHITECTURE.md):
//! - a **source** thread (file or live) sends [`SourceMsg`]s on a bounded channel;
//! - the **processing** thread ([`Processor`]) decodes, tracks flows and devices, runs
//!   the protocol parsers and publishes `Arc` batches of [`Event`]s on the [`EventBus`];
//! - each **subscriber** (the store writer, the detection thread `ng-detect`, the
//!   anomaly models `ng-ml`, the WebSocket stream) owns a bounded queue. A subscriber marked lossy never slows the
//!   pipeline: when its queue is full the batch is dropped for it and counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::capture::{PacketBatch, SourceMsg, SourceStats};
use crate::config::Config;
use crate::decode::{self, L4, LinkType, Malformed, Net};
use crate::event::Event;
use crate::flow::frag::FragmentIndex;
use crate::flow::key::icmp_ports;
use crate::flow::{FlowTable, FlowTableStats, PacketInfo};
use crate::inventory::Inventory;

pub type EventBatch = Arc<Vec<Event>>;

/// Whether a subscriber may lose batches rather than slow the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Wait for queue space (capture files: nothing may be lost).
    Block,
    /// Drop and count when the queue is full (live capture, WebSocket clients).
    Lossy,
}

struct Subscriber {
    name: String,
    tx: Sender<EventBatch>,
    delivery: Delivery,
    dropped: Arc<AtomicU64>,
}

/// Fan-out of event batches to every subscriber.
#[derive(Default)]
pub struct EventBus {
    subs: Vec<Subscriber>,
}

impl EventBus {
    /// Adds a subscriber with a queue of `capacity` batches; returns its receiver and
    /// its drop counter (events, not batches).
    pub fn subscribe(
        &mut self,
        name: &str,
        capacity: usize,
        delivery: Delivery,
    ) -> (Receiver<EventBatch>, Arc<AtomicU64>) {
        let (tx, rx) = bounded(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.subs.push(Subscriber {
            name: name.to_string(),
            tx,
            delivery,
            dropped: dropped.clone(),
        });
        (rx, dropped)
    }

    pub fn publish(&mut self, batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let batch = Arc::new(batch);
        self.subs.retain(|s| match s.delivery {
            Delivery::Block => s.tx.send(batch.clone()).is_ok(),
            Delivery::Lossy => match s.tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.dropped.fetch_add(n, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => {
                    tracing::debug!(subscriber = %s.name, "subscriber gone");
                    false
                }
            },
        });
    }

    /// Events dropped so far, per subscriber.
    pub fn dropped(&self) -> Vec<(String, u64)> {
        self.subs
            .iter()
            .map(|s| (s.name.clone(), s.dropped.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Counters for one capture source, as stored in `capture_stats`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CaptureStats {
    pub source: String,
    pub link_type: String,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub packets: u64,
    pub bytes: u64,
    pub ip_packets: u64,
    pub arp_packets: u64,
    pub non_ip_packets: u64,
    /// IP fragments: every fragment, attributed to a flow or not.
    pub fragments: u64,
    /// Fragments counted in no flow: a later fragment whose first was not seen (or
    /// was forgotten), a first one too short for its transport header. Not stored.
    pub fragments_unattributed: u64,
    pub unsupported_link: u64,
    /// Packets with something wrong (see [`Malformed`]), each counted once; per reason
    /// below (a packet may have two: a corrected capture length and a header length).
    pub malformed: u64,
    pub malformed_by_reason: BTreeMap<String, u64>,
    pub flows_created: u64,
    pub flows_evicted: u64,
    pub source_stats: SourceStats,
    /// Events the store could not take (lossy delivery) during this source.
    pub store_dropped: u64,
}

/// The processing stage: owns the flow table and the inventory.
pub struct Processor {
    flows: FlowTable,
    frags: FragmentIndex,
    inventory: Inventory,
    current: CaptureStats,
    malformed: [u64; Malformed::ALL.len()],
    flow_stats_at_start: FlowTableStats,
    out: Vec<Event>,
    /// Totals over all sources, for summaries.
    pub totals: CaptureStats,
}

impl Processor {
    pub fn new(cfg: &Config, first_flow_id: u64) -> Self {
        Processor {
            flows: FlowTable::new(cfg.flow.clone(), first_flow_id),
            frags: FragmentIndex::default(),
            inventory: Inventory::new(cfg),
            current: CaptureStats::default(),
            malformed: [0; Malformed::ALL.len()],
            flow_stats_at_start: FlowTableStats::default(),
            out: Vec::with_capacity(1024),
            totals: CaptureStats::default(),
        }
    }

    pub fn flow_stats(&self) -> FlowTableStats {
        self.flows.stats()
    }

    pub fn devices(&self) -> usize {
        self.inventory.len()
    }

    /// Handles one message from a source. Emitted events are published on `bus`.
    pub fn handle(&mut self, msg: SourceMsg, bus: &mut EventBus, pool: &Sender<PacketBatch>) {
        match msg {
            SourceMsg::Start { source, link } => {
                self.current = CaptureStats {
                    source,
                    link_type: link_name(link),
                    ..Default::default()
                };
                self.malformed = [0; Malformed::ALL.len()];
                self.flow_stats_at_start = self.flows.stats();
            }
            SourceMsg::Batch(batch) => {
                for i in 0..batch.len() {
                    let (m, data) = batch.packet(i);
                    self.packet(batch.link, m.ts, m.wire_len, m.len_corrected, data);
                }
                let last = batch.meta.last().map(|m| m.ts);
                let _ = pool.try_send(batch);
                if let Some(ts) = last {
                    self.inventory.publish(ts, &mut self.out);
                }
                bus.publish(std::mem::take(&mut self.out));
            }
            SourceMsg::Tick(now) => {
                self.flows.advance(now, &mut self.out);
                self.inventory.publish(now, &mut self.out);
                bus.publish(std::mem::take(&mut self.out));
            }
            SourceMsg::End { source, stats } => {
                let mut st = std::mem::take(&mut self.current);
                st.source = source;
                for r in Malformed::ALL {
                    let n = self.malformed[r.index()];
                    if n > 0 {
                        st.malformed_by_reason.insert(r.as_str().to_string(), n);
                    }
                }
                let fs = self.flows.stats();
                st.flows_created = fs.created - self.flow_stats_at_start.created;
                st.flows_evicted = fs.evicted - self.flow_stats_at_start.evicted;
                st.store_dropped = bus
                    .dropped()
                    .iter()
                    .filter(|(name, _)| name == "store")
                    .map(|(_, n)| n)
                    .sum();
                st.source_stats = stats;
                self.totals.add(&st);
                self.out.push(Event::CaptureStats(Box::new(st)));
                bus.publish(std::mem::take(&mut self.out));
            }
        }
    }

    /// Ends every live flow and publishes the final device state.
    pub fn finish(&mut self, bus: &mut EventBus) {
        self.flows.flush_all(&mut self.out);
        self.inventory.flush(&mut self.out);
        bus.publish(std::mem::take(&mut self.out));
    }

    /// Counts `why` for the current packet; `malformed` counts the packet once however
    /// many reasons it has (`flagged`: it already has one).
    fn bad(&mut self, why: Malformed, flagged: &mut bool) {
        if !std::mem::replace(flagged, true) {
            self.current.malformed += 1;
        }
        self.malformed[why.index()] += 1;
    }

    fn packet(&mut self, link: LinkType, ts: i64, wire_len: u32, len_corrected: bool, data: &[u8]) {
        let mut flagged = false;
        if len_corrected {
            // Still accounted, with the corrected (captured) length.
            self.bad(Malformed::BogusCaptureLength, &mut flagged);
        }
        let st = &mut self.current;
        st.packets += 1;
        st.bytes += wire_len as u64;
        st.first_ts = Some(st.first_ts.map_or(ts, |f| f.min(ts)));
        st.last_ts = Some(st.last_ts.map_or(ts, |l| l.max(ts)));
        if let LinkType::Unsupported(_) = link {
            st.unsupported_link += 1;
            return;
        }
        let d = match decode::decode(link, data, wire_len) {
            Ok(d) => d,
            Err(why) => {
                self.bad(why, &mut flagged);
                return;
            }
        };
        match &d.net {
            Net::Other(_) => {
                self.current.non_ip_packets += 1;
                self.inventory
                    .on_packet(ts, d.src_mac, d.dst_mac, None, None, wire_len);
            }
            Net::Arp(arp) => {
                self.current.arp_packets += 1;
                self.inventory.on_arp(ts, arp);
                if arp.operation == 1
                    && d.dst_mac == Some([0xff; 6])
                    && !arp.sender_ip.is_unspecified()
                    && arp.sender_ip != arp.target_ip
                {
                    self.out.push(Event::ArpRequest(crate::event::ArpRequest {
                        ts,
                        sender_mac: arp.sender_mac,
                        sender_ip: arp.sender_ip,
                        target_ip: arp.target_ip,
                    }));
                }
                self.inventory
                    .on_packet(ts, d.src_mac, d.dst_mac, None, None, wire_len);
            }
            Net::Ip(ip) => {
                self.current.ip_packets += 1;
                if ip.bogus_length {
                    // Still accounted below, with its lengths capped at the wire length.
                    self.bad(Malformed::BogusLength, &mut flagged);
                }
                self.inventory.on_packet(
                    ts,
                    d.src_mac,
                    d.dst_mac,
                    Some(ip.src),
                    Some(ip.dst),
                    wire_len,
                );
                let (mut sport, mut dport, tcp, mut payload_len, msg_len, payload): (
                    u16,
                    u16,
                    _,
                    u32,
                    u32,
                    &[u8],
                ) = match &ip.l4 {
                    L4::Tcp(t) => (
                        t.sport,
                        t.dport,
                        Some((t.seq, t.flags, t.window)),
                        t.payload_len,
                        t.payload_len,
                        t.payload,
                    ),
                    L4::Udp {
                        sport,
                        dport,
                        payload_len,
                        msg_len,
                        payload,
                    } => (*sport, *dport, None, *payload_len, *msg_len, payload),
                    L4::Icmp {
                        v6,
                        icmp_type,
                        code,
                        payload_len,
                        msg,
                    } => {
                        let (s, d, _) = icmp_ports(*v6, *icmp_type, *code);
                        // Only router advertisements are parsed, and only those that
                        // cannot have crossed a router (RFC 4861 §6.1.2).
                        let ra = *v6
                            && *icmp_type == 134
                            && ip.ttl == 255
                            && matches!(ip.src, std::net::IpAddr::V6(a) if a.is_unicast_link_local());
                        let body = if ra { *msg } else { &[][..] };
                        (s, d, None, *payload_len, *payload_len, body)
                    }
                    L4::None => (0, 0, None, 0, 0, &[][..]),
                };
                // No reassembly. The first fragment carries the transport header and
                // counts like any packet (parsers get the part of the payload it
                // carries); later fragments of TCP, UDP and ICMP find their flow's
                // ports through the first one. Fragments of protocols without ports
                // need no lookup.
                let mut later_fragment = false;
                if let Some(frag) = ip.fragment {
                    self.current.fragments += 1;
                    if matches!(ip.proto, 1 | 6 | 17 | 58) {
                        if !matches!(ip.l4, L4::None) {
                            self.frags
                                .first(ip.src, ip.dst, ip.proto, frag.id, sport, dport, ts);
                        } else if let Some((s, d)) = (frag.offset != 0)
                            .then(|| self.frags.later(ip.src, ip.dst, ip.proto, frag.id, ts))
                            .flatten()
                        {
                            (sport, dport) = (s, d);
                            payload_len = ip.payload_len;
                            later_fragment = true;
                        } else {
                            // Its first fragment was not seen (yet), or is too short
                            // for its transport header.
                            self.current.fragments_unattributed += 1;
                            return;
                        }
                    }
                }
                let info = PacketInfo {
                    ts,
                    wire_len,
                    src_mac: d.src_mac,
                    dst_mac: d.dst_mac,
                    vlan: d.vlan,
                    src: ip.src,
                    dst: ip.dst,
                    proto: ip.proto,
                    sport,
                    dport,
                    tcp,
                    payload_len,
                    msg_len,
                    payload,
                    later_fragment,
                };
                let before = self.out.len();
                let outcome = self.flows.process(&info, &mut self.out);
                if outcome.new_flow {
                    let (o, r) = match outcome.direction {
                        crate::flow::Direction::Orig => (d.src_mac, d.dst_mac),
                        crate::flow::Direction::Resp => (d.dst_mac, d.src_mac),
                    };
                    self.inventory.on_new_flow(o, r);
                }
                for ev in &self.out[before..] {
                    if let Event::Meta(m) = ev {
                        self.inventory.on_meta(m);
                    }
                }
            }
        }
    }
}

impl CaptureStats {
    fn add(&mut self, o: &CaptureStats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.ip_packets += o.ip_packets;
        self.arp_packets += o.arp_packets;
        self.non_ip_packets += o.non_ip_packets;
        self.fragments += o.fragments;
        self.fragments_unattributed += o.fragments_unattributed;
        self.unsupported_link += o.unsupported_link;
        self.malformed += o.malformed;
        for (k, v) in &o.malformed_by_reason {
            *self.malformed_by_reason.entry(k.clone()).or_default() += v;
        }
        self.flows_created += o.flows_created;
        self.flows_evicted += o.flows_evicted;
        self.store_dropped = self.store_dropped.max(o.store_dropped);
        self.source_stats.queue_dropped += o.source_stats.queue_dropped;
        self.source_stats.kernel_dropped += o.source_stats.kernel_dropped;
        self.source_stats.if_dropped += o.source_stats.if_dropped;
    }
}

pub fn link_name(link: LinkType) -> String {
    match link {
        LinkType::Ethernet => "ethernet".into(),
        LinkType::LinuxSll => "linux_sll".into(),
        LinkType::LinuxSll2 => "linux_sll2".into(),
        LinkType::RawIp => "raw_ip".into(),
        LinkType::Null => "null".into(),
        LinkType::Unsupported(-1) => "none".into(),
        LinkType::Unsupported(n) => format!("unsupported({n})"),
    }
}

/// Where a run reads packets from.
pub enum Input {
    Files(Vec<std::path::PathBuf>),
    Live(crate::capture::live::LiveSource),
}

/// What a run did, for the `analyze` summary and the benchmark.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub devices: u64,
    pub dns: u64,
    pub tls: u64,
    pub http: u64,
    pub dhcp: u64,
    pub malformed: u64,
    pub malformed_by_reason: BTreeMap<String, u64>,
    pub unsupported_link: u64,
    /// IP fragments seen, and those attributed to no flow.
    pub fragments: u64,
    pub fragments_unattributed: u64,
    pub non_ip_packets: u64,
    pub flows_evicted: u64,
    pub peak_active_flows: u64,
    pub queue_dropped: u64,
    pub store_dropped: u64,
    pub store_failed_events: u64,
    /// Alerts opened by this run (repeats of an alert within its dedup window are not
    /// new alerts), in total and per rule.
    pub alerts: u64,
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Repeats folded into existing alerts, and occurrences dropped by mutes.
    pub alerts_bumped: u64,
    pub alerts_muted: u64,
    /// Events the detection thread could not take (live capture only: lossy delivery).
    pub detect_dropped: u64,
    /// What the anomaly-model thread did (`ml.enabled`): feature rows, scores, alerts.
    pub ml: Option<crate::detect::ml::MlStats>,
    /// Events the anomaly-model thread could not take (live capture only).
    pub ml_dropped: u64,
    pub errors: Vec<String>,
    pub elapsed_secs: f64,
    pub packets_per_sec: f64,
    pub flows_per_sec: f64,
}

/// Extra subscribers a caller (the service) attaches to the event bus.
pub type Subscribe<'a> = &'a mut dyn FnMut(&mut EventBus);

/// What a caller (the service) attaches to a run. `None` for [`run`]'s `hooks` is the
/// same as `Hooks::default()`: nothing attached.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Adds subscribers to the event bus (the WebSocket stream, the models).
    pub subscribe: Option<Subscribe<'a>>,
    /// Receives every alert as the detection thread stores it: opened (`new`) or
    /// repeated (bumped). Sent with `try_send`: use an unbounded or roomy channel; a
    /// full one loses the notification, never the stored alert.
    pub alerts: Option<Sender<crate::detect::lifecycle::StoredAlert>>,
    /// The anomaly models to score with (the service shares one set between runs and
    /// the API). `None`: the models of `cfg.ml` are loaded for this run.
    pub models: Option<Arc<crate::detect::ml::Registry>>,
}

/// The detection thread: the rule engine over the event stream, alerts into the store.
fn detect_loop(
    mut engine: crate::detect::Engine,
    mut lc: crate::detect::lifecycle::Lifecycle,
    rx: Receiver<EventBatch>,
    notify: Option<Sender<crate::detect::lifecycle::StoredAlert>>,
) -> crate::detect::lifecycle::LifecycleStats {
    let mut buf = Vec::new();
    let flush = |lc: &mut crate::detect::lifecycle::Lifecycle,
                 buf: &mut Vec<crate::detect::Alert>| {
        if buf.is_empty() {
            return;
        }
        for stored in lc.persist(buf) {
            if let Some(tx) = &notify {
                let _ = tx.try_send(stored);
            }
        }
        buf.clear();
    };
    // Occurrences are stored at most every FLUSH_EVERY (or when many are waiting): the
    // lifecycle folds repeats of one rule x device x peer into a single row, and a flush
    // costs a fixed set of statements however many keys it touches, so a rule that
    // fires on every flow costs little more than one that fires once.
    const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
    const FLUSH_ALERTS: usize = 8192;
    // ...and at least every FLUSH_PACKET_US of packet time, so a replayed file announces
    // alerts as it goes, and always before stale alerts are resolved (once an hour of
    // packet time), so resolution never runs ahead of occurrences still waiting here.
    // Folding itself is correct over any stretch: the lifecycle splits a key's
    // occurrences at gaps longer than the dedup window. (Every 10 minutes of packet
    // time instead of every hour was 60 of the 84 flushes of the 3 M-packet benchmark.)
    const FLUSH_PACKET_US: i64 = 3_600_000_000;
    let mut last_flush = std::time::Instant::now();
    let mut flushed_at = i64::MIN;
    const STATE_EVERY_US: i64 = 3_600_000_000;
    // ... and at most every 5 minutes of wall time: a replay covers days of packet time
    // in seconds, and each save writes every rule's whole state (2 MB of beaconing
    // series on the 3 M-packet benchmark; hourly saves took its run from 5.6 s to
    // 9.8 s). The save at the end of the run stores the same final state either way.
    const STATE_MIN_WALL: std::time::Duration = std::time::Duration::from_secs(300);
    let mut saved_at = i64::MIN;
    let mut saved_wall = std::time::Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(batch) => {
                engine.on_events(&batch, &mut buf);
                let now = engine.now();
                if now != i64::MIN {
                    engine.tick(now, &mut buf);
                }
                if lc.resolve_due(now) {
                    flush(&mut lc, &mut buf);
                    last_flush = std::time::Instant::now();
                    flushed_at = now;
                    lc.resolve_stale(now);
                }
                // Learned baselines, every hour of packet time: a killed service loses
                // at most an hour of them (live, where packet and wall time agree).
                if now != i64::MIN
                    && now >= saved_at.saturating_add(STATE_EVERY_US)
                    && (saved_at == i64::MIN || saved_wall.elapsed() >= STATE_MIN_WALL)
                {
                    if saved_at != i64::MIN {
                        lc.save_rule_states(&engine.save_states(), now);
                        saved_wall = std::time::Instant::now();
                    }
                    saved_at = now;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        let now = engine.now();
        if flushed_at == i64::MIN {
            flushed_at = now;
        }
        if buf.len() >= FLUSH_ALERTS
            || last_flush.elapsed() >= FLUSH_EVERY
            || now.saturating_sub(flushed_at) >= FLUSH_PACKET_US
        {
            flush(&mut lc, &mut buf);
            last_flush = std::time::Instant::now();
            flushed_at = now;
        }
    }
    engine.finish(&mut buf);
    flush(&mut lc, &mut buf);
    if engine.now() != i64::MIN {
        lc.save_rule_states(&engine.save_states(), engine.now());
    }
    lc.stats
}

/// Runs the whole pipeline on `input` into `store` until the input ends (files) or
/// `stop` is set (live). Every live flow is flushed to the store before returning.
/// Detection (`detect.enabled`) runs in its own thread and stores alerts as it goes;
/// `hooks` attaches the caller's subscribers and alert channel.
pub fn run(
    cfg: &Config,
    store: &crate::store::Store,
    input: Input,
    progress: Arc<crate::capture::Progress>,
    stop: crate::capture::StopFlag,
    hooks: Option<Hooks<'_>>,
) -> anyhow::Result<RunSummary> {
    let hooks = hooks.unwrap_or_default();
    let started = std::time::Instant::now();
    let (mode, sources, delivery) = match &input {
        Input::Files(p) => (
            "analyze",
            p.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Delivery::Block,
        ),
        Input::Live(l) => ("live", format!("live:{}", l.interface()), Delivery::Lossy),
    };
    let run_id = store.begin_run(mode, &sources)?;
    let writer_conn = store.connection()?;
    // IPv6 prefixes earlier runs learned from router advertisements: this run's devices
    // are local from the first packet, not only after the next advertisement.
    let prefixes = crate::inventory::local::stored_prefixes(&writer_conn).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read stored IPv6 prefixes");
        Vec::new()
    });

    let mut bus = EventBus::default();
    let (store_rx, store_dropped) =
        bus.subscribe("store", cfg.pipeline.store_queue_batches, delivery);
    let detect = if cfg.detect.enabled {
        let (rx, dropped) = bus.subscribe("detect", cfg.pipeline.store_queue_batches, delivery);
        let conn = store.connection()?;
        let mut engine = crate::detect::Engine::new(cfg);
        if let Err(e) = crate::detect::lifecycle::seed_engine(&conn, &mut engine) {
            tracing::warn!(error = %e, "could not read known devices for detection");
        }
        let lc = crate::detect::lifecycle::Lifecycle::new(conn, &cfg.detect);
        let notify = hooks.alerts.clone();
        let handle = std::thread::Builder::new()
            .name("ng-detect".into())
            .spawn(move || detect_loop(engine, lc, rx, notify))
            .expect("spawn detection");
        Some((handle, dropped))
    } else {
        None
    };
    let ml = if cfg.ml.enabled {
        let (rx, dropped) = bus.subscribe("ml", cfg.pipeline.store_queue_batches, delivery);
        let registry = hooks
            .models
            .clone()
            .unwrap_or_else(|| crate::detect::ml::Registry::new(cfg));
        let lc = crate::detect::lifecycle::Lifecycle::new(store.connection()?, &cfg.detect);
        let worker = crate::detect::ml::Worker::new(
            cfg,
            registry,
            store.connection()?,
            lc,
            hooks.alerts.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("ng-ml".into())
            .spawn(move || worker.run(rx))
            .expect("spawn anomaly models");
        Some((handle, dropped))
    } else {
        None
    };
    if let Some(sub) = hooks.subscribe {
        sub(&mut bus);
    }
    let (pkt_tx, pkt_rx) = bounded::<SourceMsg>(cfg.pipeline.packet_queue_batches);
    let (pool_tx, pool_rx) = bounded::<PacketBatch>(cfg.pipeline.packet_queue_batches + 8);

    let writer = std::thread::Builder::new()
        .name("ng-store".into())
        .spawn(move || crate::store::writer::Writer::new(writer_conn, run_id).run(store_rx))
        .expect("spawn store writer");

    let proc_cfg = cfg.clone();
    let proc_progress = progress.clone();
    let processor = std::thread::Builder::new()
        .name("ng-process".into())
        .spawn(move || {
            let mut p = Processor::new(&proc_cfg, crate::store::Store::first_flow_id(run_id));
            p.inventory.seed_prefixes(&prefixes);
            for msg in pkt_rx.iter() {
                p.handle(msg, &mut bus, &pool_tx);
                let t = p.flow_stats();
                proc_progress
                    .active_flows
                    .store(t.active, Ordering::Relaxed);
                proc_progress
                    .flows_created
                    .store(t.created, Ordering::Relaxed);
                proc_progress.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            p.finish(&mut bus);
            proc_progress.active_flows.store(0, Ordering::Relaxed);
            (p.totals.clone(), p.flow_stats(), p.devices())
        })
        .expect("spawn processor");

    let src_progress = progress.clone();
    let src_stop = stop.clone();
    let source = std::thread::Builder::new()
        .name("ng-capture".into())
        .spawn(move || match input {
            Input::Files(paths) => crate::capture::file::read_files(
                &paths,
                &pkt_tx,
                &pool_rx,
                &src_progress,
                &src_stop,
            ),
            Input::Live(live) => live.run(&pkt_tx, &pool_rx, &src_progress, &src_stop),
        })
        .expect("spawn capture");

    // A panic is a bug, never an expected outcome: report it instead of a partial summary.
    let source_ok = source.join().is_ok();
    let processed = processor.join();
    let written = writer.join();
    let (detected, detect_dropped) = match detect {
        Some((h, dropped)) => (h.join().map(Some), dropped.load(Ordering::Relaxed)),
        None => (Ok(None), 0),
    };
    let (ml_stats, ml_dropped) = match ml {
        Some((h, dropped)) => (h.join().map(Some), dropped.load(Ordering::Relaxed)),
        None => (Ok(None), 0),
    };
    store.end_run(run_id)?;
    let (Ok((totals, table, devices)), Ok(wstats), Ok(alerts), Ok(ml_stats), true) =
        (processed, written, detected, ml_stats, source_ok)
    else {
        anyhow::bail!("a pipeline thread panicked (run {run_id}); rows written before it are kept");
    };
    let mut alerts = alerts.unwrap_or_default();
    if let Some(m) = &ml_stats {
        let l = &m.alert_lifecycle;
        alerts.new += l.new;
        alerts.bumped += l.bumped;
        alerts.muted += l.muted;
        for (rule, n) in &l.new_by_rule {
            *alerts.new_by_rule.entry(rule.clone()).or_default() += n;
        }
    }

    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let mut errors = Vec::new();
    let conn = store.connection()?;
    let mut stmt =
        conn.prepare("SELECT error FROM capture_stats WHERE run_id = ? AND error IS NOT NULL")?;
    let rows = stmt.query_map([run_id], |r| r.get::<usize, String>(0))?;
    for e in rows.flatten() {
        errors.push(e);
    }
    Ok(RunSummary {
        run_id,
        packets: totals.packets,
        bytes: totals.bytes,
        flows: table.created,
        devices: devices as u64,
        dns: wstats.dns,
        tls: wstats.tls,
        http: wstats.http,
        dhcp: wstats.dhcp,
        malformed: totals.malformed,
        malformed_by_reason: totals.malformed_by_reason.clone(),
        unsupported_link: totals.unsupported_link,
        fragments: totals.fragments,
        fragments_unattributed: totals.fragments_unattributed,
        non_ip_packets: totals.non_ip_packets,
        flows_evicted: table.evicted,
        peak_active_flows: table.peak_active,
        queue_dropped: totals.source_stats.queue_dropped,
        store_dropped: store_dropped.load(Ordering::Relaxed),
        store_failed_events: wstats.failed_events,
        alerts: alerts.new,
        alerts_by_rule: alerts.new_by_rule,
        alerts_bumped: alerts.bumped,
        alerts_muted: alerts.muted,
        detect_dropped,
        ml: ml_stats,
        ml_dropped,
        errors,
        elapsed_secs: elapsed,
        packets_per_sec: totals.packets as f64 / elapsed,
        flows_per_sec: table.created as f64 / elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::io::Write;

    const T0: i64 = 1_700_000_000_000_000;
    const ATT_MAC: [u8; 6] = [0x00, 0x0c, 0x29, 0x66, 0x66, 0x66];
    const DEV_MAC: [u8; 6] = [0xb8, 0x27, 0xeb, 0x11, 0x22, 0x33];

    /// A classic microsecond pcap (Ethernet), as `tests/craft` writes them.
    fn write_pcap(path: &std::path::Path, packets: &[(i64, Vec<u8>)]) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        f.write_all(&0xa1b2c3d4u32.to_le_bytes()).unwrap();
        f.write_all(&2u16.to_le_bytes()).unwrap();
        f.write_all(&4u16.to_le_bytes()).unwrap();
        for v in [0u32, 0, 65535, 1] {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        for (ts, data) in packets {
            for v in [
                (ts / 1_000_000) as u32,
                (ts % 1_000_000) as u32,
                data.len() as u32,
                data.len() as u32,
            ] {
                f.write_all(&v.to_le_bytes()).unwrap();
            }
            f.write_all(data).unwrap();
        }
    }

    fn tcp(
        smac: [u8; 6],
        dmac: [u8; 6],
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        synack_rst: bool,
    ) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(smac, dmac)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1000, 64240);
        let b = if synack_rst {
            b.rst().ack(1001)
        } else {
            b.syn()
        };
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    /// 40 ports of one device probed from another; each answered with RST (REJ).
    fn port_scan_pcap(path: &std::path::Path) {
        let (att, dev) = ([192, 168, 1, 66], [192, 168, 1, 10]);
        let mut pkts = Vec::new();
        for p in 0..40u16 {
            let t = T0 + p as i64 * 20_000;
            pkts.push((t, tcp(ATT_MAC, DEV_MAC, att, 45000, dev, 1000 + p, false)));
            pkts.push((
                t + 300,
                tcp(DEV_MAC, ATT_MAC, dev, 1000 + p, att, 45000, true),
            ));
        }
        write_pcap(path, &pkts);
    }

    fn analyze(store: &Store, file: &std::path::Path, hooks: Option<Hooks<'_>>) -> RunSummary {
        run(
            &Config::default(),
            store,
            Input::Files(vec![file.to_path_buf()]),
            Arc::new(crate::capture::Progress::default()),
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
            hooks,
        )
        .unwrap()
    }

    #[test]
    fn crafted_port_scan_becomes_an_alert_row() {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("scan.pcap");
        port_scan_pcap(&pcap);
        let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let s = analyze(
            &store,
            &pcap,
            Some(Hooks {
                subscribe: None,
                alerts: Some(tx),
                models: None,
            }),
        );
        assert_eq!(
            s.alerts_by_rule.get("port_scan"),
            Some(&1),
            "{:?}",
            s.alerts_by_rule
        );
        // Both MACs are new devices (low), nothing else.
        assert_eq!(
            s.alerts_by_rule.get("new_device"),
            Some(&2),
            "{:?}",
            s.alerts_by_rule
        );
        assert_eq!(s.alerts, 3);
        let conn = store.connection().unwrap();
        let (sev, dev, peer, count, flows, ports, mitre, state): (String, String, String, u64, i64, i64, String, String) = conn
            .query_row(
                "SELECT severity, device_mac, peer, count, len(flow_ids), (evidence->>'ports')::BIGINT, \
                 mitre_technique, state FROM alerts WHERE rule = 'port_scan'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
            )
            .unwrap();
        assert_eq!(
            (
                sev.as_str(),
                dev.as_str(),
                peer.as_str(),
                count,
                mitre.as_str(),
                state.as_str()
            ),
            (
                "medium",
                "00:0c:29:66:66:66",
                "192.168.1.10",
                1,
                "T1046",
                "active"
            )
        );
        assert_eq!(ports, 25);
        assert!(flows >= 20, "{flows}");
        // The flow ids point at stored flows.
        let matched: i64 = conn
            .query_row(
                "SELECT count(*) FROM flows WHERE id IN (SELECT unnest(flow_ids) FROM alerts WHERE rule = 'port_scan')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(matched, flows);
        let got: Vec<_> = rx.try_iter().map(|a| (a.alert.rule, a.new)).collect();
        assert!(got.contains(&("port_scan", true)), "{got:?}");
        let risk = crate::detect::lifecycle::device_risk(&conn, ATT_MAC).unwrap();
        assert_eq!(risk.score, 6, "medium scan 5 + low new device 1");

        // The same capture again: the scan is a repeat within the window, the devices are known.
        let s = analyze(&store, &pcap, None);
        assert_eq!(
            (s.alerts, s.alerts_bumped),
            (0, 1),
            "{:?}",
            s.alerts_by_rule
        );
        let count: u64 = conn
            .query_row(
                "SELECT count FROM alerts WHERE rule = 'port_scan'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(count, 2);
    }
}
