//! Configuration: typed settings with defaults, read from a TOML file and
//! `NETGUARDIAN_*` environment variables (nested keys joined with `__`).
//!
//! Every key has a default so the appliance runs with no file at all. Unknown keys are
//! errors that name the key and where it came from: a typo must not silently turn a
//! setting off.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netguardian/config.toml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    /// Directory for the database and other state. Empty: `$STATE_DIRECTORY`, else a
    /// per-user default.
    pub state_dir: Option<PathBuf>,
    pub capture: CaptureConfig,
    pub flow: FlowConfig,
    pub network: NetworkConfig,
    pub pipeline: PipelineConfig,
    /// The DuckDB database (`[store]`).
    pub store: StoreConfig,
    pub api: ApiConfig,
    pub logging: LoggingConfig,
    pub export: ExportConfig,
    pub retention: RetentionConfig,
    pub sql: SqlConfig,
    /// Detection rules and the alert lifecycle (`[detect]`, see `detect/config.rs`).
    pub detect: crate::detect::DetectConfig,
    /// Anomaly models (`[ml]`): feature tables, scoring, `anomaly` alerts.
    pub ml: MlConfig,
    /// The daemon itself (`[service]`).
    pub service: ServiceConfig,
}

/// How `serve` runs when started as root (outside systemd, whose unit starts it
/// unprivileged already).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Started as root, `serve` switches to this user (and its group) before opening
    /// anything, keeping only CAP_NET_RAW (and CAP_NET_BIND_SERVICE for an API port below
    /// 1024); the state directory is handed to it. The default "netguardian" falls back
    /// to "nobody" when no such user exists. "root" keeps running as root (not
    /// recommended).
    pub user: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            user: "netguardian".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interface name, or "auto" for the interface of the default route.
    pub interface: String,
    /// BPF filter expression (tcpdump syntax); empty captures everything.
    pub filter: String,
    pub snaplen: i32,
    pub promiscuous: bool,
    /// Deliver packets as they arrive instead of in kernel-buffered bursts.
    pub immediate_mode: bool,
    /// Kernel capture buffer in MiB.
    pub buffer_mib: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: "auto".into(),
            filter: String::new(),
            snaplen: 65535,
            promiscuous: true,
            immediate_mode: true,
            buffer_mib: 16,
        }
    }
}

/// Flow table limits and timeouts (seconds of packet time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    pub tcp_idle_timeout_secs: f64,
    /// Unanswered connection attempts (SYN with no reply).
    pub tcp_syn_timeout_secs: f64,
    /// Linger after FIN/FIN or RST, so the last ACKs stay in the same flow.
    pub tcp_closed_timeout_secs: f64,
    pub udp_idle_timeout_secs: f64,
    pub icmp_idle_timeout_secs: f64,
    pub other_idle_timeout_secs: f64,
    /// Long flows are written as an update this often and continue; 0 disables.
    pub active_timeout_secs: f64,
    /// Hard cap on tracked flows; beyond it the oldest are written out and dropped.
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle_timeout_secs: 300.0,
            tcp_syn_timeout_secs: 20.0,
            tcp_closed_timeout_secs: 5.0,
            udp_idle_timeout_secs: 60.0,
            icmp_idle_timeout_secs: 60.0,
            other_idle_timeout_secs: 60.0,
            active_timeout_secs: 300.0,
            max_flows: 262_144,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Networks whose hosts are "local" devices (inventory) rather than the internet.
    pub local_networks: Vec<IpNet>,
    /// Also count as local the IPv6 prefixes the home's routers advertise (router
    /// advertisements with on-link or autonomous prefixes, /32 or longer).
    pub learn_ipv6_prefixes: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let nets = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "fe80::/10",
            "fc00::/7",
        ];
        NetworkConfig {
            local_networks: nets
                .iter()
                .map(|n| n.parse().expect("valid default"))
                .collect(),
            learn_ipv6_prefixes: true,
        }
    }
}

/// Queue sizes between pipeline threads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Packet batches buffered between capture and processing.
    pub packet_queue_batches: usize,
    /// Event batches buffered before the store writer; when full, live capture
    /// drops (and counts) rather than waiting on disk.
    pub store_queue_batches: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            packet_queue_batches: 64,
            store_queue_batches: 256,
        }
    }
}

/// DuckDB's share of the machine. Both are database-wide (every connection: the
/// writer, detection, the API's readers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// DuckDB's memory limit, MiB: its buffer pool evicts (and large queries spill to
    /// `<db>.tmp`) beyond it. Checkpoints need about 32 MiB; below 64 is refused.
    pub memory_limit_mib: u64,
    /// DuckDB worker threads (queries and checkpoints). 0: one per core. Unset: 2 for
    /// `serve` and the query commands (the API's queries run in parallel), 1 for the
    /// ingest-only commands `analyze` and `capture`, whose pipeline threads use the cores.
    pub threads: Option<u32>,
    /// WAL size, MiB, at which DuckDB checkpoints (rewrites the changed row groups
    /// into the database file). DuckDB's own default of 16 re-compressed the same
    /// growing row groups so often that checkpoints were a fifth of a capture's CPU;
    /// larger means fewer, bigger checkpoints and fewer SD-card writes, a longer WAL
    /// replay after a power cut, and a few MiB more memory. 1 to 1024.
    pub checkpoint_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit_mib: 128,
            threads: None,
            checkpoint_mib: 64,
        }
    }
}

impl StoreConfig {
    /// DuckDB threads when nothing is configured and queries may run beside the capture.
    pub const DEFAULT_THREADS: u32 = 2;
    /// DuckDB threads when nothing is configured and the command only writes.
    pub const INGEST_THREADS: u32 = 1;

    /// The settings for a command that only writes (`analyze`, `capture`): unless
    /// configured, one DuckDB thread. A checkpoint or appender flush hands row groups
    /// to DuckDB's workers and the committing pipeline thread busy-waits for them
    /// (`TaskExecutor::WorkOnTasks`), a core's worth of spinning while the pipeline's
    /// own threads want the CPU; with one thread the committer does the work itself.
    pub fn for_ingest(&self) -> StoreConfig {
        StoreConfig {
            threads: Some(self.threads.unwrap_or(Self::INGEST_THREADS)),
            ..self.clone()
        }
    }

    /// The thread count to set (0: one per core).
    pub fn threads(&self) -> u32 {
        self.threads.unwrap_or(Self::DEFAULT_THREADS)
    }
}

/// The HTTP API of `serve`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port to listen on. Loopback by default: exposing the API to the LAN
    /// is a deliberate choice (`0.0.0.0:8080`).
    pub listen: String,
    /// Allow reads (GET) without the bearer token. Mutating calls always need it.
    pub anonymous_reads: bool,
    /// Origins allowed by CORS (e.g. `http://pi.local:3000`); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Largest JSON request body, KiB.
    pub max_body_kib: u64,
    /// Largest capture upload (`POST /api/pcap`), MiB.
    pub max_upload_mib: u64,
    /// Messages buffered per WebSocket client; a client further behind skips messages.
    pub ws_queue: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            anonymous_reads: false,
            cors_origins: Vec::new(),
            max_body_kib: 1024,
            max_upload_mib: 1024,
            ws_queue: 1024,
        }
    }
}

/// The anomaly models (`src/detect/ml`): features are computed and stored for every
/// flow and device minute; loaded models score them and raise `anomaly` alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlConfig {
    /// Run the `ng-ml` thread (feature tables, scoring). Off: no features, no scores.
    pub enabled: bool,
    /// Folder of `*.onnx` models (must exist when set). Empty: `<state_dir>/models`
    /// (copy the shipped `models/default/*.onnx` there, or point this at that folder).
    pub models_dir: Option<PathBuf>,
    /// Feature rows scored together (also scored every 0.5 s); scored rows are
    /// written in transactions of 4,096 rows or every 2 s.
    pub batch_size: usize,
    /// An alert needs score > threshold x (1 + margin); 0 alerts at the model's own
    /// threshold.
    pub min_score_margin: f64,
    /// Alert only when every loaded model of the kind (flow or device) flags the row;
    /// false: any one model suffices.
    pub require_agreement: bool,
    /// How often (seconds) the models folder is checked for changed files; 0: only on
    /// `POST /api/models/reload`.
    pub reload_check_secs: u64,
    /// Retraining (`[ml.train]`: `POST /api/train`, `netguardian train`).
    pub train: TrainConfig,
}

/// Retraining on the recent baseline (`src/detect/ml/train.rs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Days of baseline a run trains on, ending at the newest feature row.
    pub days: u32,
    /// Share of baseline rows above the alert threshold the models are fitted to.
    pub contamination: f64,
    /// Fewest feature rows of a kind (flow, device) in the window to train it at all.
    pub min_rows: u64,
    /// The trainer's command line (program and arguments, before the trainer's own
    /// options). Empty: `python -m netguardian_models.train` with `trainer_dir` on
    /// PYTHONPATH when that is set, else `netguardian-train-models` when on PATH (the Nix
    /// package), else `python -m netguardian_models.train`.
    pub command: Vec<String>,
    /// Python interpreter with the trainer's requirements (`models/requirements.txt`).
    pub python: String,
    /// Folder holding the `netguardian_models` package (the repository's `models/`).
    pub trainer_dir: Option<PathBuf>,
    /// A trainer still running after this long is stopped and the run fails.
    pub timeout_secs: u64,
    /// Threads the trainer may use (OMP_NUM_THREADS): the capture keeps the others.
    pub threads: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            days: 7,
            contamination: 0.001,
            min_rows: 1000,
            command: Vec::new(),
            python: "python3".into(),
            trainer_dir: None,
            timeout_secs: 7200,
            threads: 1,
        }
    }
}

impl Default for MlConfig {
    fn default() -> Self {
        MlConfig {
            enabled: true,
            models_dir: None,
            batch_size: 256,
            min_score_margin: 0.0,
            require_agreement: true,
            reload_check_secs: 10,
            train: TrainConfig::default(),
        }
    }
}

/// Logging of the service (journald under systemd, stderr otherwise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a `tracing` filter such as
    /// `info,netguardian::api=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
        }
    }
}

/// Exports (`netguardian export`, `POST /api/exports`, scheduled exports).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Where API export jobs write, one folder per job. Empty: `<state_dir>/exports`.
    pub dir: Option<PathBuf>,
    /// age X25519 recipients (`age1...`): encrypted exports are readable by each.
    pub recipients: Vec<String>,
    /// Passphrase for encrypted exports (age scrypt), used when `recipients` is empty.
    pub passphrase: Option<String>,
    /// Exports run by `serve` once a day.
    pub scheduled: Vec<ScheduledExport>,
}

/// One daily export of the previous UTC day, e.g. nightly Parquet to a USB disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduledExport {
    /// Destination folder; each day goes to `<dir>/<YYYY-MM-DD>/`.
    pub dir: PathBuf,
    /// `parquet`, `csv`, `json` or `duckdb`.
    pub format: String,
    /// Tables to export; empty: every exportable table.
    pub tables: Vec<String>,
    /// Time of day (UTC, `HH:MM`) after which the previous day is exported.
    pub at: String,
    /// Encrypt with `export.recipients` / `export.passphrase`.
    pub encrypt: bool,
}

impl Default for ScheduledExport {
    fn default() -> Self {
        ScheduledExport {
            dir: PathBuf::new(),
            format: "parquet".into(),
            tables: Vec::new(),
            at: "02:00".into(),
            encrypt: false,
        }
    }
}

/// Deleting old rows in the background (`serve`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days to keep, per table (`flows`, `dns`, `tls`, `http`, `dhcp`, `names`,
    /// `capture_stats`, `alerts`); tables not listed keep `default_days`.
    pub days: std::collections::BTreeMap<String, u32>,
    /// Days to keep for tables not in `days`; 0 keeps them forever.
    pub default_days: u32,
    /// Cap on the database's used size in MiB; beyond it the oldest days of every
    /// event table are deleted. 0: no cap.
    pub max_db_mib: u64,
    /// How often retention runs, seconds.
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            days: Default::default(),
            default_days: 0,
            max_db_mib: 0,
            interval_secs: 3600,
        }
    }
}

/// Read-only SQL (`POST /api/sql`, `netguardian sql`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// A statement running longer is interrupted, seconds.
    pub timeout_secs: f64,
    /// At most this many rows are returned (the rest is cut, and the answer says so).
    pub max_rows: usize,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            timeout_secs: 10.0,
            max_rows: 10_000,
        }
    }
}

/// A configuration problem, with the key and source when known.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Adds where the first key named in `e` was set (a file, or an environment variable),
/// unless it is a default.
fn with_source(fig: &Figment, e: ConfigError) -> ConfigError {
    let key =
        e.0.split(|c: char| c.is_whitespace() || c == '[')
            .map(|t| t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')))
            .find(|t| t.contains('.') || *t == "state_dir");
    let Some(key) = key else { return e };
    let Some(md) = fig.find_metadata(key) else {
        return e;
    };
    let from = match &md.source {
        Some(figment::Source::File(p)) => format!("set in {}", p.display()),
        _ if md.name.contains("environment") => format!(
            "set by NETGUARDIAN_{}",
            key.to_ascii_uppercase().replace('.', "__")
        ),
        _ => return e,
    };
    ConfigError(format!("{} ({from})", e.0))
}

impl Config {
    /// Defaults < TOML file (if `path` exists, or always when given explicitly) <
    /// `NETGUARDIAN_*` environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(p) = path
            && !p.exists()
        {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                p.display()
            )));
        }
        let fig = Config::figment(path);
        let cfg: Config = fig.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError(msgs.join("; "))
        })?;
        cfg.validate().map_err(|e| with_source(&fig, e))?;
        Ok(cfg)
    }

    /// Checks that need the file system: folders the configuration names exist. The
    /// message names the key, its value and where it was set.
    pub fn check_paths(&self, path: Option<&Path>) -> Result<(), ConfigError> {
        let dir_ok = |key: &str, p: &Path, must_hold: Option<&str>| -> Result<(), ConfigError> {
            let err = |why: String| {
                Err(ConfigError(format!(
                    "{key} = {:?}: {why}",
                    p.display().to_string()
                )))
            };
            match std::fs::read_dir(p) {
                Err(e) => err(format!("cannot read that folder ({e})")),
                Ok(_) => match must_hold {
                    Some(f) if !p.join(f).exists() => err(format!("it has no {f}")),
                    _ => Ok(()),
                },
            }
        };
        let res = (|| {
            if let Some(d) = &self.ml.models_dir {
                dir_ok("ml.models_dir", d, None)?;
            }
            if let Some(d) = &self.ml.train.trainer_dir {
                dir_ok("ml.train.trainer_dir", d, Some("netguardian_models"))?;
            }
            if let Some(s) = &self.state_dir
                && s.exists()
                && !s.is_dir()
            {
                return Err(ConfigError(format!(
                    "state_dir = {:?}: not a folder",
                    s.display().to_string()
                )));
            }
            Ok(())
        })();
        res.map_err(|e| with_source(&Config::figment(path), e))
    }

    /// Defaults < the TOML file (`path`, else [`DEFAULT_CONFIG_PATH`] when it exists) <
    /// `NETGUARDIAN_*` environment: what [`Config::load`] extracts, and where
    /// [`with_source`] finds where a key was set.
    fn figment(path: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => fig = fig.merge(Toml::file_exact(p)),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_PATH))
            }
            None => {}
        }
        fig.merge(
            Env::prefixed("NETGUARDIAN_")
                .split("__")
                .ignore(&["config", "log"]),
        )
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.flow;
        for (name, v) in [
            ("flow.tcp_idle_timeout_secs", f.tcp_idle_timeout_secs),
            ("flow.tcp_syn_timeout_secs", f.tcp_syn_timeout_secs),
            ("flow.tcp_closed_timeout_secs", f.tcp_closed_timeout_secs),
            ("flow.udp_idle_timeout_secs", f.udp_idle_timeout_secs),
            ("flow.icmp_idle_timeout_secs", f.icmp_idle_timeout_secs),
            ("flow.other_idle_timeout_secs", f.other_idle_timeout_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError(format!(
                    "{name} must be a positive number of seconds, got {v}"
                )));
            }
        }
        if !(f.active_timeout_secs.is_finite() && f.active_timeout_secs >= 0.0) {
            return Err(ConfigError(format!(
                "flow.active_timeout_secs must be >= 0, got {}",
                f.active_timeout_secs
            )));
        }
        if f.max_flows < 16 {
            return Err(ConfigError(format!(
                "flow.max_flows must be at least 16, got {}",
                f.max_flows
            )));
        }
        if self.capture.snaplen < 64 {
            return Err(ConfigError(format!(
                "capture.snaplen must be at least 64 bytes, got {}",
                self.capture.snaplen
            )));
        }
        if self.pipeline.packet_queue_batches == 0 || self.pipeline.store_queue_batches == 0 {
            return Err(ConfigError(
                "pipeline queue sizes must be at least 1".into(),
            ));
        }
        if self.store.memory_limit_mib < 64 {
            return Err(ConfigError(format!(
                "store.memory_limit_mib must be at least 64 (DuckDB needs about 32 MiB to checkpoint), got {}",
                self.store.memory_limit_mib
            )));
        }
        if !(1..=1024).contains(&self.store.checkpoint_mib) {
            return Err(ConfigError(format!(
                "store.checkpoint_mib must be 1 to 1024 (MiB of WAL between checkpoints), got {}",
                self.store.checkpoint_mib
            )));
        }
        if self.store.threads() > 256 {
            return Err(ConfigError(format!(
                "store.threads must be 0 (one per core) to 256, got {}",
                self.store.threads()
            )));
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "api.listen must be an address:port such as 127.0.0.1:8080, got {:?}",
                self.api.listen
            )));
        }
        if self.api.max_body_kib == 0 || self.api.max_upload_mib == 0 || self.api.ws_queue == 0 {
            return Err(ConfigError(
                "api.max_body_kib, api.max_upload_mib and api.ws_queue must be at least 1".into(),
            ));
        }
        // EnvFilter would take any word as a target name; a typo such as "verbose" must
        // be an error, so every directive is `level` or `target=level`.
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        let bad = self.logging.level.split(',').map(str::trim).find(|d| {
            let level = d.rsplit_once('=').map_or(*d, |(_, l)| l);
            !LEVELS.contains(&level.to_ascii_lowercase().as_str())
        });
        if let Some(d) = bad {
            return Err(ConfigError(format!(
                "logging.level {:?}: {d:?} is not `level` or `target=level` with level one of {}",
                self.logging.level,
                LEVELS.join(", ")
            )));
        }
        if !(self.sql.timeout_secs.is_finite() && self.sql.timeout_secs > 0.0) {
            return Err(ConfigError(format!(
                "sql.timeout_secs must be a positive number of seconds, got {}",
                self.sql.timeout_secs
            )));
        }
        if self.sql.max_rows == 0 {
            return Err(ConfigError("sql.max_rows must be at least 1".into()));
        }
        for t in self.retention.days.keys() {
            if !crate::store::retention::TABLES
                .iter()
                .any(|(n, _, _)| *n == t.as_str())
            {
                return Err(ConfigError(format!(
                    "retention.days.{t}: no such table with retention (tables: {})",
                    crate::store::retention::TABLES
                        .iter()
                        .map(|(n, _, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if self.retention.interval_secs == 0 {
            return Err(ConfigError(
                "retention.interval_secs must be at least 1".into(),
            ));
        }
        for r in &self.export.recipients {
            crate::store::export::parse_recipient(r)
                .map_err(|e| ConfigError(format!("export.recipients: {e}")))?;
        }
        if self.export.passphrase.as_deref() == Some("") {
            return Err(ConfigError(
                "export.passphrase is empty; remove it or set a passphrase".into(),
            ));
        }
        for (i, s) in self.export.scheduled.iter().enumerate() {
            let key = format!("export.scheduled[{i}]");
            if s.dir.as_os_str().is_empty() {
                return Err(ConfigError(format!("{key}.dir is required")));
            }
            crate::store::export::Format::parse(&s.format)
                .map_err(|e| ConfigError(format!("{key}.format: {e}")))?;
            crate::store::export::check_tables(&s.tables)
                .map_err(|e| ConfigError(format!("{key}.tables: {e}")))?;
            crate::store::export::parse_time_of_day(&s.at)
                .map_err(|e| ConfigError(format!("{key}.at: {e}")))?;
            if s.encrypt && self.export.recipients.is_empty() && self.export.passphrase.is_none() {
                return Err(ConfigError(format!(
                    "{key}.encrypt needs export.recipients or export.passphrase"
                )));
            }
        }
        self.detect.validate()?;
        let ml = &self.ml;
        if !(1..=65_536).contains(&ml.batch_size) {
            return Err(ConfigError(format!(
                "ml.batch_size must be 1..=65536 rows, got {}",
                ml.batch_size
            )));
        }
        if !(ml.min_score_margin.is_finite() && (0.0..=100.0).contains(&ml.min_score_margin)) {
            return Err(ConfigError(format!(
                "ml.min_score_margin must be a number from 0 to 100, got {}",
                ml.min_score_margin
            )));
        }
        if ml
            .models_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(ConfigError(
                "ml.models_dir must not be empty (leave it out for the default)".into(),
            ));
        }
        if self.service.user.trim().is_empty() {
            return Err(ConfigError(
                "service.user must name a user (\"root\" to keep running as root)".into(),
            ));
        }
        let t = &ml.train;
        let bad = |m: String| Err(ConfigError(m));
        if !(1..=366).contains(&t.days) {
            return bad(format!("ml.train.days must be 1..=366, got {}", t.days));
        }
        if !(t.contamination.is_finite() && t.contamination > 0.0 && t.contamination < 0.5) {
            return bad(format!(
                "ml.train.contamination must be above 0 and below 0.5, got {}",
                t.contamination
            ));
        }
        if !(10..=100_000_000).contains(&t.min_rows) {
            return bad(format!(
                "ml.train.min_rows must be 10..=100000000, got {}",
                t.min_rows
            ));
        }
        if t.command.first().is_some_and(|c| c.trim().is_empty()) {
            return bad("ml.train.command must start with a program (or be empty)".into());
        }
        if t.python.trim().is_empty() {
            return bad("ml.train.python must name a Python interpreter".into());
        }
        if t.timeout_secs == 0 {
            return bad("ml.train.timeout_secs must be above 0".into());
        }
        if !(1..=64).contains(&t.threads) {
            return bad(format!(
                "ml.train.threads must be 1..=64, got {}",
                t.threads
            ));
        }
        Ok(())
    }

    /// Where API export jobs write: `export.dir`, else `<state_dir>/exports`.
    pub fn export_dir(&self) -> PathBuf {
        self.export
            .dir
            .clone()
            .unwrap_or_else(|| self.state_dir().join("exports"))
    }

    /// Where the database, the API token and models in use live: `state_dir`, else
    /// `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`), else
    /// `$XDG_STATE_HOME/netguardian` or `~/.local/state/netguardian`.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return d.clone();
        }
        if let Some(d) = std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| {
                v.to_str()
                    .and_then(|s| s.split(':').next())
                    .map(PathBuf::from)
            })
            .filter(|p| !p.as_os_str().is_empty())
        {
            return d;
        }
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(x).join("netguardian");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/state/netguardian"),
            None => PathBuf::from("/var/lib/netguardian"),
        }
    }

    /// True when `ip` belongs to a configured local network.
    pub fn is_local(&self, ip: std::net::IpAddr) -> bool {
        self.network.local_networks.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `toml` as the configuration file `c.toml`.
    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        Config::load(Some(&p))
    }

    /// The error loading `toml` gives.
    fn load_err(toml: &str) -> String {
        load(toml).unwrap_err().to_string()
    }

    #[test]
    fn ml_section_is_validated() {
        let err = load_err("[ml]\nbatch_size = 0\n");
        assert!(err.contains("ml.batch_size"), "{err}");
        let err = load_err("[ml]\nmin_score_margin = -1\n");
        assert!(err.contains("ml.min_score_margin"), "{err}");
        let err = load_err("[ml]\nthreshold = 3\n");
        assert!(err.contains("threshold"), "{err}");
        let err = load_err("[ml.train]\ncontamination = 0.7\n");
        assert!(err.contains("ml.train.contamination"), "{err}");
        let err = load_err("[ml.train]\ndayz = 3\n");
        assert!(err.contains("dayz"), "{err}");
        let c = load("[ml]\nmodels_dir = \"/x\"\nrequire_agreement = false\n").unwrap();
        assert_eq!(c.ml.models_dir, Some(PathBuf::from("/x")));
        assert!(!c.ml.require_agreement && c.ml.enabled);
    }

    #[test]
    fn store_section_is_validated() {
        let err = load_err("[store]\nmemory_limit_mib = 32\n");
        assert!(err.contains("store.memory_limit_mib"), "{err}");
        let err = load_err("[store]\nthreads = 1000\n");
        assert!(err.contains("store.threads"), "{err}");
        for bad in [0, 2048] {
            let err = load_err(&format!("[store]\ncheckpoint_mib = {bad}\n"));
            assert!(
                err.contains("store.checkpoint_mib must be 1 to 1024"),
                "{err}"
            );
        }
        let c =
            load("[store]\nmemory_limit_mib = 512\nthreads = 0\ncheckpoint_mib = 256\n").unwrap();
        assert_eq!(
            (
                c.store.memory_limit_mib,
                c.store.threads,
                c.store.checkpoint_mib
            ),
            (512, Some(0), 256)
        );
        let unset = load("").unwrap().store;
        assert_eq!((unset.threads(), unset.for_ingest().threads()), (2, 1));
        let three = load("[store]\nthreads = 3\n").unwrap().store;
        assert_eq!((three.threads(), three.for_ingest().threads()), (3, 3));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_err("[flow]\nmax_flowz = 3\n");
        assert!(err.contains("max_flowz"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
    }

    #[test]
    fn file_overrides_defaults_and_is_validated() {
        let c = load("[flow]\nmax_flows = 1000\n[network]\nlocal_networks = [\"10.1.0.0/16\"]\n")
            .unwrap();
        assert_eq!(c.flow.max_flows, 1000);
        assert!(c.is_local("10.1.2.3".parse().unwrap()));
        assert!(!c.is_local("192.168.1.1".parse().unwrap()));
        let err = load_err("[flow]\nudp_idle_timeout_secs = -1\n");
        assert!(err.contains("flow.udp_idle_timeout_secs"), "{err}");
    }

    #[test]
    fn defaults_mark_private_ranges_local() {
        let c = Config::default();
        for ip in [
            "192.168.1.5",
            "10.0.0.1",
            "172.20.0.1",
            "fe80::1",
            "fd00::5",
        ] {
            assert!(c.is_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:4860::8888", "172.32.0.1"] {
            assert!(!c.is_local(ip.parse().unwrap()), "{ip}");
        }
    }
}
