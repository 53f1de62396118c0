//! Service: `netguardian serve` as a system daemon — the capture, the API, systemd
//! notification and watchdog, logging, and a graceful stop that stores every flow.
//!
//! - [`control`]: starts, stops and reconfigures the capture; background jobs.
//! - [`stream`]: the live event hub behind the WebSocket.
//! - [`notify`]: sd-notify (READY, STATUS, WATCHDOG, STOPPING).
//! - [`logging`]: journald when started by systemd, human-readable stderr otherwise.
//! - [`maintenance`]: retention and scheduled exports in the background.
//! - [`token`]: the API bearer token in the state directory.
//! - [`privilege`]: started as root, become an unprivileged user keeping CAP_NET_RAW.

pub mod control;
pub mod logging;
pub mod maintenance;
pub mod notify;
pub mod privilege;
pub mod stream;
pub mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::api::ApiState;
use crate::config::Config;
use crate::store::Store;
use crate::store::query::ReadPool;
use control::{CaptureSettings, Control, Mode};

/// Options of `netguardian serve` beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Replay this capture file (as if live) instead of capturing, then keep serving.
    pub pcap: Option<PathBuf>,
    /// Database file (default: `<state_dir>/netguardian.duckdb`).
    pub db: Option<PathBuf>,
}

/// Database file inside the state directory.
pub fn db_path(cfg: &Config) -> PathBuf {
    cfg.state_dir().join("netguardian.duckdb")
}

/// Runs the service until SIGTERM/SIGINT. Returns after every flow is stored.
pub fn serve(cfg: Config, opts: ServeOptions) -> anyhow::Result<()> {
    let db = opts.db.clone().unwrap_or_else(|| db_path(&cfg));
    // First, while this is the only thread: as root, become service.user.
    if let Some(d) = privilege::drop_root(&cfg, &db).context("cannot drop root privileges")? {
        tracing::info!(user = %d.user, uid = d.uid, gid = d.gid, capabilities = ?d.caps, "started as root; now running unprivileged");
    }
    let state_dir = cfg.state_dir();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    let token = token::load_or_create(&state_dir)?;
    let store = Arc::new(Store::open(&db)?);
    store.configure(&cfg.store)?;
    tracing::info!(db = %db.display(), "database open");
    // From here on DuckDB touches no file outside the export folders (the SQL sandbox
    // relies on it; nothing else in the service needs file access through SQL).
    store
        .restrict(&crate::store::export::allowed_dirs(&cfg))
        .context("cannot restrict the database's file access")?;
    let maint_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let maint = maintenance::spawn(cfg.clone(), store.clone(), maint_stop.clone())?;

    let settings = CaptureSettings {
        mode: if opts.pcap.is_some() {
            Mode::Replay
        } else {
            Mode::Live
        },
        interface: cfg.capture.interface.clone(),
        filter: cfg.capture.filter.clone(),
        pcap: opts.pcap.clone(),
    };
    let hub = stream::Hub::new(cfg.api.ws_queue);
    let control = Arc::new(Control::new(
        cfg.clone(),
        store.clone(),
        hub.clone(),
        settings,
    ));
    let status = control
        .start()
        .map_err(|e| anyhow::anyhow!("cannot start capture: {e}"))?;
    tracing::info!(source = ?status.source, "capture open");

    let state = Arc::new(ApiState {
        cfg: cfg.clone(),
        db: ReadPool::new(store.clone(), 8),
        token,
        started: Instant::now(),
        control: control.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ng-api")
        .build()?;
    let res = rt.block_on(run_server(state, cfg.api.listen.clone()));
    notify::stopping();
    tracing::info!("stopping: flushing flows and pending rows");
    control.shutdown();
    maint_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = maint.join();
    drop(rt);
    tracing::info!("stopped");
    res
}

async fn run_server(state: Arc<ApiState>, listen: String) -> anyhow::Result<()> {
    use poem::listener::{Acceptor, Listener, TcpListener};
    let acceptor = TcpListener::bind(listen.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {listen} (api.listen)"))?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(|s| s.to_string()))
        .unwrap_or(listen);
    tracing::info!(addr = %local, "API listening; explorer at /docs");
    let control = state.control.clone();
    let ticker = tokio::spawn(tick(control));
    notify::ready(&format!("monitoring; API on {local}"));
    let app = crate::api::app(state);
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        notify::stopping();
        tracing::info!("signal received, shutting down");
    };
    let res = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(5)))
        .await;
    ticker.abort();
    res.context("API server failed")
}

/// Once a second: a stats sample for `/api/stats` and the stream; every few seconds a
/// systemd STATUS line; watchdog pings while the pipeline makes progress.
async fn tick(control: Arc<Control>) {
    let watchdog = notify::watchdog_interval();
    let mut last_status = Instant::now() - Duration::from_secs(60);
    let mut last_ping = Instant::now();
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    loop {
        iv.tick().await;
        let c = control.clone();
        let Ok(s) = tokio::task::spawn_blocking(move || c.sample()).await else {
            continue;
        };
        control.hub().publish(
            "stats",
            Vec::new(),
            serde_json::to_value(&s).unwrap_or_default(),
        );
        if last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            notify::status(&format!(
                "{}: {:.0} packets/s, {} active flows, {} flows, drops kernel {} queue {}",
                if s.running {
                    "capturing"
                } else {
                    "capture stopped"
                },
                s.packets_per_sec,
                s.active_flows,
                s.flows,
                s.kernel_dropped,
                s.queue_dropped
            ));
        }
        if let Some(w) = watchdog
            && last_ping.elapsed() >= w / 2
            && control.healthy()
        {
            notify::watchdog();
            last_ping = Instant::now();
        }
    }
}
