//! Maintenance: the background thread of `serve` that deletes old rows (retention) and
//! runs the scheduled exports, on its own DuckDB connections so ingest never waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::Config;
use crate::store::{Store, export, retention};

/// How often the thread looks for due work.
const TICK: Duration = Duration::from_secs(30);

pub fn spawn(
    cfg: Config,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ng-maint".into())
        .spawn(move || run(&cfg, &store, &stop))
}

fn retention_enabled(cfg: &Config) -> bool {
    let r = &cfg.retention;
    r.default_days > 0 || r.days.values().any(|d| *d > 0) || r.max_db_mib > 0
}

fn run(cfg: &Config, store: &Store, stop: &AtomicBool) {
    let interval = Duration::from_secs(cfg.retention.interval_secs);
    // The first retention pass runs soon after start, then every interval.
    let mut next_retention = Instant::now() + Duration::from_secs(5);
    let mut last_check = Instant::now() - TICK;
    // A failed scheduled export is retried after a pause, not every tick.
    let mut retry_after: std::collections::HashMap<(usize, chrono::NaiveDate), Instant> =
        Default::default();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        if last_check.elapsed() < TICK && Instant::now() < next_retention {
            continue;
        }
        last_check = Instant::now();
        if retention_enabled(cfg) && Instant::now() >= next_retention {
            next_retention = Instant::now() + interval;
            match store.connection().map_err(|e| e.to_string()).and_then(|c| {
                retention::run_once(&c, &cfg.retention, Utc::now()).map_err(|e| e.to_string())
            }) {
                Ok(r) if !r.deleted.is_empty() => tracing::info!(
                    deleted = ?r.deleted,
                    days_for_size = r.days_dropped_for_size,
                    used_mib_before = r.used_bytes_before >> 20,
                    used_mib_after = r.used_bytes_after >> 20,
                    "retention: old rows deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
        for (i, day, dir) in export::due_scheduled(cfg, Utc::now()) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if retry_after
                .get(&(i, day))
                .is_some_and(|t| Instant::now() < *t)
            {
                continue;
            }
            match export::run_scheduled(store, cfg, i, day, dir.clone()) {
                Ok(m) => tracing::info!(
                    dir = %dir.display(), rows = m.total_rows, files = m.files.len(),
                    "scheduled export written"
                ),
                Err(e) => {
                    retry_after.insert((i, day), Instant::now() + Duration::from_secs(600));
                    tracing::warn!(dir = %dir.display(), error = %e, "scheduled export failed; retrying in 10 minutes");
                }
            }
        }
    }
}
