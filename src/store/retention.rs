//! Retention: old rows are deleted in the background so the database does not grow
//! without bound on an SD card.
//!
//! Per-table ages come from `retention.days` (wall-clock days: "keep 30 days" means
//! rows older than 30 days from now), and `retention.max_db_mib` caps the space in use:
//! beyond it the oldest day of every event table goes, one day at a time. Deletes run
//! on their own connection in short transactions next to the writer (DuckDB's MVCC:
//! appends and deletes of other rows do not conflict), so ingest never waits. Flows
//! still open (`flows_open`, rewritten by the writer) are never touched. A `CHECKPOINT`
//! afterwards lets DuckDB reuse the freed blocks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;

use crate::config::RetentionConfig;

/// Tables with retention: name, the time column rows age by, and a condition a row must
/// also meet to be deleted. Alerts age by their last occurrence, and only once closed:
/// an open alert stays until the lifecycle resolves it (`detect.resolve_after_secs`),
/// whatever its age.
pub const TABLES: &[(&str, &str, &str)] = &[
    ("flows", "ts", "true"),
    ("dns", "ts", "true"),
    ("tls", "ts", "true"),
    ("http", "ts", "true"),
    ("dhcp", "ts", "true"),
    ("names", "ts", "true"),
    ("router_adverts", "ts", "true"),
    ("capture_stats", "recorded_at", "true"),
    ("alerts", "last_ts", "state IN ('resolved', 'dismissed')"),
    ("flow_features", "ts", "true"),
    ("device_features", "window_start", "true"),
    ("anomaly_scores", "ts", "true"),
];

fn physical(table: &str) -> &str {
    if table == "flows" {
        "flows_closed"
    } else {
        table
    }
}

/// What one pass deleted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Rows deleted per table.
    pub deleted: Vec<(String, u64)>,
    /// Days removed to meet the size cap.
    pub days_dropped_for_size: u32,
    pub used_bytes_before: u64,
    pub used_bytes_after: u64,
    pub checkpointed: bool,
}

/// Bytes of the database's blocks in use (not the file size: freed blocks are reused
/// but the file does not shrink).
pub fn used_bytes(conn: &Connection) -> Result<u64, duckdb::Error> {
    conn.query_row(
        "SELECT coalesce(sum(used_blocks * block_size), 0)::UBIGINT FROM pragma_database_size()",
        [],
        |r| r.get(0),
    )
}

fn delete_before(
    conn: &Connection,
    (table, col, also): (&str, &str, &str),
    cutoff: DateTime<Utc>,
) -> Result<u64, duckdb::Error> {
    let n = conn.execute(
        &format!(
            "DELETE FROM {} WHERE {col} < ? AND ({also})",
            physical(table)
        ),
        [crate::store::query::ts_value(cutoff)],
    )?;
    Ok(n as u64)
}

/// CHECKPOINT, retried while other transactions (the writer's, a reader's) are open.
pub fn checkpoint(conn: &Connection) -> bool {
    for attempt in 0..40 {
        match conn.execute_batch("CHECKPOINT") {
            Ok(()) => return true,
            Err(e) => {
                if attempt == 39 {
                    tracing::warn!(error = %e, "retention: checkpoint failed; DuckDB will reuse the space at its next checkpoint");
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    false
}

/// One retention pass at wall-clock time `now`.
pub fn run_once(
    conn: &Connection,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Report, duckdb::Error> {
    let mut report = Report {
        used_bytes_before: used_bytes(conn)?,
        ..Default::default()
    };
    let mut total = std::collections::BTreeMap::<String, u64>::new();
    for &t @ (table, _, _) in TABLES {
        let days = cfg.days.get(table).copied().unwrap_or(cfg.default_days);
        if days == 0 {
            continue;
        }
        let cutoff = now - chrono::Duration::days(days as i64);
        let n = delete_before(conn, t, cutoff)?;
        *total.entry(table.to_string()).or_default() += n;
    }
    let mut deleted_any = total.values().any(|n| *n > 0);
    if deleted_any {
        report.checkpointed = checkpoint(conn);
    }
    if cfg.max_db_mib > 0 {
        let cap = cfg.max_db_mib.saturating_mul(1 << 20);
        // One day at a time, oldest first, never today's data.
        let floor = now - chrono::Duration::days(1);
        for _ in 0..366 {
            if used_bytes(conn)? <= cap {
                break;
            }
            let oldest: Option<chrono::NaiveDateTime> =
                conn.query_row("SELECT min(ts) FROM flows_closed", [], |r| r.get(0))?;
            let Some(oldest) = oldest else { break };
            let cutoff = (oldest.date().and_hms_opt(0, 0, 0).unwrap_or(oldest)
                + chrono::Duration::days(1))
            .and_utc();
            if cutoff > floor {
                tracing::warn!(
                    cap_mib = cfg.max_db_mib,
                    "retention: database above retention.max_db_mib but only the last day is left"
                );
                break;
            }
            for &t @ (table, _, _) in TABLES {
                let n = delete_before(conn, t, cutoff)?;
                *total.entry(table.to_string()).or_default() += n;
            }
            report.days_dropped_for_size += 1;
            deleted_any = true;
            report.checkpointed = checkpoint(conn);
        }
    }
    report.deleted = total.into_iter().filter(|(_, n)| *n > 0).collect();
    report.used_bytes_after = if deleted_any {
        used_bytes(conn)?
    } else {
        report.used_bytes_before
    };
    Ok(report)
}
