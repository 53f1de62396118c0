//! Anomaly models trained by `models/netguardian_models` and run with tract.
//!
//! A model is one ONNX file: input `features` (f32 `[N, F]`, the transformed
//! feature values exactly as stored in `flow_features` / `device_features`,
//! cast to f32), output `score` (f32 `[N]`, higher = more anomalous) and, for
//! the autoencoder, `feature_error` (f32 `[N, F]`, squared reconstruction error
//! per feature in scaled space; `score` is its row mean). The scaler is inside
//! the graph. The `netguardian.*` ONNX `metadata_props` carry the feature
//! list, schema version and alert threshold; [`Model::load`] refuses a model
//! whose features differ from what the service computes.
//!
//! This file exists so the service can score with the trainer's models without Python:
//! it loads an ONNX file with tract, checks its metadata against the features this
//! binary computes, and scores batches (ported from the scorer prototype, with its
//! tests against the trainer's expected values in `tests/ml.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;

/// Prefix of the ONNX metadata keys written by the trainer.
pub const META_PREFIX: &str = "netguardian.";

/// Feature schema version this code computes.
pub const SCHEMA_VERSION: u32 = crate::flow::features::SCHEMA_VERSION as u32;

/// Which algorithm a model file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// Isolation forest: `score` = sklearn anomaly score in (0, 1].
    IsolationForest,
    /// Autoencoder: `score` = mean squared reconstruction error, plus `feature_error`.
    Autoencoder,
}

impl fmt::Display for ModelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelType::IsolationForest => "iforest",
            ModelType::Autoencoder => "autoencoder",
        })
    }
}

/// What the service expects a model to consume.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `flow` or `device`.
    pub kind: &'static str,
    pub schema_version: u32,
    pub feature_names: Vec<&'static str>,
}

impl Expected {
    /// The flow features this binary computes ([`crate::flow::features::FLOW_FEATURES`]).
    pub fn flow() -> Expected {
        Expected {
            kind: "flow",
            schema_version: SCHEMA_VERSION,
            feature_names: crate::flow::features::flow_feature_names().to_vec(),
        }
    }

    /// The device-window features ([`crate::flow::device_features::DEVICE_FEATURES`]).
    pub fn device() -> Expected {
        Expected {
            kind: "device",
            schema_version: SCHEMA_VERSION,
            feature_names: crate::flow::device_features::device_feature_names().to_vec(),
        }
    }

    pub fn for_kind(kind: &str) -> Option<Expected> {
        match kind {
            "flow" => Some(Expected::flow()),
            "device" => Some(Expected::device()),
            _ => None,
        }
    }
}

/// The `netguardian.*` metadata of a model file.
#[derive(Debug, Clone)]
pub struct ModelMeta {
    pub kind: String,
    pub model: ModelType,
    pub schema_version: u32,
    pub feature_names: Vec<String>,
    /// Scores above this are anomalous (the (1 - contamination) quantile of the baseline).
    pub threshold: f32,
    pub contamination: f64,
    pub scaler_mean: Vec<f64>,
    pub scaler_scale: Vec<f64>,
    /// First and last timestamp of the training rows (ISO 8601, UTC).
    pub training_from: Option<String>,
    pub training_to: Option<String>,
    pub rows: u64,
    pub data_sha256: String,
    pub trained_at: String,
    pub library_versions: BTreeMap<String, String>,
    /// Every `metadata_props` entry, prefix included.
    pub raw: BTreeMap<String, String>,
}

impl ModelMeta {
    /// Parses the `netguardian.*` entries of an ONNX `metadata_props` list.
    pub fn from_props<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ModelMeta> {
        let raw: BTreeMap<String, String> = props
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| -> Result<&str> {
            raw.get(&format!("{META_PREFIX}{k}"))
                .map(String::as_str)
                .ok_or_else(|| anyhow!("metadata_props has no {META_PREFIX}{k}"))
        };
        let json = |k: &str| -> Result<serde_json::Value> {
            serde_json::from_str(get(k)?).with_context(|| format!("{META_PREFIX}{k} is not JSON"))
        };
        let floats = |k: &str| -> Result<Vec<f64>> {
            serde_json::from_value(json(k)?)
                .with_context(|| format!("{META_PREFIX}{k} is not a list of numbers"))
        };
        let model = match get("model")? {
            "iforest" => ModelType::IsolationForest,
            "autoencoder" => ModelType::Autoencoder,
            other => bail!("{META_PREFIX}model is {other:?}, expected iforest or autoencoder"),
        };
        let window = json("training_window")?;
        let when = |k: &str| window.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let meta = ModelMeta {
            kind: get("kind")?.to_string(),
            model,
            schema_version: get("schema_version")?
                .parse()
                .context("netguardian.schema_version is not an integer")?,
            feature_names: serde_json::from_value(json("feature_names")?)
                .context("netguardian.feature_names is not a list of strings")?,
            threshold: get("threshold")?
                .parse()
                .context("netguardian.threshold is not a number")?,
            contamination: get("contamination")?
                .parse()
                .context("netguardian.contamination is not a number")?,
            scaler_mean: floats("scaler_mean")?,
            scaler_scale: floats("scaler_scale")?,
            training_from: when("from"),
            training_to: when("to"),
            rows: get("rows")?
                .parse()
                .context("netguardian.rows is not an integer")?,
            data_sha256: get("data_sha256")?.to_string(),
            trained_at: get("trained_at")?.to_string(),
            library_versions: serde_json::from_value(json("library_versions")?)
                .context("netguardian.library_versions is not an object of strings")?,
            raw: raw.clone(),
        };
        ensure!(
            !meta.feature_names.is_empty(),
            "netguardian.feature_names is empty"
        );
        ensure!(
            meta.threshold.is_finite(),
            "netguardian.threshold is not finite"
        );
        Ok(meta)
    }

    /// Errors unless this model consumes exactly the features the service computes.
    pub fn check(&self, expected: &Expected) -> Result<()> {
        ensure!(
            self.kind == expected.kind,
            "model is for {:?} features, expected {:?}",
            self.kind,
            expected.kind
        );
        ensure!(
            self.schema_version == expected.schema_version,
            "model was trained on feature schema v{}, the service computes v{}",
            self.schema_version,
            expected.schema_version
        );
        let n = self.feature_names.len().max(expected.feature_names.len());
        for i in 0..n {
            match (self.feature_names.get(i), expected.feature_names.get(i)) {
                (Some(got), Some(want)) if got == want => {}
                (Some(got), Some(want)) => bail!(
                    "feature #{i} differs: the model has {got:?}, the service computes {want:?}"
                ),
                (Some(got), None) => {
                    bail!("feature #{i} differs: the model has extra feature {got:?}")
                }
                (None, Some(want)) => {
                    bail!("feature #{i} differs: the model lacks feature {want:?}")
                }
                (None, None) => unreachable!(),
            }
        }
        Ok(())
    }
}

/// Per-feature squared reconstruction errors, row-major `[rows, n_features]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureErrors {
    pub n_features: usize,
    pub values: Vec<f32>,
}

impl FeatureErrors {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.n_features..(i + 1) * self.n_features]
    }
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks_exact(self.n_features)
    }
}

/// The result of scoring a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// One per row; higher = more anomalous. Compare with [`ModelMeta::threshold`].
    pub score: Vec<f32>,
    /// Autoencoder only.
    pub feature_error: Option<FeatureErrors>,
}

/// A loaded, optimized model. Cheap to share (`&self` scoring, `Send + Sync`).
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    meta: ModelMeta,
    plan: Arc<TypedRunnableModel>,
    n_features: usize,
    score_output: usize,
    feature_error_output: Option<usize>,
}

/// Reads the raw ONNX protobuf (for its metadata) without building a model.
pub fn read_proto(path: &Path) -> Result<ModelProto> {
    super::tree_ensemble::onnx()
        .proto_model_for_path(path)
        .with_context(|| format!("reading ONNX model {}", path.display()))
}

impl Model {
    /// Loads `path` and checks its metadata against what the service computes.
    pub fn load(path: impl AsRef<Path>, expected: &Expected) -> Result<Model> {
        let path = path.as_ref();
        let proto = read_proto(path)?;
        let meta = meta_of(&proto).with_context(|| format!("model {}", path.display()))?;
        meta.check(expected)
            .with_context(|| format!("model {} does not fit", path.display()))?;
        Self::build(path, proto, meta)
    }

    /// Loads `path` without comparing its features with anything (tools, tests).
    pub fn load_unchecked(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let proto = read_proto(path)?;
        let meta = meta_of(&proto).with_context(|| format!("model {}", path.display()))?;
        Self::build(path, proto, meta)
    }

    fn build(path: &Path, proto: ModelProto, meta: ModelMeta) -> Result<Model> {
        let ctx = || format!("model {}", path.display());
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| anyhow!("ONNX file has no graph"))
            .with_context(ctx)?;
        let inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !graph.initializer.iter().any(|t| t.name == *n))
            .collect();
        ensure!(
            inputs == ["features"],
            "{}: inputs are {inputs:?}, expected [\"features\"]",
            ctx()
        );
        let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let score_output = outputs
            .iter()
            .position(|n| *n == "score")
            .ok_or_else(|| anyhow!("{}: no output named \"score\" (outputs {outputs:?})", ctx()))?;
        let feature_error_output = outputs.iter().position(|n| *n == "feature_error");
        if meta.model == ModelType::Autoencoder {
            ensure!(
                feature_error_output.is_some(),
                "{}: autoencoder without feature_error output",
                ctx()
            );
        }
        let n_features = meta.feature_names.len();
        let mut model = super::tree_ensemble::onnx()
            .model_for_proto_model(&proto)
            .with_context(ctx)?;
        let n = model.sym("N");
        // Without a lower bound on N tract cannot tell that [N, T] tensors are
        // big enough for its SIMD by-scalar / unicast kernels and keeps generic
        // element-wise code (several times slower for the forest).
        model.symbols.add_assertion("N >= 1").with_context(ctx)?;
        model = model
            .with_input_fact(0, f32::fact(dims!(n, n_features)).into())
            .with_context(|| format!("{}: input is not [N, {n_features}] f32", ctx()))?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .with_context(|| format!("{}: tract cannot optimize it", ctx()))?;
        Ok(Model {
            path: path.to_path_buf(),
            meta,
            plan,
            n_features,
            score_output,
            feature_error_output,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// True when `score` is above the model's alert threshold.
    pub fn is_anomalous(&self, score: f32) -> bool {
        score > self.meta.threshold
    }

    /// Scores rows given as slices of `n_features` values each.
    pub fn score<R: AsRef<[f32]>>(&self, rows: &[R]) -> Result<Scores> {
        let mut flat = Vec::with_capacity(rows.len() * self.n_features);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            ensure!(
                r.len() == self.n_features,
                "row {i} has {} values, the model takes {}",
                r.len(),
                self.n_features
            );
            flat.extend_from_slice(r);
        }
        self.score_flat(&flat)
    }

    /// Scores a row-major `[rows, n_features]` buffer.
    pub fn score_flat(&self, data: &[f32]) -> Result<Scores> {
        let f = self.n_features;
        ensure!(
            data.len().is_multiple_of(f),
            "{} values is not a whole number of {f}-feature rows",
            data.len()
        );
        let rows = data.len() / f;
        if rows == 0 {
            return Ok(Scores {
                score: vec![],
                feature_error: self.feature_error_output.map(|_| FeatureErrors {
                    n_features: f,
                    values: vec![],
                }),
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            bail!(
                "row {} feature {} ({}) is {}: features must be finite",
                i / f,
                i % f,
                self.meta.feature_names[i % f],
                data[i]
            );
        }
        let mut score = Vec::with_capacity(rows);
        let mut errors = self
            .feature_error_output
            .map(|_| Vec::with_capacity(rows * f));
        // Chunks keep the rows a forest's trees walk over in cache.
        for chunk in data.chunks(MAX_BATCH * f) {
            let n = chunk.len() / f;
            let input = Tensor::from_shape(&[n, f], chunk)?;
            let outputs = self.plan.run(tvec!(input.into_tvalue()))?;
            score.extend(plain_f32(&outputs[self.score_output], &[n], "score")?);
            if let (Some(ix), Some(errors)) = (self.feature_error_output, errors.as_mut()) {
                errors.extend(plain_f32(&outputs[ix], &[n, f], "feature_error")?);
            }
        }
        Ok(Scores {
            score,
            feature_error: errors.map(|values| FeatureErrors {
                n_features: f,
                values,
            }),
        })
    }
}

/// Rows per tract run; longer inputs are scored in chunks of this size. The
/// forest walks each tree over the whole chunk, so the chunk's rows (256 x 36
/// f32 = 37 KB for flows) should stay in the core's L1/L2 cache (the
/// autoencoder is flat from 128 to 2,048 rows).
pub const MAX_BATCH: usize = 256;

fn plain_f32(t: &TValue, shape: &[usize], what: &str) -> Result<Vec<f32>> {
    ensure!(
        t.shape() == shape,
        "output {what} has shape {:?}, expected {shape:?}",
        t.shape()
    );
    let view = t
        .to_plain_array_view::<f32>()
        .with_context(|| format!("output {what} is not f32"))?;
    Ok(view.iter().copied().collect())
}

fn meta_of(proto: &ModelProto) -> Result<ModelMeta> {
    ModelMeta::from_props(
        proto
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: [&str; 10] = [
        "flows_log",
        "distinct_peers_log",
        "distinct_ports_log",
        "bytes_out_log",
        "bytes_in_log",
        "new_destinations_log",
        "dns_queries_log",
        "nxdomain_ratio",
        "distinct_snis_log",
        "failed_connections_log",
    ];

    fn props(features: &[&str], version: &str) -> Vec<(String, String)> {
        let mut v = vec![
            ("kind", "device".to_string()),
            ("model", "iforest".to_string()),
            ("schema_version", version.to_string()),
            ("feature_names", serde_json::to_string(features).unwrap()),
            ("threshold", "0.61".to_string()),
            ("scaler_mean", "[0.0]".to_string()),
            ("scaler_scale", "[1.0]".to_string()),
            (
                "training_window",
                r#"{"from": "2025-01-01T00:00:00Z", "to": null}"#.to_string(),
            ),
            ("rows", "1000".to_string()),
            (
                "library_versions",
                r#"{"scikit-learn": "1.9.1"}"#.to_string(),
            ),
            ("data_sha256", "ab".to_string()),
            ("contamination", "0.001".to_string()),
            ("trained_at", "2025-01-02T00:00:00Z".to_string()),
        ];
        v.push(("unrelated", String::new()));
        v.into_iter()
            .map(|(k, v)| {
                (
                    if k == "unrelated" {
                        k.to_string()
                    } else {
                        format!("{META_PREFIX}{k}")
                    },
                    v,
                )
            })
            .collect()
    }

    fn meta(features: &[&str], version: &str) -> Result<ModelMeta> {
        let p = props(features, version);
        ModelMeta::from_props(p.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    #[test]
    fn metadata_parses_and_checks() {
        let m = meta(&DEVICE, "1").unwrap();
        assert_eq!(m.model, ModelType::IsolationForest);
        assert_eq!(m.threshold, 0.61);
        assert_eq!(m.training_from.as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(m.training_to, None);
        m.check(&Expected::device()).unwrap();
        let e = m.check(&Expected::flow()).unwrap_err().to_string();
        assert!(e.contains("\"device\""), "{e}");
    }

    #[test]
    fn first_differing_feature_is_named() {
        let mut f = DEVICE.to_vec();
        f[3] = "bytes_out_raw";
        let e = meta(&f, "1")
            .unwrap()
            .check(&Expected::device())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("feature #3") && e.contains("bytes_out_raw") && e.contains("bytes_out_log"),
            "{e}"
        );
        let e = meta(&DEVICE[..9], "1")
            .unwrap()
            .check(&Expected::device())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("lacks feature \"failed_connections_log\""),
            "{e}"
        );
        let e = meta(&DEVICE, "2")
            .unwrap()
            .check(&Expected::device())
            .unwrap_err();
        assert!(e.to_string().contains("v2"), "{e}");
    }

    #[test]
    fn model_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Model>();
    }

    #[test]
    fn missing_metadata_is_an_error() {
        let p = props(&DEVICE, "1");
        let e = ModelMeta::from_props(
            p.iter()
                .filter(|(k, _)| !k.ends_with("threshold"))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .unwrap_err();
        assert!(e.to_string().contains("netguardian.threshold"), "{e}");
    }
}
