//! The alert lifecycle: deduplication, mutes, states, the device risk score, storage.
//!
//! [`Lifecycle`] owns its own DuckDB connection (DuckDB allows several per process)
//! and writes the `alerts` table; the API calls the free functions ([`acknowledge`],
//! [`dismiss`], [`resolve`], [`mute`], [`list_mutes`], [`unmute`], [`device_risk`])
//! with a connection of its own.
//!
//! **Deduplication.** An alert is identified by rule × device × peer. A repeat within
//! `detect.dedup_window_secs` of the previous occurrence's `last_ts` does not open a
//! new alert: `count` goes up, `last_ts` moves on, the lowest [`MAX_STORED_FLOWS`]
//! flow ids are kept, and the severity rises if the repeat is more severe (with its title and
//! explanation). The window slides: a condition that keeps recurring stays one alert.
//!
//! **States.** `active` (new), `acknowledged` (seen by someone, still open),
//! `dismissed` (not a problem), `resolved` (over: set by hand, or automatically after
//! `detect.resolve_after_secs` without a repeat). A repeat of an acknowledged or
//! dismissed alert within the window bumps its count and keeps its state, so
//! dismissing noise stays effective — unless the repeat is more severe than the
//! stored alert: then the alert becomes `active` again with the higher severity (a
//! critical "password guessed" must not hide behind a dismissed brute-force alert).
//! A repeat of a resolved alert, or any repeat after the window, opens a new `active`
//! alert. By hand (API, [`AlertState::reachable_from`]): acknowledge an active alert,
//! dismiss anything not dismissed, resolve an open one, reopen a closed or
//! acknowledged one.
//!
//! **`new_device`** is once per device: a second one for the same MAC is never opened,
//! whatever the window or state.
//!
//! **Mutes.** `alert_mutes` rows match rule × device × peer, where a NULL device or peer
//! matches any; `until` (optional) is compared with the alert's packet time. A muted
//! alert is neither stored nor announced; the mute's `suppressed` count and
//! `last_suppressed` record that it worked.
//!
//! **Risk score.** Per device, over its open alerts (active or acknowledged):
//! `min(100, Σ weight(severity) × (1 if active, ½ if acknowledged))` with weights
//! info 0, low 1, medium 5, high 15, critical 40, rounded — see [`risk_score`] and the
//! view `device_risk` (schema migration 2), which compute the same thing. One active
//! high alert scores 15, one critical 40; a device with nothing open scores 0.

use std::collections::HashMap;

use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, OptionalExt, params};
use serde::Serialize;

use super::{Alert, DetectConfig, RULE_IDS, SEC, Severity};
use crate::inventory::oui::format_mac;

/// Most flow ids kept on one stored alert.
pub const MAX_STORED_FLOWS: usize = 100;

/// Rules whose alert is opened once per device, ever.
const ONCE_PER_DEVICE: [&str; 1] = ["new_device"];

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Active,
    Acknowledged,
    Dismissed,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Active => "active",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Dismissed => "dismissed",
            AlertState::Resolved => "resolved",
        }
    }

    /// The states an alert can move to `self` from (the API and the library share
    /// these): acknowledge an active alert; dismiss anything not dismissed; resolve an
    /// open one; reopen a closed or acknowledged one.
    pub fn reachable_from(self) -> &'static [AlertState] {
        use AlertState::*;
        match self {
            Acknowledged => &[Active],
            Dismissed => &[Active, Acknowledged, Resolved],
            Resolved => &[Active, Acknowledged],
            Active => &[Acknowledged, Dismissed, Resolved],
        }
    }

    pub fn parse(s: &str) -> Option<AlertState> {
        [
            AlertState::Active,
            AlertState::Acknowledged,
            AlertState::Dismissed,
            AlertState::Resolved,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Counts towards the risk score.
    pub fn is_open(self) -> bool {
        matches!(self, AlertState::Active | AlertState::Acknowledged)
    }
}

/// An alert as stored: what the service announces when it is opened or repeated.
#[derive(Clone, Debug, Serialize)]
pub struct StoredAlert {
    /// Row id in `alerts`.
    pub id: i64,
    /// True when this opened the alert; false for a repeat that bumped it.
    pub new: bool,
    /// Occurrences so far.
    pub count: u64,
    pub state: AlertState,
    /// The occurrence (for a group of repeats in one batch, the most severe).
    pub alert: Alert,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no alert with id {0}")]
    UnknownAlert(i64),
    #[error("no mute with id {0}")]
    UnknownMute(i64),
    #[error("unknown rule {0:?} (rules: {list})", list = RULE_IDS.join(", "))]
    UnknownRule(String),
    #[error("alert {id} is {}; it cannot become {}", from.as_str(), to.as_str())]
    Transition {
        id: i64,
        from: AlertState,
        to: AlertState,
    },
    #[error("database error: {0}")]
    Db(#[from] duckdb::Error),
}

/// A row of `alert_mutes`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mute {
    pub id: i64,
    pub rule: String,
    /// None: any device.
    pub device_mac: Option<String>,
    /// None: any peer.
    pub peer: Option<String>,
    /// Creation time (wall clock, µs).
    pub created_at: i64,
    /// Muted until this packet time (µs); None: until unmuted.
    pub until: Option<i64>,
    pub reason: Option<String>,
    pub suppressed: u64,
    pub last_suppressed: Option<i64>,
}

impl Mute {
    fn matches(&self, a: &Alert, mac: Option<&str>) -> bool {
        self.rule == a.rule
            && self.device_mac.as_deref().is_none_or(|m| Some(m) == mac)
            && self
                .peer
                .as_deref()
                .is_none_or(|p| Some(p) == a.peer.as_deref())
            && self.until.is_none_or(|u| a.ts < u)
    }
}

/// A device's risk score and what it is made of.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RiskScore {
    pub mac: String,
    /// 0 (nothing open) to 100.
    pub score: u32,
    pub open_alerts: u64,
    /// Open alerts of high or critical severity.
    pub serious_alerts: u64,
}

/// Weight of one open alert in the risk score.
pub fn severity_weight(s: Severity) -> f64 {
    match s {
        Severity::Info => 0.0,
        Severity::Low => 1.0,
        Severity::Medium => 5.0,
        Severity::High => 15.0,
        Severity::Critical => 40.0,
    }
}

/// The risk score of a device from its alerts' severities and states (closed alerts
/// count nothing): `min(100, round(Σ weight × (1 active | ½ acknowledged)))`.
pub fn risk_score(alerts: &[(Severity, AlertState)]) -> u32 {
    let sum: f64 = alerts
        .iter()
        .map(|(sev, st)| match st {
            AlertState::Active => severity_weight(*sev),
            AlertState::Acknowledged => severity_weight(*sev) / 2.0,
            _ => 0.0,
        })
        .sum();
    sum.round().min(100.0) as u32
}

/// What the lifecycle did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LifecycleStats {
    /// Alerts opened.
    pub new: u64,
    /// Repeats folded into an existing alert.
    pub bumped: u64,
    /// Occurrences dropped by a mute.
    pub muted: u64,
    /// `new_device` occurrences for a device that already had one.
    pub repeated_once: u64,
    /// Occurrences lost to database errors.
    pub failed: u64,
    /// Alerts opened, per rule.
    pub new_by_rule: std::collections::BTreeMap<String, u64>,
}

type Key = (&'static str, Option<String>, Option<String>);

/// The latest stored alert of a key, as one flush's lookup reads it.
struct Existing {
    id: i64,
    ts: i64,
    last_ts: i64,
    state: AlertState,
    severity: Severity,
    count: u64,
    flow_ids: Vec<i64>,
}

/// Writes alerts for the detection thread. See the module documentation.
pub struct Lifecycle {
    conn: Connection,
    window: i64,
    resolve_after: i64,
    /// The staging tables exist on `conn` (they are TEMP: this connection only).
    staged: bool,
    last_resolve: i64,
    pub stats: LifecycleStats,
}

fn ts(us: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, us)
}

fn list_literal(ids: &[i64]) -> String {
    let v: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("[{}]", v.join(","))
}

fn parse_list(s: &str) -> Vec<i64> {
    s.trim_matches(['[', ']'])
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// Staging tables that carry one flush into DuckDB through the Appender: the keys to
/// look up, the repeats to fold into existing rows, the alerts to open. A flush costs
/// the same handful of prepared statements whether it touches one alert or thousands
/// (one statement per key, planned anew each time, was 74 % of the 3 M-packet
/// benchmark's CPU before).
const STAGING: &str = "
CREATE TEMP TABLE IF NOT EXISTS lc_keys (k INTEGER, rule VARCHAR, device_mac VARCHAR, peer VARCHAR,
    lo TIMESTAMP, hi TIMESTAMP);
CREATE TEMP TABLE IF NOT EXISTS lc_bump (id BIGINT, ts TIMESTAMP, last_ts TIMESTAMP, n UBIGINT,
    severity VARCHAR, raise BOOLEAN, title VARCHAR, explanation VARCHAR, flow_ids VARCHAR,
    evidence VARCHAR);
CREATE TEMP TABLE IF NOT EXISTS lc_new (id BIGINT, ts TIMESTAMP, last_ts TIMESTAMP, rule VARCHAR,
    severity VARCHAR, title VARCHAR, explanation VARCHAR, device_mac VARCHAR, peer VARCHAR,
    mitre_technique VARCHAR, count UBIGINT, flow_ids VARCHAR, evidence VARCHAR);
";

/// Per staged group, the latest alert of its key that it repeats: one whose span,
/// widened by the window, overlaps the group's (`lo`/`hi`). A group may be older than
/// alerts already stored (records written when a long flow ends), so it must not
/// fold into a later alert it is more than a window away from. For once-per-device
/// rules any row counts. (`?`, the oldest `lo`, only lets DuckDB skip old row groups.)
static LOOKUP_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let once: Vec<String> = ONCE_PER_DEVICE.iter().map(|r| format!("'{r}'")).collect();
    format!(
        "SELECT k.k, a.id, epoch_us(a.last_ts), a.state, a.severity, a.count, epoch_us(a.ts), \
         coalesce(a.flow_ids, [])::VARCHAR \
         FROM temp.main.lc_keys k JOIN alerts a ON a.rule = k.rule \
         AND a.device_mac IS NOT DISTINCT FROM k.device_mac AND a.peer IS NOT DISTINCT FROM k.peer \
         WHERE (a.last_ts >= ? AND a.last_ts >= k.lo AND a.ts <= k.hi) OR a.rule IN ({}) \
         QUALIFY row_number() OVER (PARTITION BY k.k ORDER BY a.last_ts DESC, a.id DESC) = 1",
        once.join(", ")
    )
});

/// A repeat may carry an occurrence older than the stored first one (a TLS record is
/// written when its flow ends, after later flows' records): `ts` and the evidence then
/// come from it, so the stored alert is the same however occurrences were cut into
/// flushes.
const BUMP_SQL: &str = "UPDATE alerts SET ts = least(alerts.ts, b.ts), \
     last_ts = greatest(alerts.last_ts, b.last_ts), \
     evidence = CASE WHEN b.ts < alerts.ts THEN b.evidence::JSON ELSE alerts.evidence END, \
     count = alerts.count + b.n, flow_ids = b.flow_ids::BIGINT[], severity = b.severity, \
     state = CASE WHEN b.raise THEN 'active' ELSE alerts.state END, \
     title = CASE WHEN b.raise THEN b.title ELSE alerts.title END, \
     explanation = CASE WHEN b.raise THEN b.explanation ELSE alerts.explanation END \
     FROM temp.main.lc_bump b WHERE alerts.id = b.id";

const INSERT_SQL: &str = "INSERT INTO alerts (id, ts, last_ts, rule, severity, state, title, \
     explanation, device_mac, peer, mitre_technique, count, flow_ids, evidence) \
     SELECT id, ts, last_ts, rule, severity, 'active', title, explanation, device_mac, peer, \
     mitre_technique, count, flow_ids::BIGINT[], evidence::JSON FROM temp.main.lc_new ORDER BY id";

/// One run of a key's occurrences in a flush (no gap longer than the dedup window),
/// folded into one stored alert.
struct Group<'a> {
    key: Key,
    /// 0 for the key's first run in the flush; later runs follow a gap longer than the
    /// window. Any run may repeat a stored alert that spans its time.
    run: usize,
    /// By packet time.
    alerts: Vec<&'a Alert>,
}

impl Group<'_> {
    /// The earliest occurrence of the highest severity: its title and explanation are
    /// stored. (The earliest, not the last: which occurrences share a hand-off is a
    /// wall-clock matter, and the stored text must not depend on it.)
    fn worst(&self) -> &Alert {
        self.alerts
            .iter()
            .rev()
            .max_by_key(|a| a.severity)
            .expect("groups are not empty")
    }
    fn first_ts(&self) -> i64 {
        self.alerts.first().map_or(i64::MIN, |a| a.ts)
    }
    fn last_ts(&self) -> i64 {
        self.alerts.last().map_or(i64::MIN, |a| a.ts)
    }
    /// The lowest (earliest opened) [`MAX_STORED_FLOWS`] flow ids of `existing` and the
    /// group's occurrences, ascending, each once. Keeping the lowest rather than the
    /// first to arrive makes the list the same however occurrences were cut into
    /// flushes (a wall-clock matter).
    fn flow_ids(&self, existing: &[i64]) -> Vec<i64> {
        let mut ids = existing.to_vec();
        ids.extend(
            self.alerts
                .iter()
                .flat_map(|a| a.flow_ids.iter())
                .map(|f| *f as i64),
        );
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(MAX_STORED_FLOWS);
        ids
    }
}

impl Lifecycle {
    pub fn new(conn: Connection, cfg: &DetectConfig) -> Lifecycle {
        Lifecycle {
            conn,
            window: cfg.dedup_window_secs as i64 * SEC,
            resolve_after: cfg.resolve_after_secs as i64 * SEC,
            staged: false,
            last_resolve: i64::MIN,
            stats: LifecycleStats::default(),
        }
    }

    /// Stores `alerts` (deduplicated, mutes applied) in one transaction and returns the
    /// alerts opened or bumped, in order. On a database error nothing of the batch is
    /// kept; it is logged, counted, and retried once when it was a write conflict with
    /// another connection.
    pub fn persist(&mut self, alerts: &[Alert]) -> Vec<StoredAlert> {
        if alerts.is_empty() {
            return Vec::new();
        }
        let before = self.stats.clone();
        for attempt in 0..2 {
            match self.try_persist(alerts) {
                Ok(v) => return v,
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.stats = before.clone();
                    let conflict = e.to_string().to_ascii_lowercase().contains("conflict");
                    if attempt == 0 && conflict {
                        continue;
                    }
                    tracing::error!(error = %e, alerts = alerts.len(), "storing alerts failed");
                    self.stats.failed += alerts.len() as u64;
                    break;
                }
            }
        }
        Vec::new()
    }

    fn try_persist(&mut self, alerts: &[Alert]) -> duckdb::Result<Vec<StoredAlert>> {
        if !self.staged {
            self.conn.execute_batch(STAGING)?;
            self.staged = true;
        }
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        for t in ["lc_keys", "lc_bump", "lc_new"] {
            self.conn
                .prepare_cached(&format!("DELETE FROM temp.main.{t}"))?
                .execute([])?;
        }
        let mutes = load_mutes(&self.conn)?;
        let mut suppressed: HashMap<i64, (u64, i64)> = HashMap::new();
        // Group the batch by key (first-occurrence order), then split each key's
        // occurrences into runs wherever packet time jumps by more than the window:
        // stored one after another, a later run would open a new alert anyway. So a
        // flush may span any stretch of packet time.
        let mut keys: Vec<(Key, Vec<&Alert>)> = Vec::new();
        let mut index: HashMap<Key, usize> = HashMap::new();
        for a in alerts {
            let mac = a.device_mac.map(format_mac);
            if let Some(m) = mutes.iter().find(|m| m.matches(a, mac.as_deref())) {
                let e = suppressed.entry(m.id).or_insert((0, a.ts));
                e.0 += 1;
                e.1 = e.1.max(a.ts);
                self.stats.muted += 1;
                continue;
            }
            let key: Key = (a.rule, mac, a.peer.clone());
            let i = *index.entry(key.clone()).or_insert_with(|| {
                keys.push((key, Vec::new()));
                keys.len() - 1
            });
            keys[i].1.push(a);
        }
        let mut groups: Vec<Group> = Vec::with_capacity(keys.len());
        for (key, mut occ) in keys {
            occ.sort_by_key(|a| a.ts);
            let mut run = 0;
            let mut start = 0;
            for j in 1..=occ.len() {
                if j == occ.len() || occ[j].ts > occ[j - 1].ts.saturating_add(self.window) {
                    groups.push(Group {
                        key: key.clone(),
                        run,
                        alerts: occ[start..j].to_vec(),
                    });
                    run += 1;
                    start = j;
                }
            }
        }
        let existing = self.lookup(&groups)?;
        // Two runs of a key can both repeat one stored alert that spans them both: the
        // later folds into the earlier, so the alert is bumped once with both.
        let mut run_of: HashMap<i64, usize> = HashMap::new();
        for i in 0..groups.len() {
            let Some(e) = existing.get(&i) else { continue };
            if e.state == AlertState::Resolved {
                continue;
            }
            if let Some(&j) = run_of.get(&e.id) {
                let moved = std::mem::take(&mut groups[i].alerts);
                groups[j].alerts.extend(moved);
                groups[j].alerts.sort_by_key(|a| a.ts);
            } else {
                run_of.insert(e.id, i);
            }
        }

        // Decide per group: skip (once per device), bump, or open.
        let mut out: Vec<Option<StoredAlert>> = Vec::with_capacity(groups.len());
        let mut opened: Vec<usize> = Vec::new();
        {
            let mut bump = self
                .conn
                .appender_to_catalog_and_db("lc_bump", "temp", "main")?;
            for (i, g) in groups.iter().enumerate() {
                let n = g.alerts.len() as u64;
                if n == 0 {
                    out.push(None); // folded into an earlier run
                    continue;
                }
                let e = existing.get(&i);
                if (e.is_some() || g.run > 0)
                    && ONCE_PER_DEVICE.contains(&g.key.0)
                    && g.key.1.is_some()
                {
                    self.stats.repeated_once += n;
                    out.push(None);
                    continue;
                }
                let repeat = e.filter(|e| {
                    e.state != AlertState::Resolved
                        && g.first_ts() <= e.last_ts.saturating_add(self.window)
                        && g.last_ts() >= e.ts.saturating_sub(self.window)
                });
                let Some(e) = repeat else {
                    opened.push(i);
                    out.push(None);
                    continue;
                };
                let worst = g.worst();
                let raise = worst.severity > e.severity;
                let severity = e.severity.max(worst.severity);
                let evidence =
                    serde_json::to_string(&g.alerts[0].evidence).unwrap_or_else(|_| "null".into());
                bump.append_row(params![
                    e.id,
                    ts(g.first_ts()),
                    ts(g.last_ts()),
                    n,
                    severity.as_str(),
                    raise,
                    worst.title,
                    worst.explanation,
                    list_literal(&g.flow_ids(&e.flow_ids)),
                    evidence,
                ])?;
                self.stats.bumped += n;
                let mut alert = worst.clone();
                alert.severity = severity;
                out.push(Some(StoredAlert {
                    id: e.id,
                    new: false,
                    count: e.count + n,
                    // More severe than what was acknowledged or dismissed: open again.
                    state: if raise { AlertState::Active } else { e.state },
                    alert,
                }));
            }
            bump.flush()?;
        }
        self.conn.prepare_cached(BUMP_SQL)?.execute([])?;

        if !opened.is_empty() {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached("SELECT nextval('alert_id_seq') AS id FROM range(?) ORDER BY id")?
                .query_map([opened.len() as i64], |r| r.get(0))?
                .collect::<duckdb::Result<_>>()?;
            let mut new = self
                .conn
                .appender_to_catalog_and_db("lc_new", "temp", "main")?;
            for (&i, &id) in opened.iter().zip(&ids) {
                let g = &groups[i];
                let first = g.alerts[0];
                let worst = g.worst();
                let n = g.alerts.len() as u64;
                let evidence =
                    serde_json::to_string(&first.evidence).unwrap_or_else(|_| "null".into());
                new.append_row(params![
                    id,
                    ts(g.first_ts()),
                    ts(g.last_ts()),
                    first.rule,
                    worst.severity.as_str(),
                    worst.title,
                    worst.explanation,
                    g.key.1,
                    g.key.2,
                    first.mitre,
                    n,
                    list_literal(&g.flow_ids(&[])),
                    evidence,
                ])?;
                self.stats.new += 1;
                self.stats.bumped += n - 1;
                *self
                    .stats
                    .new_by_rule
                    .entry(first.rule.to_string())
                    .or_default() += 1;
                out[i] = Some(StoredAlert {
                    id,
                    new: true,
                    count: n,
                    state: AlertState::Active,
                    alert: worst.clone(),
                });
            }
            new.flush()?;
            drop(new);
            self.conn.prepare_cached(INSERT_SQL)?.execute([])?;
        }

        for (id, (n, last)) in suppressed {
            self.conn.prepare_cached(
                "UPDATE alert_mutes SET suppressed = suppressed + ?, last_suppressed = greatest(coalesce(last_suppressed, ?), ?) WHERE id = ?",
            )?
            .execute(params![n, ts(last), ts(last), id])?;
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(out.into_iter().flatten().collect())
    }

    /// The latest stored alert of each group's key (by group index), with one join over
    /// the staged keys.
    fn lookup(&mut self, groups: &[Group]) -> duckdb::Result<HashMap<usize, Existing>> {
        if groups.is_empty() {
            return Ok(HashMap::new());
        }
        {
            let mut keys = self
                .conn
                .appender_to_catalog_and_db("lc_keys", "temp", "main")?;
            for (i, g) in groups.iter().enumerate() {
                keys.append_row(params![
                    i as i32,
                    g.key.0,
                    g.key.1,
                    g.key.2,
                    ts(g.first_ts().saturating_sub(self.window)),
                    ts(g.last_ts().saturating_add(self.window)),
                ])?;
            }
            keys.flush()?;
        }
        let oldest = groups
            .iter()
            .map(Group::first_ts)
            .min()
            .unwrap_or(i64::MIN)
            .saturating_sub(self.window);
        let mut st = self.conn.prepare_cached(&LOOKUP_SQL)?;
        let rows = st.query_map([ts(oldest)], |r| {
            let state: String = r.get(3)?;
            let sev: String = r.get(4)?;
            let list: String = r.get(7)?;
            Ok((
                r.get::<_, i32>(0)? as usize,
                Existing {
                    id: r.get(1)?,
                    ts: r.get(6)?,
                    last_ts: r.get(2)?,
                    state: AlertState::parse(&state).unwrap_or(AlertState::Active),
                    severity: Severity::parse(&sev).unwrap_or(Severity::Info),
                    count: r.get(5)?,
                    flow_ids: parse_list(&list),
                },
            ))
        })?;
        rows.collect()
    }

    /// Whether [`Lifecycle::resolve_stale`] would do its work at packet time `now`. The
    /// caller stores the occurrences it holds first, so none of them is left to open a
    /// new alert where it repeats one that resolution is about to close.
    pub fn resolve_due(&self, now: i64) -> bool {
        self.resolve_after > 0
            && now != i64::MIN
            && now >= self.last_resolve.saturating_add(3600 * SEC)
    }

    /// Stores the rules' learned state (`Engine::save_states`) as of packet time `now`,
    /// replacing what an earlier save stored. A failure is logged: the state is a
    /// convenience for the next run, never worth stopping detection for.
    pub fn save_rule_states(&self, states: &[(&'static str, serde_json::Value)], now: i64) {
        let save = || -> duckdb::Result<()> {
            let mut st = self.conn.prepare_cached(
                "INSERT OR REPLACE INTO detect_state VALUES (?, now()::TIMESTAMP, ?, ?)",
            )?;
            for (rule, state) in states {
                st.execute(params![rule, ts(now), state.to_string()])?;
            }
            Ok(())
        };
        if let Err(e) = save() {
            tracing::warn!(error = %e, "saving the rules' learned state failed");
        }
    }

    /// Marks open alerts not repeated for `detect.resolve_after_secs` before packet time
    /// `now` as resolved; does the work at most once an hour of packet time. Returns how
    /// many were resolved.
    pub fn resolve_stale(&mut self, now: i64) -> u64 {
        if !self.resolve_due(now) {
            return 0;
        }
        self.last_resolve = now;
        match self.conn.execute(
            "UPDATE alerts SET state = 'resolved' WHERE state IN ('active', 'acknowledged') AND last_ts < ?",
            params![ts(now - self.resolve_after)],
        ) {
            Ok(n) => n as u64,
            Err(e) => {
                tracing::warn!(error = %e, "resolving stale alerts failed");
                0
            }
        }
    }
}

/// Gives `engine` what earlier runs learned: known devices (so `new_device` does not
/// report them again), the resolvers and gateways DHCP advertised in the 30 days
/// before the newest DHCP message, and the IPv6 prefixes and resolvers of router
/// advertisements in the 30 days before the newest one.
pub fn seed_engine(conn: &Connection, engine: &mut super::Engine) -> duckdb::Result<()> {
    let mut st = conn.prepare("SELECT mac, hostname FROM devices")?;
    let devices: Vec<super::KnownDevice> = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?
        .filter_map(|r| r.ok())
        .filter_map(|(mac, hostname)| {
            Some(super::KnownDevice {
                mac: super::config::parse_mac(&mac)?,
                hostname,
            })
        })
        .collect();
    engine.seed_known_devices(devices);
    let recent =
        "msg_type IN ('OFFER', 'ACK') AND ts >= (SELECT max(ts) FROM dhcp) - INTERVAL 30 DAY";
    let ips = |sql: String| -> duckdb::Result<Vec<std::net::IpAddr>> {
        let mut st = conn.prepare(&sql)?;
        let v: Vec<std::net::IpAddr> = st
            .query_map([], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok()?.parse().ok())
            .collect();
        Ok(v)
    };
    // The network's DHCP server: the allowed ones if configured, else the one that
    // answered first in the store. Resolvers and gateways only from its messages.
    let server_of = "coalesce(nullif(server_id, '0.0.0.0'), CASE WHEN orig_port = 67 THEN orig_addr ELSE resp_addr END)";
    let first = ips(format!(
        "SELECT {server_of} FROM dhcp WHERE msg_type IN ('OFFER', 'ACK') ORDER BY ts LIMIT 1"
    ))?
    .into_iter()
    .next();
    let allowed = &engine.ctx.cfg.rogue_dhcp.allowed_servers;
    let servers: Vec<String> = if allowed.is_empty() {
        first.iter().map(|s| format!("'{s}'")).collect()
    } else {
        allowed.iter().map(|s| format!("'{s}'")).collect()
    };
    let (resolvers, gateways) = if servers.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let from = format!("{recent} AND {server_of} IN ({})", servers.join(", "));
        (
            ips(format!(
                "SELECT DISTINCT s FROM (SELECT unnest(dns_servers) AS s FROM dhcp WHERE {from}) ORDER BY s LIMIT 16"
            ))?,
            ips(format!(
                "SELECT DISTINCT router FROM dhcp WHERE router IS NOT NULL AND {from} ORDER BY router LIMIT 16"
            ))?,
        )
    };
    engine.seed_dhcp(first, resolvers, gateways);
    // Baselines rules learned in earlier runs.
    let mut st = conn.prepare("SELECT rule, state FROM detect_state ORDER BY rule")?;
    let states: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .filter_map(|r| r.ok())
        .collect();
    for (rule, state) in states {
        match serde_json::from_str::<serde_json::Value>(&state) {
            Ok(v) => engine.load_state(&rule, &v),
            Err(e) => tracing::warn!(rule, error = %e, "ignoring unreadable stored rule state"),
        }
    }
    // IPv6: the home prefixes of recent router advertisements, the network's router
    // (allowed, else the first default router in the store) and the RDNSS resolvers it
    // advertised recently.
    engine
        .ctx
        .seed_prefixes(&crate::inventory::local::stored_prefixes(conn)?);
    let router_of = "coalesce(router_mac, source_mac)";
    let first: Option<[u8; 6]> = conn
        .prepare(&format!(
            "SELECT {router_of} FROM router_adverts WHERE router_lifetime_s > 0 AND {router_of} IS NOT NULL ORDER BY ts LIMIT 1"
        ))?
        .query_map([], |r| r.get::<_, String>(0))?
        .filter_map(|r| super::config::parse_mac(&r.ok()?))
        .next();
    let ctx = &mut engine.ctx;
    if ctx.allowed_routers.is_empty() && ctx.learned_router.is_none() {
        ctx.learned_router = first;
    }
    let quoted = |m: &[u8; 6]| format!("'{}'", crate::inventory::oui::format_mac(*m));
    let routers: Vec<String> = if ctx.allowed_routers.is_empty() {
        ctx.learned_router.iter().map(quoted).collect()
    } else {
        ctx.allowed_routers.iter().map(quoted).collect()
    };
    if !routers.is_empty() {
        let rdnss = ips(format!(
            "SELECT DISTINCT s FROM (SELECT unnest(rdnss) AS s FROM router_adverts \
             WHERE router_lifetime_s > 0 AND {router_of} IN ({}) \
             AND ts >= (SELECT max(ts) FROM router_adverts) - INTERVAL 30 DAY) ORDER BY s LIMIT 16",
            routers.join(", ")
        ))?;
        engine.seed_dhcp(None, rdnss, []);
    }
    Ok(())
}

fn load_mutes(conn: &Connection) -> duckdb::Result<Vec<Mute>> {
    load_mutes_where(conn, None)
}

/// Every mute, or only the one with id `only`.
fn load_mutes_where(conn: &Connection, only: Option<i64>) -> duckdb::Result<Vec<Mute>> {
    let mut st = conn.prepare_cached(
        "SELECT id, rule, device_mac, peer, epoch_us(created_at), epoch_us(until), reason, suppressed, \
         epoch_us(last_suppressed) FROM alert_mutes WHERE ?::BIGINT IS NULL OR id = ? ORDER BY id",
    )?;
    let rows = st.query_map(params![only, only], |r| {
        Ok(Mute {
            id: r.get(0)?,
            rule: r.get(1)?,
            device_mac: r.get(2)?,
            peer: r.get(3)?,
            created_at: r.get(4)?,
            until: r.get(5)?,
            reason: r.get(6)?,
            suppressed: r.get(7)?,
            last_suppressed: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Moves alert `id` to `to` when [`AlertState::reachable_from`] allows it; already in
/// `to` is not an error.
pub fn set_state(conn: &Connection, id: i64, to: AlertState) -> Result<(), LifecycleError> {
    let cur: Option<String> = conn
        .query_row("SELECT state FROM alerts WHERE id = ?", params![id], |r| {
            r.get(0)
        })
        .optional()?;
    let cur = cur.ok_or(LifecycleError::UnknownAlert(id))?;
    let from = AlertState::parse(&cur).unwrap_or(AlertState::Active);
    if from == to {
        return Ok(());
    }
    if !to.reachable_from().contains(&from) {
        return Err(LifecycleError::Transition { id, from, to });
    }
    // Only from the state just read: a concurrent change makes this a no-op, not a
    // transition the rules do not allow.
    let n = conn.execute(
        "UPDATE alerts SET state = ? WHERE id = ? AND state = ?",
        params![to.as_str(), id, cur],
    )?;
    if n == 0 {
        return Err(LifecycleError::Transition { id, from, to });
    }
    Ok(())
}

/// Marks an alert as seen; it stays open (and in the risk score, at half weight).
pub fn acknowledge(conn: &Connection, id: i64) -> Result<(), LifecycleError> {
    set_state(conn, id, AlertState::Acknowledged)
}

/// Marks an alert as not a problem; repeats within the dedup window do not reopen it
/// unless they are more severe.
pub fn dismiss(conn: &Connection, id: i64) -> Result<(), LifecycleError> {
    set_state(conn, id, AlertState::Dismissed)
}

/// Marks an alert as over; a repeat opens a new alert.
pub fn resolve(conn: &Connection, id: i64) -> Result<(), LifecycleError> {
    set_state(conn, id, AlertState::Resolved)
}

/// Back to `active` (e.g. a dismissal made by mistake).
pub fn reopen(conn: &Connection, id: i64) -> Result<(), LifecycleError> {
    set_state(conn, id, AlertState::Active)
}

/// Mutes `rule` for `device` and `peer` (None: any) until packet time `until` (µs;
/// None: until unmuted). Returns the mute's id.
pub fn mute(
    conn: &Connection,
    rule: &str,
    device: Option<[u8; 6]>,
    peer: Option<&str>,
    until: Option<i64>,
    reason: Option<&str>,
) -> Result<i64, LifecycleError> {
    if !RULE_IDS.contains(&rule) {
        return Err(LifecycleError::UnknownRule(rule.to_string()));
    }
    let id = conn.query_row(
        "INSERT INTO alert_mutes (rule, device_mac, peer, created_at, until, reason) \
         VALUES (?, ?, ?, now()::TIMESTAMP, ?, ?) RETURNING id",
        params![
            rule,
            device.map(format_mac),
            peer,
            until.map(ts).unwrap_or(Value::Null),
            reason
        ],
        |r| r.get(0),
    )?;
    Ok(id)
}

/// Every mute, expired ones included (they no longer match anything).
pub fn list_mutes(conn: &Connection) -> Result<Vec<Mute>, LifecycleError> {
    Ok(load_mutes(conn)?)
}

/// One mute by id.
pub fn get_mute(conn: &Connection, id: i64) -> Result<Mute, LifecycleError> {
    load_mutes_where(conn, Some(id))?
        .pop()
        .ok_or(LifecycleError::UnknownMute(id))
}

/// Removes a mute; returns it as it was.
pub fn unmute(conn: &Connection, id: i64) -> Result<Mute, LifecycleError> {
    let m = get_mute(conn, id)?;
    let n = conn.execute("DELETE FROM alert_mutes WHERE id = ?", params![id])?;
    if n == 0 {
        return Err(LifecycleError::UnknownMute(id));
    }
    Ok(m)
}

/// The risk score of one device (0 when it has no open alerts), from the view
/// `device_risk`.
pub fn device_risk(conn: &Connection, mac: [u8; 6]) -> Result<RiskScore, LifecycleError> {
    let m = format_mac(mac);
    let r = conn
        .query_row(
            "SELECT score, open_alerts, serious_alerts FROM device_risk WHERE mac = ?",
            params![m],
            |r| {
                Ok(RiskScore {
                    mac: m.clone(),
                    score: r.get::<_, i64>(0)? as u32,
                    open_alerts: r.get(1)?,
                    serious_alerts: r.get(2)?,
                })
            },
        )
        .optional()?;
    Ok(r.unwrap_or(RiskScore {
        mac: m,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::store::Store;

    fn setup() -> (Store, Lifecycle) {
        let store = Store::open_in_memory().unwrap();
        let lc = Lifecycle::new(store.connection().unwrap(), &DetectConfig::default());
        (store, lc)
    }

    fn alert(ts: i64, rule: &'static str, sev: Severity, peer: &str, flow: u64) -> Alert {
        Alert::new(ts, rule, sev, format!("{rule} {sev:?}"))
            .explain("because")
            .device(Some(DEV_MAC))
            .peer(peer)
            .mitre("T1046")
            .flows([flow])
            .evidence(serde_json::json!({"n": 1}))
    }

    fn row(store: &Store, id: i64) -> (String, u64, String, String, Vec<i64>) {
        let c = store.connection().unwrap();
        c.query_row(
            "SELECT state, count, severity, strftime(last_ts, '%H:%M:%S'), flow_ids::VARCHAR FROM alerts WHERE id = ?",
            [id],
            |r| {
                let l: String = r.get(4)?;
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, parse_list(&l)))
            },
        )
        .unwrap()
    }

    fn count(store: &Store) -> i64 {
        store
            .connection()
            .unwrap()
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn repeats_within_the_window_bump_and_after_it_open_anew() {
        let (store, mut lc) = setup();
        let s = lc.persist(&[alert(T0, "port_scan", Severity::Medium, "10.0.0.1", 1)]);
        assert_eq!((s.len(), s[0].new, s[0].count), (1, true, 1));
        let id = s[0].id;
        // Same key twice in one batch, 30 min later, one more severe.
        let s = lc.persist(&[
            alert(
                T0 + 1800 * SEC,
                "port_scan",
                Severity::Medium,
                "10.0.0.1",
                2,
            ),
            alert(T0 + 1801 * SEC, "port_scan", Severity::High, "10.0.0.1", 3),
        ]);
        assert_eq!((s.len(), s[0].id, s[0].new, s[0].count), (1, id, false, 3));
        assert_eq!(
            row(&store, id),
            (
                "active".into(),
                3,
                "high".into(),
                "22:43:21".into(),
                vec![1, 2, 3]
            )
        );
        // Another peer is another alert.
        let s = lc.persist(&[alert(
            T0 + 1802 * SEC,
            "port_scan",
            Severity::Medium,
            "10.0.0.2",
            4,
        )]);
        assert!(s[0].new && s[0].id != id);
        // More than an hour after the last occurrence: a new alert.
        let s = lc.persist(&[alert(
            T0 + 1801 * SEC + 3601 * SEC,
            "port_scan",
            Severity::Low,
            "10.0.0.1",
            5,
        )]);
        assert!(s[0].new && s[0].id != id);
        assert_eq!(count(&store), 3);
        assert_eq!(lc.stats.new, 3);
        assert_eq!(lc.stats.bumped, 2);
        assert_eq!(lc.stats.new_by_rule["port_scan"], 3);
    }

    /// However the occurrences are cut into hand-offs, the stored text is that of the
    /// earliest occurrence of the highest severity.
    #[test]
    fn stored_text_does_not_depend_on_hand_off_cuts() {
        let occ = [
            alert(T0, "tls_anomaly", Severity::Low, "x", 1).explain("low"),
            alert(T0 + SEC, "tls_anomaly", Severity::Medium, "x", 2).explain("first medium"),
            alert(T0 + 2 * SEC, "tls_anomaly", Severity::Medium, "x", 3).explain("second"),
        ];
        let stored = |cuts: &[usize]| {
            let (store, mut lc) = setup();
            let mut from = 0;
            let mut id = 0;
            for &to in cuts.iter().chain([occ.len()].iter()) {
                if let Some(s) = lc.persist(&occ[from..to]).first() {
                    id = s.id;
                }
                from = to;
            }
            let c = store.connection().unwrap();
            c.query_row(
                "SELECT severity, explanation, count FROM alerts WHERE id = ?",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u64>(2)?,
                    ))
                },
            )
            .unwrap()
        };
        let want = ("medium".to_string(), "first medium".to_string(), 3);
        for cuts in [&[][..], &[1], &[2], &[1, 2]] {
            assert_eq!(stored(cuts), want, "cut at {cuts:?}");
        }
    }

    /// Occurrences reach the lifecycle roughly, not strictly, in packet time (a TLS
    /// record is written when its flow ends). An older occurrence in a later hand-off
    /// still becomes the alert's first `ts` and evidence.
    #[test]
    fn first_seen_is_the_earliest_occurrence_whatever_arrives_first() {
        let late = alert(T0 + 30 * SEC, "tls_anomaly", Severity::Medium, "x", 7)
            .evidence(serde_json::json!({"n": "late"}));
        let early = alert(T0, "tls_anomaly", Severity::Medium, "x", 3)
            .evidence(serde_json::json!({"n": "early"}));
        let stored = |flushes: &[&[Alert]]| {
            let (store, mut lc) = setup();
            let mut id = 0;
            for f in flushes {
                id = lc.persist(f)[0].id;
            }
            store
                .connection()
                .unwrap()
                .query_row(
                    "SELECT epoch_us(ts), epoch_us(last_ts), evidence->>'n', count, \
                     flow_ids::VARCHAR FROM alerts WHERE id = ?",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, u64>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )
                .unwrap()
        };
        let want = (
            T0,
            T0 + 30 * SEC,
            "early".to_string(),
            2,
            "[3, 7]".to_string(),
        );
        let (l, e) = (std::slice::from_ref(&late), std::slice::from_ref(&early));
        assert_eq!(
            stored(&[l, e]),
            want,
            "late first, early in the next hand-off"
        );
        assert_eq!(stored(&[e, l]), want, "in order");
        assert_eq!(
            stored(&[&[early.clone(), late.clone()]]),
            want,
            "one hand-off"
        );
    }

    /// An occurrence more than a window older than the latest alert of its key belongs
    /// to the older alert it falls in, not the latest; and two runs of one hand-off that
    /// both fall in one stored alert bump it once with both.
    #[test]
    fn late_occurrences_join_the_alert_of_their_time() {
        let (store, mut lc) = setup();
        let at =
            |secs: i64, flow: u64| alert(T0 + secs * SEC, "beaconing", Severity::Medium, "p", flow);
        let s = lc.persist(&[at(0, 1), at(7200, 2)]);
        let (a, b) = (s[0].id, s[1].id);
        assert_ne!(a, b, "two hours apart: two alerts");
        let late = lc.persist(&[at(600, 3)]);
        assert_eq!(late[0].id, a, "ten minutes in belongs to the first alert");
        let span = |id| {
            store
                .connection()
                .unwrap()
                .query_row(
                    "SELECT (epoch_us(ts) - ?) // 1000000, (epoch_us(last_ts) - ?) // 1000000, count \
                     FROM alerts WHERE id = ?",
                    params![T0, T0, id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, u64>(2)?)),
                )
                .unwrap()
        };
        assert_eq!(span(a), (0, 600, 2));
        assert_eq!(span(b), (7200, 7200, 1));
        // A long alert (every 50 minutes for 4 hours), then one hand-off with two runs
        // 2 h 10 min apart, both inside it.
        let long: Vec<Alert> = (0..5)
            .map(|i| at(20_000 + i * 3000, 10 + i as u64))
            .collect();
        let c = lc.persist(&long)[0].id;
        let both = lc.persist(&[at(20_000 + 1800, 20), at(20_000 + 1800 + 7800, 21)]);
        assert!(both.iter().all(|x| x.id == c), "{both:?}");
        assert_eq!(span(c), (20_000, 32_000, 7));
        assert_eq!(count(&store), 3);
    }

    #[test]
    fn flow_ids_are_bounded() {
        let (store, mut lc) = setup();
        let batch: Vec<Alert> = (0..150)
            .map(|i| alert(T0 + i * SEC, "flood", Severity::High, "x", i as u64))
            .collect();
        let s = lc.persist(&batch);
        assert_eq!(s[0].count, 150);
        assert_eq!(row(&store, s[0].id).4.len(), MAX_STORED_FLOWS);
        // The same occurrences in another order and cut into two flushes keep the same
        // list: the lowest ids, ascending.
        let (store2, mut lc2) = setup();
        let mut rev = batch.clone();
        rev.reverse();
        for a in rev.iter_mut() {
            a.ts = T0;
        }
        let s2 = lc2.persist(&rev[..60]);
        lc2.persist(&rev[60..]);
        let ids = row(&store2, s2[0].id).4;
        assert_eq!(ids, (0..MAX_STORED_FLOWS as i64).collect::<Vec<_>>());
        assert_eq!(ids, row(&store, s[0].id).4);
    }

    #[test]
    fn acknowledged_and_dismissed_stay_so_resolved_reopens() {
        let (store, mut lc) = setup();
        let conn = store.connection().unwrap();
        let a = lc.persist(&[alert(T0, "dga", Severity::High, "p", 1)])[0].id;
        acknowledge(&conn, a).unwrap();
        let s = lc.persist(&[alert(T0 + SEC, "dga", Severity::High, "p", 2)]);
        assert_eq!((s[0].id, s[0].state), (a, AlertState::Acknowledged));
        dismiss(&conn, a).unwrap();
        lc.persist(&[alert(T0 + 2 * SEC, "dga", Severity::High, "p", 3)]);
        assert_eq!(row(&store, a).0, "dismissed");
        assert_eq!(row(&store, a).1, 3);
        // A dismissed alert is reopened before it can be resolved.
        let e = resolve(&conn, a).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("alert {a} is dismissed; it cannot become resolved")
        );
        reopen(&conn, a).unwrap();
        resolve(&conn, a).unwrap();
        let s = lc.persist(&[alert(T0 + 3 * SEC, "dga", Severity::High, "p", 4)]);
        assert!(s[0].new && s[0].id != a);
        // Unknown ids are errors that say so.
        let e = acknowledge(&conn, 9999).unwrap_err();
        assert!(matches!(e, LifecycleError::UnknownAlert(9999)), "{e}");
        assert_eq!(e.to_string(), "no alert with id 9999");
        assert!(dismiss(&conn, 12345).is_err());
        reopen(&conn, a).unwrap();
        assert_eq!(row(&store, a).0, "active");
    }

    /// A dismissed or acknowledged alert repeated with a higher severity is active
    /// again: a critical "password guessed" is not hidden by a dismissed brute force.
    #[test]
    fn a_more_severe_repeat_reopens_a_dismissed_or_acknowledged_alert() {
        let (store, mut lc) = setup();
        let conn = store.connection().unwrap();
        let a = lc.persist(&[alert(T0, "brute_force", Severity::High, "p", 1)])[0].id;
        dismiss(&conn, a).unwrap();
        // Same severity: stays dismissed.
        let s = lc.persist(&[alert(T0 + SEC, "brute_force", Severity::High, "p", 2)]);
        assert_eq!((s[0].id, s[0].state), (a, AlertState::Dismissed));
        assert_eq!(row(&store, a).0, "dismissed");
        // More severe: active again, with the new severity and title.
        let s = lc.persist(&[alert(
            T0 + 2 * SEC,
            "brute_force",
            Severity::Critical,
            "p",
            3,
        )]);
        assert_eq!(
            (s[0].id, s[0].new, s[0].state),
            (a, false, AlertState::Active)
        );
        let r = row(&store, a);
        assert_eq!((r.0.as_str(), r.1, r.2.as_str()), ("active", 3, "critical"));
        let title: String = conn
            .query_row("SELECT title FROM alerts WHERE id = ?", [a], |r| r.get(0))
            .unwrap();
        assert_eq!(title, "brute_force Critical");
        // Acknowledged, then a less severe repeat: stays acknowledged.
        acknowledge(&conn, a).unwrap();
        let s = lc.persist(&[alert(T0 + 3 * SEC, "brute_force", Severity::High, "p", 4)]);
        assert_eq!(s[0].state, AlertState::Acknowledged);
        assert_eq!(row(&store, a).0, "acknowledged");
        assert_eq!(count(&store), 1);
    }

    #[test]
    fn mutes_with_wildcards_and_expiry() {
        let (store, mut lc) = setup();
        let conn = store.connection().unwrap();
        // Any peer, this device, until T0 + 1 h.
        let m = mute(
            &conn,
            "beaconing",
            Some(DEV_MAC),
            None,
            Some(T0 + 3600 * SEC),
            Some("NAS backup"),
        )
        .unwrap();
        let s = lc.persist(&[
            alert(T0, "beaconing", Severity::Medium, "1.2.3.4", 1),
            alert(T0 + 10 * SEC, "beaconing", Severity::Medium, "5.6.7.8", 2),
            alert(T0, "dga", Severity::High, "1.2.3.4", 3),
        ]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].alert.rule, "dga");
        assert_eq!(lc.stats.muted, 2);
        let mutes = list_mutes(&conn).unwrap();
        assert_eq!(mutes.len(), 1);
        assert_eq!((mutes[0].id, mutes[0].suppressed), (m, 2));
        assert_eq!(mutes[0].device_mac.as_deref(), Some("b8:27:eb:11:22:33"));
        assert_eq!(mutes[0].reason.as_deref(), Some("NAS backup"));
        // After the expiry, the rule reports again.
        let s = lc.persist(&[alert(
            T0 + 3601 * SEC,
            "beaconing",
            Severity::Medium,
            "1.2.3.4",
            4,
        )]);
        assert_eq!(s.len(), 1);
        // Unmuted: mutes gone; unknown ids and rules are errors.
        let m2 = mute(&conn, "beaconing", None, Some("9.9.9.9"), None, None).unwrap();
        assert_eq!(unmute(&conn, m).unwrap().id, m, "returns the mute removed");
        assert!(matches!(
            unmute(&conn, m),
            Err(LifecycleError::UnknownMute(_))
        ));
        assert_eq!(list_mutes(&conn).unwrap()[0].id, m2);
        let e = mute(&conn, "port-scan", None, None, None, None).unwrap_err();
        assert!(e.to_string().contains("port-scan"), "{e}");
        let s = lc.persist(&[alert(
            T0 + 9000 * SEC,
            "beaconing",
            Severity::Medium,
            "9.9.9.9",
            5,
        )]);
        assert!(s.is_empty(), "any device, this peer");
    }

    #[test]
    fn new_device_is_once_per_device() {
        let (store, mut lc) = setup();
        let conn = store.connection().unwrap();
        let nd = |ts| Alert::new(ts, "new_device", Severity::Low, "new").device(Some(DEV_MAC));
        let a = lc.persist(&[nd(T0)])[0].id;
        resolve(&conn, a).unwrap();
        assert!(lc.persist(&[nd(T0 + 30 * 86_400 * SEC)]).is_empty());
        assert_eq!(count(&store), 1);
        assert_eq!(lc.stats.repeated_once, 1);
    }

    #[test]
    fn risk_score_formula_and_view_agree() {
        let (store, mut lc) = setup();
        let conn = store.connection().unwrap();
        assert_eq!(device_risk(&conn, DEV_MAC).unwrap().score, 0);
        let ids: Vec<i64> = [
            ("port_scan", Severity::High),
            ("dga", Severity::Medium),
            ("dns_bypass", Severity::Low),
            ("new_device", Severity::Info),
            ("flood", Severity::Critical),
        ]
        .iter()
        .map(|(r, s)| lc.persist(&[alert(T0, r, *s, "p", 1)])[0].id)
        .collect();
        acknowledge(&conn, ids[0]).unwrap(); // high, acknowledged: 7.5
        dismiss(&conn, ids[4]).unwrap(); // critical, dismissed: 0
        let expect = risk_score(&[
            (Severity::High, AlertState::Acknowledged),
            (Severity::Medium, AlertState::Active),
            (Severity::Low, AlertState::Active),
            (Severity::Info, AlertState::Active),
            (Severity::Critical, AlertState::Dismissed),
        ]);
        assert_eq!(expect, 14); // 7.5 + 5 + 1 + 0 = 13.5, rounded half away from zero
        let r = device_risk(&conn, DEV_MAC).unwrap();
        assert_eq!((r.score, r.open_alerts, r.serious_alerts), (expect, 4, 1));
        assert_eq!(
            risk_score(&[(Severity::Critical, AlertState::Active); 5]),
            100
        );
    }

    #[test]
    fn one_flush_over_hours_splits_at_gaps_longer_than_the_window() {
        let (store, mut lc) = setup();
        let p = |ts, flow| alert(ts, "port_scan", Severity::Medium, "10.0.0.1", flow);
        let nd = |ts| Alert::new(ts, "new_device", Severity::Low, "new").device(Some(DEV_MAC));
        // Out of order, as rules emit them; runs: [T0, T0+30min, T0+50min] and, after
        // a gap of more than the hour window, [T0+3h]. new_device twice: still once.
        let s = lc.persist(&[
            p(T0 + 1800 * SEC, 2),
            nd(T0),
            p(T0 + 3 * 3600 * SEC, 4),
            p(T0, 1),
            p(T0 + 3000 * SEC, 3),
            nd(T0 + 5 * 3600 * SEC),
        ]);
        let counts: Vec<(&str, bool, u64)> =
            s.iter().map(|a| (a.alert.rule, a.new, a.count)).collect();
        assert_eq!(
            counts,
            [
                ("port_scan", true, 3),
                ("port_scan", true, 1),
                ("new_device", true, 1)
            ]
        );
        assert_eq!(count(&store), 3);
        assert_eq!(lc.stats.repeated_once, 1);
        let c = store.connection().unwrap();
        let first: (i64, i64, Vec<i64>) = c
            .query_row(
                "SELECT epoch_us(ts), epoch_us(last_ts), flow_ids::VARCHAR FROM alerts WHERE id = ?",
                [s[0].id],
                |r| Ok((r.get(0)?, r.get(1)?, parse_list(&r.get::<_, String>(2)?))),
            )
            .unwrap();
        assert_eq!(first, (T0, T0 + 3000 * SEC, vec![1, 2, 3]));
        // The next flush repeats the later run, not the earlier one.
        let s2 = lc.persist(&[p(T0 + 3 * 3600 * SEC + 60 * SEC, 5)]);
        assert_eq!((s2[0].id, s2[0].new, s2[0].count), (s[1].id, false, 2));
    }

    #[test]
    fn stale_alerts_resolve_by_packet_time() {
        let (store, mut lc) = setup();
        let a = lc.persist(&[alert(T0, "dga", Severity::High, "p", 1)])[0].id;
        let b = lc.persist(&[alert(T0 + 6 * 86_400 * SEC, "dga", Severity::High, "q", 1)])[0].id;
        assert_eq!(lc.resolve_stale(T0 + 13 * 86_400 * SEC - 3600 * SEC), 1);
        assert_eq!(row(&store, a).0, "resolved");
        assert_eq!(row(&store, b).0, "active");
        // At most once an hour of packet time.
        assert_eq!(lc.resolve_stale(T0 + 13 * 86_400 * SEC), 0);
    }
}
