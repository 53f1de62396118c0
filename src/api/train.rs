//! Retraining through the API: `POST /api/train` starts a background job that trains
//! new models on the recent baseline and installs them ([`crate::detect::ml::train`]);
//! `GET /api/train/{id}` reports its phase, progress and, per kind, what happened.
//! `netguardian train --wait` (the nightly timer) is a client of these two.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiState;
use super::auth::{Reader, Token};
use super::error::{ApiError, ApiResult};
use super::models::FeatureKind;
use super::status::Tag;
use crate::detect::ml::train::{self, JobState, JobStatus, Outcome, TrainError};

#[derive(Object, Default)]
pub struct TrainRequest {
    /// Train on rows at or after this time (default: `until` minus `days`).
    pub since: Option<DateTime<Utc>>,
    /// Train on rows before this time (default: just after the newest feature row).
    pub until: Option<DateTime<Utc>>,
    /// Days of baseline (1..=366; default `ml.train.days`).
    pub days: Option<u32>,
    /// Kinds of rows to train models for (default: both).
    pub kinds: Option<Vec<FeatureKind>>,
    /// Share of baseline rows the thresholds put above them (default
    /// `ml.train.contamination`).
    pub contamination: Option<f64>,
    /// Fewest rows a kind needs to be trained (default `ml.train.min_rows`).
    pub min_rows: Option<u64>,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum TrainState {
    Running,
    Done,
    Failed,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum TrainOutcome {
    Pending,
    /// New models were validated, installed and loaded.
    Trained,
    /// Not trained (too few rows); the models in use stay.
    Skipped,
    /// The trainer or the validation failed; the models in use stay.
    Failed,
}

#[derive(Object)]
pub struct TrainedModel {
    pub file: String,
    /// `iforest` or `autoencoder`.
    pub model: String,
    pub threshold: f32,
    /// Largest difference between tract's scores and scikit-learn's on the trainer's
    /// check vectors.
    pub max_score_diff: f64,
    pub vectors: u64,
}

#[derive(Object)]
pub struct TrainKind {
    pub kind: String,
    /// Feature rows in the window (before rows overlapping alerts are dropped).
    pub rows: u64,
    pub outcome: TrainOutcome,
    #[oai(nullable)]
    pub reason: Option<String>,
    pub models: Vec<TrainedModel>,
    /// The trainer's summary, or the end of its error output.
    pub trainer_output: String,
    pub train_secs: f64,
}

#[derive(Object)]
pub struct TrainJob {
    pub id: u64,
    pub state: TrainState,
    /// `queued`, `export`, `train flow`, `validate flow`, `install flow`, `reload`,
    /// `done` or `failed`.
    pub phase: String,
    /// 0..1.
    pub progress: f64,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub since: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub until: Option<DateTime<Utc>>,
    pub contamination: f64,
    pub min_rows: u64,
    /// Where the models are installed.
    pub models_dir: String,
    pub kinds: Vec<TrainKind>,
    /// The registry generation after the job's reload.
    #[oai(nullable)]
    pub reload_generation: Option<u64>,
    #[oai(nullable)]
    pub error: Option<String>,
}

fn job_out(j: JobStatus) -> TrainJob {
    TrainJob {
        id: j.id,
        state: match j.state {
            JobState::Running => TrainState::Running,
            JobState::Done => TrainState::Done,
            JobState::Failed => TrainState::Failed,
        },
        phase: j.phase,
        progress: j.progress,
        created_at: j.created_at,
        finished_at: j.finished_at,
        since: j.since,
        until: j.until,
        contamination: j.contamination,
        min_rows: j.min_rows,
        models_dir: j.models_dir,
        kinds: j
            .kinds
            .into_iter()
            .map(|k| TrainKind {
                kind: k.kind,
                rows: k.rows,
                outcome: match k.outcome {
                    Outcome::Pending => TrainOutcome::Pending,
                    Outcome::Trained => TrainOutcome::Trained,
                    Outcome::Skipped => TrainOutcome::Skipped,
                    Outcome::Failed => TrainOutcome::Failed,
                },
                reason: k.reason,
                models: k
                    .models
                    .into_iter()
                    .map(|m| TrainedModel {
                        file: m.file,
                        model: m.model,
                        threshold: m.threshold,
                        max_score_diff: m.max_score_diff,
                        vectors: m.vectors as u64,
                    })
                    .collect(),
                trainer_output: k.trainer_output,
                train_secs: k.train_secs,
            })
            .collect(),
        reload_generation: j.reload_generation,
        error: j.error,
    }
}

#[derive(ApiResponse)]
pub enum Started {
    /// The job started; poll `GET /api/train/{id}`.
    #[oai(status = 202)]
    Accepted(Json<TrainJob>),
}

pub struct TrainApi;

#[OpenApi(tag = "Tag::Models")]
impl TrainApi {
    /// Starts retraining as a background job (token required): the baseline of the last
    /// `days` is exported, the trainer fits new models for each kind with enough rows,
    /// tract must reproduce the trainer's scores, and the new models replace the old
    /// ones (kept in `previous/`) and are loaded. One job at a time (409 otherwise).
    #[oai(path = "/api/train", method = "post")]
    async fn start(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Json<TrainRequest>,
    ) -> ApiResult<Started> {
        if !state.cfg.ml.enabled {
            return Err(ApiError::conflict(
                "anomaly models are disabled",
                "set ml.enabled = true in the configuration: without it no features are \
                 recorded to train on",
            ));
        }
        let b = body.0;
        let req = train::Request {
            since: b.since,
            until: b.until,
            days: b.days,
            kinds: b
                .kinds
                .unwrap_or_default()
                .into_iter()
                .map(|k| match k {
                    FeatureKind::Flow => "flow".to_string(),
                    FeatureKind::Device => "device".to_string(),
                })
                .collect(),
            contamination: b.contamination,
            min_rows: b.min_rows,
        };
        let st = state.0.clone();
        let job = tokio::task::spawn_blocking(move || {
            st.control
                .trainer()
                .submit(st.db.store(), &st.cfg, st.control.models(), &req)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            TrainError::Invalid { field, message } => ApiError::bad_request(field, message),
            e @ TrainError::Busy(_) => {
                ApiError::conflict("training already running", e.to_string())
            }
            TrainError::Other(m) => ApiError::internal(m),
        })?;
        Ok(Started::Accepted(Json(job_out(job))))
    }

    /// Training jobs since the service started (the last 50), newest first.
    #[oai(path = "/api/train", method = "get")]
    async fn list(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
    ) -> ApiResult<Json<Vec<TrainJob>>> {
        auth.check(&state)?;
        Ok(Json(
            state
                .control
                .trainer()
                .list()
                .into_iter()
                .map(job_out)
                .collect(),
        ))
    }

    /// One training job: phase, progress and, per kind, rows, outcome and the models
    /// installed.
    #[oai(path = "/api/train/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        id: Path<u64>,
    ) -> ApiResult<Json<TrainJob>> {
        auth.check(&state)?;
        let j = state
            .control
            .trainer()
            .get(id.0)
            .ok_or_else(|| ApiError::not_found("training job", id.0))?;
        Ok(Json(job_out(j)))
    }
}
