//! Exports: the stored tables as files other tools read (Parquet, CSV, JSON, a DuckDB
//! file), optionally encrypted with age, with a manifest.
//!
//! DuckDB writes every file itself (`COPY ... TO`, `ATTACH` for the DuckDB format);
//! Parquet is partitioned hive style by table and day (`flows/date=2026-11-23/part-0.parquet`)
//! so DuckDB, Spark, Trino or pandas read the folder directly. With recipients or a
//! passphrase, each file is then streamed through age into `<file>.age` and the
//! plaintext removed. `manifest.json` (never encrypted: it holds no captured data) lists
//! every file with its SHA-256 (of the bytes on disk), row count and time range.
//!
//! The same [`export`] serves `netguardian export`, API jobs ([`Jobs`]) and scheduled
//! exports ([`due_scheduled`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use duckdb::Connection;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::store::Store;

/// Exportable tables and the time column that filters and partitions them.
pub const TABLES: &[(&str, &str)] = &[
    ("flows", "ts"),
    ("dns", "ts"),
    ("tls", "ts"),
    ("http", "ts"),
    ("dhcp", "ts"),
    ("names", "ts"),
    ("router_adverts", "ts"),
    ("devices", "last_seen"),
    ("device_addresses", "last_seen"),
    ("capture_stats", "recorded_at"),
    ("alerts", "ts"),
    ("runs", "started_at"),
    ("flow_features", "ts"),
    ("device_features", "window_start"),
    ("anomaly_scores", "ts"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Json,
    Duckdb,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "duckdb" => Ok(Format::Duckdb),
            _ => Err(format!(
                "unknown export format {s:?}; expected parquet, csv, json or duckdb"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Duckdb => "duckdb",
        }
    }
}

/// Validates table names; empty means every exportable table.
pub fn check_tables(tables: &[String]) -> Result<Vec<&'static str>, String> {
    if tables.is_empty() {
        return Ok(TABLES.iter().map(|(t, _)| *t).collect());
    }
    let mut out: Vec<&'static str> = Vec::new();
    for t in tables.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if t.is_empty() {
            continue;
        }
        let Some((name, _)) = TABLES.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) else {
            return Err(format!(
                "unknown table {t:?}; exportable tables: {}",
                TABLES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if !out.contains(name) {
            out.push(*name);
        }
    }
    if out.is_empty() {
        return Err("no table named".into());
    }
    Ok(out)
}

/// A time from the command line: RFC 3339 (`2026-11-23T10:00:00Z`), `YYYY-MM-DD HH:MM:SS`
/// (UTC) or a day `YYYY-MM-DD` (its midnight, UTC).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "{s:?} is not a time: use 2026-11-23, 2026-11-23 10:00:00 (UTC) or RFC 3339"
    ))
}

/// `HH:MM` (UTC).
pub fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| format!("{s:?} is not a time of day HH:MM (e.g. 02:30)"))
}

/// An age X25519 recipient (`age1...`).
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, String> {
    s.trim()
        .parse::<age::x25519::Recipient>()
        .map_err(|e| format!("{s:?} is not an age X25519 recipient (age1...): {e}"))
}

/// How export files are encrypted.
#[derive(Clone)]
pub enum Encryption {
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(SecretString),
}

impl Encryption {
    /// From the configuration: recipients if any, else the passphrase.
    pub fn from_config(cfg: &Config) -> Result<Option<Encryption>, String> {
        if !cfg.export.recipients.is_empty() {
            let r = cfg
                .export
                .recipients
                .iter()
                .map(|s| parse_recipient(s))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Some(Encryption::Recipients(r)));
        }
        Ok(cfg
            .export
            .passphrase
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|p| Encryption::Passphrase(SecretString::from(p.clone()))))
    }

    fn kind(&self) -> &'static str {
        match self {
            Encryption::Recipients(_) => "age-x25519",
            Encryption::Passphrase(_) => "age-scrypt",
        }
    }

    fn encryptor(&self) -> Result<age::Encryptor, String> {
        match self {
            Encryption::Recipients(r) => {
                age::Encryptor::with_recipients(r.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| format!("cannot encrypt: {e}"))
            }
            Encryption::Passphrase(p) => Ok(age::Encryptor::with_user_passphrase(p.clone())),
        }
    }
}

/// What to export.
#[derive(Clone)]
pub struct Request {
    pub format: Format,
    pub tables: Vec<&'static str>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub out: PathBuf,
    pub encryption: Option<Encryption>,
}

impl Request {
    /// Checks the time range and the output folder (missing or empty).
    pub fn validate(&self) -> Result<(), ExportError> {
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            return Err(ExportError::Invalid(format!(
                "since ({s}) must be before until ({u})"
            )));
        }
        if self.out.exists() {
            if !self.out.is_dir() {
                return Err(ExportError::Invalid(format!(
                    "output {} exists and is not a folder",
                    self.out.display()
                )));
            }
            let nonempty = std::fs::read_dir(&self.out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true);
            if nonempty {
                return Err(ExportError::Invalid(format!(
                    "output folder {} is not empty; choose a new folder",
                    self.out.display()
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Bad input: names the problem.
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] duckdb::Error),
    #[error("{0}")]
    Io(String),
}

/// Progress of a running export (shared with the API).
#[derive(Debug, Default)]
pub struct Progress {
    pub steps_total: AtomicU64,
    pub steps_done: AtomicU64,
    pub rows: AtomicU64,
}

/// One file of an export.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ManifestFile {
    /// Relative to the export folder.
    pub path: String,
    /// The table its rows come from (`null` for a DuckDB file holding several).
    pub table: Option<String>,
    pub bytes: u64,
    /// SHA-256 of the file as stored (after encryption, if any).
    pub sha256: String,
    pub rows: u64,
    pub min_ts: Option<DateTime<Utc>>,
    pub max_ts: Option<DateTime<Utc>>,
}

/// `manifest.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub created_at: DateTime<Utc>,
    pub netguardian_version: String,
    pub format: Format,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// `age-x25519`, `age-scrypt`, or null.
    pub encryption: Option<String>,
    pub files: Vec<ManifestFile>,
    pub total_rows: u64,
    pub elapsed_secs: f64,
}

pub const MANIFEST: &str = "manifest.json";

/// `t` as a DuckDB TIMESTAMP literal (UTC, microseconds).
pub(crate) fn ts_literal(t: DateTime<Utc>) -> String {
    format!(
        "TIMESTAMP '{}'",
        t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")
    )
}

/// `p` as a quoted SQL string literal.
pub(crate) fn quote_path(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "''"))
}

fn io(what: &str, p: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Io(format!("cannot {what} {}: {e}", p.display()))
}

/// Files under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn sha256_file(p: &Path) -> Result<(String, u64), ExportError> {
    let mut f = std::fs::File::open(p).map_err(|e| io("read", p, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| io("read", p, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Encrypts `p` into `p.age` and removes `p`.
fn encrypt_file(enc: &Encryption, p: &Path) -> Result<PathBuf, ExportError> {
    let out_path = PathBuf::from(format!("{}.age", p.display()));
    let mut input = std::io::BufReader::new(std::fs::File::open(p).map_err(|e| io("read", p, e))?);
    let out = std::fs::File::create(&out_path).map_err(|e| io("create", &out_path, e))?;
    let mut w = enc
        .encryptor()
        .map_err(ExportError::Io)?
        .wrap_output(std::io::BufWriter::new(out))
        .map_err(|e| io("encrypt into", &out_path, e))?;
    std::io::copy(&mut input, &mut w).map_err(|e| io("encrypt into", &out_path, e))?;
    let mut inner = w.finish().map_err(|e| io("encrypt into", &out_path, e))?;
    inner.flush().map_err(|e| io("write", &out_path, e))?;
    drop(inner);
    std::fs::remove_file(p).map_err(|e| io("remove", p, e))?;
    Ok(out_path)
}

/// Runs an export with `conn` (any connection of the database) into `req.out`.
pub fn export(
    conn: &Connection,
    req: &Request,
    progress: &Progress,
) -> Result<Manifest, ExportError> {
    req.validate()?;
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&req.out).map_err(|e| io("create", &req.out, e))?;
    let steps = req.tables.len() as u64 + u64::from(req.encryption.is_some());
    progress.steps_total.store(steps, Relaxed);
    let mut files: Vec<ManifestFile> = Vec::new();
    let mut table_rows: BTreeMap<String, u64> = BTreeMap::new();
    let duckdb_file = req.out.join("netguardian.duckdb");
    // The time range of the DuckDB file: that of its tables together.
    let (mut all_min, mut all_max): (Option<NaiveDateTime>, Option<NaiveDateTime>) = (None, None);
    // Attached databases belong to the database instance, not the connection: two
    // exports at once each need their own alias.
    static ALIAS_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let alias = format!("ng_export_{}", ALIAS_SEQ.fetch_add(1, Relaxed));
    if req.format == Format::Duckdb {
        conn.execute_batch(&format!(
            "ATTACH {} AS {alias} (READ_WRITE)",
            quote_path(&duckdb_file)
        ))?;
    }
    let res = (|| -> Result<(), ExportError> {
        for table in &req.tables {
            let col = TABLES
                .iter()
                .find(|(t, _)| t == table)
                .map(|(_, c)| *c)
                .ok_or_else(|| ExportError::Invalid(format!("unknown table {table}")))?;
            let mut conds = Vec::new();
            if let Some(s) = req.since {
                conds.push(format!("{col} >= {}", ts_literal(s)));
            }
            if let Some(u) = req.until {
                conds.push(format!("{col} < {}", ts_literal(u)));
            }
            let filter = if conds.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conds.join(" AND "))
            };
            let (n, min, max): (i64, Option<NaiveDateTime>, Option<NaiveDateTime>) = conn
                .query_row(
                    &format!("SELECT count(*), min({col}), max({col}) FROM {table} {filter}"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            let n = n.max(0) as u64;
            all_min = match (all_min, min) {
                (Some(a), Some(m)) => Some(a.min(m)),
                (a, m) => a.or(m),
            };
            all_max = all_max.max(max);
            table_rows.insert(table.to_string(), n);
            match req.format {
                Format::Parquet => {
                    if n > 0 {
                        let dir = req.out.join(table);
                        conn.execute(
                            &format!(
                                "COPY (SELECT *, strftime({col}, '%Y-%m-%d') AS date FROM {table} {filter}) \
                                 TO {} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), \
                                 FILENAME_PATTERN 'part-{{i}}')",
                                quote_path(&dir)
                            ),
                            [],
                        )?;
                        for f in files_under(&dir) {
                            let (rows, mn, mx): (
                                i64,
                                Option<NaiveDateTime>,
                                Option<NaiveDateTime>,
                            ) = conn.query_row(
                                &format!(
                                    "SELECT count(*), min({col}), max({col}) FROM read_parquet({})",
                                    quote_path(&f)
                                ),
                                [],
                                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                            )?;
                            files.push(ManifestFile {
                                path: rel(&req.out, &f),
                                table: Some(table.to_string()),
                                bytes: 0,
                                sha256: String::new(),
                                rows: rows.max(0) as u64,
                                min_ts: mn.map(|t| t.and_utc()),
                                max_ts: mx.map(|t| t.and_utc()),
                            });
                        }
                    }
                }
                Format::Csv | Format::Json => {
                    let ext = req.format.as_str();
                    let f = req.out.join(format!("{table}.{ext}"));
                    let opts = if req.format == Format::Csv {
                        "FORMAT csv, HEADER"
                    } else {
                        "FORMAT json"
                    };
                    conn.execute(
                        &format!(
                            "COPY (SELECT * FROM {table} {filter}) TO {} ({opts})",
                            quote_path(&f)
                        ),
                        [],
                    )?;
                    files.push(ManifestFile {
                        path: rel(&req.out, &f),
                        table: Some(table.to_string()),
                        bytes: 0,
                        sha256: String::new(),
                        rows: n,
                        min_ts: min.map(|t| t.and_utc()),
                        max_ts: max.map(|t| t.and_utc()),
                    });
                }
                Format::Duckdb => {
                    conn.execute(
                        &format!("CREATE TABLE {alias}.{table} AS SELECT * FROM {table} {filter}"),
                        [],
                    )?;
                }
            }
            progress.rows.fetch_add(n, Relaxed);
            progress.steps_done.fetch_add(1, Relaxed);
        }
        Ok(())
    })();
    if req.format == Format::Duckdb {
        let _ = conn.execute_batch(&format!("DETACH {alias}"));
        if res.is_ok() {
            let total: u64 = table_rows.values().sum();
            files.push(ManifestFile {
                path: rel(&req.out, &duckdb_file),
                table: None,
                bytes: 0,
                sha256: String::new(),
                rows: total,
                min_ts: all_min.map(|t| t.and_utc()),
                max_ts: all_max.map(|t| t.and_utc()),
            });
        }
    }
    res?;
    for f in &mut files {
        let mut p = req.out.join(&f.path);
        if let Some(enc) = &req.encryption {
            p = encrypt_file(enc, &p)?;
            f.path = rel(&req.out, &p);
        }
        let (sha, bytes) = sha256_file(&p)?;
        f.sha256 = sha;
        f.bytes = bytes;
    }
    if req.encryption.is_some() {
        progress.steps_done.fetch_add(1, Relaxed);
    }
    let manifest = Manifest {
        created_at: Utc::now(),
        netguardian_version: env!("CARGO_PKG_VERSION").into(),
        format: req.format,
        since: req.since,
        until: req.until,
        total_rows: table_rows.values().sum(),
        tables: table_rows,
        encryption: req.encryption.as_ref().map(|e| e.kind().into()),
        files,
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    let mp = req.out.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| ExportError::Io(format!("cannot write the manifest: {e}")))?;
    std::fs::write(&mp, text).map_err(|e| io("write", &mp, e))?;
    Ok(manifest)
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Folders exports may write to while the database is restricted
/// ([`Store::restrict`]): the API's export folder, every scheduled destination, and the
/// folder where retraining stages its data ([`crate::detect::ml::train::train_dir`]).
pub fn allowed_dirs(cfg: &Config) -> Vec<PathBuf> {
    let mut v = vec![cfg.export_dir(), crate::detect::ml::train::train_dir(cfg)];
    v.extend(cfg.export.scheduled.iter().map(|s| s.dir.clone()));
    v
}

/// State of an API export job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// A snapshot of an export job.
#[derive(Clone, Debug)]
pub struct JobStatus {
    pub id: u64,
    pub state: JobState,
    pub format: Format,
    pub tables: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub dir: PathBuf,
    /// 0..1: tables done (and the encryption pass) over all steps.
    pub progress: f64,
    pub rows: u64,
    pub manifest: Option<Manifest>,
    pub error: Option<String>,
}

struct Job {
    status: JobStatus,
    progress: Arc<Progress>,
    result: Arc<Mutex<Option<Result<Manifest, String>>>>,
}

/// Export jobs started through the API: each runs on its own thread with its own
/// connection and writes into a new folder under the export folder.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Job>>,
}

impl Jobs {
    pub fn submit(
        &self,
        store: &Arc<Store>,
        cfg: &Config,
        mut req: Request,
    ) -> Result<JobStatus, ExportError> {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let created_at = Utc::now();
        req.out = cfg
            .export_dir()
            .join(format!("{}-{id}", created_at.format("%Y%m%dT%H%M%SZ")));
        req.validate()?;
        let allowed = allowed_dirs(cfg);
        store
            .restrict(&allowed)
            .map_err(|e| ExportError::Io(e.to_string()))?;
        let conn = store
            .connection()
            .map_err(|e| ExportError::Io(e.to_string()))?;
        let progress = Arc::new(Progress::default());
        let result = Arc::new(Mutex::new(None));
        let (p2, r2, req2) = (progress.clone(), result.clone(), req.clone());
        std::thread::Builder::new()
            .name(format!("ng-export-{id}"))
            .spawn(move || {
                let out = export(&conn, &req2, &p2).map_err(|e| e.to_string());
                if let Err(e) = &out {
                    tracing::warn!(job = id, error = %e, "export failed");
                }
                *r2.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
            })
            .map_err(|e| ExportError::Io(format!("cannot start the export: {e}")))?;
        let status = JobStatus {
            id,
            state: JobState::Running,
            format: req.format,
            tables: req.tables.iter().map(|t| t.to_string()).collect(),
            created_at,
            finished_at: None,
            dir: req.out.clone(),
            progress: 0.0,
            rows: 0,
            manifest: None,
            error: None,
        };
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            Job {
                status: status.clone(),
                progress,
                result,
            },
        );
        Ok(status)
    }

    pub fn get(&self, id: u64) -> Option<JobStatus> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs.get_mut(&id)?;
        if job.status.state == JobState::Running {
            let total = job.progress.steps_total.load(Relaxed).max(1);
            job.status.progress =
                (job.progress.steps_done.load(Relaxed) as f64 / total as f64).min(1.0);
            job.status.rows = job.progress.rows.load(Relaxed);
            if let Some(r) = job.result.lock().unwrap_or_else(|e| e.into_inner()).take() {
                job.status.finished_at = Some(Utc::now());
                match r {
                    Ok(m) => {
                        job.status.state = JobState::Done;
                        job.status.progress = 1.0;
                        job.status.rows = m.total_rows;
                        job.status.manifest = Some(m);
                    }
                    Err(e) => {
                        job.status.state = JobState::Failed;
                        job.status.error = Some(e);
                    }
                }
            }
        }
        Some(job.status.clone())
    }
}

/// The scheduled exports due at `now`: for each, the day to export (the previous UTC
/// day once its time of day has passed) and its folder, unless that folder already
/// holds a manifest (done before, also by an earlier run of the service).
pub fn due_scheduled(cfg: &Config, now: DateTime<Utc>) -> Vec<(usize, NaiveDate, PathBuf)> {
    let mut out = Vec::new();
    for (i, s) in cfg.export.scheduled.iter().enumerate() {
        let Ok(at) = parse_time_of_day(&s.at) else {
            continue;
        };
        if now.time() < at {
            continue;
        }
        let Some(day) = now.date_naive().pred_opt() else {
            continue;
        };
        let dir = s.dir.join(day.format("%Y-%m-%d").to_string());
        if dir.join(MANIFEST).exists() {
            continue;
        }
        out.push((i, day, dir));
    }
    out
}

/// Runs scheduled export `i` for `day` into `dir` (an interrupted earlier attempt's
/// partial folder is replaced).
pub fn run_scheduled(
    store: &Store,
    cfg: &Config,
    i: usize,
    day: NaiveDate,
    dir: PathBuf,
) -> Result<Manifest, ExportError> {
    let s = cfg
        .export
        .scheduled
        .get(i)
        .ok_or_else(|| ExportError::Invalid(format!("no scheduled export {i}")))?;
    if dir.exists() && !dir.join(MANIFEST).exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io("remove the partial export", &dir, e))?;
    }
    let start = day.and_time(NaiveTime::MIN).and_utc();
    let req = Request {
        format: Format::parse(&s.format).map_err(ExportError::Invalid)?,
        tables: check_tables(&s.tables).map_err(ExportError::Invalid)?,
        since: Some(start),
        until: Some(start + chrono::Duration::days(1)),
        out: dir,
        encryption: if s.encrypt {
            Encryption::from_config(cfg).map_err(ExportError::Invalid)?
        } else {
            None
        },
    };
    let conn = store
        .connection()
        .map_err(|e| ExportError::Io(e.to_string()))?;
    export(&conn, &req, &Progress::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_formats_and_times_are_checked() {
        assert_eq!(check_tables(&[]).unwrap().len(), TABLES.len());
        assert_eq!(
            check_tables(&["flows,dns".into(), "FLOWS".into()]).unwrap(),
            vec!["flows", "dns"]
        );
        let e = check_tables(&["flowz".into()]).unwrap_err();
        assert!(e.contains("flowz") && e.contains("flows"), "{e}");
        assert!(Format::parse("xlsx").unwrap_err().contains("xlsx"));
        assert_eq!(Format::parse("Parquet").unwrap(), Format::Parquet);
        assert!(parse_time_of_day("25:00").is_err());
        assert!(parse_recipient("age1nope").is_err());
        let id = age::x25519::Identity::generate();
        assert!(parse_recipient(&id.to_public().to_string()).is_ok());
    }

    #[test]
    fn since_after_until_is_refused() {
        let t = Utc::now();
        let r = Request {
            format: Format::Csv,
            tables: vec!["flows"],
            since: Some(t),
            until: Some(t - chrono::Duration::hours(1)),
            out: PathBuf::from("/nonexistent/x"),
            encryption: None,
        };
        assert!(r.validate().unwrap_err().to_string().contains("since"));
    }
}
