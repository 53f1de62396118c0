//! Retraining: new models from this home's own recent baseline, without stopping
//! monitoring.
//!
//! A run (`POST /api/train`, `netguardian train`, the nightly timer) goes through four
//! steps, each reported in the job's `phase` and `progress`:
//!
//! 1. **export** — the window's `flow_features` / `device_features` rows, every alert
//!    that could overlap them and `feature_schema` are copied to Parquet under
//!    `<state_dir>/train/<job>/data` (DuckDB `COPY`, on its own connection, while the
//!    pipeline keeps writing);
//! 2. **train** — the Python trainer (`models/netguardian_models`, a subprocess at
//!    nice 10) fits each kind with enough rows; it drops rows overlapping alerts itself;
//! 3. **validate** — every ONNX file it wrote is loaded by tract with the same metadata
//!    check as the service, and must reproduce the trainer's own expected scores
//!    (`*.vectors.json`) — a model tract would score differently is never installed;
//! 4. **install** — the models replace those in the models folder by rename (the
//!    replaced ones move to `previous/`), and the registry reloads.
//!
//! A kind with too few baseline rows is skipped with the reason, not an error: a fresh
//! install simply has no models until a week of traffic has been seen. The training
//! data is deleted when the job ends (it holds device addresses).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::Connection;
use serde::Serialize;

use super::model::{Expected, Model, ModelType};
use super::registry::{Registry, models_dir};
use crate::config::Config;
use crate::store::Store;
use crate::store::export::{quote_path, ts_literal};

/// The kinds of feature rows, their table and time column.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("flow", "flow_features", "ts"),
    ("device", "device_features", "window_start"),
];

/// What to train on. Unset fields come from `[ml.train]`.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// First row time (inclusive). Default: `until` minus `days`.
    pub since: Option<DateTime<Utc>>,
    /// End of the window (exclusive). Default: just after the newest feature row, so a
    /// database filled from old captures trains on their time, not on the wall clock.
    pub until: Option<DateTime<Utc>>,
    pub days: Option<u32>,
    /// `flow`, `device`; empty: both.
    pub kinds: Vec<String>,
    pub contamination: Option<f64>,
    pub min_rows: Option<u64>,
}

/// Bad request (HTTP 400), another run in progress (409), or anything else.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("training job {0} is still running; wait for it (GET /api/train/{0})")]
    Busy(u64),
    #[error("{0}")]
    Other(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> TrainError {
    TrainError::Invalid {
        field,
        message: message.into(),
    }
}

/// The request with every default filled in and checked (before any work starts).
#[derive(Clone, Debug)]
struct Plan {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    days: u32,
    kinds: Vec<&'static str>,
    contamination: f64,
    min_rows: u64,
}

fn plan(cfg: &Config, req: &Request) -> Result<Plan, TrainError> {
    let t = &cfg.ml.train;
    let days = req.days.unwrap_or(t.days);
    if !(1..=366).contains(&days) {
        return Err(invalid("days", format!("must be 1..=366, got {days}")));
    }
    let contamination = req.contamination.unwrap_or(t.contamination);
    if !(contamination.is_finite() && contamination > 0.0 && contamination < 0.5) {
        return Err(invalid(
            "contamination",
            format!("must be above 0 and below 0.5, got {contamination}"),
        ));
    }
    let min_rows = req.min_rows.unwrap_or(t.min_rows);
    if !(10..=100_000_000).contains(&min_rows) {
        return Err(invalid(
            "min_rows",
            format!("must be 10..=100000000, got {min_rows}"),
        ));
    }
    if let (Some(s), Some(u)) = (req.since, req.until)
        && s >= u
    {
        return Err(invalid(
            "since",
            format!("since ({s}) must be before until ({u})"),
        ));
    }
    let mut kinds = Vec::new();
    for k in &req.kinds {
        let k = k.trim().to_ascii_lowercase();
        let Some((name, _, _)) = KINDS.iter().find(|(n, _, _)| *n == k) else {
            return Err(invalid(
                "kinds",
                format!("unknown kind {k:?}; kinds are flow and device"),
            ));
        };
        if !kinds.contains(name) {
            kinds.push(*name);
        }
    }
    if kinds.is_empty() {
        kinds = KINDS.iter().map(|(n, _, _)| *n).collect();
    }
    Ok(Plan {
        since: req.since,
        until: req.until,
        days,
        kinds,
        contamination,
        min_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_staging_folders_are_removed_and_fresh_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let old = base.path().join("old-1");
        let fresh = base.path().join("fresh-2");
        std::fs::create_dir_all(old.join("data")).unwrap();
        std::fs::create_dir_all(&fresh).unwrap();
        let f = std::fs::File::open(&old).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        remove_stale(base.path(), Duration::from_secs(3600));
        assert!(!old.exists() && fresh.exists());
    }

    #[test]
    fn requests_are_checked_before_anything_runs() {
        let cfg = Config::default();
        let bad = |r: Request| plan(&cfg, &r).unwrap_err().to_string();
        assert!(
            bad(Request {
                days: Some(0),
                ..Default::default()
            })
            .starts_with("days:")
        );
        assert!(
            bad(Request {
                kinds: vec!["flows".into()],
                ..Default::default()
            })
            .contains("unknown kind \"flows\"")
        );
        let p = plan(
            &cfg,
            &Request {
                kinds: vec!["Device".into(), "device".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.kinds, vec!["device"]);
        assert_eq!((p.days, p.min_rows), (7, 1000));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Not reached yet.
    Pending,
    /// New models installed.
    Trained,
    /// Not trained, for the reason given (too few rows); the old models stay.
    Skipped,
    /// The trainer or the validation failed; the old models stay.
    Failed,
}

/// A model a run installed.
#[derive(Clone, Debug, Serialize)]
pub struct Installed {
    pub file: String,
    pub model: String,
    pub threshold: f32,
    /// Largest difference between tract's and scikit-learn's scores on the vectors.
    pub max_score_diff: f64,
    pub vectors: usize,
}

/// What happened to one kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindResult {
    pub kind: String,
    /// Feature rows in the window (before the trainer drops alert windows).
    pub rows: u64,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub models: Vec<Installed>,
    /// The trainer's summary (its standard output, or the end of its error output).
    pub trainer_output: String,
    pub train_secs: f64,
}

/// A snapshot of a training job.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    pub id: u64,
    pub state: JobState,
    /// `queued`, `export`, `train flow`, `validate device`, `install`, `done`, ...
    pub phase: String,
    /// 0..1.
    pub progress: f64,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The window trained on (known once the export ran).
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub contamination: f64,
    pub min_rows: u64,
    pub models_dir: String,
    pub kinds: Vec<KindResult>,
    /// Models in use after the reload (when the job reloaded a registry).
    pub reload_generation: Option<u64>,
    pub error: Option<String>,
}

impl JobStatus {
    /// True when the run installed at least one model or skipped for lack of data,
    /// and nothing failed.
    pub fn succeeded(&self) -> bool {
        self.state == JobState::Done
    }
}

type Shared = Arc<Mutex<JobStatus>>;

fn with<T>(s: &Shared, f: impl FnOnce(&mut JobStatus) -> T) -> T {
    f(&mut s.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Where training data is staged: `<state_dir>/train` (allowed for DuckDB file access,
/// see [`crate::store::export::allowed_dirs`]).
pub fn train_dir(cfg: &Config) -> PathBuf {
    cfg.state_dir().join("train")
}

/// The trainer's command line (program, arguments) and its extra environment.
pub fn trainer_command(cfg: &Config) -> (Vec<String>, Vec<(String, String)>) {
    let t = &cfg.ml.train;
    let mut env = vec![
        ("OMP_NUM_THREADS".to_string(), t.threads.to_string()),
        ("OPENBLAS_NUM_THREADS".to_string(), t.threads.to_string()),
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ];
    if !t.command.is_empty() {
        return (t.command.clone(), env);
    }
    let module = || {
        vec![
            t.python.clone(),
            "-m".to_string(),
            "netguardian_models.train".to_string(),
        ]
    };
    if let Some(dir) = &t.trainer_dir {
        let mut pp = dir.display().to_string();
        if let Ok(old) = std::env::var("PYTHONPATH")
            && !old.is_empty()
        {
            pp = format!("{pp}:{old}");
        }
        env.push(("PYTHONPATH".into(), pp));
        return (module(), env);
    }
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("netguardian-train-models").is_file())
    });
    if on_path {
        (vec!["netguardian-train-models".into()], env)
    } else {
        (module(), env)
    }
}

/// The window a run trains on, and its rows per kind.
type Window = (DateTime<Utc>, DateTime<Utc>, BTreeMap<&'static str, u64>);

/// Resolves the window and copies its rows to Parquet in `data`; rows per kind.
fn export_window(conn: &Connection, plan: &Plan, data: &Path) -> Result<Window> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let until = match plan.until {
        Some(u) => u,
        None => {
            let mut newest: Option<NaiveDateTime> = None;
            for (kind, table, col) in KINDS {
                if plan.kinds.contains(kind) {
                    let m: Option<NaiveDateTime> =
                        conn.query_row(&format!("SELECT max({col}) FROM {table}"), [], |r| {
                            r.get(0)
                        })?;
                    newest = newest.max(m);
                }
            }
            match newest {
                // Just after the newest row (the window's end is exclusive).
                Some(t) => t.and_utc() + chrono::Duration::seconds(1),
                None => Utc::now(),
            }
        }
    };
    let since = plan
        .since
        .unwrap_or(until - chrono::Duration::days(plan.days as i64));
    let mut rows = BTreeMap::new();
    for (kind, table, col) in KINDS {
        if !plan.kinds.contains(kind) {
            continue;
        }
        let filter = format!(
            "WHERE {col} >= {} AND {col} < {}",
            ts_literal(since),
            ts_literal(until)
        );
        let n: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {table} {filter}"), [], |r| {
                r.get(0)
            })?;
        rows.insert(*kind, n.max(0) as u64);
        if n > 0 {
            conn.execute_batch(&format!(
                "COPY (SELECT * FROM {table} {filter}) TO {} (FORMAT parquet)",
                quote_path(&data.join(format!("{table}.parquet")))
            ))?;
        }
    }
    conn.execute_batch(&format!(
        "COPY feature_schema TO {} (FORMAT parquet)",
        quote_path(&data.join("feature_schema.parquet"))
    ))?;
    // Alerts that may overlap the window (the trainer widens each by a window length).
    let margin = chrono::Duration::hours(1);
    conn.execute_batch(&format!(
        "COPY (SELECT id, ts, last_ts, rule, device_mac FROM alerts \
         WHERE coalesce(last_ts, ts) >= {} AND ts < {}) TO {} (FORMAT parquet)",
        ts_literal(since - margin),
        ts_literal(until + margin),
        quote_path(&data.join("alerts.parquet"))
    ))?;
    Ok((since, until, rows))
}

/// Last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs the trainer for one kind; Ok(stdout) on exit 0, Err((exit code, message)).
fn run_trainer(
    cfg: &Config,
    args: &[String],
    cancel: &AtomicBool,
) -> std::result::Result<String, (Option<i32>, String)> {
    let (cmd, env) = trainer_command(cfg);
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..])
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: nice(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::nice(10);
            Ok(())
        });
    }
    let mut child = c.spawn().map_err(|e| {
        (
            None,
            format!(
                "cannot start the trainer {:?}: {e} (install models/requirements.txt and set \
                 ml.train.python and ml.train.trainer_dir, or ml.train.command)",
                cmd.join(" ")
            ),
        )
    })?;
    // Both pipes drained on their own threads, so a chatty trainer never blocks.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let limit = Duration::from_secs(cfg.ml.train.timeout_secs.max(1));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => {}
            Err(e) => break Err(format!("cannot wait for the trainer: {e}")),
        }
        if cancel.load(Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            break Err("cancelled: the service is stopping".into());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break Err(format!(
                "the trainer ran longer than ml.train.timeout_secs ({} s) and was stopped",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Ok(s) if s.success() => Ok(stdout),
        Ok(s) => {
            let msg = tail(stderr.trim(), 12);
            let msg = if msg.is_empty() {
                format!("the trainer exited with {s} and no message")
            } else {
                msg
            };
            Err((s.code(), msg))
        }
        Err(e) => Err((None, e)),
    }
}

/// Loads `onnx` with the service's checks and compares tract's scores with the
/// trainer's `*.vectors.json` next to it; the largest difference and the row count.
pub fn validate(onnx: &Path, kind: &str) -> Result<(Model, f64, usize)> {
    let expected = Expected::for_kind(kind).ok_or_else(|| anyhow!("unknown kind {kind}"))?;
    let m = Model::load(onnx, &expected)?;
    let vec_path = onnx.with_extension("vectors.json");
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&vec_path).with_context(|| format!("cannot read {}", vec_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", vec_path.display()))?;
    let tol = doc["tolerance"].as_f64().unwrap_or(1e-4);
    let num_rows = |key: &str| -> Result<Vec<Vec<f64>>> {
        doc[key]
            .as_array()
            .ok_or_else(|| anyhow!("{}: no {key}", vec_path.display()))?
            .iter()
            .map(|r| match r {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_f64().ok_or_else(|| anyhow!("non-number in {key}")))
                    .collect(),
                v => Ok(vec![
                    v.as_f64().ok_or_else(|| anyhow!("non-number in {key}"))?,
                ]),
            })
            .collect()
    };
    let inputs = num_rows("inputs")?;
    let want: Vec<f64> = num_rows("expected_score")?.into_iter().flatten().collect();
    ensure!(
        !inputs.is_empty() && inputs.len() == want.len(),
        "{}: {} inputs but {} expected scores",
        vec_path.display(),
        inputs.len(),
        want.len()
    );
    let rows: Vec<Vec<f32>> = inputs
        .iter()
        .map(|r| r.iter().map(|&v| v as f32).collect())
        .collect();
    let got = m.score(&rows)?;
    let mut worst = 0f64;
    for (i, (g, w)) in got.score.iter().zip(&want).enumerate() {
        let d = (*g as f64 - w).abs();
        if !(d <= tol || d <= tol * w.abs()) {
            bail!(
                "{}: row {i} scores {g} in tract but {w} in scikit-learn (tolerance {tol})",
                onnx.display()
            );
        }
        worst = worst.max(d);
    }
    Ok((m, worst, rows.len()))
}

/// Copies `src` into `dir` under `name` atomically (temporary name, then rename),
/// moving a file it replaces to `dir/previous/`.
fn install_file(src: &Path, dir: &Path, name: &str) -> Result<()> {
    let dest = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(src, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    if dest.exists() {
        let prev = dir.join("previous");
        std::fs::create_dir_all(&prev)
            .with_context(|| format!("cannot create {}", prev.display()))?;
        std::fs::copy(&dest, prev.join(name))
            .with_context(|| format!("cannot keep the previous {name}"))?;
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("cannot install {}", dest.display()))?;
    Ok(())
}

/// One training run from start to end, updating `status` as it goes. The models are
/// installed into `models_dir(cfg)`; `registry`, when given, is reloaded afterwards.
fn run(
    conn: &Connection,
    cfg: &Config,
    plan: &Plan,
    work: &Path,
    registry: Option<&Registry>,
    status: &Shared,
    cancel: &AtomicBool,
) -> Result<()> {
    let data = work.join("data");
    with(status, |s| s.phase = "export".into());
    let (since, until, rows) = export_window(conn, plan, &data)?;
    let steps = plan.kinds.len() as f64 + 1.0;
    with(status, |s| {
        s.since = Some(since);
        s.until = Some(until);
        s.progress = 1.0 / steps;
        for k in &mut s.kinds {
            k.rows = rows.get(k.kind.as_str()).copied().unwrap_or(0);
        }
    });
    let dir = models_dir(cfg);
    let mut installed_any = false;
    for (i, kind) in plan.kinds.iter().enumerate() {
        let n = rows.get(kind).copied().unwrap_or(0);
        let set = |outcome: Outcome, reason: Option<String>| {
            with(status, |s| {
                if let Some(k) = s.kinds.iter_mut().find(|k| k.kind == *kind) {
                    k.outcome = outcome;
                    k.reason = reason;
                }
                s.progress = (i as f64 + 2.0) / steps;
            })
        };
        if n < plan.min_rows {
            set(
                Outcome::Skipped,
                Some(format!(
                    "{n} {kind} feature rows between {since} and {until}, fewer than min_rows \
                     ({}); the models in use stay",
                    plan.min_rows
                )),
            );
            continue;
        }
        with(status, |s| s.phase = format!("train {kind}"));
        let out = work.join(format!("out-{kind}"));
        let args: Vec<String> = vec![
            "--parquet".into(),
            data.display().to_string(),
            "--kind".into(),
            kind.to_string(),
            "--out".into(),
            out.display().to_string(),
            "--since".into(),
            since
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
            "--until".into(),
            until
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
            "--contamination".into(),
            plan.contamination.to_string(),
            "--min-rows".into(),
            plan.min_rows.to_string(),
        ];
        let t0 = Instant::now();
        let res = run_trainer(cfg, &args, cancel);
        let secs = t0.elapsed().as_secs_f64();
        with(status, |s| {
            if let Some(k) = s.kinds.iter_mut().find(|k| k.kind == *kind) {
                k.train_secs = secs;
                k.trainer_output = match &res {
                    Ok(o) => o.trim().to_string(),
                    Err((_, e)) => e.clone(),
                };
            }
        });
        match res {
            Ok(_) => {}
            // Exit 2 naming too few rows (after alert windows were dropped) is a skip.
            Err((Some(2), msg)) if msg.contains("too few") => {
                set(Outcome::Skipped, Some(msg));
                continue;
            }
            Err((code, msg)) => {
                let what = match code {
                    Some(3) => "the exported ONNX does not reproduce scikit-learn".to_string(),
                    Some(c) => format!("the trainer failed (exit {c})"),
                    None => "the trainer did not finish".to_string(),
                };
                set(Outcome::Failed, Some(format!("{what}: {msg}")));
                if cancel.load(Relaxed) {
                    bail!("cancelled: the service is stopping");
                }
                continue;
            }
        }
        with(status, |s| s.phase = format!("validate {kind}"));
        let mut checked = Vec::new();
        let mut failure = None;
        for ty in [ModelType::IsolationForest, ModelType::Autoencoder] {
            let name = format!("{kind}_{}.onnx", super::registry::type_name(ty));
            let p = out.join(&name);
            if !p.exists() {
                continue;
            }
            match validate(&p, kind) {
                Ok((m, diff, nv)) => checked.push((
                    p,
                    Installed {
                        file: name,
                        model: super::registry::type_name(m.meta().model).into(),
                        threshold: m.meta().threshold,
                        max_score_diff: diff,
                        vectors: nv,
                    },
                )),
                Err(e) => {
                    failure = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        if let Some(f) = failure {
            set(
                Outcome::Failed,
                Some(format!("validation failed, nothing installed: {f}")),
            );
            continue;
        }
        if checked.is_empty() {
            set(
                Outcome::Failed,
                Some(format!("the trainer wrote no model into {}", out.display())),
            );
            continue;
        }
        with(status, |s| s.phase = format!("install {kind}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // All models of the kind are checked before the first is replaced.
        for (p, inst) in &checked {
            install_file(p, &dir, &inst.file)?;
        }
        let report = out.join(format!("{kind}_report.json"));
        if report.exists() {
            install_file(&report, &dir, &format!("{kind}_report.json"))?;
        }
        installed_any = true;
        with(status, |s| {
            if let Some(k) = s.kinds.iter_mut().find(|k| k.kind == *kind) {
                k.models = checked.into_iter().map(|(_, m)| m).collect();
            }
        });
        set(Outcome::Trained, None);
    }
    if installed_any && let Some(r) = registry {
        with(status, |s| s.phase = "reload".into());
        let loaded = r.reload();
        with(status, |s| s.reload_generation = Some(loaded.generation));
        let mine: Vec<String> = with(status, |s| {
            s.kinds
                .iter()
                .flat_map(|k| k.models.iter().map(|m| m.file.clone()))
                .collect()
        });
        if let Some(e) = loaded.errors.iter().find(|e| mine.contains(&e.file)) {
            bail!("the service did not load the new model {e}");
        }
    }
    let failed: Vec<String> = with(status, |s| {
        s.kinds
            .iter()
            .filter(|k| k.outcome == Outcome::Failed)
            .map(|k| format!("{}: {}", k.kind, k.reason.clone().unwrap_or_default()))
            .collect()
    });
    ensure!(failed.is_empty(), "{}", failed.join("; "));
    Ok(())
}

fn new_status(id: u64, cfg: &Config, plan: &Plan) -> JobStatus {
    JobStatus {
        id,
        state: JobState::Running,
        phase: "queued".into(),
        progress: 0.0,
        created_at: Utc::now(),
        finished_at: None,
        since: plan.since,
        until: plan.until,
        contamination: plan.contamination,
        min_rows: plan.min_rows,
        models_dir: models_dir(cfg).display().to_string(),
        kinds: plan
            .kinds
            .iter()
            .map(|k| KindResult {
                kind: k.to_string(),
                rows: 0,
                outcome: Outcome::Pending,
                reason: None,
                models: Vec::new(),
                trainer_output: String::new(),
                train_secs: 0.0,
            })
            .collect(),
        reload_generation: None,
        error: None,
    }
}

fn finish(status: &Shared, res: Result<()>) {
    with(status, |s| {
        s.finished_at = Some(Utc::now());
        match res {
            Ok(()) => {
                s.state = JobState::Done;
                s.phase = "done".into();
                s.progress = 1.0;
            }
            Err(e) => {
                s.state = JobState::Failed;
                s.phase = "failed".into();
                s.error = Some(format!("{e:#}"));
            }
        }
    });
}

/// Removes job folders under `base` left by a run that never finished (the service
/// stopped or crashed mid-job): those older than the longest a run may take.
fn remove_stale(base: &Path, max_age: Duration) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old && e.path().is_dir() {
            tracing::info!(dir = %e.path().display(), "removing the staging folder of an unfinished training run");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh folder for one job's files under `base`.
fn job_dir(base: &Path, id: u64) -> Result<PathBuf> {
    let d = base.join(format!(
        "{}-{id}-{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    ));
    if d.exists() {
        std::fs::remove_dir_all(&d).with_context(|| format!("cannot clear {}", d.display()))?;
    }
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

/// A training run in the foreground (`netguardian train --db`, when no service holds
/// the database); no registry to reload.
pub fn run_now(store: &Store, cfg: &Config, req: &Request) -> Result<JobStatus, TrainError> {
    let plan = plan(cfg, req)?;
    let status: Shared = Arc::new(Mutex::new(new_status(1, cfg, &plan)));
    let res = (|| {
        let work = job_dir(&train_dir(cfg), 1)?;
        let conn = store.connection()?;
        let r = run(
            &conn,
            cfg,
            &plan,
            &work,
            None,
            &status,
            &AtomicBool::new(false),
        );
        let _ = std::fs::remove_dir_all(&work);
        r
    })();
    finish(&status, res);
    Ok(with(&status, |s| s.clone()))
}

/// Training jobs of the service: one at a time, each on its own thread with its own
/// connection.
#[derive(Default)]
pub struct Trainer {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Shared>>,
    running: Mutex<Option<(u64, JoinHandle<()>)>>,
    cancel: Arc<AtomicBool>,
}

/// Finished jobs kept for `GET /api/train`.
const KEEP_JOBS: usize = 50;

impl Trainer {
    /// Starts a job; refuses while another one runs.
    pub fn submit(
        &self,
        store: &Arc<Store>,
        cfg: &Config,
        registry: &Arc<Registry>,
        req: &Request,
    ) -> Result<JobStatus, TrainError> {
        let plan = plan(cfg, req)?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, h)) = running.as_ref()
            && !h.is_finished()
        {
            return Err(TrainError::Busy(*id));
        }
        if let Some((_, h)) = running.take() {
            let _ = h.join();
        }
        let id = self.next.fetch_add(1, Relaxed) + 1;
        remove_stale(
            &train_dir(cfg),
            Duration::from_secs(cfg.ml.train.timeout_secs.saturating_add(3600)),
        );
        let work = job_dir(&train_dir(cfg), id).map_err(|e| TrainError::Other(format!("{e:#}")))?;
        let conn = store
            .connection()
            .map_err(|e| TrainError::Other(e.to_string()))?;
        let status: Shared = Arc::new(Mutex::new(new_status(id, cfg, &plan)));
        let (st, cfg2, reg, cancel) = (
            status.clone(),
            cfg.clone(),
            registry.clone(),
            self.cancel.clone(),
        );
        let h = std::thread::Builder::new()
            .name(format!("ng-train-{id}"))
            .spawn(move || {
                tracing::info!(job = id, "training started");
                let res = run(&conn, &cfg2, &plan, &work, Some(&reg), &st, &cancel);
                let _ = std::fs::remove_dir_all(&work);
                if let Err(e) = &res {
                    tracing::warn!(job = id, error = %format!("{e:#}"), "training failed");
                }
                finish(&st, res);
                with(&st, |s| {
                    for k in &s.kinds {
                        tracing::info!(job = id, kind = %k.kind, rows = k.rows, outcome = ?k.outcome, reason = k.reason.as_deref().unwrap_or(""), "training result");
                    }
                });
            })
            .map_err(|e| TrainError::Other(format!("cannot start the training thread: {e}")))?;
        *running = Some((id, h));
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.insert(id, status.clone());
        while jobs.len() > KEEP_JOBS {
            let Some(&first) = jobs.keys().next() else {
                break;
            };
            jobs.remove(&first);
        }
        Ok(with(&status, |s| s.clone()))
    }

    pub fn get(&self, id: u64) -> Option<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(&id).map(|s| with(s, |s| s.clone()))
    }

    /// Every job kept, newest first.
    pub fn list(&self) -> Vec<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .rev()
            .map(|s| with(s, |s| s.clone()))
            .collect()
    }

    /// Stops a running trainer subprocess and waits for the job's thread.
    pub fn shutdown(&self) {
        self.cancel.store(true, Relaxed);
        let h = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((_, h)) = h {
            let _ = h.join();
        }
    }
}
