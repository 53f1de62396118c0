//! Devices: the inventory, one entry per local MAC address.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::types::Value;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiState;
use super::alerts::{ALERT_COLUMNS, Alert, alert_from_row};
use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::store::query::{Filter, ts_value};

#[derive(Object)]
pub struct Device {
    pub mac: String,
    #[oai(nullable)]
    pub vendor: Option<String>,
    /// Locally administered MAC (typically a phone's private address).
    pub randomized: bool,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[oai(nullable)]
    pub hostname: Option<String>,
    #[oai(nullable)]
    pub hostname_source: Option<String>,
    #[oai(nullable)]
    pub dhcp_vendor_class: Option<String>,
    /// DHCP option 55 parameter request list.
    #[oai(nullable)]
    pub dhcp_fingerprint: Option<String>,
    #[oai(nullable)]
    pub ipv4: Option<String>,
    #[oai(nullable)]
    pub ipv6: Option<String>,
    pub pkts_sent: u64,
    pub bytes_sent: u64,
    pub pkts_recv: u64,
    pub bytes_recv: u64,
    pub flows: u64,
    /// Alerts of this device that are active or acknowledged.
    pub open_alerts: u64,
    /// 0-100, from open alerts weighted by severity (critical 40, high 20, medium 8,
    /// low 2, info 0), capped at 100.
    pub risk_score: u32,
}

#[derive(Object)]
pub struct DevicePage {
    pub items: Vec<Device>,
    /// Devices matching the filters (all pages).
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Object)]
pub struct DeviceAddress {
    pub addr: String,
    pub family: u8,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// How it was learned: arp, dhcp or ip.
    pub source: String,
}

#[derive(Object)]
pub struct DeviceName {
    pub name: String,
    /// dhcp, mdns, ssdp, netbios-ns or llmnr.
    pub source: String,
    pub last_seen: DateTime<Utc>,
}

#[derive(Object)]
pub struct Peer {
    pub addr: String,
    pub flows: u64,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub last_seen: DateTime<Utc>,
}

#[derive(Object)]
pub struct DeviceDetail {
    pub device: Device,
    pub addresses: Vec<DeviceAddress>,
    pub hostnames: Vec<DeviceName>,
    /// Totals over this device's stored flows.
    pub flow_bytes_sent: u64,
    pub flow_bytes_recv: u64,
    pub top_peers: Vec<Peer>,
    pub recent_alerts: Vec<Alert>,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
pub enum DeviceSort {
    LastSeen,
    FirstSeen,
    Bytes,
    Hostname,
    Risk,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
}

/// Normalizes a MAC address parameter to `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(field: &str, s: &str) -> ApiResult<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            field,
            format!("{s:?} is not a MAC address (expected aa:bb:cc:dd:ee:ff)"),
        ));
    }
    let hex = hex.to_ascii_lowercase();
    Ok((0..6)
        .map(|i| &hex[i * 2..i * 2 + 2])
        .collect::<Vec<_>>()
        .join(":"))
}

const DEVICE_SELECT: &str = "SELECT d.mac, d.vendor, d.randomized, d.first_seen, d.last_seen, \
     d.hostname, d.hostname_source, d.dhcp_vendor_class, d.dhcp_fingerprint, d.last_ipv4, \
     d.last_ipv6, d.pkts_sent, d.bytes_sent, d.pkts_recv, d.bytes_recv, d.flows, \
     coalesce(r.open_alerts, 0)::UBIGINT AS open_alerts, coalesce(r.score, 0)::UINTEGER AS risk \
     FROM devices d LEFT JOIN device_risk r ON r.mac = d.mac";

fn device_from_row(r: &duckdb::Row<'_>) -> duckdb::Result<Device> {
    Ok(Device {
        mac: r.get(0)?,
        vendor: r.get(1)?,
        randomized: r.get(2)?,
        first_seen: r.get::<_, NaiveDateTime>(3)?.and_utc(),
        last_seen: r.get::<_, NaiveDateTime>(4)?.and_utc(),
        hostname: r.get(5)?,
        hostname_source: r.get(6)?,
        dhcp_vendor_class: r.get(7)?,
        dhcp_fingerprint: r.get(8)?,
        ipv4: r.get(9)?,
        ipv6: r.get(10)?,
        pkts_sent: r.get(11)?,
        bytes_sent: r.get(12)?,
        pkts_recv: r.get(13)?,
        bytes_recv: r.get(14)?,
        flows: r.get(15)?,
        open_alerts: r.get(16)?,
        risk_score: r.get(17)?,
    })
}

pub struct DevicesApi;

#[OpenApi(tag = "Tag::Devices")]
impl DevicesApi {
    /// Devices seen on the network.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/devices", method = "get")]
    async fn list(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Only devices seen at or after this time.
        seen_since: Query<Option<DateTime<Utc>>>,
        /// Vendor name contains this text (case-insensitive).
        vendor: Query<Option<String>>,
        /// Only devices with (true) or without (false) open alerts.
        has_alerts: Query<Option<bool>>,
        sort: Query<Option<DeviceSort>>,
        order: Query<Option<Order>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<DevicePage>> {
        auth.check(&state)?;
        let mut f = Filter::default();
        if let Some(t) = seen_since.0 {
            f.add("d.last_seen >= ?", [ts_value(t)]);
        }
        if let Some(v) = vendor.0 {
            f.add("contains(lower(d.vendor), lower(?))", [Value::Text(v)]);
        }
        match has_alerts.0 {
            Some(true) => f.add("coalesce(r.open_alerts, 0) > 0", []),
            Some(false) => f.add("coalesce(r.open_alerts, 0) = 0", []),
            None => {}
        }
        let sort_col = match sort.0.unwrap_or(DeviceSort::LastSeen) {
            DeviceSort::LastSeen => "d.last_seen",
            DeviceSort::FirstSeen => "d.first_seen",
            DeviceSort::Bytes => "(d.bytes_sent + d.bytes_recv)",
            DeviceSort::Hostname => "d.hostname",
            DeviceSort::Risk => "risk",
        };
        let order = order.0.unwrap_or(Order::Desc).sql();
        let (limit, offset) = (limit.0, offset.0);
        let where_ = f.sql();
        let sql = format!(
            "{} {where_} ORDER BY {sort_col} {order} NULLS LAST, d.mac LIMIT {limit} OFFSET {offset}",
            DEVICE_SELECT
        );
        let count_sql = format!(
            "SELECT count(*)::UBIGINT FROM devices d LEFT JOIN device_risk r ON r.mac = d.mac {where_}"
        );
        let params = f.params();
        let (items, total) = state
            .db
            .run(move |c| {
                let mut st = c.prepare_cached(&sql)?;
                let items = st
                    .query_map(duckdb::params_from_iter(params.iter()), device_from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                let total: u64 = c
                    .prepare_cached(&count_sql)?
                    .query_row(duckdb::params_from_iter(params.iter()), |r| r.get(0))?;
                Ok((items, total))
            })
            .await?;
        Ok(Json(DevicePage {
            items,
            total,
            limit,
            offset,
        }))
    }

    /// One device: addresses over time, names, traffic, top peers, recent alerts.
    #[oai(path = "/api/devices/:mac", method = "get")]
    async fn get(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// MAC address, `aa:bb:cc:dd:ee:ff`.
        mac: Path<String>,
    ) -> ApiResult<Json<DeviceDetail>> {
        auth.check(&state)?;
        let mac = parse_mac("mac", &mac.0)?;
        let m = mac.clone();
        let detail = state
            .db
            .run(move |c| {
                let sql = format!("{DEVICE_SELECT} WHERE d.mac = ?");
                let mut st = c.prepare_cached(&sql)?;
                let mut rows = st.query_map([&m], device_from_row)?;
                let Some(device) = rows.next().transpose()? else {
                    return Ok(None);
                };
                let mut st = c.prepare_cached(
                    "SELECT addr, family, first_seen, last_seen, source FROM device_addresses \
                     WHERE mac = ? ORDER BY last_seen DESC LIMIT 200",
                )?;
                let addresses = st
                    .query_map([&m], |r| {
                        Ok(DeviceAddress {
                            addr: r.get(0)?,
                            family: r.get(1)?,
                            first_seen: r.get::<_, NaiveDateTime>(2)?.and_utc(),
                            last_seen: r.get::<_, NaiveDateTime>(3)?.and_utc(),
                            source: r.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut st = c.prepare_cached(
                    "SELECT name, source, max(ts) AS last FROM ( \
                       SELECT name, source, ts FROM names WHERE mac = ? \
                       UNION ALL SELECT hostname, 'dhcp', ts FROM dhcp \
                         WHERE client_mac = ? AND hostname IS NOT NULL) \
                     GROUP BY name, source ORDER BY last DESC LIMIT 50",
                )?;
                let hostnames = st
                    .query_map([&m, &m], |r| {
                        Ok(DeviceName {
                            name: r.get(0)?,
                            source: r.get(1)?,
                            last_seen: r.get::<_, NaiveDateTime>(2)?.and_utc(),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let (sent, recv): (u64, u64) = c.prepare_cached(
                    "SELECT coalesce(sum(CASE WHEN orig_mac = ?1 THEN orig_bytes ELSE resp_bytes END), 0)::UBIGINT, \
                            coalesce(sum(CASE WHEN orig_mac = ?1 THEN resp_bytes ELSE orig_bytes END), 0)::UBIGINT \
                     FROM flows WHERE orig_mac = ?1 OR resp_mac = ?1",
                )?.query_row(
                    [&m],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let mut st = c.prepare_cached(
                    "SELECT peer, count(*)::UBIGINT, sum(sent)::UBIGINT, sum(recv)::UBIGINT, max(end_ts) FROM ( \
                       SELECT CASE WHEN orig_mac = ?1 THEN resp_addr ELSE orig_addr END AS peer, \
                              CASE WHEN orig_mac = ?1 THEN orig_bytes ELSE resp_bytes END AS sent, \
                              CASE WHEN orig_mac = ?1 THEN resp_bytes ELSE orig_bytes END AS recv, end_ts \
                       FROM flows WHERE orig_mac = ?1 OR resp_mac = ?1) \
                     GROUP BY peer ORDER BY sum(sent) + sum(recv) DESC LIMIT 10",
                )?;
                let top_peers = st
                    .query_map([&m], |r| {
                        Ok(Peer {
                            addr: r.get(0)?,
                            flows: r.get(1)?,
                            bytes_sent: r.get(2)?,
                            bytes_recv: r.get(3)?,
                            last_seen: r.get::<_, NaiveDateTime>(4)?.and_utc(),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut st = c.prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE device_mac = ? ORDER BY last_ts DESC LIMIT 20"
                ))?;
                let recent_alerts = st
                    .query_map([&m], alert_from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(DeviceDetail {
                    device,
                    addresses,
                    hostnames,
                    flow_bytes_sent: sent,
                    flow_bytes_recv: recv,
                    top_peers,
                    recent_alerts,
                }))
            })
            .await?;
        detail
            .map(Json)
            .ok_or_else(|| ApiError::not_found("device", mac))
    }
}

pub fn default_limit() -> u32 {
    100
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs_are_normalized_or_rejected() {
        assert_eq!(
            super::parse_mac("mac", "AA-BB-cc-dd-ee-01").unwrap(),
            "aa:bb:cc:dd:ee:01"
        );
        assert_eq!(
            super::parse_mac("mac", "aabb.ccdd.ee01").unwrap(),
            "aa:bb:cc:dd:ee:01"
        );
        assert!(super::parse_mac("mac", "aa:bb:cc").is_err());
        assert!(super::parse_mac("mac", "zz:bb:cc:dd:ee:01").is_err());
    }
}
