//! The set of anomaly models in use, shared by the `ng-ml` thread (which scores with
//! it) and the API (which lists it and asks for a reload). A model whose file cannot be
//! read or whose metadata does not match the features this binary computes is left
//! out with its error; the others keep working. The models folder is re-read when a
//! file's size or modification time changes (checked at most every
//! `ml.reload_check_secs`) and on `POST /api/models/reload`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::model::{Expected, Model, ModelType, read_proto};
use crate::config::Config;

/// A model file that could not be used, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadError {
    pub file: String,
    pub error: String,
}

/// One consistent set of models (replaced as a whole on reload).
#[derive(Debug)]
pub struct Loaded {
    pub dir: PathBuf,
    pub models: Vec<Arc<Model>>,
    pub errors: Vec<LoadError>,
    pub loaded_at: DateTime<Utc>,
    /// Increases with every reload.
    pub generation: u64,
}

impl Loaded {
    /// The models scoring rows of `kind` (`flow` or `device`).
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Arc<Model>> + 'a {
        self.models.iter().filter(move |m| m.meta().kind == kind)
    }
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

pub struct Registry {
    dir: PathBuf,
    check_every: Option<Duration>,
    current: RwLock<Arc<Loaded>>,
    /// Files as of the last load, and when they were last compared.
    seen: Mutex<(Fingerprint, Instant)>,
    /// Serialises reloads (the API and the thread may ask at once).
    reloading: Mutex<()>,
}

fn model_files(dir: &Path) -> Fingerprint {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Fingerprint = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .map(|p| {
            let md = std::fs::metadata(&p).ok();
            let mtime = md.as_ref().and_then(|m| m.modified().ok());
            let len = md.map(|m| m.len()).unwrap_or(0);
            (p, mtime, len)
        })
        .collect();
    v.sort();
    v
}

/// Where the models are read from: `ml.models_dir`, else `<state_dir>/models`. The
/// default models shipped in the source tree (`models/default`) are not picked up
/// implicitly (tests and installs stay hermetic): copy them there or point
/// `ml.models_dir` at them.
pub fn models_dir(cfg: &Config) -> PathBuf {
    match &cfg.ml.models_dir {
        Some(d) => d.clone(),
        None => cfg.state_dir().join("models"),
    }
}

fn load_one(path: &Path) -> anyhow::Result<Model> {
    let proto = read_proto(path)?;
    let kind = proto
        .metadata_props
        .iter()
        .find(|p| p.key == "netguardian.kind")
        .map(|p| p.value.clone())
        .unwrap_or_default();
    let expected = Expected::for_kind(&kind).ok_or_else(|| {
        anyhow::anyhow!(
            "model {}: netguardian.kind is {kind:?}, expected \"flow\" or \"device\"",
            path.display()
        )
    })?;
    Model::load(path, &expected)
}

fn load_dir(dir: &Path, generation: u64) -> Loaded {
    let mut models: Vec<Arc<Model>> = Vec::new();
    let mut errors = Vec::new();
    for (path, _, _) in model_files(dir) {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load_one(&path) {
            Ok(m) => {
                let (kind, ty) = (m.meta().kind.clone(), m.meta().model);
                if models
                    .iter()
                    .any(|o| o.meta().kind == kind && o.meta().model == ty)
                {
                    errors.push(LoadError {
                        file,
                        error: format!(
                            "another {kind} {ty} model was loaded first; this one is ignored"
                        ),
                    });
                } else {
                    tracing::info!(model = %path.display(), %kind, model_type = %ty, threshold = m.meta().threshold, "anomaly model loaded");
                    models.push(Arc::new(m));
                }
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(model = %path.display(), %error, "anomaly model disabled");
                errors.push(LoadError { file, error });
            }
        }
    }
    Loaded {
        dir: dir.to_path_buf(),
        models,
        errors,
        loaded_at: Utc::now(),
        generation,
    }
}

impl Registry {
    /// Loads the models of `cfg` (none when `ml.enabled` is false).
    pub fn new(cfg: &Config) -> Arc<Registry> {
        let dir = models_dir(cfg);
        let check_every =
            (cfg.ml.reload_check_secs > 0).then(|| Duration::from_secs(cfg.ml.reload_check_secs));
        let r = Registry {
            dir: dir.clone(),
            check_every,
            current: RwLock::new(Arc::new(Loaded {
                dir,
                models: Vec::new(),
                errors: Vec::new(),
                loaded_at: Utc::now(),
                generation: 0,
            })),
            seen: Mutex::new((Vec::new(), Instant::now())),
            reloading: Mutex::new(()),
        };
        if cfg.ml.enabled {
            r.reload();
        }
        Arc::new(r)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The models in use now.
    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the models folder again and replaces the set in use.
    pub fn reload(&self) -> Arc<Loaded> {
        let _g = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let files = model_files(&self.dir);
        let generation = self.current().generation + 1;
        let loaded = Arc::new(load_dir(&self.dir, generation));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded.clone();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = (files, Instant::now());
        loaded
    }

    /// Reloads when a model file was added, removed or changed since the last load;
    /// compares at most every `ml.reload_check_secs`. True when it reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let Some(every) = self.check_every else {
            return false;
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.1.elapsed() < every {
                return false;
            }
            seen.1 = Instant::now();
            if model_files(&self.dir) == seen.0 {
                return false;
            }
        }
        tracing::info!(dir = %self.dir.display(), "model files changed; reloading");
        self.reload();
        true
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.error)
    }
}

/// Short name of a model type, as stored in `anomaly_scores.model`.
pub fn type_name(t: ModelType) -> &'static str {
    match t {
        ModelType::IsolationForest => "iforest",
        ModelType::Autoencoder => "autoencoder",
    }
}
