//! Store: the embedded DuckDB database.
//!
//! - [`schema`]: tables and migrations.
//! - [`writer`]: the single writer thread that appends event batches.
//! - [`query`]: reader connections for the API.
//! - [`sql`]: the read-only SQL sandbox; [`export`]: files for other tools;
//!   [`retention`]: deleting old rows.
//!
//! One [`Store`] per process owns the database; the writer and readers (the API, the
//! `sql` command) use their own connections cloned from it, so reads never block writes.

pub mod export;
pub mod query;
pub mod retention;
pub mod schema;
pub mod sql;
pub mod writer;

use std::path::{Path, PathBuf};
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
    /// The folders DuckDB may still touch once [`Store::restrict`] ran.
    restricted: Mutex<Option<Vec<PathBuf>>>,
    /// See [`Store::scratch_dir`]; removed when the store is dropped.
    scratch: PathBuf,
}

impl Drop for Store {
    fn drop(&mut self) {
        // Result files are removed once read; this removes the folder itself (and what
        // a failed query may have left), so /tmp does not collect one folder per run.
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A scratch folder name unique to this process and store: tests and the service may
/// hold several stores at once, and one dropping its folder must not pull another's.
fn new_scratch_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("netguardian-sql-{}-{n}", std::process::id()))
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
            restricted: Mutex::new(None),
            scratch: new_scratch_dir(),
        };
        store.tune()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database read-only (no migrations, no writes): for `netguardian
    /// sql` and `export`. Fails while another process (`serve`) has it open for writing.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::Open {
                path: p,
                source: duckdb::Error::InvalidPath(path.to_path_buf()),
            });
        }
        let config = duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .map_err(|source| StoreError::Open {
                path: p.clone(),
                source,
            })?;
        let conn =
            Connection::open_with_flags(path, config).map_err(|source| StoreError::Open {
                path: p.clone(),
                source,
            })?;
        let store = Store {
            conn: Mutex::new(conn),
            path: p,
            restricted: Mutex::new(None),
            scratch: new_scratch_dir(),
        };
        store.tune()?;
        let found = store.schema_version()?;
        if found > schema::latest_version() {
            return Err(StoreError::TooNew {
                path: store.path.clone(),
                found,
                supported: schema::latest_version(),
            });
        }
        Ok(store)
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        let store = Store {
            conn: Mutex::new(conn),
            path: ":memory:".into(),
            restricted: Mutex::new(None),
            scratch: new_scratch_dir(),
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

    /// Applies `[store]`: DuckDB's memory limit, thread count and checkpoint threshold,
    /// for the whole database.
    pub fn configure(&self, cfg: &crate::config::StoreConfig) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute_batch(&format!(
            "SET memory_limit = '{}MiB'; SET checkpoint_threshold = '{}MiB';",
            cfg.memory_limit_mib, cfg.checkpoint_mib
        ))?;
        let threads = cfg.threads();
        if threads > 0 {
            conn.execute_batch(&format!("SET threads = {threads};"))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Scratch folder for SQL results DuckDB writes (Parquet answers), private to this
    /// store; each result file is removed once read, the folder when the store drops.
    pub fn scratch_dir(&self) -> PathBuf {
        self.scratch.clone()
    }

    /// Takes file access away from the whole database: DuckDB may then read and write
    /// only inside `allowed` (export folders) and [`Store::scratch_dir`], never load
    /// extensions or attach databases, and no connection can change a setting again.
    /// Irreversible while the database is open; later calls only check that `allowed`
    /// was included.
    pub fn restrict(&self, allowed: &[PathBuf]) -> Result<(), StoreError> {
        let mut done = self.restricted.lock().unwrap_or_else(|e| e.into_inner());
        let mut dirs: Vec<PathBuf> = Vec::new();
        for d in allowed.iter().cloned().chain([self.scratch_dir()]) {
            std::fs::create_dir_all(&d).map_err(|e| {
                StoreError::Task(format!("cannot create folder {}: {e}", d.display()))
            })?;
            dirs.push(std::fs::canonicalize(&d).unwrap_or(d));
        }
        if let Some(have) = done.as_ref() {
            if let Some(missing) = dirs.iter().find(|d| !have.contains(d)) {
                return Err(StoreError::Task(format!(
                    "{} was not allowed when file access was restricted at startup",
                    missing.display()
                )));
            }
            return Ok(());
        }
        let list = dirs
            .iter()
            .map(|d| format!("'{}/'", d.display().to_string().replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        self.conn().execute_batch(&format!(
            "SET autoinstall_known_extensions = false;
             SET allowed_directories = [{list}];
             SET enable_external_access = false;
             SET lock_configuration = true;"
        ))?;
        *done = Some(dirs);
        Ok(())
    }

    /// Whether [`Store::restrict`] ran, and the folders it allowed.
    pub fn restricted_to(&self) -> Option<Vec<PathBuf>> {
        self.restricted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        // Every migration not yet recorded, not only those above the highest: two
        // branches' migrations (2 and 3) then apply whichever order they were merged in.
        let applied: Vec<i32> = {
            let conn = self.conn();
            let mut st = conn.prepare("SELECT version FROM schema_migrations")?;
            st.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i32>, _>>()?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_sets_duckdb_memory_limit_threads_and_checkpoint_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
        let setting = |name: &str| -> String {
            store
                .connection()
                .unwrap()
                .query_row(
                    &format!("SELECT current_setting('{name}')::VARCHAR"),
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        store
            .configure(&crate::config::StoreConfig {
                memory_limit_mib: 96,
                threads: Some(1),
                checkpoint_mib: 48,
            })
            .unwrap();
        assert_eq!(setting("memory_limit"), "96.0 MiB");
        assert_eq!(setting("threads"), "1");
        assert_eq!(setting("checkpoint_threshold"), "48.0 MiB");
    }
}
