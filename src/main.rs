//! The `netguardian` command line: `analyze` capture files into a database, `capture`
//! from a live interface, `serve` the API, query with `sql`, write files with `export`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use netguardian::capture::Progress;
use netguardian::capture::live::LiveSource;
use netguardian::config::Config;
use netguardian::pipeline::{self, Input, RunSummary};
use netguardian::store::Store;

/// Exit status for a bad configuration (EX_CONFIG), so systemd does not restart-loop.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "netguardian", version, about = "Home-network security monitor")]
struct Cli {
    /// Configuration file (default: /etc/netguardian/config.toml if it exists).
    #[arg(long, global = true, env = "NETGUARDIAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read capture files (pcap or pcapng) through the pipeline into a database.
    Analyze {
        /// Capture files, read in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// DuckDB database file (created if missing; new data is added).
        #[arg(long)]
        db: PathBuf,
        /// Also write the summary as JSON to this file.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// No progress bar even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// Capture from a live interface into a database until interrupted.
    Capture {
        /// Interface name, or "auto" (overrides capture.interface).
        #[arg(long, short)]
        interface: Option<String>,
        /// BPF filter (overrides capture.filter).
        #[arg(long, short)]
        filter: Option<String>,
        #[arg(long)]
        db: PathBuf,
        /// Stop after this many seconds (default: until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
        #[arg(long)]
        summary_json: Option<PathBuf>,
    },
    /// Run the service: capture, detection, store and the HTTP API (until SIGTERM).
    Serve {
        /// Replay this capture file as if live instead of capturing, then keep serving.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Database file (default: <state_dir>/netguardian.duckdb).
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Run one read-only SQL statement (SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, EXPLAIN)
    /// and print the result. The database cannot read or write other files meanwhile.
    Sql {
        /// The statement.
        statement: String,
        /// Database file (default: <state_dir>/netguardian.duckdb). Opened read-only; a
        /// database the service has open is queried through `POST /api/sql` instead.
        #[arg(long)]
        db: Option<PathBuf>,
        /// json, csv or parquet (parquet needs --out).
        #[arg(long, default_value = "json")]
        format: String,
        /// Write the result to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Row limit (default: sql.max_rows).
        #[arg(long)]
        max_rows: Option<usize>,
        /// Time limit in seconds (default: sql.timeout_secs).
        #[arg(long)]
        timeout_secs: Option<f64>,
    },
    /// Export tables to Parquet (partitioned by table and day), CSV, JSON or a DuckDB
    /// file, with a manifest; optionally encrypted with age.
    Export {
        /// parquet, csv, json or duckdb.
        #[arg(long)]
        format: String,
        /// Tables, comma-separated (default: every exportable table).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Rows at or after this time (2026-11-23, "2026-11-23 10:00:00" UTC, or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Rows before this time.
        #[arg(long)]
        until: Option<String>,
        /// Output folder (created; must be empty).
        #[arg(long)]
        out: PathBuf,
        /// Database file (default: <state_dir>/netguardian.duckdb), opened read-only.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Encrypt every file with age to this X25519 recipient (age1...; repeatable).
        #[arg(long)]
        recipient: Vec<String>,
        /// Encrypt with export.recipients / export.passphrase from the configuration.
        #[arg(long)]
        encrypt: bool,
    },
    /// Retrain the anomaly models on the recent baseline and install them: asks the
    /// running service (`POST /api/train`), or with --db trains on a database directly.
    Train(TrainArgs),
    /// Print the API bearer token (created by the first `serve`).
    Token,
    /// Print the OpenAPI document of the API.
    Openapi,
    /// Validate the configuration and print the effective settings.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            // Logging is not set up yet (its level comes from the config): say it plainly.
            eprintln!("netguardian: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The service logs at the configured level; one-shot commands only warnings.
    let level = match cli.cmd {
        Cmd::Serve { .. } => cfg.logging.level.as_str(),
        _ => "warn",
    };
    netguardian::service::logging::init(level);
    let res = match cli.cmd {
        Cmd::Analyze {
            files,
            db,
            summary_json,
            no_progress,
        } => analyze(&cfg, files, db, summary_json, no_progress),
        Cmd::Capture {
            interface,
            filter,
            db,
            duration,
            summary_json,
        } => capture(cfg, interface, filter, db, duration, summary_json),
        Cmd::Serve { pcap, db } => {
            if let Err(e) = cfg.check_paths(cli.config.as_deref()) {
                eprintln!("netguardian: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Err(e) = check_serve(&cfg, pcap.as_deref()) {
                eprintln!("netguardian: invalid configuration: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            netguardian::service::serve(cfg, netguardian::service::ServeOptions { pcap, db })
                .map(|()| ExitCode::SUCCESS)
        }
        Cmd::Sql {
            statement,
            db,
            format,
            out,
            max_rows,
            timeout_secs,
        } => sql(&cfg, statement, db, format, out, max_rows, timeout_secs),
        Cmd::Export {
            format,
            tables,
            since,
            until,
            out,
            db,
            recipient,
            encrypt,
        } => export(
            &cfg, format, tables, since, until, out, db, recipient, encrypt,
        ),
        Cmd::Train(args) => train(&cfg, args),
        Cmd::Token => {
            let p = netguardian::service::token::path(&cfg.state_dir());
            match netguardian::service::token::read(&p) {
                Ok(Some(t)) => {
                    println!("{t}");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(None) => Err(anyhow::anyhow!(
                    "no API token at {} yet: it is created when `netguardian serve` first starts",
                    p.display()
                )),
                Err(e) => Err(e),
            }
        }
        Cmd::Openapi => {
            print_out(&netguardian::api::spec_json());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig => {
            if let Err(e) = cfg.check_paths(cli.config.as_deref()) {
                eprintln!("netguardian: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            print_out(&toml::to_string_pretty(&cfg).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netguardian: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks that need the machine, not just the file: the interface exists, the replay
/// file is a capture. Failing them is a configuration error (exit 78), not a crash.
fn check_serve(cfg: &Config, pcap: Option<&std::path::Path>) -> Result<(), String> {
    if let Some(p) = pcap {
        return netguardian::capture::file::sniff(p);
    }
    let iface = &cfg.capture.interface;
    if iface != "auto" && !iface.is_empty() {
        let known: Vec<String> = pcap::Device::list()
            .map(|l| l.into_iter().map(|d| d.name).collect())
            .unwrap_or_default();
        if !known.is_empty() && !known.contains(iface) {
            return Err(format!(
                "capture.interface {iface:?} does not exist (interfaces: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn analyze(
    cfg: &Config,
    files: Vec<PathBuf>,
    db: PathBuf,
    summary_json: Option<PathBuf>,
    no_progress: bool,
) -> anyhow::Result<ExitCode> {
    for f in &files {
        if !f.is_file() {
            anyhow::bail!("{}: no such file", f.display());
        }
    }
    let store = Store::open(&db)?;
    store.configure(&cfg.store.for_ingest())?;
    let progress = Arc::new(Progress::default());
    let stop = stop_on_signals()?;
    let bar = (!no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| spawn_progress_bar(progress.clone()));
    let summary = pipeline::run(cfg, &store, Input::Files(files), progress, stop, None)?;
    if let Some((done, handle)) = bar {
        done.store(true, Ordering::Relaxed);
        let _ = handle.join();
    }
    report(&summary, &db, summary_json)?;
    // Every file unreadable: that is a failure, not an empty success.
    if summary.packets == 0 && !summary.errors.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A bad argument: exit 2 like clap's own usage errors, with the reason.
fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("netguardian: {msg}");
    Ok(ExitCode::from(2))
}

fn sql(
    cfg: &Config,
    statement: String,
    db: Option<PathBuf>,
    format: String,
    out: Option<PathBuf>,
    max_rows: Option<usize>,
    timeout_secs: Option<f64>,
) -> anyhow::Result<ExitCode> {
    use netguardian::store::sql::{self, Body, Limits, OutputFormat, SqlError};
    let format = match OutputFormat::parse(&format) {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    if format == OutputFormat::Parquet && out.is_none() {
        return usage("--format parquet needs --out FILE");
    }
    let timeout = timeout_secs.unwrap_or(cfg.sql.timeout_secs);
    if !(timeout.is_finite() && timeout > 0.0) {
        return usage(format!("--timeout-secs must be positive, got {timeout}"));
    }
    if max_rows == Some(0) {
        return usage("--max-rows must be at least 1");
    }
    let db = db.unwrap_or_else(|| netguardian::service::db_path(cfg));
    let store = Store::open_read_only(&db)?;
    store.configure(&cfg.store)?;
    store.restrict(&[])?;
    let conn = store.connection()?;
    let limits = Limits {
        timeout: Duration::from_secs_f64(timeout),
        max_rows: max_rows.unwrap_or(cfg.sql.max_rows),
    };
    let res = match sql::run(&conn, &statement, format, limits, &store.scratch_dir()) {
        Ok(r) => r,
        Err(e @ (SqlError::Rejected(_) | SqlError::Failed(_) | SqlError::Timeout(_))) => {
            eprintln!("netguardian: statement refused: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = match res.body {
        Body::Json(rows) => {
            let v = serde_json::json!({
                "columns": res.columns,
                "rows": rows,
                "row_count": res.rows,
                "truncated": res.truncated,
                "elapsed_ms": res.elapsed.as_secs_f64() * 1000.0,
            });
            let mut s = serde_json::to_string_pretty(&v)?;
            s.push('\n');
            s.into_bytes()
        }
        Body::Csv(s) => s.into_bytes(),
        Body::Parquet(b) => b,
    };
    match out {
        Some(p) => std::fs::write(&p, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        None => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&bytes);
        }
    }
    if res.truncated {
        eprintln!(
            "netguardian: result cut at {} rows (--max-rows / sql.max_rows)",
            res.rows
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn export(
    cfg: &Config,
    format: String,
    tables: Vec<String>,
    since: Option<String>,
    until: Option<String>,
    out: PathBuf,
    db: Option<PathBuf>,
    recipients: Vec<String>,
    encrypt: bool,
) -> anyhow::Result<ExitCode> {
    use netguardian::store::export::{self, Encryption, ExportError, Format, Request};
    let format = match Format::parse(&format) {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    let tables = match export::check_tables(&tables) {
        Ok(t) => t,
        Err(e) => return usage(format!("--tables: {e}")),
    };
    let parse = |v: Option<String>, name: &str| -> Result<_, String> {
        v.map(|s| export::parse_time(&s).map_err(|e| format!("--{name}: {e}")))
            .transpose()
    };
    let (since, until) = match (parse(since, "since"), parse(until, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let encryption = if !recipients.is_empty() {
        match recipients
            .iter()
            .map(|r| export::parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(r) => Some(Encryption::Recipients(r)),
            Err(e) => return usage(format!("--recipient: {e}")),
        }
    } else if encrypt {
        match Encryption::from_config(cfg) {
            Ok(Some(e)) => Some(e),
            Ok(None) => {
                return usage("--encrypt: no export.recipients or export.passphrase configured");
            }
            Err(e) => return usage(e),
        }
    } else {
        None
    };
    let req = Request {
        format,
        tables,
        since,
        until,
        out: out.clone(),
        encryption,
    };
    if let Err(e) = req.validate() {
        return usage(e);
    }
    let db = db.unwrap_or_else(|| netguardian::service::db_path(cfg));
    let store = Store::open_read_only(&db)?;
    store.configure(&cfg.store)?;
    let conn = store.connection()?;
    let m = match export::export(&conn, &req, &export::Progress::default()) {
        Ok(m) => m,
        Err(ExportError::Invalid(e)) => return usage(e),
        Err(e) => return Err(e.into()),
    };
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    print_out(&format!(
        "exported {} rows from {} tables into {} files ({:.1} MB) in {:.2} s ({:.0} rows/s){}\nmanifest  {}",
        thousands(m.total_rows),
        m.tables.len(),
        m.files.len(),
        bytes as f64 / 1e6,
        m.elapsed_secs,
        m.total_rows as f64 / m.elapsed_secs.max(1e-9),
        m.encryption
            .as_deref()
            .map(|e| format!(", encrypted ({e})"))
            .unwrap_or_default(),
        out.join(export::MANIFEST).display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Options of `netguardian train`.
#[derive(clap::Args)]
struct TrainArgs {
    /// Wait for the job to end, print what it did, and exit 1 if it failed.
    #[arg(long)]
    wait: bool,
    /// Days of baseline, ending at the newest feature row (default ml.train.days).
    #[arg(long)]
    days: Option<u32>,
    /// flow, device (comma-separated; default both).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Rows at or after this time (instead of --days).
    #[arg(long)]
    since: Option<String>,
    /// Rows before this time.
    #[arg(long)]
    until: Option<String>,
    /// Share of baseline rows above the thresholds (default ml.train.contamination).
    #[arg(long)]
    contamination: Option<f64>,
    /// Fewest rows a kind needs (default ml.train.min_rows).
    #[arg(long)]
    min_rows: Option<u64>,
    /// Train on this database file directly (no service may have it open); the
    /// models go to ml.models_dir. Implies --wait.
    #[arg(long)]
    db: Option<PathBuf>,
    /// The service's API (default: http:// and api.listen, loopback for a wildcard).
    #[arg(long)]
    api: Option<String>,
}

/// `netguardian train`: a client of `POST /api/train` (what the nightly timer runs), or
/// with `--db` the same job in this process.
fn train(cfg: &Config, a: TrainArgs) -> anyhow::Result<ExitCode> {
    use netguardian::detect::ml::train::{self, TrainError};
    use netguardian::store::export::parse_time;
    let parse = |v: &Option<String>, name: &str| -> Result<_, String> {
        v.as_deref()
            .map(|s| parse_time(s).map_err(|e| format!("--{name}: {e}")))
            .transpose()
    };
    let (since, until) = match (parse(&a.since, "since"), parse(&a.until, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let req = train::Request {
        since,
        until,
        days: a.days,
        kinds: a.kinds.clone(),
        contamination: a.contamination,
        min_rows: a.min_rows,
    };
    if let Some(db) = &a.db {
        let store = Store::open_read_only(db)?;
        store.configure(&cfg.store)?;
        let job = match train::run_now(&store, cfg, &req) {
            Ok(j) => j,
            Err(e @ TrainError::Invalid { .. }) => return usage(format!("--{e}")),
            Err(e) => return Err(e.into()),
        };
        let v = serde_json::to_value(&job)?;
        print_out(&train_summary(&v));
        return Ok(if job.succeeded() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let base = match &a.api {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let mut addr: std::net::SocketAddr = cfg.api.listen.parse()?;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
    };
    let token_path = netguardian::service::token::path(&cfg.state_dir());
    let token = netguardian::service::token::read(&token_path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no API token at {}: is the service running with this state_dir (or pass --db)?",
            token_path.display()
        )
    })?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let auth = format!("Bearer {token}");
    let call = |r: Result<ureq::Response, ureq::Error>| -> anyhow::Result<serde_json::Value> {
        match r {
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => {
                let body: serde_json::Value = resp.into_json().unwrap_or_default();
                let detail = body["detail"]
                    .as_str()
                    .or(body["title"].as_str())
                    .unwrap_or("no detail");
                anyhow::bail!("the service answered {code}: {detail}")
            }
            Err(e) => anyhow::bail!(
                "cannot reach the service at {base}: {e} (is it running? --api URL, or --db FILE \
                 to train without it)"
            ),
        }
    };
    let mut body = serde_json::json!({
        "days": a.days, "contamination": a.contamination, "min_rows": a.min_rows,
        "since": since, "until": until,
    });
    if !a.kinds.is_empty() {
        body["kinds"] = serde_json::json!(a.kinds);
    }
    // Fields left unset are sent as null: the API treats them as absent.
    let mut job = call(
        agent
            .post(&format!("{base}/api/train"))
            .set("Authorization", &auth)
            .send_json(body),
    )?;
    let id = job["id"].as_u64().unwrap_or(0);
    if !a.wait {
        print_out(&format!(
            "training job {id} started; follow it with GET {base}/api/train/{id}"
        ));
        return Ok(ExitCode::SUCCESS);
    }
    while job["state"] == "running" {
        std::thread::sleep(Duration::from_secs(2));
        job = call(
            agent
                .get(&format!("{base}/api/train/{id}"))
                .set("Authorization", &auth)
                .call(),
        )?;
    }
    print_out(&train_summary(&job));
    Ok(if job["state"] == "done" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A few lines saying what a training job did (from its JSON form).
fn train_summary(j: &serde_json::Value) -> String {
    let mut out = format!(
        "training job {}: {}, window {} .. {}",
        j["id"],
        j["state"].as_str().unwrap_or("?"),
        j["since"].as_str().unwrap_or("-"),
        j["until"].as_str().unwrap_or("-")
    );
    for k in j["kinds"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n{:<7} {:<8} {} rows",
            k["kind"].as_str().unwrap_or("?"),
            k["outcome"].as_str().unwrap_or("?"),
            thousands(k["rows"].as_u64().unwrap_or(0)),
        ));
        for m in k["models"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "; {} threshold {:.6} (tract vs scikit-learn within {:.1e})",
                m["file"].as_str().unwrap_or("?"),
                m["threshold"].as_f64().unwrap_or(f64::NAN),
                m["max_score_diff"].as_f64().unwrap_or(f64::NAN),
            ));
        }
        if let Some(r) = k["reason"].as_str() {
            out.push_str(&format!(": {r}"));
        }
    }
    if let Some(e) = j["error"].as_str() {
        out.push_str(&format!("\nerror: {e}"));
    }
    out.push_str(&format!(
        "\nmodels    {}",
        j["models_dir"].as_str().unwrap_or("?")
    ));
    out
}

fn capture(
    mut cfg: Config,
    interface: Option<String>,
    filter: Option<String>,
    db: PathBuf,
    duration: Option<f64>,
    summary_json: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if let Some(i) = interface {
        cfg.capture.interface = i;
    }
    if let Some(f) = filter {
        cfg.capture.filter = f;
    }
    let live = LiveSource::open(&cfg.capture)?;
    let store = Store::open(&db)?;
    store.configure(&cfg.store.for_ingest())?;
    let stop = stop_on_signals()?;
    if let Some(secs) = duration {
        let s = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
            s.store(true, Ordering::Relaxed);
        });
    }
    eprintln!(
        "netguardian: capturing on {} (Ctrl-C to stop)",
        live.interface()
    );
    let progress = Arc::new(Progress::default());
    let summary = pipeline::run(&cfg, &store, Input::Live(live), progress, stop, None)?;
    report(&summary, &db, summary_json)?;
    Ok(ExitCode::SUCCESS)
}

fn spawn_progress_bar(p: Arc<Progress>) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let h = std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::new(p.bytes_total.load(Ordering::Relaxed).max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while !d.load(Ordering::Relaxed) {
            bar.set_length(p.bytes_total.load(Ordering::Relaxed).max(1));
            bar.set_position(p.bytes_done.load(Ordering::Relaxed));
            bar.set_message(format!("{} packets", p.packets.load(Ordering::Relaxed)));
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    });
    (done, h)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(s: &RunSummary, db: &std::path::Path, json: Option<PathBuf>) -> anyhow::Result<()> {
    // The JSON first: a closed stdout (`| head`) must not lose it.
    if let Some(path) = &json {
        std::fs::write(path, serde_json::to_string_pretty(s)?)?;
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // Printing errors (a closed pipe) are ignored: the work is done and stored.
    macro_rules! say {
        ($($t:tt)*) => { let _ = writeln!(out, $($t)*); };
    }
    say!(
        "packets    {} ({:.1} MB) in {:.2} s, {:.0} packets/s",
        thousands(s.packets),
        s.bytes as f64 / 1e6,
        s.elapsed_secs,
        s.packets_per_sec
    );
    say!(
        "flows      {} ({:.0} flows/s, peak {} tracked, {} evicted)",
        thousands(s.flows),
        s.flows_per_sec,
        thousands(s.peak_active_flows),
        thousands(s.flows_evicted)
    );
    say!("devices    {}", thousands(s.devices));
    say!(
        "metadata   dns {}, tls {}, http {}, dhcp {}",
        thousands(s.dns),
        thousands(s.tls),
        thousands(s.http),
        thousands(s.dhcp)
    );
    let reasons: Vec<String> = s
        .malformed_by_reason
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    say!(
        "malformed  {}{}",
        thousands(s.malformed),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    if s.unsupported_link + s.fragments_unattributed + s.non_ip_packets > 0 {
        say!(
            "skipped    {} non-IP, {} IP fragments without their flow, {} unsupported link type",
            thousands(s.non_ip_packets),
            thousands(s.fragments_unattributed),
            thousands(s.unsupported_link)
        );
    }
    let rules: Vec<String> = s
        .alerts_by_rule
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    say!(
        "alerts     {}{}",
        thousands(s.alerts),
        if rules.is_empty() {
            String::new()
        } else {
            format!(" ({})", rules.join(", "))
        }
    );
    if s.queue_dropped + s.store_dropped + s.store_failed_events > 0 {
        say!(
            "dropped    {} packets (queue full), {} events (store queue full), {} events (store errors)",
            thousands(s.queue_dropped),
            thousands(s.store_dropped),
            thousands(s.store_failed_events)
        );
    }
    if s.detect_dropped > 0 {
        say!(
            "dropped    {} events (detection queue full)",
            thousands(s.detect_dropped)
        );
    }
    for e in &s.errors {
        say!("error      {e}");
    }
    say!("database   {}", db.display());
    Ok(())
}
