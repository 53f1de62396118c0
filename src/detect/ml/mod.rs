//! Anomaly detection with the trained models: the `ng-ml` thread.
//!
//! Rules catch what we can name; the models catch what deviates from this home's own
//! normal. This thread turns the event stream into feature rows (one per ended flow,
//! [`crate::flow::features`]; one per device per minute, [`crate::flow::device_features`]),
//! appends them to `flow_features` / `device_features` (the trainer's input), scores
//! them in batches with every loaded model ([`model`], tract) into `anomaly_scores`,
//! and raises `anomaly` alerts through the same [`Lifecycle`] as the rules, so dedup,
//! mutes and states apply. Without models it still writes the features: that is the
//! baseline the first models are trained on.
//!
//! - [`model`]: one ONNX model (metadata check, batched scoring).
//! - [`registry`]: the models in use, hot reload.
//! - [`train`]: retraining jobs (baseline export, the Python trainer, validation in
//!   tract, install, reload).
//! - [`tree_ensemble`]: ONNX-ML `TreeEnsembleRegressor` for tract (the isolation forests).

pub mod model;
pub mod registry;
pub mod train;
pub mod tree_ensemble;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use duckdb::Connection;
use duckdb::arrow::array::{
    ArrayRef, Float32Array, Int32Array, Int64Array, TimestampMicrosecondArray,
};
use duckdb::types::{TimeUnit, Value};
use serde::Serialize;
use serde_json::json;

use crate::detect::lifecycle::{Lifecycle, LifecycleStats, StoredAlert};
use crate::detect::{Alert, Severity};
use crate::event::Event;
use crate::flow::device_features::{DEVICE_FEATURES, DeviceRow, DeviceWindows};
use crate::flow::features::{
    FLOW_FEATURES, FLOW_N, FlowFacts, SCHEMA_VERSION, device_of, flow_features,
};
use crate::inventory::oui::format_mac;
use crate::pipeline::EventBatch;
use crate::store::writer::{mac_column, record_batch};
pub use model::{Model, ModelType};
pub use registry::{LoadError, Loaded, Registry};

/// Longest time feature rows wait before they are scored.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Scored rows written to DuckDB in one transaction. Each write costs the
/// Appenders' bind and flush and a commit whatever its size: at one write per
/// 256-row scoring batch that was a third of the thread's time.
const WRITE_ROWS: usize = 4096;
/// Longest time scored rows wait before they are written.
const WRITE_INTERVAL: Duration = Duration::from_secs(2);
/// Most flows whose protocol facts are kept while they are open.
const FACTS_CAP: usize = 200_000;
/// Features listed in an alert's evidence.
const TOP_FEATURES: usize = 5;
/// Days of stored flows whose destinations count as already seen at start.
const SEEN_DAYS: u32 = 7;

/// The `[ml]` settings the thread uses.
#[derive(Clone, Debug)]
pub struct Settings {
    pub batch_size: usize,
    pub min_score_margin: f64,
    pub require_agreement: bool,
}

impl Settings {
    pub fn from_config(cfg: &crate::config::Config) -> Settings {
        Settings {
            batch_size: cfg.ml.batch_size.max(1),
            min_score_margin: cfg.ml.min_score_margin,
            require_agreement: cfg.ml.require_agreement,
        }
    }
}

/// What the thread did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MlStats {
    pub flow_rows: u64,
    pub device_rows: u64,
    /// Rows × models scored.
    pub scored: u64,
    /// Rows at least one model put above its threshold (with the margin).
    pub above_threshold: u64,
    /// Rows that raised an alert occurrence.
    pub alerts: u64,
    pub failed_writes: u64,
    pub score_errors: u64,
    /// Flows whose DNS/TLS facts were not kept (table full).
    pub facts_dropped: u64,
    pub alert_lifecycle: LifecycleStats,
}

struct FlowRow {
    flow_id: u64,
    ts: i64,
    mac: Option<[u8; 6]>,
    /// The other side of the flow, and its responder port.
    peer: IpAddr,
    service: String,
    values: [f64; FLOW_N],
}

/// Scored rows not yet written.
struct Unwritten {
    flows: Vec<FlowRow>,
    devices: Vec<DeviceRow>,
    scores: Vec<ScoreRow>,
    since: Instant,
}

impl Unwritten {
    fn new() -> Unwritten {
        Unwritten {
            flows: Vec::new(),
            devices: Vec::new(),
            scores: Vec::new(),
            since: Instant::now(),
        }
    }

    fn rows(&self) -> usize {
        self.flows.len() + self.devices.len() + self.scores.len()
    }
}

/// The `ng-ml` thread's state.
pub struct Worker {
    settings: Settings,
    registry: Arc<Registry>,
    conn: Connection,
    lc: Lifecycle,
    is_local: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
    /// What `is_local` reads: the configured networks and the learned IPv6 prefixes.
    local: Arc<std::sync::RwLock<crate::inventory::local::LocalNets>>,
    facts: HashMap<u64, FlowFacts>,
    windows: DeviceWindows,
    flows: Vec<FlowRow>,
    devices: Vec<DeviceRow>,
    unwritten: Unwritten,
    now: i64,
    notify: Option<Sender<StoredAlert>>,
    pub stats: MlStats,
}

fn ts(us: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, us)
}

impl Worker {
    pub fn new(
        cfg: &crate::config::Config,
        registry: Arc<Registry>,
        conn: Connection,
        lc: Lifecycle,
        notify: Option<Sender<StoredAlert>>,
    ) -> Worker {
        let mut local = crate::inventory::local::LocalNets::new(cfg);
        match crate::inventory::local::stored_prefixes(&conn) {
            Ok(nets) => local.learn_all(&nets),
            Err(e) => tracing::warn!(error = %e, "cannot read stored IPv6 prefixes"),
        }
        // Learned from router advertisements as they arrive (`on_events`); read per flow.
        let local = Arc::new(std::sync::RwLock::new(local));
        let nets = local.clone();
        let is_local: Arc<dyn Fn(IpAddr) -> bool + Send + Sync> =
            Arc::new(move |ip| nets.read().is_ok_and(|n| n.contains(ip)));
        let l2 = is_local.clone();
        let mut windows = DeviceWindows::new(Box::new(move |ip| l2(ip)));
        // Destinations of the last week's stored flows are not "new" after a restart.
        match DeviceWindows::seen_in_store(&conn, &*is_local, SEEN_DAYS) {
            Ok(pairs) => {
                let n = windows.prime(pairs);
                tracing::debug!(
                    pairs = n,
                    "device destinations primed from the stored flows"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored flows to prime new destinations")
            }
        }
        Worker {
            settings: Settings::from_config(cfg),
            registry,
            conn,
            lc,
            is_local,
            local,
            facts: HashMap::new(),
            windows,
            flows: Vec::new(),
            devices: Vec::new(),
            unwritten: Unwritten::new(),
            now: i64::MIN,
            notify,
            stats: MlStats::default(),
        }
    }

    /// Runs until every sender of `rx` is gone, then writes and scores what is pending.
    pub fn run(mut self, rx: Receiver<EventBatch>) -> MlStats {
        let mut since = Instant::now();
        loop {
            match rx.recv_timeout(FLUSH_INTERVAL.saturating_sub(since.elapsed())) {
                Ok(batch) => self.on_events(&batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let full = self.flows.len() + self.devices.len() >= self.settings.batch_size;
            if full || since.elapsed() >= FLUSH_INTERVAL {
                self.flush();
                self.registry.reload_if_changed();
                since = Instant::now();
            }
        }
        self.finish();
        self.stats.alert_lifecycle = self.lc.stats.clone();
        self.stats
    }

    /// Takes one batch of events.
    pub fn on_events(&mut self, events: &[Event]) {
        for ev in events {
            match ev {
                Event::Meta(m) => {
                    if matches!(m.record, crate::proto::ProtoRecord::RouterAdvert(_))
                        && let Ok(mut l) = self.local.write()
                    {
                        l.learn_from(&m.record);
                    }
                    if let Some(f) = self.facts.get_mut(&m.flow_id) {
                        f.add(&m.record);
                    } else if self.facts.len() < FACTS_CAP {
                        self.facts.entry(m.flow_id).or_default().add(&m.record);
                    } else {
                        self.stats.facts_dropped += 1;
                    }
                    self.windows.on_meta(m);
                    let t = match &m.record {
                        crate::proto::ProtoRecord::Dns(d) => d.ts,
                        crate::proto::ProtoRecord::Tls(t) => t.ts,
                        _ => i64::MIN,
                    };
                    self.advance(t);
                }
                Event::Flow(f) => {
                    self.windows.on_flow(f);
                    self.advance(f.last_ts);
                    if !f.is_final {
                        continue;
                    }
                    let facts = self.facts.remove(&f.id).unwrap_or_default();
                    let dev = device_of(
                        &*self.is_local,
                        (f.orig_addr, f.orig_mac),
                        (f.resp_addr, f.resp_mac),
                    );
                    let peer = match dev {
                        Some((_, false)) => f.orig_addr,
                        _ => f.resp_addr,
                    };
                    self.flows.push(FlowRow {
                        flow_id: f.id,
                        ts: f.first_ts,
                        mac: dev.map(|d| d.0),
                        peer,
                        service: format!("{}/{}", f.proto_name(), f.resp_port),
                        values: flow_features(f, &facts),
                    });
                }
                _ => {}
            }
        }
    }

    /// Moves packet time to `t` if later, closing the device windows it ends. Done per
    /// event, not per batch: a record arriving late (an idle flow ends a minute after its
    /// last packet) must land in the same window however the stream was cut into batches,
    /// or a live capture (batches cut by time) and a replay of it would disagree.
    fn advance(&mut self, t: i64) {
        if t > self.now {
            self.now = t;
            self.windows.advance(t, &mut self.devices);
        }
    }

    /// End of input: every open window is emitted, everything pending written and scored.
    pub fn finish(&mut self) {
        self.windows.finish(&mut self.devices);
        self.flush();
        self.write();
    }

    /// Scores the pending rows, raises alerts, and writes the scored rows when
    /// enough have gathered ([`WRITE_ROWS`]) or the last write is [`WRITE_INTERVAL`] old.
    pub fn flush(&mut self) {
        if !(self.flows.is_empty() && self.devices.is_empty()) {
            let flows = std::mem::take(&mut self.flows);
            let devices = std::mem::take(&mut self.devices);
            let loaded = self.registry.current();
            let mut alerts = Vec::new();
            let mut scores = std::mem::take(&mut self.unwritten.scores);
            self.score_flows(&loaded, &flows, &mut scores, &mut alerts);
            self.score_devices(&loaded, &devices, &mut scores, &mut alerts);
            self.unwritten.scores = scores;
            self.unwritten.flows.extend(flows);
            self.unwritten.devices.extend(devices);
            if !alerts.is_empty() {
                self.stats.alerts += alerts.len() as u64;
                for stored in self.lc.persist(&alerts) {
                    if let Some(tx) = &self.notify {
                        let _ = tx.try_send(stored);
                    }
                }
            }
        }
        if self.unwritten.rows() >= WRITE_ROWS || self.unwritten.since.elapsed() >= WRITE_INTERVAL {
            self.write();
        }
    }

    /// Writes every scored row in one transaction.
    fn write(&mut self) {
        let u = std::mem::replace(&mut self.unwritten, Unwritten::new());
        if u.rows() == 0 {
            return;
        }
        let res = (|| -> duckdb::Result<()> {
            self.conn.execute_batch("BEGIN TRANSACTION")?;
            write_flows(&self.conn, &u.flows)?;
            write_devices(&self.conn, &u.devices)?;
            write_scores(&self.conn, &u.scores)?;
            self.conn.execute_batch("COMMIT")
        })();
        match res {
            Ok(()) => {
                self.stats.flow_rows += u.flows.len() as u64;
                self.stats.device_rows += u.devices.len() as u64;
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, rows = u.flows.len() + u.devices.len(), "writing feature rows failed");
                self.stats.failed_writes += 1;
            }
        }
    }

    fn run_models(
        &mut self,
        loaded: &Loaded,
        kind: &str,
        data: &[f32],
        rows: usize,
    ) -> Vec<(Arc<Model>, model::Scores)> {
        let mut out = Vec::new();
        if rows == 0 {
            return out;
        }
        for m in loaded.of_kind(kind) {
            match m.score_flat(data) {
                Ok(s) if s.score.len() == rows => {
                    self.stats.scored += rows as u64;
                    out.push((m.clone(), s));
                }
                Ok(_) => self.stats.score_errors += 1,
                Err(e) => {
                    self.stats.score_errors += 1;
                    tracing::warn!(model = %m.path().display(), error = %e, "scoring failed");
                }
            }
        }
        out
    }

    /// Whether the models flag row `i`, and their verdicts for the evidence.
    fn verdict(&self, results: &[(Arc<Model>, model::Scores)], i: usize) -> Option<Vec<Verdict>> {
        let (flagged, verdicts) = judge(&self.settings, results, i);
        flagged.then_some(verdicts)
    }

    /// Scores feature rows with every model of `kind` and counts the rows any model put
    /// above its threshold.
    fn score_rows<'a>(
        &mut self,
        loaded: &Loaded,
        kind: &str,
        rows: impl ExactSizeIterator<Item = &'a [f64]>,
    ) -> Vec<(Arc<Model>, model::Scores)> {
        let n = rows.len();
        let data: Vec<f32> = rows.flat_map(|r| r.iter().map(|v| *v as f32)).collect();
        let results = self.run_models(loaded, kind, &data, n);
        for i in 0..n {
            if results.iter().any(|(m, s)| m.is_anomalous(s.score[i])) {
                self.stats.above_threshold += 1;
            }
        }
        results
    }

    fn score_flows(
        &mut self,
        loaded: &Loaded,
        rows: &[FlowRow],
        scores: &mut Vec<ScoreRow>,
        alerts: &mut Vec<Alert>,
    ) {
        let results = self.score_rows(loaded, "flow", rows.iter().map(|r| &r.values[..]));
        push_scores(&results, scores, |i| {
            (rows[i].ts, Some(rows[i].flow_id), None, None)
        });
        for (i, r) in rows.iter().enumerate() {
            let Some(verdicts) = self.verdict(&results, i) else {
                continue;
            };
            let top = top_features(&results, i, &FLOW_FEATURES.map(|d| d.name), &r.values);
            let dev = r
                .mac
                .map(format_mac)
                .unwrap_or_else(|| "an unknown device".into());
            let sev = if verdicts.iter().filter(|v| v.above).count() >= 2 {
                Severity::Medium
            } else {
                Severity::Low
            };
            let names: Vec<&str> = top.iter().take(3).map(|t| t.name).collect();
            alerts.push(
                Alert::new(r.ts, "anomaly", sev, format!("Unusual connection from {dev} to {} ({})", r.peer, r.service))
                    .explain(format!(
                        "The anomaly models trained on this network's normal traffic rate this connection as unusual \
                         (most unusual: {}). It may be harmless (a new app, an update); look at what the device did \
                         around this time, and mute the alert for this device and peer if it is expected.",
                        names.join(", ")
                    ))
                    .device(r.mac)
                    .peer(r.peer.to_string())
                    .flows([r.flow_id])
                    .evidence(json!({
                        "kind": "flow",
                        "service": r.service,
                        "models": verdicts,
                        "top_features": top,
                        "schema_version": SCHEMA_VERSION,
                    })),
            );
        }
    }

    fn score_devices(
        &mut self,
        loaded: &Loaded,
        rows: &[DeviceRow],
        scores: &mut Vec<ScoreRow>,
        alerts: &mut Vec<Alert>,
    ) {
        let results = self.score_rows(loaded, "device", rows.iter().map(|r| &r.values[..]));
        push_scores(&results, scores, |i| {
            (
                rows[i].window_start,
                None,
                Some(rows[i].mac),
                Some(rows[i].window_start),
            )
        });
        for (i, r) in rows.iter().enumerate() {
            let Some(verdicts) = self.verdict(&results, i) else {
                continue;
            };
            let top = top_features(&results, i, &DEVICE_FEATURES.map(|d| d.name), &r.values);
            let dev = format_mac(r.mac);
            let when = chrono::DateTime::from_timestamp_micros(r.window_start)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            let sev = if verdicts.iter().filter(|v| v.above).count() >= 2 {
                Severity::Medium
            } else {
                Severity::Low
            };
            let names: Vec<&str> = top.iter().take(3).map(|t| t.name).collect();
            alerts.push(
                Alert::new(r.window_start, "anomaly", sev, format!("Unusual activity of {dev}"))
                    .explain(format!(
                        "In the minute from {when}, {dev} behaved unlike this network's normal (most unusual: {}). \
                         Sudden changes in how many peers, ports, bytes or DNS failures a device has can mean \
                         scanning, exfiltration or malware; they can also be a new app or an update.",
                        names.join(", ")
                    ))
                    .device(Some(r.mac))
                    .evidence(json!({
                        "kind": "device",
                        "window_start": when,
                        "models": verdicts,
                        "top_features": top,
                        "schema_version": SCHEMA_VERSION,
                    })),
            );
        }
    }
}

/// One model's opinion of one row.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `iforest` or `autoencoder`.
    pub model: &'static str,
    pub score: f64,
    pub threshold: f64,
    /// Score above the threshold (and above it by `ml.min_score_margin`).
    pub above: bool,
}

/// The verdict of every model on row `i` of a scored batch, and whether they flag it:
/// every model above its threshold with `ml.require_agreement`, else any. Shared by the
/// `ng-ml` thread and `POST /api/analyze`, so both decide the same way.
pub fn judge(
    settings: &Settings,
    results: &[(Arc<Model>, model::Scores)],
    i: usize,
) -> (bool, Vec<Verdict>) {
    let margin = 1.0 + settings.min_score_margin;
    let verdicts: Vec<Verdict> = results
        .iter()
        .map(|(m, s)| {
            let th = m.meta().threshold as f64;
            let score = s.score.get(i).copied().unwrap_or(f32::NAN) as f64;
            Verdict {
                model: registry::type_name(m.meta().model),
                score,
                threshold: th,
                above: score > th * margin && score > th,
            }
        })
        .collect();
    let n = verdicts.iter().filter(|v| v.above).count();
    let flagged = !verdicts.is_empty()
        && if settings.require_agreement {
            n == verdicts.len()
        } else {
            n > 0
        };
    (flagged, verdicts)
}

/// One feature's contribution to an alert.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Contribution {
    pub name: &'static str,
    /// The transformed value as stored.
    pub value: f64,
    /// Autoencoder: squared reconstruction error of this feature (standardised units);
    /// else the squared z-score against the training data's mean and scale.
    pub error: f64,
    /// `error` / the sum over all features.
    pub share: f64,
}

/// The features that contributed most to row `i`: the autoencoder's per-feature
/// reconstruction error when an autoencoder scored it, else squared z-scores from a
/// model's scaler.
pub fn top_features(
    results: &[(Arc<Model>, model::Scores)],
    i: usize,
    names: &[&'static str],
    values: &[f64],
) -> Vec<Contribution> {
    let errors: Vec<f64> =
        if let Some(fe) = results.iter().find_map(|(_, s)| s.feature_error.as_ref()) {
            fe.row(i).iter().map(|e| *e as f64).collect()
        } else if let Some((m, _)) = results.first() {
            let (mean, scale) = (&m.meta().scaler_mean, &m.meta().scaler_scale);
            values
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let mu = mean.get(j).copied().unwrap_or(0.0);
                    let sd = scale.get(j).copied().filter(|s| *s > 0.0).unwrap_or(1.0);
                    ((v - mu) / sd).powi(2)
                })
                .collect()
        } else {
            return Vec::new();
        };
    let total: f64 = errors.iter().filter(|e| e.is_finite()).sum();
    let mut idx: Vec<usize> = (0..errors.len().min(names.len())).collect();
    idx.sort_by(|a, b| errors[*b].total_cmp(&errors[*a]).then(a.cmp(b)));
    idx.into_iter()
        .take(TOP_FEATURES)
        .map(|j| Contribution {
            name: names[j],
            value: values.get(j).copied().unwrap_or(0.0),
            error: errors[j],
            share: if total > 0.0 { errors[j] / total } else { 0.0 },
        })
        .collect()
}

struct ScoreRow {
    ts: i64,
    kind: &'static str,
    model: &'static str,
    sha: String,
    flow_id: Option<u64>,
    mac: Option<[u8; 6]>,
    window_start: Option<i64>,
    score: f64,
    threshold: f64,
    anomalous: bool,
}

type RowKey = (i64, Option<u64>, Option<[u8; 6]>, Option<i64>);

fn push_scores(
    results: &[(Arc<Model>, model::Scores)],
    out: &mut Vec<ScoreRow>,
    key: impl Fn(usize) -> RowKey,
) {
    for (m, s) in results {
        let meta = m.meta();
        let kind = if meta.kind == "flow" {
            "flow"
        } else {
            "device"
        };
        for (i, score) in s.score.iter().enumerate() {
            let (ts, flow_id, mac, window_start) = key(i);
            out.push(ScoreRow {
                ts,
                kind,
                model: registry::type_name(meta.model),
                sha: meta.data_sha256.clone(),
                flow_id,
                mac,
                window_start,
                score: *score as f64,
                threshold: meta.threshold as f64,
                anomalous: m.is_anomalous(*score),
            });
        }
    }
}

/// Appends `columns` (in table order) to `table` as one Arrow batch: DuckDB copies whole
/// columns instead of binding a `Value` per cell, a third of this thread's time when the
/// rows went through `append_row`.
fn append_columns(conn: &Connection, table: &str, columns: Vec<ArrayRef>) -> duckdb::Result<()> {
    let mut app = conn.appender(table)?;
    app.append_record_batch(record_batch(columns)?)?;
    app.flush()
}

/// One FLOAT column per feature, column `j` holding feature `j` of every row: the value
/// rounded to f32 exactly as [`Worker::score_rows`] rounds it for the models, so the
/// trainer learns from the very numbers the service scores.
fn feature_columns<'a, const N: usize>(
    rows: impl Iterator<Item = &'a [f64; N]> + Clone,
) -> impl Iterator<Item = ArrayRef> {
    (0..N).map(move |j| {
        Arc::new(Float32Array::from_iter_values(
            rows.clone().map(|v| v[j] as f32),
        )) as ArrayRef
    })
}

fn write_flows(conn: &Connection, rows: &[FlowRow]) -> duckdb::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.flow_id as i64),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| r.ts),
        )),
        mac_column(rows.iter().map(|r| r.mac)),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|_| SCHEMA_VERSION),
        )),
    ];
    columns.extend(feature_columns(rows.iter().map(|r| &r.values)));
    append_columns(conn, "flow_features", columns)
}

fn write_devices(conn: &Connection, rows: &[DeviceRow]) -> duckdb::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| r.window_start),
        )),
        mac_column(rows.iter().map(|r| Some(r.mac))),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|_| SCHEMA_VERSION),
        )),
    ];
    columns.extend(feature_columns(rows.iter().map(|r| &r.values)));
    append_columns(conn, "device_features", columns)
}

fn write_scores(conn: &Connection, rows: &[ScoreRow]) -> duckdb::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut app = conn.appender("anomaly_scores")?;
    for r in rows {
        app.append_row(duckdb::params![
            ts(r.ts),
            r.kind,
            r.model,
            r.sha,
            r.flow_id.map(|i| i as i64),
            r.mac.map(format_mac),
            r.window_start.map(ts).unwrap_or(Value::Null),
            r.score,
            r.threshold,
            r.anomalous,
        ])?;
    }
    app.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Store;

    fn row(i: u64) -> FlowRow {
        FlowRow {
            flow_id: i,
            ts: 1_700_000_000_000_000 + i as i64,
            mac: Some([2, 0, 0, 0, 0, 1]),
            peer: IpAddr::from([93, 184, 216, 34]),
            service: "tcp/443".into(),
            values: [i as f64; FLOW_N],
        }
    }

    /// A worker on a fresh database file (kept alive by the returned directory).
    fn worker(cfg: &Config) -> (tempfile::TempDir, Store, Worker) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
        let lc = Lifecycle::new(store.connection().unwrap(), &cfg.detect);
        let w = Worker::new(
            cfg,
            Registry::new(cfg),
            store.connection().unwrap(),
            lc,
            None,
        );
        (dir, store, w)
    }

    fn flow_event(id: u64, last_s: i64, resp: [u8; 4]) -> Event {
        use crate::flow::{DirSummary, EndReason, FlowRecord};
        let t0 = 1_700_000_040_000_000i64;
        Event::Flow(FlowRecord {
            id,
            community_id: "1:x".into(),
            proto: 6,
            vlan: 0,
            orig_addr: "192.168.1.2".parse().unwrap(),
            orig_port: 40000 + id as u16,
            resp_addr: IpAddr::from(resp),
            resp_port: 443,
            orig_mac: Some([2, 0, 0, 0, 0, 1]),
            resp_mac: None,
            first_ts: t0 + last_s * 1_000_000 - 1_000_000,
            last_ts: t0 + last_s * 1_000_000,
            orig: DirSummary {
                pkts: 3,
                bytes: 100 * id,
                ..Default::default()
            },
            resp: DirSummary {
                pkts: 2,
                bytes: 50,
                ..Default::default()
            },
            conn_state: "SF",
            history: "ShADadFf".into(),
            app_proto: None,
            end_reason: EndReason::Idle,
            is_final: true,
        })
    }

    /// The device windows do not depend on how the event stream was cut into batches:
    /// a flow reported late (after a later flow moved packet time past its window) lands
    /// in the same window whether it came in the same batch or the next one.
    #[test]
    fn device_windows_do_not_depend_on_batch_boundaries() {
        let events = [
            flow_event(1, 10, [93, 184, 216, 34]),
            flow_event(2, 200, [93, 184, 216, 35]),
            flow_event(3, 15, [93, 184, 216, 36]),
            flow_event(4, 400, [93, 184, 216, 37]),
        ];
        let rows = |cuts: &[usize]| -> Vec<(i64, Vec<u64>)> {
            let (_dir, _store, mut w) = worker(&Config::default());
            let mut from = 0;
            for &to in cuts.iter().chain([events.len()].iter()) {
                w.on_events(&events[from..to]);
                from = to;
            }
            w.windows.finish(&mut w.devices);
            w.devices
                .iter()
                .map(|r| {
                    (
                        r.window_start,
                        r.values.iter().map(|v| v.to_bits()).collect(),
                    )
                })
                .collect()
        };
        let whole = rows(&[]);
        assert_eq!(whole, rows(&[1, 2, 3]), "one event per batch");
        assert_eq!(whole, rows(&[2]), "late flow in the next batch");
        assert_eq!(whole, rows(&[3]), "late flow in the same batch");
        // Flow 3 (last packet at 15 s) came after packet time reached 200 s, when the
        // windows up to 60 s had been emitted: it counts in the oldest open one (120 s),
        // not in flow 1's (0 s).
        let t0 = 1_700_000_040_000_000i64;
        let starts: Vec<i64> = whole.iter().map(|r| (r.0 - t0) / 1_000_000).collect();
        assert_eq!(starts, [0, 120, 180, 360]);
    }

    /// Scored rows are written once 4,096 have gathered (not per scoring batch), a
    /// smaller remainder waits, and `finish` writes it: nothing scored is lost.
    #[test]
    fn scored_rows_are_written_in_large_transactions_and_at_finish() {
        let cfg = Config::default();
        let (_dir, store, mut w) = worker(&cfg);
        let conn = store.connection().unwrap();
        let stored = || -> i64 {
            conn.query_row("SELECT count(*) FROM flow_features", [], |r| r.get(0))
                .unwrap()
        };
        let batch = cfg.ml.batch_size as u64;
        let mut next = 0u64;
        let mut batches = 0;
        while next < WRITE_ROWS as u64 - batch {
            w.flows.extend((next..next + batch).map(row));
            next += batch;
            w.flush();
            batches += 1;
        }
        assert!(batches > 1);
        assert_eq!(stored(), 0, "written before {WRITE_ROWS} rows gathered");
        assert_eq!(w.unwritten.flows.len() as u64, next);
        w.flows.extend((next..next + batch).map(row));
        next += batch;
        w.flush();
        assert_eq!(stored() as u64, next, "one write of everything scored");
        assert!(w.unwritten.flows.is_empty());
        w.flows.extend((next..next + 10).map(row));
        next += 10;
        w.flush();
        assert_eq!(stored() as u64, next - 10);
        w.finish();
        assert_eq!(stored() as u64, next);
        assert_eq!((w.stats.flow_rows, w.stats.failed_writes), (next, 0));
        let (lo, hi, v): (i64, i64, f64) = conn
            .query_row(
                "SELECT min(flow_id), max(flow_id), max(duration_log) FROM flow_features",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((lo, hi as u64, v as u64), (0, next - 1, next - 1));
        // Every column lands where the schema says: the MAC, the schema version and
        // the last feature column (all features of row i are i).
        let exact: i64 = conn
            .query_row(
                "SELECT count(*) FROM flow_features WHERE device_mac = '02:00:00:00:00:01'
                 AND schema_version = 1 AND tls_old_version = flow_id
                 AND ts = make_timestamp(1700000000000000 + flow_id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(exact as u64, next);

        w.devices.push(DeviceRow {
            window_start: 1_700_000_040_000_000,
            mac: [2, 0, 0, 0, 0, 9],
            values: std::array::from_fn(|j| j as f64 + 0.5),
        });
        w.finish();
        let dev: (String, i32, f64, f64) = conn
            .query_row(
                "SELECT mac, schema_version, flows_log, failed_connections_log
                 FROM device_features WHERE window_start = make_timestamp(1700000040000000)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let last = DEVICE_FEATURES.len() as f64 - 0.5;
        assert_eq!(dev, ("02:00:00:00:00:09".to_string(), 1, 0.5, last));
    }
}
