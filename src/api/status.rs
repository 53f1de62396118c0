//! Status: health, live statistics, effective configuration and interfaces.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::ApiState;
use super::auth::Reader;
use super::error::ApiResult;

#[derive(Tags)]
pub enum Tag {
    /// Health, statistics, configuration and interfaces.
    Status,
    /// Devices on the network.
    Devices,
    /// Flows (connections).
    Flows,
    /// Protocol metadata: DNS, TLS, HTTP, DHCP.
    Metadata,
    /// Alerts raised by the rules and models.
    Alerts,
    /// Traffic analytics.
    Analytics,
    /// Capture control, uploads and background jobs.
    Capture,
    /// Anomaly models: what is loaded, reloading.
    Models,
    /// Read-only SQL over the database.
    Sql,
    /// Exports to Parquet, CSV, JSON or DuckDB files, as background jobs.
    Exports,
}

#[derive(Object)]
pub struct Health {
    /// `ok`, or `degraded` when the database is unreachable or the capture failed.
    pub status: String,
    pub version: String,
    pub uptime_secs: f64,
    pub started_at: DateTime<Utc>,
    pub capture_running: bool,
    pub capture_mode: String,
    #[oai(nullable)]
    pub capture_error: Option<String>,
    pub db_ok: bool,
    #[oai(nullable)]
    pub db_error: Option<String>,
}

#[derive(Object)]
pub struct TableStats {
    pub table: String,
    pub rows: i64,
    #[oai(nullable)]
    pub oldest: Option<DateTime<Utc>>,
}

#[derive(Object)]
pub struct Stats {
    pub at: DateTime<Utc>,
    pub packets_per_sec: f64,
    pub bytes_per_sec: f64,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub active_flows: u64,
    /// Dropped by the kernel for lack of buffer space (libpcap).
    pub kernel_dropped: u64,
    /// Dropped by the interface or driver (libpcap).
    pub if_dropped: u64,
    /// Dropped by us because processing was behind.
    pub queue_dropped: u64,
    /// Events the live stream skipped because it was behind.
    pub stream_dropped: u64,
    pub capture_running: bool,
    pub ws_clients: u64,
    pub db_size_bytes: u64,
    pub tables: Vec<TableStats>,
}

#[derive(Object)]
pub struct Interface {
    pub name: String,
    #[oai(nullable)]
    pub description: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
    /// Carries the IPv4 default route.
    pub default_route: bool,
}

pub struct StatusApi;

#[OpenApi(tag = "Tag::Status")]
impl StatusApi {
    /// Service health.
    #[oai(path = "/api/health", method = "get")]
    async fn health(&self, state: Data<&Arc<ApiState>>) -> ApiResult<Json<Health>> {
        Ok(Json(health(&state).await))
    }

    /// Service health (same as `/api/health`, for load balancers and probes).
    #[oai(path = "/health", method = "get")]
    async fn health_root(&self, state: Data<&Arc<ApiState>>) -> ApiResult<Json<Health>> {
        Ok(Json(health(&state).await))
    }

    /// Packet and byte rates, drops, active flows, database size and per-table rows.
    #[oai(path = "/api/stats", method = "get")]
    async fn stats(&self, state: Data<&Arc<ApiState>>, auth: Reader) -> ApiResult<Json<Stats>> {
        auth.check(&state)?;
        let s = state.control.last_sample();
        let st = state.control.status();
        let path = state.db.store().path().to_string();
        let db_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(format!("{path}.wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        let tables = state
            .db
            .run(|c| {
                let mut out = Vec::new();
                // `flows` per table: over the view (a UNION ALL) DuckDB scans a million
                // rows for count and min, over each table it answers from statistics.
                for (t, col) in [
                    ("flows", "ts"),
                    ("dns", "ts"),
                    ("tls", "ts"),
                    ("http", "ts"),
                    ("dhcp", "ts"),
                    ("names", "ts"),
                    ("router_adverts", "ts"),
                    ("devices", "first_seen"),
                    ("alerts", "ts"),
                ] {
                    let sql = if t == "flows" {
                        "SELECT sum(n)::BIGINT, min(m) FROM (\
                           SELECT count(*) AS n, min(ts) AS m FROM flows_closed \
                           UNION ALL SELECT count(*), min(ts) FROM flows_open)"
                            .to_string()
                    } else {
                        format!("SELECT count(*), min({col}) FROM {t}")
                    };
                    let (rows, oldest): (i64, Option<chrono::NaiveDateTime>) =
                        c.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    out.push(TableStats {
                        table: t.into(),
                        rows,
                        oldest: oldest.map(|t| t.and_utc()),
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(Json(Stats {
            at: Utc::now(),
            packets_per_sec: s.packets_per_sec,
            bytes_per_sec: s.bytes_per_sec,
            packets: st.packets,
            bytes: st.bytes,
            flows: st.flows,
            active_flows: st.active_flows,
            kernel_dropped: st.kernel_dropped,
            if_dropped: st.if_dropped,
            queue_dropped: st.queue_dropped,
            stream_dropped: state.control.hub().dropped(),
            capture_running: st.running,
            ws_clients: state.control.hub().clients() as u64,
            db_size_bytes: db_size,
            tables,
        }))
    }

    /// The effective configuration (defaults, file and environment merged).
    #[oai(path = "/api/config", method = "get")]
    async fn config(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
    ) -> ApiResult<Json<serde_json::Value>> {
        auth.check(&state)?;
        // The configuration holds no secrets today (the token lives in its own file);
        // redact() is where any future secret keys are blanked.
        Ok(Json(redact(
            serde_json::to_value(&state.cfg).unwrap_or_default(),
        )))
    }

    /// Network interfaces that can be captured on.
    #[oai(path = "/api/interfaces", method = "get")]
    async fn interfaces(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
    ) -> ApiResult<Json<Vec<Interface>>> {
        auth.check(&state)?;
        let default = crate::capture::live::default_route_interface();
        let list = pcap::Device::list().unwrap_or_default();
        Ok(Json(
            list.into_iter()
                .filter(|d| {
                    !["any", "nflog", "nfqueue", "dbus-system", "dbus-session"]
                        .contains(&d.name.as_str())
                })
                .map(|d| Interface {
                    default_route: default.as_deref() == Some(d.name.as_str()),
                    addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
                    up: d.flags.is_up(),
                    running: d.flags.is_running(),
                    loopback: d.flags.is_loopback(),
                    description: d.desc,
                    name: d.name,
                })
                .collect(),
        ))
    }
}

async fn health(state: &ApiState) -> Health {
    let db = state
        .db
        .run(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i32>(0)))
        .await;
    let st = state.control.status();
    let db_ok = db.is_ok();
    Health {
        status: if db_ok && st.last_error.is_none() {
            "ok".into()
        } else {
            "degraded".into()
        },
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.started.elapsed().as_secs_f64(),
        started_at: Utc::now()
            - chrono::Duration::from_std(state.started.elapsed()).unwrap_or_default(),
        capture_running: st.running,
        capture_mode: st.mode,
        capture_error: st.last_error,
        db_ok,
        db_error: db.err().map(|e| e.to_string()),
    }
}

/// Keys whose values are secrets and never leave the service.
const SECRET_KEYS: [&str; 3] = ["passphrase", "token", "password"];

fn redact(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if SECRET_KEYS.iter().any(|s| k.contains(s)) && !val.is_null() {
                    *val = serde_json::Value::String("<redacted>".into());
                } else {
                    *val = redact(val.take());
                }
            }
        }
        serde_json::Value::Array(a) => {
            for x in a.iter_mut() {
                *x = redact(x.take());
            }
        }
        _ => {}
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_blanks_secret_keys_at_any_depth() {
        let v = serde_json::json!({"export": {"passphrase": "hunter2", "dir": "/x"}, "a": [{"token": "t"}]});
        let r = super::redact(v);
        assert_eq!(r["export"]["passphrase"], "<redacted>");
        assert_eq!(r["export"]["dir"], "/x");
        assert_eq!(r["a"][0]["token"], "<redacted>");
    }
}
