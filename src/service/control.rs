//! Control: the running service's handle on its pipeline.
//!
//! `serve` runs one pipeline at a time for the capture (live on an interface, or replay
//! of a file) and, beside it, background jobs that analyze uploaded captures into the
//! same tables. The API starts, stops and reconfigures the capture through [`Control`];
//! a new setting is validated (the interface opened, the BPF filter compiled) before the
//! running capture is touched, so a typo never stops monitoring.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::capture::Progress;
use crate::capture::live::LiveSource;
use crate::config::Config;
use crate::pipeline::{self, EventBus, Input, RunSummary};
use crate::service::stream::Hub;
use crate::store::Store;

/// Where the capture reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A network interface through libpcap.
    Live,
    /// A capture file, read once as if live; the service keeps serving afterwards.
    Replay,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Replay => "replay",
        }
    }
}

/// What the capture should read.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureSettings {
    pub mode: Mode,
    pub interface: String,
    pub filter: String,
    pub pcap: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The requested setting is invalid (bad filter, unknown interface, not a capture).
    #[error("{field}: {msg}")]
    Invalid { field: &'static str, msg: String },
    #[error("no job with id {0}")]
    NoJob(u64),
    #[error("{0}")]
    Failed(String),
}

/// Counters of the current (or last) capture run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CaptureStatus {
    pub mode: String,
    pub interface: String,
    pub filter: String,
    pub pcap: Option<String>,
    pub running: bool,
    pub source: Option<String>,
    pub run_id: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub active_flows: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    pub queue_dropped: u64,
    pub last_error: Option<String>,
}

struct Running {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    thread: JoinHandle<anyhow::Result<RunSummary>>,
    started_at: DateTime<Utc>,
    source: String,
}

struct Inner {
    settings: CaptureSettings,
    running: Option<Running>,
    /// Progress of the last run, kept after it ends so counters do not reset to zero.
    last_progress: Arc<Progress>,
    last_source: Option<String>,
    last_started: Option<DateTime<Utc>>,
    last_run_id: Option<i64>,
    last_error: Option<String>,
}

/// State of a background analysis job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct JobStatus {
    pub id: u64,
    pub kind: String,
    pub state: JobState,
    pub file: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// 0..1 from bytes read.
    pub progress: f64,
    pub packets: u64,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

struct Job {
    status: JobStatus,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<anyhow::Result<RunSummary>>>,
}

/// Rate sample for `/api/stats`, the WebSocket stats tick and systemd's STATUS line.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StatsSample {
    pub at: DateTime<Utc>,
    pub packets_per_sec: f64,
    pub bytes_per_sec: f64,
    pub packets: u64,
    pub bytes: u64,
    pub active_flows: u64,
    pub flows: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    pub queue_dropped: u64,
    pub store_dropped: u64,
    pub stream_dropped: u64,
    pub running: bool,
}

/// The service's control surface, shared by the API and the service loop.
pub struct Control {
    cfg: Config,
    store: Arc<Store>,
    hub: Arc<Hub>,
    inner: Mutex<Inner>,
    jobs: Mutex<BTreeMap<u64, Job>>,
    next_job: AtomicU64,
    last_sample: Mutex<(Instant, u64, u64, StatsSample)>,
    /// Processing heartbeats seen at the last watchdog check.
    last_beat: AtomicU64,
    /// The anomaly models, shared by every run and the API.
    models: Arc<crate::detect::ml::Registry>,
    /// Export jobs started through the API.
    exports: crate::store::export::Jobs,
    /// Retraining jobs.
    trainer: crate::detect::ml::train::Trainer,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    pub fn new(cfg: Config, store: Arc<Store>, hub: Arc<Hub>, settings: CaptureSettings) -> Self {
        Control {
            store,
            hub,
            inner: Mutex::new(Inner {
                settings,
                running: None,
                last_progress: Arc::new(Progress::default()),
                last_source: None,
                last_started: None,
                last_run_id: None,
                last_error: None,
            }),
            jobs: Mutex::new(BTreeMap::new()),
            next_job: AtomicU64::new(1),
            last_sample: Mutex::new((Instant::now(), 0, 0, StatsSample::default())),
            last_beat: AtomicU64::new(0),
            models: crate::detect::ml::Registry::new(&cfg),
            cfg,
            exports: Default::default(),
            trainer: Default::default(),
        }
    }

    /// Retraining jobs started through the API.
    pub fn trainer(&self) -> &crate::detect::ml::train::Trainer {
        &self.trainer
    }

    /// The anomaly models in use.
    pub fn models(&self) -> &Arc<crate::detect::ml::Registry> {
        &self.models
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Export jobs started through the API.
    pub fn exports(&self) -> &crate::store::export::Jobs {
        &self.exports
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn settings(&self) -> CaptureSettings {
        lock(&self.inner).settings.clone()
    }

    /// Validates `settings` by opening the source, without touching a running capture.
    fn open(&self, s: &CaptureSettings) -> Result<Input, ControlError> {
        match s.mode {
            Mode::Live => {
                let mut c = self.cfg.capture.clone();
                c.interface = s.interface.clone();
                c.filter = s.filter.clone();
                let live = LiveSource::open(&c).map_err(|e| match e {
                    crate::capture::live::LiveError::Filter { .. } => ControlError::Invalid {
                        field: "filter",
                        msg: e.to_string(),
                    },
                    _ => ControlError::Invalid {
                        field: "interface",
                        msg: e.to_string(),
                    },
                })?;
                Ok(Input::Live(live))
            }
            Mode::Replay => {
                let Some(p) = &s.pcap else {
                    return Err(ControlError::Invalid {
                        field: "pcap",
                        msg: "replay mode needs a capture file (pcap)".into(),
                    });
                };
                crate::capture::file::sniff(p)
                    .map_err(|msg| ControlError::Invalid { field: "pcap", msg })?;
                Ok(Input::Files(vec![p.clone()]))
            }
        }
    }

    /// Joins a capture thread that ended on its own (end of a replayed file, interface
    /// gone) and records how it ended.
    fn reap(inner: &mut Inner) {
        if inner
            .running
            .as_ref()
            .is_some_and(|r| r.thread.is_finished())
        {
            Self::finish(inner);
        }
    }

    fn finish(inner: &mut Inner) {
        let Some(r) = inner.running.take() else {
            return;
        };
        inner.last_progress = r.progress;
        inner.last_source = Some(r.source);
        inner.last_started = Some(r.started_at);
        match r.thread.join() {
            Ok(Ok(summary)) => {
                inner.last_run_id = Some(summary.run_id);
                inner.last_error = summary.errors.first().cloned();
            }
            Ok(Err(e)) => inner.last_error = Some(format!("{e:#}")),
            Err(_) => inner.last_error = Some("capture thread panicked".into()),
        }
    }

    /// Starts the capture with the current settings (no-op when already running).
    pub fn start(&self) -> Result<CaptureStatus, ControlError> {
        let mut inner = lock(&self.inner);
        Self::reap(&mut inner);
        if inner.running.is_none() {
            let input = self.open(&inner.settings)?;
            self.spawn(&mut inner, input);
        }
        drop(inner);
        Ok(self.status())
    }

    fn spawn(&self, inner: &mut Inner, input: Input) {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let source = match &input {
            Input::Live(l) => format!("live:{}", l.interface()),
            Input::Files(p) => p
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let (cfg, store, hub) = (self.cfg.clone(), self.store.clone(), self.hub.clone());
        let (s2, p2) = (stop.clone(), progress.clone());
        let models = self.models.clone();
        let thread = std::thread::Builder::new()
            .name("ng-pipeline".into())
            .spawn(move || {
                let mut attach = |bus: &mut EventBus| hub.attach(bus);
                let hooks = pipeline::Hooks {
                    subscribe: Some(&mut attach),
                    alerts: hub.alert_sender(),
                    models: Some(models.clone()),
                };
                let res = pipeline::run(&cfg, &store, input, p2, s2, Some(hooks));
                match &res {
                    Ok(s) => tracing::info!(
                        run = s.run_id,
                        packets = s.packets,
                        flows = s.flows,
                        "capture ended"
                    ),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "capture failed"),
                }
                res
            })
            .expect("spawn pipeline thread");
        tracing::info!(%source, "capture started");
        inner.last_error = None;
        inner.running = Some(Running {
            stop,
            progress,
            thread,
            started_at: Utc::now(),
            source,
        });
    }

    /// Stops the capture, flushing every live flow; returns once the data is stored.
    pub fn stop(&self) -> CaptureStatus {
        let mut inner = lock(&self.inner);
        if let Some(r) = &inner.running {
            r.stop.store(true, Relaxed);
        }
        Self::finish(&mut inner);
        drop(inner);
        self.status()
    }

    /// Changes what the capture reads. The new source is opened first: if that fails
    /// (bad filter, unknown interface, not a capture file) the error names the field and
    /// the running capture keeps running. A running capture restarts on the new source.
    pub fn reconfigure(&self, new: CaptureSettings) -> Result<CaptureStatus, ControlError> {
        let mut inner = lock(&self.inner);
        Self::reap(&mut inner);
        let was_running = inner.running.is_some();
        if was_running {
            let input = self.open(&new)?;
            if let Some(r) = &inner.running {
                r.stop.store(true, Relaxed);
            }
            Self::finish(&mut inner);
            inner.settings = new;
            self.spawn(&mut inner, input);
        } else {
            // Validate even when stopped, so a later start cannot fail on it. A live
            // handle opened for validation is simply dropped.
            self.open(&new)?;
            inner.settings = new;
        }
        drop(inner);
        Ok(self.status())
    }

    pub fn status(&self) -> CaptureStatus {
        let mut inner = lock(&self.inner);
        Self::reap(&mut inner);
        let s = &inner.settings;
        let (running, progress, source, started) = match &inner.running {
            Some(r) => (
                true,
                r.progress.clone(),
                Some(r.source.clone()),
                Some(r.started_at),
            ),
            None => (
                false,
                inner.last_progress.clone(),
                inner.last_source.clone(),
                inner.last_started,
            ),
        };
        CaptureStatus {
            mode: s.mode.as_str().into(),
            interface: s.interface.clone(),
            filter: s.filter.clone(),
            pcap: s.pcap.as_ref().map(|p| p.display().to_string()),
            running,
            source,
            run_id: inner.last_run_id,
            started_at: started,
            packets: progress.packets.load(Relaxed),
            bytes: progress.wire_bytes.load(Relaxed),
            flows: progress.flows_created.load(Relaxed),
            active_flows: progress.active_flows.load(Relaxed),
            kernel_dropped: progress.kernel_dropped.load(Relaxed),
            if_dropped: progress.if_dropped.load(Relaxed),
            queue_dropped: progress.queue_dropped.load(Relaxed),
            last_error: inner.last_error.clone(),
        }
    }

    /// True while the processing thread makes progress (or nothing is running): the
    /// watchdog pings only then, so a stalled pipeline gets the service restarted.
    pub fn healthy(&self) -> bool {
        let inner = lock(&self.inner);
        match &inner.running {
            None => true,
            Some(r) => {
                let beat = r.progress.heartbeats.load(Relaxed);
                let prev = self.last_beat.swap(beat, Relaxed);
                beat != prev || r.thread.is_finished()
            }
        }
    }

    /// Samples counters and rates since the previous sample.
    pub fn sample(&self) -> StatsSample {
        let st = self.status();
        let now = Instant::now();
        let mut last = lock(&self.last_sample);
        let dt = now.duration_since(last.0).as_secs_f64();
        let (pps, bps) = if dt > 0.0 && st.packets >= last.1 && st.bytes >= last.2 {
            (
                (st.packets - last.1) as f64 / dt,
                (st.bytes - last.2) as f64 / dt,
            )
        } else {
            (0.0, 0.0)
        };
        let s = StatsSample {
            at: Utc::now(),
            packets_per_sec: pps,
            bytes_per_sec: bps,
            packets: st.packets,
            bytes: st.bytes,
            active_flows: st.active_flows,
            flows: st.flows,
            kernel_dropped: st.kernel_dropped,
            if_dropped: st.if_dropped,
            queue_dropped: st.queue_dropped,
            store_dropped: 0,
            stream_dropped: self.hub.dropped(),
            running: st.running,
        };
        *last = (now, st.packets, st.bytes, s.clone());
        s
    }

    /// The most recent sample (without taking a new one).
    pub fn last_sample(&self) -> StatsSample {
        lock(&self.last_sample).3.clone()
    }

    /// Starts analyzing an uploaded capture file into the database; returns the job.
    pub fn submit_file(&self, file: PathBuf, kind: &str) -> Result<JobStatus, ControlError> {
        crate::capture::file::sniff(&file)
            .map_err(|msg| ControlError::Invalid { field: "file", msg })?;
        let id = self.next_job.fetch_add(1, Relaxed);
        let progress = Arc::new(Progress::default());
        let (cfg, store, p2, f2) = (
            self.cfg.clone(),
            self.store.clone(),
            progress.clone(),
            file.clone(),
        );
        // An uploaded capture's alerts are streamed like live ones; its flows are not
        // (a replay would flood clients with old traffic).
        let alerts = self.hub.alert_sender();
        let models = self.models.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ng-job-{id}"))
            .spawn(move || {
                let stop = Arc::new(AtomicBool::new(false));
                let hooks = pipeline::Hooks {
                    subscribe: None,
                    alerts,
                    models: Some(models),
                };
                pipeline::run(&cfg, &store, Input::Files(vec![f2]), p2, stop, Some(hooks))
            })
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        let status = JobStatus {
            id,
            kind: kind.into(),
            state: JobState::Running,
            file: file.display().to_string(),
            created_at: Utc::now(),
            finished_at: None,
            progress: 0.0,
            packets: 0,
            summary: None,
            error: None,
        };
        lock(&self.jobs).insert(
            id,
            Job {
                status: status.clone(),
                progress,
                thread: Some(thread),
            },
        );
        Ok(status)
    }

    pub fn job(&self, id: u64) -> Result<JobStatus, ControlError> {
        let mut jobs = lock(&self.jobs);
        let job = jobs.get_mut(&id).ok_or(ControlError::NoJob(id))?;
        let total = job.progress.bytes_total.load(Relaxed);
        job.status.packets = job.progress.packets.load(Relaxed);
        if total > 0 {
            job.status.progress =
                (job.progress.bytes_done.load(Relaxed) as f64 / total as f64).min(1.0);
        }
        if job.thread.as_ref().is_some_and(|t| t.is_finished()) {
            let t = job.thread.take().expect("checked");
            job.status.finished_at = Some(Utc::now());
            match t.join() {
                Ok(Ok(summary)) => {
                    job.status.state = JobState::Done;
                    job.status.progress = 1.0;
                    job.status.error = summary.errors.first().cloned();
                    job.status.summary = serde_json::to_value(&summary).ok();
                }
                Ok(Err(e)) => {
                    job.status.state = JobState::Failed;
                    job.status.error = Some(format!("{e:#}"));
                }
                Err(_) => {
                    job.status.state = JobState::Failed;
                    job.status.error = Some("analysis thread panicked".into());
                }
            }
        }
        Ok(job.status.clone())
    }

    /// Waits for every job and stops the capture (graceful shutdown).
    pub fn shutdown(&self) {
        self.trainer.shutdown();
        self.stop();
        let ids: Vec<u64> = lock(&self.jobs).keys().copied().collect();
        for id in ids {
            let t = lock(&self.jobs).get_mut(&id).and_then(|j| j.thread.take());
            if let Some(t) = t {
                let _ = t.join();
            }
        }
    }
}

/// Dropping the last handle stops the capture and waits for it and every upload job:
/// their threads hold the database, and a process that exits while DuckDB still runs
/// queries in them can crash in DuckDB's static destructors (the API tests did, about
/// one run in six, once the `ng-ml` thread made runs longer).
impl Drop for Control {
    fn drop(&mut self) {
        self.shutdown();
    }
}
