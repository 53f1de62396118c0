//! Models: the anomaly models in use (`GET /api/models`) and reloading them from the
//! models folder (`POST /api/models/reload`), so a retrained model can be put in
//! service without a restart and a model that failed to load says why.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiState;
use super::auth::{Reader, Token};
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::detect::ml::{Loaded, registry::type_name};

/// One loaded model and its training metadata.
#[derive(Object)]
pub struct ModelInfo {
    /// File name in the models folder.
    pub file: String,
    /// `flow` or `device`: which feature rows it scores.
    pub kind: String,
    /// `iforest` or `autoencoder`.
    pub model: String,
    pub schema_version: u32,
    pub feature_names: Vec<String>,
    /// Scores above this are anomalous.
    pub threshold: f64,
    pub contamination: f64,
    /// Baseline rows it was trained on, and their time span.
    pub rows: u64,
    pub training_from: Option<String>,
    pub training_to: Option<String>,
    pub trained_at: String,
    /// SHA-256 of the training matrix (identifies the model in `anomaly_scores`).
    pub data_sha256: String,
    pub library_versions: std::collections::BTreeMap<String, String>,
}

/// A model file that is not in use, and why (unreadable, or metadata that does not
/// match the features this netguardian computes).
#[derive(Object)]
pub struct ModelError {
    pub file: String,
    pub error: String,
}

#[derive(Object)]
pub struct Models {
    /// Whether the model thread runs (`ml.enabled`).
    pub enabled: bool,
    /// The folder models are loaded from.
    pub dir: String,
    /// Feature schema version this netguardian computes.
    pub schema_version: i32,
    pub loaded_at: DateTime<Utc>,
    /// Increases with every reload.
    pub generation: u64,
    pub models: Vec<ModelInfo>,
    pub errors: Vec<ModelError>,
}

fn out(enabled: bool, l: &Loaded) -> Models {
    Models {
        enabled,
        dir: l.dir.display().to_string(),
        schema_version: crate::flow::features::SCHEMA_VERSION,
        loaded_at: l.loaded_at,
        generation: l.generation,
        models: l
            .models
            .iter()
            .map(|m| {
                let meta = m.meta();
                ModelInfo {
                    file: m
                        .path()
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    kind: meta.kind.clone(),
                    model: type_name(meta.model).into(),
                    schema_version: meta.schema_version,
                    feature_names: meta.feature_names.clone(),
                    threshold: meta.threshold as f64,
                    contamination: meta.contamination,
                    rows: meta.rows,
                    training_from: meta.training_from.clone(),
                    training_to: meta.training_to.clone(),
                    trained_at: meta.trained_at.clone(),
                    data_sha256: meta.data_sha256.clone(),
                    library_versions: meta.library_versions.clone(),
                }
            })
            .collect(),
        errors: l
            .errors
            .iter()
            .map(|e| ModelError {
                file: e.file.clone(),
                error: e.error.clone(),
            })
            .collect(),
    }
}

pub struct ModelsApi;

#[OpenApi(tag = "Tag::Models")]
impl ModelsApi {
    /// The anomaly models in use, their metadata, and model files that failed to load.
    #[oai(path = "/api/models", method = "get")]
    async fn list(&self, state: Data<&Arc<ApiState>>, auth: Reader) -> ApiResult<Json<Models>> {
        auth.check(&state)?;
        let reg = state.control.models();
        Ok(Json(out(state.cfg.ml.enabled, &reg.current())))
    }

    /// Reads the models folder again (new, changed and removed files) and puts the
    /// result in service for the next batch. Files that fail to load are listed in
    /// `errors`; the other models keep working.
    #[oai(path = "/api/models/reload", method = "post")]
    async fn reload(&self, state: Data<&Arc<ApiState>>, _auth: Token) -> ApiResult<Json<Models>> {
        if !state.cfg.ml.enabled {
            return Err(ApiError::conflict(
                "anomaly models are disabled",
                "set ml.enabled = true in the configuration to load models",
            ));
        }
        let reg = state.control.models().clone();
        let loaded = tokio::task::spawn_blocking(move || reg.reload())
            .await
            .map_err(ApiError::internal)?;
        Ok(Json(out(true, &loaded)))
    }
}
