//! Alerts: what the rules and models raised, and their lifecycle (acknowledge,
//! dismiss). Also served under `/api/threats` for existing clients.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::types::Value;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiState;
use super::auth::{Reader, Token};
use super::devices::{default_limit, parse_mac};
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::detect::RULE_IDS;
use crate::detect::lifecycle::{self, LifecycleError};
use crate::store::query::{Filter, ts_value, utc_us};

/// A mute: occurrences of `rule` for the device and peer (None: any) are counted here
/// instead of raising alerts, until `until` (None: until removed).
#[derive(Object)]
pub struct MuteOut {
    pub id: i64,
    pub rule: String,
    #[oai(nullable)]
    pub device_mac: Option<String>,
    #[oai(nullable)]
    pub peer: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub until: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub reason: Option<String>,
    /// Occurrences the mute swallowed.
    pub suppressed: u64,
    #[oai(nullable)]
    pub last_suppressed: Option<DateTime<Utc>>,
}

impl From<lifecycle::Mute> for MuteOut {
    fn from(m: lifecycle::Mute) -> MuteOut {
        MuteOut {
            id: m.id,
            rule: m.rule,
            device_mac: m.device_mac,
            peer: m.peer,
            created_at: utc_us(m.created_at),
            until: m.until.map(utc_us),
            reason: m.reason,
            suppressed: m.suppressed,
            last_suppressed: m.last_suppressed.map(utc_us),
        }
    }
}

#[derive(Object)]
pub struct NewMute {
    /// Rule id to silence (see `detect` in the README for the list).
    pub rule: String,
    /// MAC of the device; omitted: every device.
    pub device: Option<String>,
    /// The other side exactly as alerts show it (address, domain, "tcp/23"); omitted: any.
    pub peer: Option<String>,
    /// Muted until this time.
    pub until: Option<DateTime<Utc>>,
    /// Muted for this many hours from now.
    #[oai(validator(minimum(value = "1"), maximum(value = "87600")))]
    pub hours: Option<u32>,
    #[oai(validator(max_length = 500))]
    pub reason: Option<String>,
}

fn lifecycle_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::UnknownMute(id) => ApiError::not_found("mute", id),
        LifecycleError::UnknownAlert(id) => ApiError::not_found("alert", id),
        LifecycleError::UnknownRule(r) => {
            ApiError::bad_request("rule", format!("unknown rule {r:?}"))
        }
        e @ LifecycleError::Transition { to, .. } => ApiError::conflict(
            format!("alert cannot become {}", to.as_str()),
            e.to_string(),
        ),
        LifecycleError::Db(e) => ApiError::internal(e),
    }
}

#[derive(Object)]
pub struct Alert {
    pub id: i64,
    /// First occurrence.
    pub ts: DateTime<Utc>,
    /// Latest occurrence (repeats within the dedup window raise `count`).
    pub last_ts: DateTime<Utc>,
    /// Rule id (e.g. port_scan, dns_tunnel) or `anomaly` for the models.
    pub rule: String,
    /// info, low, medium, high, critical.
    pub severity: String,
    /// active, acknowledged, dismissed, resolved.
    pub state: String,
    pub title: String,
    #[oai(nullable)]
    pub explanation: Option<String>,
    #[oai(nullable)]
    pub device_mac: Option<String>,
    #[oai(nullable)]
    pub peer: Option<String>,
    /// MITRE ATT&CK technique id.
    #[oai(nullable)]
    pub mitre_technique: Option<String>,
    pub count: u64,
    pub flow_ids: Vec<i64>,
    /// Rule-specific evidence: domains, counts, ports, thresholds.
    pub evidence: serde_json::Value,
}

#[derive(Object)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[oai(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// This severity and the ones above it, as stored.
    fn at_least(self) -> Vec<&'static str> {
        let all = ["info", "low", "medium", "high", "critical"];
        all[self as usize..].to_vec()
    }
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum AlertState {
    Active,
    Acknowledged,
    Dismissed,
    Resolved,
}

impl AlertState {
    fn as_str(self) -> &'static str {
        match self {
            AlertState::Active => "active",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Dismissed => "dismissed",
            AlertState::Resolved => "resolved",
        }
    }
}

pub const ALERT_COLUMNS: &str = "id, ts, last_ts, rule, severity, state, title, explanation, \
    device_mac, peer, mitre_technique, count, flow_ids, CAST(evidence AS VARCHAR)";

pub fn alert_from_row(r: &duckdb::Row<'_>) -> duckdb::Result<Alert> {
    let flow_ids = match r.get::<_, Value>(12)? {
        Value::List(v) => v
            .into_iter()
            .filter_map(|x| match x {
                Value::BigInt(i) => Some(i),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let evidence: Option<String> = r.get(13)?;
    Ok(Alert {
        id: r.get(0)?,
        ts: r.get::<_, NaiveDateTime>(1)?.and_utc(),
        last_ts: r.get::<_, NaiveDateTime>(2)?.and_utc(),
        rule: r.get(3)?,
        severity: r.get(4)?,
        state: r.get(5)?,
        title: r.get(6)?,
        explanation: r.get(7)?,
        device_mac: r.get(8)?,
        peer: r.get(9)?,
        mitre_technique: r.get(10)?,
        count: r.get(11)?,
        flow_ids,
        evidence: evidence
            .and_then(|e| serde_json::from_str(&e).ok())
            .unwrap_or(serde_json::Value::Null),
    })
}

#[allow(clippy::too_many_arguments)]
async fn list_alerts(
    state: &ApiState,
    since: Option<DateTime<Utc>>,
    severity: Option<Severity>,
    alert_state: Option<AlertState>,
    device: Option<String>,
    rule: Option<String>,
    active_only: bool,
    limit: u32,
    offset: u32,
) -> ApiResult<AlertPage> {
    let mut f = Filter::default();
    if let Some(t) = since {
        f.add("last_ts >= ?", [ts_value(t)]);
    }
    if let Some(s) = severity {
        let levels = s.at_least();
        let marks = vec!["?"; levels.len()].join(", ");
        f.add(
            &format!("severity IN ({marks})"),
            levels.into_iter().map(|l| Value::Text(l.into())),
        );
    }
    if let Some(s) = alert_state {
        f.add("state = ?", [Value::Text(s.as_str().into())]);
    }
    if active_only {
        f.add("state = 'active'", []);
    }
    if let Some(d) = device {
        f.add("device_mac = ?", [Value::Text(parse_mac("device", &d)?)]);
    }
    if let Some(r) = rule {
        f.add("rule = ?", [Value::Text(r)]);
    }
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts {} ORDER BY last_ts DESC, id DESC LIMIT {limit} OFFSET {offset}",
        f.sql()
    );
    let count_sql = format!("SELECT count(*)::UBIGINT FROM alerts {}", f.sql());
    let params = f.params();
    let (items, total) = state
        .db
        .run(move |c| {
            let mut st = c.prepare_cached(&sql)?;
            let items = st
                .query_map(duckdb::params_from_iter(params.iter()), alert_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let total = c
                .prepare_cached(&count_sql)?
                .query_row(duckdb::params_from_iter(params.iter()), |r| r.get(0))?;
            Ok((items, total))
        })
        .await?;
    Ok(AlertPage {
        items,
        total,
        limit,
        offset,
    })
}

async fn get_alert(state: &ApiState, id: i64) -> ApiResult<Alert> {
    let found = state
        .db
        .run(move |c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"))?;
            st.query_map([id], alert_from_row)?.next().transpose()
        })
        .await?;
    found.ok_or_else(|| ApiError::not_found("alert", id))
}

/// Moves an alert to `to`; `from` lists the states that allow it.
/// Moves an alert through the lifecycle's own transition rules.
async fn transition(state: &ApiState, id: i64, to: lifecycle::AlertState) -> ApiResult<Alert> {
    state
        .db
        .run(move |c| Ok(lifecycle::set_state(c, id, to)))
        .await?
        .map_err(lifecycle_error)?;
    get_alert(state, id).await
}

pub struct AlertsApi;

#[OpenApi(tag = "Tag::Alerts")]
impl AlertsApi {
    /// Alerts, most recent first.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/alerts", method = "get")]
    async fn list(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Alerts last seen at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Minimum severity.
        severity: Query<Option<Severity>>,
        #[oai(name = "state")] alert_state: Query<Option<AlertState>>,
        /// MAC of the device concerned.
        device: Query<Option<String>>,
        /// Rule id.
        rule: Query<Option<String>>,
        /// Only alerts in state `active`.
        #[oai(default)]
        active_only: Query<bool>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<AlertPage>> {
        auth.check(&state)?;
        Ok(Json(
            list_alerts(
                &state,
                since.0,
                severity.0,
                alert_state.0,
                device.0,
                rule.0,
                active_only.0,
                limit.0,
                offset.0,
            )
            .await?,
        ))
    }

    /// Alerts (alias of `/api/alerts` for existing clients).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/threats", method = "get", deprecated)]
    async fn list_threats(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        since: Query<Option<DateTime<Utc>>>,
        severity: Query<Option<Severity>>,
        #[oai(name = "state")] alert_state: Query<Option<AlertState>>,
        device: Query<Option<String>>,
        rule: Query<Option<String>>,
        #[oai(default)] active_only: Query<bool>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<AlertPage>> {
        auth.check(&state)?;
        Ok(Json(
            list_alerts(
                &state,
                since.0,
                severity.0,
                alert_state.0,
                device.0,
                rule.0,
                active_only.0,
                limit.0,
                offset.0,
            )
            .await?,
        ))
    }

    /// One alert.
    #[oai(path = "/api/alerts/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        id: Path<i64>,
    ) -> ApiResult<Json<Alert>> {
        auth.check(&state)?;
        Ok(Json(get_alert(&state, id.0).await?))
    }

    /// One alert (alias of `/api/alerts/{id}`).
    #[oai(path = "/api/threats/:id", method = "get", deprecated)]
    async fn get_threat(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        id: Path<i64>,
    ) -> ApiResult<Json<Alert>> {
        auth.check(&state)?;
        Ok(Json(get_alert(&state, id.0).await?))
    }

    /// Marks an active alert as seen; repeats keep counting without reopening it.
    #[oai(path = "/api/alerts/:id/acknowledge", method = "post")]
    async fn acknowledge(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<i64>,
    ) -> ApiResult<Json<Alert>> {
        Ok(Json(
            transition(&state, id.0, lifecycle::AlertState::Acknowledged).await?,
        ))
    }

    /// Dismisses an alert as not a problem.
    #[oai(path = "/api/alerts/:id/dismiss", method = "post")]
    async fn dismiss(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<i64>,
    ) -> ApiResult<Json<Alert>> {
        Ok(Json(
            transition(&state, id.0, lifecycle::AlertState::Dismissed).await?,
        ))
    }

    /// Marks an open alert as over; a later repeat opens a new alert.
    #[oai(path = "/api/alerts/:id/resolve", method = "post")]
    async fn resolve(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<i64>,
    ) -> ApiResult<Json<Alert>> {
        Ok(Json(
            transition(&state, id.0, lifecycle::AlertState::Resolved).await?,
        ))
    }

    /// Makes an acknowledged, dismissed or resolved alert active again.
    #[oai(path = "/api/alerts/:id/reopen", method = "post")]
    async fn reopen(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<i64>,
    ) -> ApiResult<Json<Alert>> {
        Ok(Json(
            transition(&state, id.0, lifecycle::AlertState::Active).await?,
        ))
    }

    /// Every mute, expired ones included.
    #[oai(path = "/api/mutes", method = "get")]
    async fn list_mutes(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
    ) -> ApiResult<Json<Vec<MuteOut>>> {
        auth.check(&state)?;
        let mutes = state
            .db
            .run(|c| Ok(lifecycle::list_mutes(c)))
            .await?
            .map_err(lifecycle_error)?;
        Ok(Json(mutes.into_iter().map(MuteOut::from).collect()))
    }

    /// Silences a rule for a device and/or peer (omitted: any), until a time or for a
    /// number of hours (omitted: until unmuted). Matching occurrences are counted on
    /// the mute instead of raising alerts.
    #[oai(path = "/api/mutes", method = "post")]
    async fn mute(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Json<NewMute>,
    ) -> ApiResult<Json<MuteOut>> {
        let b = body.0;
        if !RULE_IDS.contains(&b.rule.as_str()) {
            return Err(ApiError::bad_request(
                "rule",
                format!("unknown rule {:?}; rules: {}", b.rule, RULE_IDS.join(", ")),
            ));
        }
        let device = match &b.device {
            Some(d) => Some(
                crate::detect::config::parse_mac(&parse_mac("device", d)?)
                    .ok_or_else(|| ApiError::bad_request("device", "not a MAC address"))?,
            ),
            None => None,
        };
        let until = match (b.until, b.hours) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "hours",
                    "give either `until` or `hours`, not both",
                ));
            }
            (Some(t), None) => Some(t.timestamp_micros()),
            (None, Some(h)) => {
                Some((Utc::now() + chrono::Duration::hours(h.into())).timestamp_micros())
            }
            (None, None) => None,
        };
        if let Some(p) = &b.peer
            && (p.is_empty() || p.len() > 255)
        {
            return Err(ApiError::bad_request(
                "peer",
                "peer must be 1 to 255 characters",
            ));
        }
        let created = state
            .db
            .run(move |c| {
                Ok(lifecycle::mute(
                    c,
                    &b.rule,
                    device,
                    b.peer.as_deref(),
                    until,
                    b.reason.as_deref(),
                )
                .and_then(|id| lifecycle::get_mute(c, id)))
            })
            .await?
            .map_err(lifecycle_error)?;
        Ok(Json(MuteOut::from(created)))
    }

    /// Removes a mute; the rule alerts again for what it covered.
    #[oai(path = "/api/mutes/:id", method = "delete")]
    async fn unmute(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<i64>,
    ) -> ApiResult<Json<MuteOut>> {
        let id = id.0;
        let removed = state
            .db
            .run(move |c| Ok(lifecycle::unmute(c, id)))
            .await?
            .map_err(lifecycle_error)?;
        Ok(Json(MuteOut::from(removed)))
    }
}
