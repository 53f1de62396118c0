//! Flows: bidirectional connections with their counters and state.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::types::Value;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiState;
use super::auth::Reader;
use super::devices::{default_limit, parse_mac};
use super::error::{ApiError, ApiResult};
use super::meta::{DnsRecord, HttpRecord, TlsRecord, dns_query, http_query, tls_query};
use super::status::Tag;
use crate::store::query::{Filter, ts_value};

#[derive(Object)]
pub struct Flow {
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub end_ts: DateTime<Utc>,
    /// Seconds.
    pub duration: f64,
    /// tcp, udp, icmp, icmp6, ...
    pub proto: String,
    /// Application protocol when identified (dns, tls, http, dhcp, ...).
    #[oai(nullable)]
    pub app_proto: Option<String>,
    pub orig_addr: String,
    pub orig_port: u16,
    pub resp_addr: String,
    pub resp_port: u16,
    #[oai(nullable)]
    pub orig_mac: Option<String>,
    #[oai(nullable)]
    pub resp_mac: Option<String>,
    pub community_id: String,
    /// Zeek conn_state (S0, S1, SF, REJ, RSTO, RSTR, SH, OTH, ...).
    pub conn_state: String,
    pub history: String,
    pub orig_pkts: u64,
    pub orig_bytes: u64,
    pub resp_pkts: u64,
    pub resp_bytes: u64,
    /// idle, closed, reused, active_timeout, evicted, shutdown.
    pub end_reason: String,
    /// False for a long flow's interim update.
    pub is_final: bool,
}

#[derive(Object)]
pub struct FlowPage {
    pub items: Vec<Flow>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct DirectionStats {
    pub pkts: u64,
    pub bytes: u64,
    pub payload_bytes: u64,
    #[oai(nullable)]
    pub syn: Option<u32>,
    #[oai(nullable)]
    pub fin: Option<u32>,
    #[oai(nullable)]
    pub rst: Option<u32>,
    #[oai(nullable)]
    pub psh: Option<u32>,
    #[oai(nullable)]
    pub ack: Option<u32>,
    #[oai(nullable)]
    pub size_min: Option<u32>,
    #[oai(nullable)]
    pub size_mean: Option<f64>,
    #[oai(nullable)]
    pub size_std: Option<f64>,
    #[oai(nullable)]
    pub size_max: Option<u32>,
    /// Inter-arrival times, seconds.
    #[oai(nullable)]
    pub iat_min: Option<f64>,
    #[oai(nullable)]
    pub iat_mean: Option<f64>,
    #[oai(nullable)]
    pub iat_std: Option<f64>,
    #[oai(nullable)]
    pub iat_max: Option<f64>,
}

#[derive(Object)]
pub struct FlowDetail {
    pub flow: Flow,
    pub orig: DirectionStats,
    pub resp: DirectionStats,
    pub dns: Vec<DnsRecord>,
    pub tls: Vec<TlsRecord>,
    pub http: Vec<HttpRecord>,
}

const FLOW_COLUMNS: &str = "id, ts, end_ts, duration, proto, app_proto, orig_addr, orig_port, \
    resp_addr, resp_port, orig_mac, resp_mac, community_id, conn_state, history, orig_pkts, \
    orig_bytes, resp_pkts, resp_bytes, end_reason, is_final";

fn flow_from_row(r: &duckdb::Row<'_>) -> duckdb::Result<Flow> {
    Ok(Flow {
        id: r.get(0)?,
        ts: r.get::<_, NaiveDateTime>(1)?.and_utc(),
        end_ts: r.get::<_, NaiveDateTime>(2)?.and_utc(),
        duration: r.get(3)?,
        proto: r.get(4)?,
        app_proto: r.get(5)?,
        orig_addr: r.get(6)?,
        orig_port: r.get(7)?,
        resp_addr: r.get(8)?,
        resp_port: r.get(9)?,
        orig_mac: r.get(10)?,
        resp_mac: r.get(11)?,
        community_id: r.get(12)?,
        conn_state: r.get(13)?,
        history: r.get(14)?,
        orig_pkts: r.get(15)?,
        orig_bytes: r.get(16)?,
        resp_pkts: r.get(17)?,
        resp_bytes: r.get(18)?,
        end_reason: r.get(19)?,
        is_final: r.get(20)?,
    })
}

fn dir_from_row(r: &duckdb::Row<'_>, base: usize) -> duckdb::Result<DirectionStats> {
    Ok(DirectionStats {
        pkts: r.get(base)?,
        bytes: r.get(base + 1)?,
        payload_bytes: r.get(base + 2)?,
        syn: r.get(base + 3)?,
        fin: r.get(base + 4)?,
        rst: r.get(base + 5)?,
        psh: r.get(base + 6)?,
        ack: r.get(base + 7)?,
        size_min: r.get(base + 8)?,
        size_mean: r.get(base + 9)?,
        size_std: r.get(base + 10)?,
        size_max: r.get(base + 11)?,
        iat_min: r.get(base + 12)?,
        iat_mean: r.get(base + 13)?,
        iat_std: r.get(base + 14)?,
        iat_max: r.get(base + 15)?,
    })
}

fn dir_columns(p: &str) -> String {
    [
        "pkts",
        "bytes",
        "payload_bytes",
        "syn",
        "fin",
        "rst",
        "psh",
        "ack",
        "size_min",
        "size_mean",
        "size_std",
        "size_max",
        "iat_min",
        "iat_mean",
        "iat_std",
        "iat_max",
    ]
    .iter()
    .map(|c| format!("{p}_{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// The newest `n` flows matching `f` (ORDER BY ts DESC, id DESC), as SQL and its
/// parameters.
///
/// Two things keep this fast on a million flows. The `flows` view is a UNION ALL of
/// `flows_closed` and `flows_open`, and DuckDB does not push an ORDER BY … LIMIT through
/// it (over the view it sorted every matching row: over a second per page), so each
/// table gets its own Top-N. And the Top-N runs on `(ts, id)` only: carrying all of a
/// flow's columns through the heap copied every candidate's strings (most of the time
/// in perf); the `n` winners' rows are fetched afterwards by id (one row per id in each
/// table), which DuckDB turns into a semi-join whose id range prunes row groups.
fn newest_flows(cols: &str, f: &Filter, n: usize) -> (String, Vec<Value>) {
    let w = f.sql();
    let keys = |t: &str, src: u8| {
        format!("(SELECT ts, id, {src} AS src FROM {t} {w} ORDER BY ts DESC, id DESC LIMIT {n})")
    };
    let sql = format!(
        "WITH k AS (SELECT * FROM ({} UNION ALL {}) ORDER BY ts DESC, id DESC LIMIT {n}) \
         SELECT * FROM ( \
           (SELECT {cols} FROM flows_closed WHERE id IN (SELECT id FROM k WHERE src = 0)) \
           UNION ALL \
           (SELECT {cols} FROM flows_open WHERE id IN (SELECT id FROM k WHERE src = 1))) \
         ORDER BY ts DESC, id DESC",
        keys("flows_closed", 0),
        keys("flows_open", 1)
    );
    let mut params = f.params();
    params.extend(f.params());
    (sql, params)
}

/// A page position: the (ts, id) of the last flow returned, as `<µs>_<id>`.
fn parse_cursor(s: &str) -> ApiResult<(i64, i64)> {
    let bad = || {
        ApiError::bad_request(
            "cursor",
            format!("{s:?} is not a cursor from a previous page"),
        )
    };
    let (a, b) = s.split_once('_').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

pub struct FlowsApi;

#[OpenApi(tag = "Tag::Flows")]
impl FlowsApi {
    /// Flows, newest first, with cursor paging.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/flows", method = "get")]
    async fn list(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Flows that started at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Flows that started before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// MAC of a device on either side.
        device: Query<Option<String>>,
        /// IP address on either side.
        address: Query<Option<String>>,
        /// Port on either side.
        port: Query<Option<u16>>,
        /// Transport (tcp, udp, icmp, ...) or application protocol (dns, tls, http, ...).
        protocol: Query<Option<String>>,
        /// Zeek conn_state, e.g. SF, S0, REJ.
        #[oai(name = "state")]
        conn_state: Query<Option<String>>,
        /// Minimum bytes in both directions together.
        min_bytes: Query<Option<u64>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<FlowPage>> {
        auth.check(&state)?;
        let mut f = Filter::default();
        if let (Some(s), Some(u)) = (since.0, until.0)
            && s > u
        {
            return Err(ApiError::bad_request("since", "since is after until"));
        }
        if let Some(t) = since.0 {
            f.add("ts >= ?", [ts_value(t)]);
        }
        if let Some(t) = until.0 {
            f.add("ts < ?", [ts_value(t)]);
        }
        if let Some(d) = device.0 {
            let m = parse_mac("device", &d)?;
            f.add(
                "(orig_mac = ? OR resp_mac = ?)",
                [Value::Text(m.clone()), Value::Text(m)],
            );
        }
        if let Some(a) = address.0 {
            let ip: std::net::IpAddr = a.trim().parse().map_err(|_| {
                ApiError::bad_request("address", format!("{a:?} is not an IP address"))
            })?;
            let ip = ip.to_string();
            f.add(
                "(orig_addr = ? OR resp_addr = ?)",
                [Value::Text(ip.clone()), Value::Text(ip)],
            );
        }
        if let Some(p) = port.0 {
            f.add(
                "(orig_port = ? OR resp_port = ?)",
                [Value::USmallInt(p), Value::USmallInt(p)],
            );
        }
        if let Some(p) = protocol.0 {
            let p = p.to_ascii_lowercase();
            f.add(
                "(proto = ? OR app_proto = ?)",
                [Value::Text(p.clone()), Value::Text(p)],
            );
        }
        if let Some(s) = conn_state.0 {
            f.add("conn_state = ?", [Value::Text(s.to_ascii_uppercase())]);
        }
        if let Some(b) = min_bytes.0 {
            f.add("orig_bytes + resp_bytes >= ?", [Value::UBigInt(b)]);
        }
        if let Some(c) = cursor.0 {
            let (ts, id) = parse_cursor(&c)?;
            f.add(
                "(ts < ? OR (ts = ? AND id < ?))",
                [
                    Value::Timestamp(duckdb::types::TimeUnit::Microsecond, ts),
                    Value::Timestamp(duckdb::types::TimeUnit::Microsecond, ts),
                    Value::BigInt(id),
                ],
            );
        }
        let limit = limit.0;
        let (sql, params) = newest_flows(FLOW_COLUMNS, &f, limit as usize + 1);
        let mut items = state
            .db
            .run(move |c| {
                let mut st = c.prepare_cached(&sql)?;
                st.query_map(duckdb::params_from_iter(params.iter()), flow_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|f| format!("{}_{}", f.ts.timestamp_micros(), f.id))
        } else {
            None
        };
        Ok(Json(FlowPage { items, next_cursor }))
    }

    /// One flow with per-direction statistics and its protocol metadata.
    #[oai(path = "/api/flows/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        id: Path<i64>,
    ) -> ApiResult<Json<FlowDetail>> {
        auth.check(&state)?;
        let id = id.0;
        let detail = state
            .db
            .run(move |c| {
                // Per table, like newest_flows: a LIMIT over the `flows` view is not
                // pushed into its UNION ALL.
                let one = |t: &str| {
                    format!(
                        "(SELECT {FLOW_COLUMNS}, {}, {} FROM {t} WHERE id = ? LIMIT 1)",
                        dir_columns("orig"),
                        dir_columns("resp")
                    )
                };
                let sql = format!(
                    "SELECT * FROM ({} UNION ALL {}) ORDER BY is_final DESC LIMIT 1",
                    one("flows_closed"),
                    one("flows_open")
                );
                let mut st = c.prepare_cached(&sql)?;
                let mut rows = st.query_map([id, id], |r| {
                    Ok((
                        flow_from_row(r)?,
                        dir_from_row(r, 21)?,
                        dir_from_row(r, 37)?,
                    ))
                })?;
                let Some((flow, orig, resp)) = rows.next().transpose()? else {
                    return Ok(None);
                };
                let mut f = Filter::default();
                f.add("flow_id = ?", [Value::BigInt(id)]);
                Ok(Some(FlowDetail {
                    flow,
                    orig,
                    resp,
                    dns: dns_query(c, &f, 100, 0)?,
                    tls: tls_query(c, &f, 100, 0)?,
                    http: http_query(c, &f, 100, 0)?,
                }))
            })
            .await?;
        detail
            .map(Json)
            .ok_or_else(|| ApiError::not_found("flow", id))
    }
}
