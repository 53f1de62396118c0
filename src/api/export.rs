//! Exports through the API: `POST /api/exports` starts a background job writing into a
//! new folder under `export.dir`; `GET /api/exports/{id}` reports its progress and, when
//! done, every file with a download link (`GET /api/exports/{id}/file?path=...`, only
//! paths the job's manifest lists). Everything here needs the token: exports hold all
//! the captured data.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Attachment, AttachmentType, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiState;
use super::auth::Token;
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::store::export::{self, Encryption, ExportError, Format, JobState, JobStatus, Request};

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Hive-partitioned by table and day: `flows/date=2026-11-23/part-0.parquet`.
    Parquet,
    /// One `<table>.csv` per table, with a header line.
    Csv,
    /// One `<table>.json` per table, newline-delimited JSON.
    Json,
    /// One `netguardian.duckdb` holding the selected tables.
    Duckdb,
}

#[derive(Object)]
pub struct ExportRequest {
    pub format: ExportFormat,
    /// Tables to export (default: all exportable tables).
    pub tables: Option<Vec<String>>,
    /// Rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows before this time.
    pub until: Option<DateTime<Utc>>,
    /// Encrypt every file with age to `export.recipients` (or `export.passphrase`).
    #[oai(default)]
    pub encrypt: bool,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum ExportState {
    Running,
    Done,
    Failed,
}

#[derive(Object)]
pub struct ExportFile {
    /// Relative to the export folder.
    pub path: String,
    #[oai(nullable)]
    pub table: Option<String>,
    pub bytes: u64,
    /// SHA-256 of the file as stored (after encryption, if any).
    pub sha256: String,
    pub rows: u64,
    #[oai(nullable)]
    pub min_ts: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub max_ts: Option<DateTime<Utc>>,
    /// Download link.
    pub url: String,
}

#[derive(Object)]
pub struct ExportJob {
    pub id: u64,
    pub state: ExportState,
    pub format: String,
    pub tables: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    /// 0..1 (tables written, and the encryption pass).
    pub progress: f64,
    pub rows: u64,
    /// The folder on the server.
    pub dir: String,
    /// Download link of `manifest.json` once done.
    #[oai(nullable)]
    pub manifest_url: Option<String>,
    pub files: Vec<ExportFile>,
    #[oai(nullable)]
    pub error: Option<String>,
}

fn job_out(j: JobStatus) -> ExportJob {
    let base = format!("/api/exports/{}/file?path=", j.id);
    let files = j
        .manifest
        .as_ref()
        .map(|m| {
            m.files
                .iter()
                .map(|f| ExportFile {
                    url: format!("{base}{}", encode_query(&f.path)),
                    path: f.path.clone(),
                    table: f.table.clone(),
                    bytes: f.bytes,
                    sha256: f.sha256.clone(),
                    rows: f.rows,
                    min_ts: f.min_ts,
                    max_ts: f.max_ts,
                })
                .collect()
        })
        .unwrap_or_default();
    ExportJob {
        id: j.id,
        state: match j.state {
            JobState::Running => ExportState::Running,
            JobState::Done => ExportState::Done,
            JobState::Failed => ExportState::Failed,
        },
        format: j.format.as_str().into(),
        tables: j.tables,
        created_at: j.created_at,
        finished_at: j.finished_at,
        progress: j.progress,
        rows: j.rows,
        dir: j.dir.display().to_string(),
        manifest_url: (j.state == JobState::Done).then(|| format!("{base}{}", export::MANIFEST)),
        files,
        error: j.error,
    }
}

/// Percent-encodes what a query value cannot hold as is (`=` in hive paths is fine).
fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'=' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(ApiResponse)]
pub enum Started {
    /// The job started; poll `GET /api/exports/{id}`.
    #[oai(status = 202)]
    Accepted(Json<ExportJob>),
}

pub struct ExportApi;

#[OpenApi(tag = "Tag::Exports")]
impl ExportApi {
    /// Starts an export as a background job (token required).
    #[oai(path = "/api/exports", method = "post")]
    async fn start(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Json<ExportRequest>,
    ) -> ApiResult<Started> {
        let b = body.0;
        let tables = export::check_tables(&b.tables.unwrap_or_default())
            .map_err(|e| ApiError::bad_request("tables", e))?;
        if let (Some(s), Some(u)) = (b.since, b.until)
            && s >= u
        {
            return Err(ApiError::bad_request(
                "since",
                format!("since ({s}) must be before until ({u})"),
            ));
        }
        let encryption = if b.encrypt {
            match Encryption::from_config(&state.cfg) {
                Ok(Some(e)) => Some(e),
                Ok(None) => {
                    return Err(ApiError::bad_request(
                        "encrypt",
                        "no export.recipients or export.passphrase configured",
                    ));
                }
                Err(e) => return Err(ApiError::bad_request("encrypt", e)),
            }
        } else {
            None
        };
        let req = Request {
            format: match b.format {
                ExportFormat::Parquet => Format::Parquet,
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Json => Format::Json,
                ExportFormat::Duckdb => Format::Duckdb,
            },
            tables,
            since: b.since,
            until: b.until,
            out: Default::default(),
            encryption,
        };
        let st = state.0.clone();
        let job = tokio::task::spawn_blocking(move || {
            st.control.exports().submit(st.db.store(), &st.cfg, req)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            ExportError::Invalid(m) => ApiError::bad_request("body", m),
            other => ApiError::internal(other),
        })?;
        Ok(Started::Accepted(Json(job_out(job))))
    }

    /// Progress of an export job; when done, its files with download links.
    #[oai(path = "/api/exports/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<u64>,
    ) -> ApiResult<Json<ExportJob>> {
        let j = state
            .control
            .exports()
            .get(id.0)
            .ok_or_else(|| ApiError::not_found("export", id.0))?;
        Ok(Json(job_out(j)))
    }

    /// Downloads one file of a finished export (a path its manifest lists, or
    /// `manifest.json`).
    #[oai(path = "/api/exports/:id/file", method = "get")]
    async fn file(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        id: Path<u64>,
        /// File path relative to the export folder, as listed in `files`.
        path: Query<String>,
    ) -> ApiResult<Attachment<poem::Body>> {
        let j = state
            .control
            .exports()
            .get(id.0)
            .ok_or_else(|| ApiError::not_found("export", id.0))?;
        let Some(m) = j.manifest.as_ref() else {
            return Err(ApiError::conflict(
                "export not finished",
                format!("export {} is {:?}; wait until it is done", j.id, j.state),
            ));
        };
        // Only names the manifest lists: no path from the request reaches the disk.
        let listed = path.0 == export::MANIFEST || m.files.iter().any(|f| f.path == path.0);
        if !listed {
            return Err(ApiError::not_found("file", &path.0));
        }
        let full = j.dir.join(&path.0);
        let file = tokio::fs::File::open(&full)
            .await
            .map_err(|e| ApiError::internal(format!("cannot open {}: {e}", full.display())))?;
        let name = path.0.replace('/', "_");
        Ok(Attachment::new(poem::Body::from_async_read(file))
            .attachment_type(AttachmentType::Attachment)
            .filename(name))
    }
}
