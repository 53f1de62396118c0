//! Store: the embedded DuckDB database.
//!
//! - [`schema`]: tables and migrations.
//! - [`writer`]: the single writer thread that appends event batches.
//!
//! One [`Store`] per process owns the database; the writer and readers (the API, the
//! `sql` command) use their own connections cloned from it, so reads never block writes.

pub mod query;
pub mod schema;
pub mod writer;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use duckdb::{Connection, params};

/// Flow ids are `run_id << RUN_SHIFT | n`: unique across runs without a lookup.
pub const RUN_SHIFT: u32 = 40;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: duckdb::Error },
    #[error(
        "database {path} has schema version {found}, newer than this netguardian understands ({supported})"
    )]
    TooNew {
        path: String,
        found: i32,
        supported: i32,
    },
    #[error("database error: {0}")]
    Db(#[from] duckdb::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

/// The database owner. Its own connection (behind a mutex, so a `Store` can be shared
/// between the service's threads) runs migrations and run bookkeeping; every other user
/// takes a cloned connection.
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: p.clone(),
            source,
        })?;
        let store = Store {
            conn: Mutex::new(conn),
            path: p,
        };
        store.tune()?;
        store.migrate()?;
        Ok(store)
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        let store = Store {
            conn: Mutex::new(conn),
            path: ":memory:".into(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-updated in a
        // way later statements would misread (DuckDB rolls back), so poisoning is moot.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Session settings for an appliance: no progress-bar bookkeeping on queries.
    fn tune(&self) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("SET enable_progress_bar = false;")?;
        Ok(())
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// A new connection to the same database (for another thread).
    pub fn connection(&self) -> Result<Connection, StoreError> {
        Ok(self.conn().try_clone()?)
    }

    pub fn schema_version(&self) -> Result<i32, StoreError> {
        Ok(self.conn().query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.conn().execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMP NOT NULL,
                description VARCHAR NOT NULL)",
        )?;
        let current = self.schema_version()?;
        let latest = schema::latest_version();
        if current > latest {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: current,
                supported: latest,
            });
        }
        // Every migration not yet recorded runs, in version order, even one below the
        // highest applied: branches may number migrations with gaps (4 before 3).
        let applied: std::collections::HashSet<i32> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT version FROM schema_migrations")?;
            let rows = stmt.query_map([], |r| r.get::<usize, i32>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for m in schema::MIGRATIONS
            .iter()
            .filter(|m| !applied.contains(&m.version))
        {
            let sql = format!(
                "BEGIN TRANSACTION;\n{}\nINSERT INTO schema_migrations VALUES ({}, now()::TIMESTAMP, '{}');\nCOMMIT;",
                m.sql,
                m.version,
                m.description.replace('\'', "''")
            );
            let conn = self.conn();
            if let Err(e) = conn.execute_batch(&sql) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
            tracing::info!(version = m.version, "applied schema migration");
        }
        // The feature definitions are code: rewrite them at every open so the table
        // always describes what this binary computes.
        crate::flow::features::write_feature_schema(&self.conn())?;
        Ok(())
    }

    /// Registers a run (one `analyze` or one service start); returns its id.
    pub fn begin_run(&self, mode: &str, sources: &str) -> Result<i64, StoreError> {
        let conn = self.conn();
        let id: i64 = conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM runs", [], |r| {
            r.get(0)
        })?;
        conn.execute(
            "INSERT INTO runs (id, started_at, mode, sources, version) VALUES (?, now()::TIMESTAMP, ?, ?, ?)",
            params![id, mode, sources, env!("CARGO_PKG_VERSION")],
        )?;
        Ok(id)
    }

    pub fn end_run(&self, run_id: i64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE runs SET ended_at = now()::TIMESTAMP WHERE id = ?",
            params![run_id],
        )?;
        conn.execute_batch("CHECKPOINT")?;
        Ok(())
    }

    /// First flow id of a run.
    pub fn first_flow_id(run_id: i64) -> u64 {
        (run_id as u64) << RUN_SHIFT
    }
}
