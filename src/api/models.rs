//! Models: the anomaly models in use (`GET /api/models`), reloading them from the
//! models folder (`POST /api/models/reload`), so a retrained model can be put in
//! service without a restart and a model that failed to load says why, and scoring
//! feature items on demand (`POST /api/analyze`) with the same models and verdict as
//! the `ng-ml` thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiState;
use super::auth::{Reader, Token};
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::detect::ml::{
    Loaded, Settings, judge, model::Scores, registry::type_name, top_features,
};
use crate::flow::device_features::DEVICE_FEATURES;
use crate::flow::features::FLOW_FEATURES;

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

/// Which models score the items.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum FeatureKind {
    /// One ended flow (`flow_features`).
    Flow,
    /// One device over one minute (`device_features`).
    Device,
}

/// Most items one `POST /api/analyze` scores.
pub const MAX_ANALYZE_ITEMS: usize = 10_000;
/// Largest magnitude of a feature value: stored features are log1p values, ratios and
/// 0/1 flags, so anything beyond this is not a feature row.
const MAX_FEATURE_ABS: f64 = 1e6;

/// Feature items to score.
#[derive(Object)]
pub struct AnalyzeRequest {
    pub kind: FeatureKind,
    /// One object per item with every feature of the kind, by name, as stored in
    /// `flow_features` / `device_features` (already transformed: log1p, ratio, onehot).
    /// The names and their order are `feature_names` in `GET /api/models` and the
    /// `feature_schema` table; a row of the feature table (without its key columns) is
    /// a valid item. At most 10,000 items.
    pub items: Vec<BTreeMap<String, f64>>,
}

/// One model's score of an item.
#[derive(Object)]
pub struct ModelScore {
    /// `iforest` or `autoencoder`.
    pub model: String,
    pub score: f64,
    pub threshold: f64,
    /// Above the threshold (by `ml.min_score_margin`).
    pub above: bool,
}

/// How much one feature contributed to an item's score.
#[derive(Object)]
pub struct FeatureContribution {
    pub name: String,
    pub value: f64,
    /// Autoencoder: squared reconstruction error of the feature (standardised units);
    /// else the squared z-score against the training data.
    pub error: f64,
    /// `error` over the sum of all features' errors.
    pub share: f64,
}

/// The verdict on one item.
#[derive(Object)]
pub struct AnalyzedItem {
    /// Index in `items`.
    pub item: u64,
    /// What the `ng-ml` thread would alert on: every model above its threshold with
    /// `ml.require_agreement` (the default), else any.
    pub anomalous: bool,
    pub scores: Vec<ModelScore>,
    /// The five features that contributed most.
    pub top_features: Vec<FeatureContribution>,
}

#[derive(Object)]
pub struct AnalyzeResponse {
    pub kind: FeatureKind,
    /// Files of the models that scored the items.
    pub models: Vec<String>,
    /// Items found anomalous.
    pub anomalous: u64,
    pub results: Vec<AnalyzedItem>,
}

/// Checks the items against the feature names of the kind and lays them out row-major
/// in the models' input order.
fn feature_matrix(
    names: &[&'static str],
    items: &[BTreeMap<String, f64>],
) -> Result<(Vec<f32>, Vec<Vec<f64>>), ApiError> {
    if items.is_empty() {
        return Err(ApiError::bad_request("items", "no items to score"));
    }
    if items.len() > MAX_ANALYZE_ITEMS {
        return Err(ApiError::bad_request(
            "items",
            format!(
                "{} items; at most {MAX_ANALYZE_ITEMS} per request",
                items.len()
            ),
        ));
    }
    let mut flat = Vec::with_capacity(items.len() * names.len());
    let mut values = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(unknown) = item.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(ApiError::bad_request(
                "items",
                format!(
                    "item {i}: unknown feature {unknown:?} (expected: {})",
                    names.join(", ")
                ),
            ));
        }
        let mut row = Vec::with_capacity(names.len());
        for n in names {
            let Some(v) = item.get(*n) else {
                return Err(ApiError::bad_request(
                    "items",
                    format!(
                        "item {i}: feature {n:?} is missing (every feature of the kind is required)"
                    ),
                ));
            };
            if !v.is_finite() || v.abs() > MAX_FEATURE_ABS {
                return Err(ApiError::bad_request(
                    "items",
                    format!(
                        "item {i}: feature {n:?} = {v:e} is out of range (stored features are log1p values, ratios and 0/1 flags)"
                    ),
                ));
            }
            flat.push(*v as f32);
            row.push(*v);
        }
        values.push(row);
    }
    Ok((flat, values))
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

    /// Scores feature items with the loaded models of their kind and says, per item,
    /// whether the service would raise an `anomaly` alert, each model's score and
    /// threshold, and the features that contributed most. Nothing is stored.
    #[oai(path = "/api/analyze", method = "post")]
    async fn analyze(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Json<AnalyzeRequest>,
    ) -> ApiResult<Json<AnalyzeResponse>> {
        let req = body.0;
        let (kind_name, names): (&'static str, Vec<&'static str>) = match req.kind {
            FeatureKind::Flow => ("flow", FLOW_FEATURES.iter().map(|d| d.name).collect()),
            FeatureKind::Device => ("device", DEVICE_FEATURES.iter().map(|d| d.name).collect()),
        };
        let (flat, values) = feature_matrix(&names, &req.items)?;
        if !state.cfg.ml.enabled {
            return Err(ApiError::conflict(
                "anomaly models are disabled",
                "set ml.enabled = true in the configuration to load models",
            ));
        }
        let loaded = state.control.models().current();
        let models: Vec<_> = loaded.of_kind(kind_name).cloned().collect();
        if models.is_empty() {
            return Err(ApiError::conflict(
                format!("no {kind_name} models loaded"),
                format!(
                    "put {kind_name} models (trained in models/) into {} and POST /api/models/reload",
                    loaded.dir.display()
                ),
            ));
        }
        let settings = Settings::from_config(&state.cfg);
        let n = values.len();
        let resp = tokio::task::spawn_blocking(move || -> Result<AnalyzeResponse, ApiError> {
            let mut results: Vec<(Arc<crate::detect::ml::model::Model>, Scores)> = Vec::new();
            for m in &models {
                let s = m
                    .score_flat(&flat)
                    .map_err(|e| ApiError::internal(format!("{}: {e:#}", m.path().display())))?;
                if s.score.len() != n {
                    return Err(ApiError::internal(format!(
                        "{}: {} scores for {n} items",
                        m.path().display(),
                        s.score.len()
                    )));
                }
                results.push((m.clone(), s));
            }
            let mut anomalous = 0u64;
            let mut out = Vec::with_capacity(n);
            for (i, row) in values.iter().enumerate() {
                let (flagged, verdicts) = judge(&settings, &results, i);
                anomalous += u64::from(flagged);
                let finite = |x: f64| {
                    if x.is_finite() {
                        x
                    } else {
                        f64::MAX.copysign(x)
                    }
                };
                out.push(AnalyzedItem {
                    item: i as u64,
                    anomalous: flagged,
                    scores: verdicts
                        .into_iter()
                        .map(|v| ModelScore {
                            model: v.model.to_string(),
                            score: finite(v.score),
                            threshold: v.threshold,
                            above: v.above,
                        })
                        .collect(),
                    top_features: top_features(&results, i, &names, row)
                        .into_iter()
                        .map(|c| FeatureContribution {
                            name: c.name.to_string(),
                            value: c.value,
                            error: finite(c.error),
                            share: if c.share.is_finite() { c.share } else { 0.0 },
                        })
                        .collect(),
                });
            }
            Ok(AnalyzeResponse {
                kind: req.kind,
                models: results
                    .iter()
                    .map(|(m, _)| {
                        m.path()
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    })
                    .collect(),
                anomalous,
                results: out,
            })
        })
        .await
        .map_err(ApiError::internal)??;
        Ok(Json(resp))
    }
}
