//! Analytics: bandwidth over time, top talkers, destinations and domains, new devices,
//! and the protocol mix — the questions a home user asks first.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiState;
use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::store::query::ts_value;

#[derive(Object)]
pub struct BandwidthPoint {
    pub start: DateTime<Utc>,
    /// Bytes sent by initiators (mostly uploads from the home's view).
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub flows: u64,
}

#[derive(Object)]
pub struct Talker {
    pub mac: String,
    #[oai(nullable)]
    pub hostname: Option<String>,
    #[oai(nullable)]
    pub vendor: Option<String>,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub flows: u64,
}

#[derive(Object)]
pub struct Destination {
    pub addr: String,
    pub bytes: u64,
    pub flows: u64,
}

#[derive(Object)]
pub struct Domain {
    pub name: String,
    pub queries: u64,
    pub clients: u64,
}

#[derive(Object)]
pub struct NewDevice {
    pub mac: String,
    #[oai(nullable)]
    pub vendor: Option<String>,
    #[oai(nullable)]
    pub hostname: Option<String>,
    pub first_seen: DateTime<Utc>,
}

#[derive(Object)]
pub struct Analytics {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Bucket width of `bandwidth`, seconds.
    pub interval_secs: u32,
    pub bandwidth: Vec<BandwidthPoint>,
    pub top_talkers: Vec<Talker>,
    pub top_destinations: Vec<Destination>,
    pub top_domains: Vec<Domain>,
    pub new_devices: Vec<NewDevice>,
}

#[derive(Object)]
pub struct ProtocolShare {
    /// Application protocol if identified, else the transport (tcp, udp, ...).
    pub protocol: String,
    pub flows: u64,
    pub bytes: u64,
    /// Share of all bytes in the window, 0..1.
    pub byte_share: f64,
}

/// The window `[until - hours, until)`, `until` defaulting to now.
fn window(hours: u32, until: Option<DateTime<Utc>>) -> (DateTime<Utc>, DateTime<Utc>) {
    let until = until.unwrap_or_else(Utc::now);
    (until - Duration::hours(hours as i64), until)
}

pub struct AnalyticsApi;

#[OpenApi(tag = "Tag::Analytics")]
impl AnalyticsApi {
    /// Bandwidth time series, top talkers, destinations and domains, new devices.
    #[oai(path = "/api/analytics", method = "get")]
    async fn analytics(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Window length in hours, ending at `until`.
        #[oai(
            default = "default_hours",
            validator(minimum(value = "1"), maximum(value = "8760"))
        )]
        hours: Query<u32>,
        /// End of the window (default: now).
        until: Query<Option<DateTime<Utc>>>,
        /// Bucket width in seconds (default: about 60 buckets over the window).
        #[oai(validator(minimum(value = "60"), maximum(value = "86400")))]
        interval_secs: Query<Option<u32>>,
    ) -> ApiResult<Json<Analytics>> {
        auth.check(&state)?;
        let (since, until) = window(hours.0, until.0);
        let interval = interval_secs
            .0
            .unwrap_or_else(|| ((hours.0 as u64 * 3600 / 60).clamp(60, 86400)) as u32);
        if (hours.0 as u64 * 3600) / interval as u64 > 10_000 {
            return Err(ApiError::bad_request(
                "interval_secs",
                "more than 10000 buckets; choose a larger interval",
            ));
        }
        let (s, u) = (ts_value(since), ts_value(until));
        let out = state
            .db
            .run(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT time_bucket(INTERVAL '{interval} seconds', ts, ?::TIMESTAMP) AS b, \
                     sum(orig_bytes)::UBIGINT, sum(resp_bytes)::UBIGINT, count(*)::UBIGINT \
                     FROM flows WHERE ts >= ? AND ts < ? GROUP BY b ORDER BY b"
                ))?;
                let bandwidth = st
                    .query_map(duckdb::params![s.clone(), s.clone(), u.clone()], |r| {
                        Ok(BandwidthPoint {
                            start: r.get::<_, NaiveDateTime>(0)?.and_utc(),
                            orig_bytes: r.get(1)?,
                            resp_bytes: r.get(2)?,
                            flows: r.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut st = c.prepare_cached(
                    // A side counts for a device only when its address is one of the
                    // device's own: the router's MAC also carries every internet host.
                    "WITH sides AS ( \
                       SELECT orig_mac AS mac, orig_addr AS addr, orig_bytes AS sent, resp_bytes AS recv FROM flows \
                         WHERE ts >= ?1 AND ts < ?2 AND orig_mac IS NOT NULL \
                       UNION ALL SELECT resp_mac, resp_addr, resp_bytes, orig_bytes FROM flows \
                         WHERE ts >= ?1 AND ts < ?2 AND resp_mac IS NOT NULL) \
                     SELECT s.mac, d.hostname, d.vendor, sum(sent)::UBIGINT, sum(recv)::UBIGINT, count(*)::UBIGINT \
                     FROM sides s JOIN device_addresses a ON a.mac = s.mac AND a.addr = s.addr \
                     JOIN devices d ON d.mac = s.mac \
                     GROUP BY s.mac, d.hostname, d.vendor ORDER BY sum(sent) + sum(recv) DESC LIMIT 10",
                )?;
                let top_talkers = st
                    .query_map(duckdb::params![s.clone(), u.clone()], |r| {
                        Ok(Talker {
                            mac: r.get(0)?,
                            hostname: r.get(1)?,
                            vendor: r.get(2)?,
                            bytes_sent: r.get(3)?,
                            bytes_recv: r.get(4)?,
                            flows: r.get(5)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut st = c.prepare_cached(
                    "SELECT resp_addr, sum(orig_bytes + resp_bytes)::UBIGINT AS b, count(*)::UBIGINT \
                     FROM flows WHERE ts >= ? AND ts < ? GROUP BY resp_addr ORDER BY b DESC LIMIT 10",
                )?;
                let top_destinations = st
                    .query_map(duckdb::params![s.clone(), u.clone()], |r| {
                        Ok(Destination {
                            addr: r.get(0)?,
                            bytes: r.get(1)?,
                            flows: r.get(2)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut st = c.prepare_cached(
                    "SELECT lower(query) AS q, count(*)::UBIGINT AS n, count(DISTINCT orig_addr)::UBIGINT \
                     FROM dns WHERE ts >= ? AND ts < ? GROUP BY q ORDER BY n DESC, q LIMIT 10",
                )?;
                let top_domains = st
                    .query_map(duckdb::params![s.clone(), u.clone()], |r| {
                        Ok(Domain {
                            name: r.get(0)?,
                            queries: r.get(1)?,
                            clients: r.get(2)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut st = c.prepare_cached(
                    "SELECT mac, vendor, hostname, first_seen FROM devices \
                     WHERE first_seen >= ? AND first_seen < ? ORDER BY first_seen DESC LIMIT 100",
                )?;
                let new_devices = st
                    .query_map(duckdb::params![s.clone(), u.clone()], |r| {
                        Ok(NewDevice {
                            mac: r.get(0)?,
                            vendor: r.get(1)?,
                            hostname: r.get(2)?,
                            first_seen: r.get::<_, NaiveDateTime>(3)?.and_utc(),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((bandwidth, top_talkers, top_destinations, top_domains, new_devices))
            })
            .await?;
        Ok(Json(Analytics {
            since,
            until,
            interval_secs: interval,
            bandwidth: out.0,
            top_talkers: out.1,
            top_destinations: out.2,
            top_domains: out.3,
            new_devices: out.4,
        }))
    }

    /// Protocol and application mix by bytes and flows.
    #[oai(path = "/api/protocols", method = "get")]
    async fn protocols(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        #[oai(
            default = "default_hours",
            validator(minimum(value = "1"), maximum(value = "8760"))
        )]
        hours: Query<u32>,
        until: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Vec<ProtocolShare>>> {
        auth.check(&state)?;
        let (since, until) = window(hours.0, until.0);
        let (s, u) = (ts_value(since), ts_value(until));
        let rows = state
            .db
            .run(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT coalesce(app_proto, proto) AS p, count(*)::UBIGINT, \
                     sum(orig_bytes + resp_bytes)::UBIGINT AS b, \
                     coalesce(sum(orig_bytes + resp_bytes) / nullif(sum(sum(orig_bytes + resp_bytes)) OVER (), 0), 0)::DOUBLE \
                     FROM flows WHERE ts >= ? AND ts < ? GROUP BY p ORDER BY b DESC",
                )?;
                st.query_map(duckdb::params![s, u], |r| {
                    Ok(ProtocolShare {
                        protocol: r.get(0)?,
                        flows: r.get(1)?,
                        bytes: r.get(2)?,
                        byte_share: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(Json(rows))
    }
}

fn default_hours() -> u32 {
    24
}
