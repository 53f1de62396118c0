//! Metadata: DNS transactions, TLS handshakes, HTTP requests and DHCP messages.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::Connection;
use duckdb::types::Value;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiState;
use super::auth::Reader;
use super::devices::{default_limit, parse_mac};
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::store::query::{Filter, ts_value};

#[derive(Object)]
pub struct DnsRecord {
    pub ts: DateTime<Utc>,
    pub flow_id: i64,
    pub client: String,
    pub server: String,
    #[oai(nullable)]
    pub client_mac: Option<String>,
    /// udp or tcp.
    pub transport: String,
    pub query: String,
    pub qtype: String,
    /// Absent when no response was seen.
    #[oai(nullable)]
    pub rcode: Option<String>,
    pub answers: Vec<String>,
    /// Seconds between query and response.
    #[oai(nullable)]
    pub rtt: Option<f64>,
}

#[derive(Object)]
pub struct TlsRecord {
    pub ts: DateTime<Utc>,
    pub flow_id: i64,
    pub client: String,
    pub server: String,
    pub server_port: u16,
    #[oai(nullable)]
    pub client_mac: Option<String>,
    #[oai(nullable)]
    pub sni: Option<String>,
    /// Negotiated version.
    #[oai(nullable)]
    pub version: Option<String>,
    #[oai(nullable)]
    pub cipher: Option<String>,
    pub alpn: Vec<String>,
    #[oai(nullable)]
    pub ja3: Option<String>,
    #[oai(nullable)]
    pub ja4: Option<String>,
    #[oai(nullable)]
    pub ja3s: Option<String>,
    #[oai(nullable)]
    pub cert_subject: Option<String>,
    #[oai(nullable)]
    pub cert_issuer: Option<String>,
    #[oai(nullable)]
    pub cert_not_after: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub cert_self_signed: Option<bool>,
}

#[derive(Object)]
pub struct HttpRecord {
    pub ts: DateTime<Utc>,
    pub flow_id: i64,
    pub client: String,
    pub server: String,
    pub server_port: u16,
    #[oai(nullable)]
    pub client_mac: Option<String>,
    pub method: String,
    #[oai(nullable)]
    pub host: Option<String>,
    pub uri: String,
    #[oai(nullable)]
    pub user_agent: Option<String>,
    #[oai(nullable)]
    pub status: Option<u16>,
    #[oai(nullable)]
    pub content_type: Option<String>,
    #[oai(nullable)]
    pub response_body_len: Option<u64>,
    /// Authorization scheme if the request carried credentials (never the secret).
    #[oai(nullable)]
    pub auth_scheme: Option<String>,
    #[oai(nullable)]
    pub auth_user: Option<String>,
}

#[derive(Object)]
pub struct DhcpRecord {
    pub ts: DateTime<Utc>,
    pub flow_id: i64,
    pub client_mac: String,
    /// DISCOVER, OFFER, REQUEST, ACK, NAK, RELEASE, INFORM, DECLINE.
    pub msg_type: String,
    #[oai(nullable)]
    pub client_ip: Option<String>,
    #[oai(nullable)]
    pub your_ip: Option<String>,
    #[oai(nullable)]
    pub requested_ip: Option<String>,
    #[oai(nullable)]
    pub server_id: Option<String>,
    #[oai(nullable)]
    pub hostname: Option<String>,
    #[oai(nullable)]
    pub vendor_class: Option<String>,
    /// Option 55 parameter request list: the DHCP fingerprint.
    #[oai(nullable)]
    pub param_list: Option<String>,
    #[oai(nullable)]
    pub lease_secs: Option<u32>,
    #[oai(nullable)]
    pub router: Option<String>,
    pub dns_servers: Vec<String>,
}

fn utc(r: &duckdb::Row<'_>, i: usize) -> duckdb::Result<DateTime<Utc>> {
    Ok(r.get::<_, NaiveDateTime>(i)?.and_utc())
}

fn opt_utc(r: &duckdb::Row<'_>, i: usize) -> duckdb::Result<Option<DateTime<Utc>>> {
    Ok(r.get::<_, Option<NaiveDateTime>>(i)?.map(|t| t.and_utc()))
}

/// A `VARCHAR[]` column as strings (NULL: empty).
fn strings(r: &duckdb::Row<'_>, i: usize) -> duckdb::Result<Vec<String>> {
    Ok(match r.get::<_, Value>(i)? {
        Value::List(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn run_query<T>(
    c: &Connection,
    sql: String,
    f: &Filter,
    map: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> duckdb::Result<Vec<T>> {
    let mut st = c.prepare_cached(&sql)?;
    let params = f.params();
    st.query_map(duckdb::params_from_iter(params.iter()), map)?
        .collect()
}

pub fn dns_query(
    c: &Connection,
    f: &Filter,
    limit: u32,
    offset: u32,
) -> duckdb::Result<Vec<DnsRecord>> {
    let sql = format!(
        "SELECT ts, flow_id, orig_addr, resp_addr, orig_mac, transport, query, qtype_name, rcode_name, \
         answers, rtt FROM dns {} ORDER BY ts DESC LIMIT {limit} OFFSET {offset}",
        f.sql()
    );
    run_query(c, sql, f, |r| {
        Ok(DnsRecord {
            ts: utc(r, 0)?,
            flow_id: r.get(1)?,
            client: r.get(2)?,
            server: r.get(3)?,
            client_mac: r.get(4)?,
            transport: r.get(5)?,
            query: r.get(6)?,
            qtype: r.get(7)?,
            rcode: r.get(8)?,
            answers: strings(r, 9)?,
            rtt: r.get(10)?,
        })
    })
}

pub fn tls_query(
    c: &Connection,
    f: &Filter,
    limit: u32,
    offset: u32,
) -> duckdb::Result<Vec<TlsRecord>> {
    let sql = format!(
        "SELECT ts, flow_id, orig_addr, resp_addr, resp_port, orig_mac, sni, version, cipher, alpn, ja3, \
         ja4, ja3s, cert_subject, cert_issuer, cert_not_after, cert_self_signed FROM tls {} \
         ORDER BY ts DESC LIMIT {limit} OFFSET {offset}",
        f.sql()
    );
    run_query(c, sql, f, |r| {
        Ok(TlsRecord {
            ts: utc(r, 0)?,
            flow_id: r.get(1)?,
            client: r.get(2)?,
            server: r.get(3)?,
            server_port: r.get(4)?,
            client_mac: r.get(5)?,
            sni: r.get(6)?,
            version: r.get(7)?,
            cipher: r.get(8)?,
            alpn: strings(r, 9)?,
            ja3: r.get(10)?,
            ja4: r.get(11)?,
            ja3s: r.get(12)?,
            cert_subject: r.get(13)?,
            cert_issuer: r.get(14)?,
            cert_not_after: opt_utc(r, 15)?,
            cert_self_signed: r.get(16)?,
        })
    })
}

pub fn http_query(
    c: &Connection,
    f: &Filter,
    limit: u32,
    offset: u32,
) -> duckdb::Result<Vec<HttpRecord>> {
    let sql = format!(
        "SELECT ts, flow_id, orig_addr, resp_addr, resp_port, orig_mac, method, host, uri, user_agent, \
         status, content_type, response_body_len, auth_scheme, auth_user FROM http {} \
         ORDER BY ts DESC LIMIT {limit} OFFSET {offset}",
        f.sql()
    );
    run_query(c, sql, f, |r| {
        Ok(HttpRecord {
            ts: utc(r, 0)?,
            flow_id: r.get(1)?,
            client: r.get(2)?,
            server: r.get(3)?,
            server_port: r.get(4)?,
            client_mac: r.get(5)?,
            method: r.get(6)?,
            host: r.get(7)?,
            uri: r.get(8)?,
            user_agent: r.get(9)?,
            status: r.get(10)?,
            content_type: r.get(11)?,
            response_body_len: r.get(12)?,
            auth_scheme: r.get(13)?,
            auth_user: r.get(14)?,
        })
    })
}

pub fn dhcp_query(
    c: &Connection,
    f: &Filter,
    limit: u32,
    offset: u32,
) -> duckdb::Result<Vec<DhcpRecord>> {
    let sql = format!(
        "SELECT ts, flow_id, client_mac, msg_type, client_ip, your_ip, requested_ip, server_id, hostname, \
         vendor_class, param_list, lease_secs, router, dns_servers FROM dhcp {} \
         ORDER BY ts DESC LIMIT {limit} OFFSET {offset}",
        f.sql()
    );
    run_query(c, sql, f, |r| {
        Ok(DhcpRecord {
            ts: utc(r, 0)?,
            flow_id: r.get(1)?,
            client_mac: r.get(2)?,
            msg_type: r.get(3)?,
            client_ip: r.get(4)?,
            your_ip: r.get(5)?,
            requested_ip: r.get(6)?,
            server_id: r.get(7)?,
            hostname: r.get(8)?,
            vendor_class: r.get(9)?,
            param_list: r.get(10)?,
            lease_secs: r.get(11)?,
            router: r.get(12)?,
            dns_servers: strings(r, 13)?,
        })
    })
}

/// Time and device filters shared by the metadata lists.
fn filter(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    device: Option<String>,
    mac_col: &str,
) -> ApiResult<Filter> {
    let mut f = Filter::default();
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ApiError::bad_request("since", "since is after until"));
    }
    if let Some(t) = since {
        f.add("ts >= ?", [ts_value(t)]);
    }
    if let Some(t) = until {
        f.add("ts < ?", [ts_value(t)]);
    }
    if let Some(d) = device {
        f.add(
            &format!("{mac_col} = ?"),
            [Value::Text(parse_mac("device", &d)?)],
        );
    }
    Ok(f)
}

pub struct MetaApi;

#[OpenApi(tag = "Tag::Metadata")]
impl MetaApi {
    /// DNS transactions, newest first.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/dns", method = "get")]
    async fn dns(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Records at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Records before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// MAC of the client device.
        device: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<Vec<DnsRecord>>> {
        auth.check(&state)?;
        let f = filter(since.0, until.0, device.0, "orig_mac")?;
        let (limit, offset) = (limit.0, offset.0);
        Ok(Json(
            state
                .db
                .run(move |c| dns_query(c, &f, limit, offset))
                .await?,
        ))
    }

    /// TLS handshakes (SNI, versions, JA3/JA4, certificate), newest first.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/tls", method = "get")]
    async fn tls(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Records at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Records before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// MAC of the client device.
        device: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<Vec<TlsRecord>>> {
        auth.check(&state)?;
        let f = filter(since.0, until.0, device.0, "orig_mac")?;
        let (limit, offset) = (limit.0, offset.0);
        Ok(Json(
            state
                .db
                .run(move |c| tls_query(c, &f, limit, offset))
                .await?,
        ))
    }

    /// HTTP requests and responses, newest first.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/http", method = "get")]
    async fn http(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Records at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Records before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// MAC of the client device.
        device: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<Vec<HttpRecord>>> {
        auth.check(&state)?;
        let f = filter(since.0, until.0, device.0, "orig_mac")?;
        let (limit, offset) = (limit.0, offset.0);
        Ok(Json(
            state
                .db
                .run(move |c| http_query(c, &f, limit, offset))
                .await?,
        ))
    }

    /// DHCP messages, newest first.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/api/dhcp", method = "get")]
    async fn dhcp(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        /// Records at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Records before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// MAC of the client device.
        device: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u32>,
    ) -> ApiResult<Json<Vec<DhcpRecord>>> {
        auth.check(&state)?;
        let f = filter(since.0, until.0, device.0, "client_mac")?;
        let (limit, offset) = (limit.0, offset.0);
        Ok(Json(
            state
                .db
                .run(move |c| dhcp_query(c, &f, limit, offset))
                .await?,
        ))
    }
}
