//! Queries: read-only access for the API and the CLI.
//!
//! Readers never share the writer's connection: a [`ReadPool`] hands out cloned DuckDB
//! connections (DuckDB runs each reader on its own MVCC snapshot, so a long query never
//! blocks ingest and ingest never blocks a query). Blocking DuckDB calls run on tokio's
//! blocking threads so the HTTP server's reactor stays free.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::Connection;

use super::{Store, StoreError};

/// A small pool of reader connections to the store's database.
#[derive(Clone)]
pub struct ReadPool {
    store: Arc<Store>,
    idle: Arc<Mutex<Vec<Connection>>>,
    max_idle: usize,
}

impl ReadPool {
    pub fn new(store: Arc<Store>, max_idle: usize) -> ReadPool {
        ReadPool {
            store,
            idle: Arc::new(Mutex::new(Vec::new())),
            max_idle: max_idle.max(1),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(c) => Ok(c),
            None => {
                let c = self.store.connection()?;
                // The handlers prepare with `prepare_cached`: a list with one filter set
                // is planned once per connection, not once per request.
                c.set_prepared_statement_cache_capacity(64);
                Ok(c)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Runs `f` with a reader connection on a blocking thread.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, duckdb::Error> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let out = f(&conn);
            // A connection whose statement failed is still usable (DuckDB rolls the
            // statement back), so it goes back to the pool either way.
            pool.give_back(conn);
            Ok(out?)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
    }
}

/// A DuckDB `TIMESTAMP` (UTC by convention) as a chrono UTC time.
pub fn utc(ts: NaiveDateTime) -> DateTime<Utc> {
    ts.and_utc()
}

/// Microseconds since the epoch as a UTC time (out-of-range values clamp to the epoch).
pub fn utc_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A UTC time as the naive timestamp DuckDB columns hold.
pub fn naive(ts: DateTime<Utc>) -> NaiveDateTime {
    ts.naive_utc()
}

/// Builds a `WHERE` clause and its parameters piece by piece, so optional filters never
/// splice user input into SQL text.
#[derive(Default)]
pub struct Filter {
    clauses: Vec<String>,
    params: Vec<duckdb::types::Value>,
}

impl Filter {
    pub fn add(&mut self, clause: &str, values: impl IntoIterator<Item = duckdb::types::Value>) {
        self.clauses.push(clause.to_string());
        self.params.extend(values);
    }

    pub fn add_opt<T: Into<duckdb::types::Value>>(&mut self, clause: &str, v: Option<T>) {
        if let Some(v) = v {
            self.add(clause, [v.into()]);
        }
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn params(&self) -> Vec<duckdb::types::Value> {
        self.params.clone()
    }

    pub fn push_param(&mut self, v: impl Into<duckdb::types::Value>) {
        self.params.push(v.into());
    }
}

/// `ts` as a DuckDB timestamp value parameter.
pub fn ts_value(ts: DateTime<Utc>) -> duckdb::types::Value {
    duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, ts.timestamp_micros())
}
