//! Capture: start, stop and reconfigure the capture; upload capture files for
//! analysis as background jobs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{Enum, Object, OpenApi};
use tokio::io::AsyncWriteExt;

use super::ApiState;
use super::auth::{Reader, Token};
use super::error::{ApiError, ApiResult};
use super::status::Tag;
use crate::service::control::{CaptureSettings, ControlError, JobState, Mode};

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum CaptureMode {
    /// A network interface.
    Live,
    /// A capture file on the appliance, read once as if live.
    Replay,
}

#[derive(Object)]
pub struct Capture {
    pub mode: String,
    pub interface: String,
    pub filter: String,
    #[oai(nullable)]
    pub pcap: Option<String>,
    pub running: bool,
    #[oai(nullable)]
    pub source: Option<String>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub active_flows: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    pub queue_dropped: u64,
    /// Why the last capture stopped early, if it did.
    #[oai(nullable)]
    pub last_error: Option<String>,
}

/// Changes to the capture; absent fields keep their value.
#[derive(Object)]
pub struct CaptureUpdate {
    #[oai(nullable)]
    pub mode: Option<CaptureMode>,
    /// Interface name, or `auto` for the default interface.
    #[oai(nullable, validator(max_length = 64))]
    pub interface: Option<String>,
    /// BPF filter (tcpdump syntax); empty captures everything.
    #[oai(nullable, validator(max_length = 4096))]
    pub filter: Option<String>,
    /// Capture file on the appliance for replay mode.
    #[oai(nullable, validator(max_length = 4096))]
    pub pcap: Option<String>,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum JobStateOut {
    Running,
    Done,
    Failed,
}

#[derive(Object)]
pub struct Job {
    pub id: u64,
    pub kind: String,
    pub state: JobStateOut,
    pub file: String,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    /// 0..1.
    pub progress: f64,
    pub packets: u64,
    /// The analysis summary once done (packets, flows, devices, malformed, ...).
    #[oai(nullable)]
    pub summary: Option<serde_json::Value>,
    #[oai(nullable)]
    pub error: Option<String>,
}

fn capture_out(s: crate::service::control::CaptureStatus) -> Capture {
    Capture {
        mode: s.mode,
        interface: s.interface,
        filter: s.filter,
        pcap: s.pcap,
        running: s.running,
        source: s.source,
        started_at: s.started_at,
        packets: s.packets,
        bytes: s.bytes,
        flows: s.flows,
        active_flows: s.active_flows,
        kernel_dropped: s.kernel_dropped,
        if_dropped: s.if_dropped,
        queue_dropped: s.queue_dropped,
        last_error: s.last_error,
    }
}

fn job_out(j: crate::service::control::JobStatus) -> Job {
    Job {
        id: j.id,
        kind: j.kind,
        state: match j.state {
            JobState::Running => JobStateOut::Running,
            JobState::Done => JobStateOut::Done,
            JobState::Failed => JobStateOut::Failed,
        },
        file: j.file,
        created_at: j.created_at,
        finished_at: j.finished_at,
        progress: j.progress,
        packets: j.packets,
        summary: j.summary,
        error: j.error,
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::Invalid { field, msg } => ApiError::bad_request(field, msg),
            ControlError::NoJob(id) => ApiError::not_found("job", id),
            ControlError::Failed(m) => ApiError::internal(m),
        }
    }
}

/// Runs a blocking control call off the async reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

pub struct CaptureApi;

#[OpenApi(tag = "Tag::Capture")]
impl CaptureApi {
    /// Capture mode, interface, filter, state and counters.
    #[oai(path = "/api/capture", method = "get")]
    async fn get(&self, state: Data<&Arc<ApiState>>, auth: Reader) -> ApiResult<Json<Capture>> {
        auth.check(&state)?;
        Ok(Json(capture_out(state.control.status())))
    }

    /// Starts capturing with the current settings (no change if already running).
    #[oai(path = "/api/capture/start", method = "post")]
    async fn start(&self, state: Data<&Arc<ApiState>>, _auth: Token) -> ApiResult<Json<Capture>> {
        let c = state.control.clone();
        Ok(Json(capture_out(blocking(move || c.start()).await?)))
    }

    /// Stops capturing; every tracked flow is written before this returns.
    #[oai(path = "/api/capture/stop", method = "post")]
    async fn stop(&self, state: Data<&Arc<ApiState>>, _auth: Token) -> ApiResult<Json<Capture>> {
        let c = state.control.clone();
        Ok(Json(capture_out(blocking(move || Ok(c.stop())).await?)))
    }

    /// Switches between live and replay, or changes the interface or BPF filter. The
    /// new source is opened first: an invalid filter or interface is a 400 quoting
    /// libpcap, and the running capture keeps running.
    #[oai(path = "/api/capture", method = "put")]
    async fn update(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Json<CaptureUpdate>,
    ) -> ApiResult<Json<Capture>> {
        let mut s: CaptureSettings = state.control.settings();
        let u = body.0;
        if let Some(m) = u.mode {
            s.mode = match m {
                CaptureMode::Live => Mode::Live,
                CaptureMode::Replay => Mode::Replay,
            };
        }
        if let Some(i) = u.interface {
            if i.trim().is_empty() || i.contains(['/', '\0']) {
                return Err(ApiError::bad_request(
                    "interface",
                    format!("{i:?} is not an interface name"),
                ));
            }
            s.interface = i;
        }
        if let Some(f) = u.filter {
            if f.contains('\0') {
                return Err(ApiError::bad_request("filter", "contains a NUL byte"));
            }
            s.filter = f;
        }
        if let Some(p) = u.pcap {
            s.pcap = Some(p.into());
        }
        let c = state.control.clone();
        Ok(Json(capture_out(blocking(move || c.reconfigure(s)).await?)))
    }

    /// Uploads a capture file (pcap or pcapng, raw body) and analyzes it into the same
    /// tables as live traffic, as a background job; poll `GET /api/jobs/{id}`.
    #[oai(path = "/api/pcap", method = "post")]
    async fn upload(
        &self,
        state: Data<&Arc<ApiState>>,
        _auth: Token,
        body: Binary<poem::Body>,
    ) -> ApiResult<Json<Job>> {
        let limit = state.cfg.api.max_upload_mib.saturating_mul(1 << 20);
        let dir = state.cfg.state_dir().join("uploads");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        let name = format!(
            "upload-{}-{}.pcap",
            Utc::now().format("%Y%m%dT%H%M%S%.6f"),
            rand::random::<u32>()
        );
        let path = dir.join(name);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", path.display())))?;
        let mut reader = body.0.into_async_read();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        let res: ApiResult<()> = async {
            use tokio::io::AsyncReadExt;
            loop {
                let n = reader.read(&mut buf).await.map_err(|e| {
                    ApiError::bad_request("body", format!("upload interrupted: {e}"))
                })?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > limit {
                    return Err(ApiError::too_large(format!(
                        "uploads are limited to {} MiB (api.max_upload_mib)",
                        state.cfg.api.max_upload_mib
                    )));
                }
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
            }
            file.flush().await.map_err(ApiError::internal)?;
            if total == 0 {
                return Err(ApiError::bad_request(
                    "body",
                    "empty upload: send the capture file as the request body",
                ));
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        let c = state.control.clone();
        let p2 = path.clone();
        match blocking(move || c.submit_file(p2, "pcap")).await {
            Ok(j) => Ok(Json(job_out(j))),
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(e)
            }
        }
    }

    /// Progress and result of a background job.
    #[oai(path = "/api/jobs/:id", method = "get")]
    async fn job(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Reader,
        id: Path<u64>,
    ) -> ApiResult<Json<Job>> {
        auth.check(&state)?;
        Ok(Json(job_out(state.control.job(id.0)?)))
    }
}
