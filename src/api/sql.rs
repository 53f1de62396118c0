//! `POST /api/sql`: one read-only statement for power users, answered as JSON, CSV or
//! Parquet. The sandbox (what may run, and how) lives in [`crate::store::sql`]; this
//! file maps its verdicts to HTTP: every refused or failed statement is a 400 whose
//! title and detail say why.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::{Binary, Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, ResponseContent};

use super::ApiState;
use super::auth::Token;
use super::error::{ApiError, ApiResult, Problem};
use super::status::Tag;
use crate::store::sql::{self, Body, Limits, OutputFormat, SqlError};

#[derive(Enum, Clone, Copy, Default)]
#[oai(rename_all = "lowercase")]
pub enum SqlFormat {
    #[default]
    Json,
    Csv,
    Parquet,
}

#[derive(Object)]
pub struct SqlRequest {
    /// Exactly one statement: SELECT, WITH, FROM, VALUES, DESCRIBE, SUMMARIZE or EXPLAIN.
    pub sql: String,
    /// `json` (default), `csv` or `parquet`.
    pub format: Option<SqlFormat>,
    /// Row limit (at most `sql.max_rows`, which is also the default).
    #[oai(validator(minimum(value = "1")))]
    pub max_rows: Option<u64>,
    /// Time limit in seconds (at most `sql.timeout_secs`, which is also the default).
    #[oai(validator(minimum(value = "0.001")))]
    pub timeout_secs: Option<f64>,
}

#[derive(Object)]
pub struct SqlColumn {
    pub name: String,
    /// DuckDB type, e.g. `VARCHAR`, `TIMESTAMP`, `UBIGINT`.
    #[oai(rename = "type")]
    pub ty: String,
}

#[derive(Object)]
pub struct SqlResult {
    pub columns: Vec<SqlColumn>,
    /// One array per row, values in column order (timestamps as text, lists as arrays).
    pub rows: Vec<serde_json::Value>,
    pub row_count: u64,
    /// More rows existed than the row limit allowed.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

#[derive(ResponseContent)]
pub enum SqlBody {
    Json(Json<SqlResult>),
    #[oai(content_type = "text/csv")]
    Csv(PlainText<String>),
    #[oai(content_type = "application/vnd.apache.parquet")]
    Parquet(Binary<Vec<u8>>),
}

#[derive(ApiResponse)]
pub enum SqlResponse {
    /// The result; `X-Row-Count` and `X-Truncated` say how many rows and whether the
    /// row limit cut it (for Parquet: the limit was reached).
    #[oai(status = 200)]
    Ok(
        SqlBody,
        #[oai(header = "X-Row-Count")] u64,
        #[oai(header = "X-Truncated")] bool,
    ),
}

fn rejected(title: &str, detail: String) -> ApiError {
    ApiError::BadRequest(Json(
        Problem::new(StatusCode::BAD_REQUEST, title)
            .detail(detail)
            .field("sql"),
    ))
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> ApiError {
        match e {
            SqlError::Rejected(m) => rejected("statement rejected", m),
            SqlError::Failed(m) => rejected("statement failed", m),
            e @ SqlError::Timeout(_) => {
                rejected("statement exceeded the time limit", e.to_string())
            }
            SqlError::Internal(m) => ApiError::internal(m),
        }
    }
}

pub struct SqlApi;

#[OpenApi(tag = "Tag::Sql")]
impl SqlApi {
    /// Runs one read-only statement (token required). The database cannot read or write
    /// files, load extensions or attach databases; only query statements are accepted,
    /// within a time and a row limit. A refused statement is a 400 naming the reason.
    #[oai(path = "/api/sql", method = "post")]
    async fn sql(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Json<SqlRequest>,
    ) -> ApiResult<SqlResponse> {
        let cfg = &state.cfg.sql;
        let limits = Limits {
            timeout: Duration::from_secs_f64(
                body.timeout_secs
                    .unwrap_or(cfg.timeout_secs)
                    .min(cfg.timeout_secs),
            ),
            max_rows: body
                .max_rows
                .map(|n| n.min(cfg.max_rows as u64) as usize)
                .unwrap_or(cfg.max_rows),
        };
        let format = match body.format.unwrap_or_default() {
            SqlFormat::Json => OutputFormat::Json,
            SqlFormat::Csv => OutputFormat::Csv,
            SqlFormat::Parquet => OutputFormat::Parquet,
        };
        let store = state.db.store().clone();
        let allowed = crate::store::export::allowed_dirs(&state.cfg);
        let text = body.0.sql;
        let out = tokio::task::spawn_blocking(move || {
            store
                .restrict(&allowed)
                .map_err(|e| SqlError::Internal(e.to_string()))?;
            let conn = store
                .connection()
                .map_err(|e| SqlError::Internal(e.to_string()))?;
            sql::run(&conn, &text, format, limits, &store.scratch_dir())
        })
        .await
        .map_err(ApiError::internal)??;
        let (n, truncated) = (out.rows as u64, out.truncated);
        let body = match out.body {
            Body::Json(rows) => SqlBody::Json(Json(SqlResult {
                columns: out
                    .columns
                    .into_iter()
                    .map(|c| SqlColumn {
                        name: c.name,
                        ty: c.ty,
                    })
                    .collect(),
                rows,
                row_count: n,
                truncated,
                elapsed_ms: out.elapsed.as_secs_f64() * 1000.0,
            })),
            Body::Csv(s) => SqlBody::Csv(PlainText(s)),
            Body::Parquet(b) => SqlBody::Parquet(Binary(b)),
        };
        Ok(SqlResponse::Ok(body, n, truncated))
    }
}
