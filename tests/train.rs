//! Retraining (`POST /api/train`, `netguardian train`): the job exports the window's
//! feature rows, runs the trainer, installs only models tract reproduces, and reloads.
//!
//! Most cases use a stand-in trainer (a shell script given as `ml.train.command`) that
//! records what it was given and writes the models of `tests/data/ml`, so the service
//! side is checked without Python. One test runs the real Python trainer on synthetic
//! baseline rows; it is skipped when the trainer's venv (scripts/deps) is missing.

mod craft;
mod sqlfix;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netguardian::config::Config;
use netguardian::flow::device_features::DEVICE_FEATURES;
use netguardian::flow::features::FLOW_FEATURES;
use netguardian::store::Store;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ml")
}

/// Adds `n` synthetic feature rows of `kind` starting 2024-05-01 (after every row of the
/// fixture's capture), for four devices.
fn fill(store: &Store, kind: &str, n: usize) {
    let conn = store.connection().unwrap();
    conn.execute_batch("SELECT setseed(0.42)").unwrap();
    let (table, names, key): (&str, Vec<&str>, String) = match kind {
        "flow" => (
            "flow_features",
            FLOW_FEATURES.iter().map(|d| d.name).collect(),
            "5000000 + i AS flow_id, TIMESTAMP '2024-05-01 00:00:00' + to_seconds(i * 15) AS ts, \
             '02:00:00:00:00:0' || (i % 4) AS device_mac"
                .into(),
        ),
        _ => (
            "device_features",
            DEVICE_FEATURES.iter().map(|d| d.name).collect(),
            "TIMESTAMP '2024-05-01 00:00:00' + to_seconds((i // 4) * 60) AS window_start, \
             '02:00:00:00:00:0' || (i % 4) AS mac"
                .into(),
        ),
    };
    let cols: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(j, n)| format!("random() * {} + (i % 7) * 0.1 AS {n}", j % 5 + 1))
        .collect();
    conn.execute_batch(&format!(
        "INSERT INTO {table} BY NAME SELECT {key}, 1 AS schema_version, {} FROM range({n}) t(i)",
        cols.join(", ")
    ))
    .unwrap();
}

/// The stand-in trainer: `$0` is its folder. It records its arguments and a copy of the
/// training data, then behaves as `$0/mode` says: `good` and `badvec` copy the models of
/// `$0/src-<mode>`, `fail` exits 1, `sleep` sleeps first.
const FAKE: &str = r#"d="$0"; echo "$@" > "$d/args"; mode=$(cat "$d/mode")
while [ $# -gt 0 ]; do case "$1" in --out) out="$2";; --kind) kind="$2";; --parquet) pq="$2";; esac; shift; done
rm -rf "$d/data-$kind"; cp -r "$pq" "$d/data-$kind"
case "$mode" in
  fail) echo "boom: the trainer broke" >&2; exit 1;;
  sleep) sleep 3;;
esac
src="$d/src-$mode"
[ -f "$src/${kind}_iforest.onnx" ] || { echo "error: too few rows: none for $kind here" >&2; exit 2; }
mkdir -p "$out" && cp "$src/${kind}_iforest.onnx" "$src/${kind}_iforest.vectors.json" "$out/""#;

fn fake_trainer(dir: &Path) -> Vec<String> {
    for (mode, shift) in [("good", 0.0), ("badvec", 0.25)] {
        let src = dir.join(format!("src-{mode}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::copy(
            data().join("flow_iforest.onnx"),
            src.join("flow_iforest.onnx"),
        )
        .unwrap();
        let mut v: Value = serde_json::from_slice(
            &std::fs::read(data().join("flow_iforest.vectors.json")).unwrap(),
        )
        .unwrap();
        for s in v["expected_score"].as_array_mut().unwrap() {
            *s = json!(s.as_f64().unwrap() + shift);
        }
        std::fs::write(src.join("flow_iforest.vectors.json"), v.to_string()).unwrap();
    }
    std::fs::write(dir.join("mode"), "good").unwrap();
    vec![
        "sh".into(),
        "-c".into(),
        FAKE.into(),
        dir.display().to_string(),
    ]
}

async fn post<E: poem::Endpoint>(c: &TestClient<E>, body: Value) -> poem::test::TestResponse {
    let (k, v) = sqlfix::auth();
    c.post("/api/train")
        .header(k, v)
        .body_json(&body)
        .send()
        .await
}

/// Starts a job; its id.
async fn start<E: poem::Endpoint>(c: &TestClient<E>, body: Value) -> u64 {
    let r = post(c, body).await;
    r.assert_status(StatusCode::ACCEPTED);
    let j: Value = r.json().await.value().deserialize();
    assert_eq!(j["state"], "running", "{j}");
    j["id"].as_u64().unwrap()
}

async fn get<E: poem::Endpoint>(c: &TestClient<E>, path: &str) -> Value {
    let (k, v) = sqlfix::auth();
    let r = c.get(path).header(k, v).send().await;
    r.assert_status_is_ok();
    r.json().await.value().deserialize()
}

/// A loopback port nothing listens on (at the time of asking).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls the job until it is no longer running.
async fn finished<E: poem::Endpoint>(c: &TestClient<E>, id: u64, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let j = get(c, &format!("/api/train/{id}")).await;
        if j["state"] != "running" {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} still running: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kind<'a>(job: &'a Value, k: &str) -> &'a Value {
    job["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == k)
        .unwrap_or_else(|| panic!("no kind {k} in {job}"))
}

/// The job's export, the arguments the trainer gets, validation against the trainer's
/// vectors, install, reload, and every way it can refuse or fail without touching the
/// models in use.
#[tokio::test]
async fn a_training_job_installs_only_models_tract_reproduces() {
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("models");
    let mut cfg = Config::default();
    cfg.ml.models_dir = Some(models.clone());
    cfg.ml.train.command = fake_trainer(work.path());
    let f = sqlfix::fixture_with(cfg);
    fill(&f.store, "flow", 1200);
    let c = TestClient::new(netguardian::api::app(f.state.clone()));

    // Bad parameters are refused by name before anything runs.
    for (body, field) in [
        (json!({"days": 0}), "days"),
        (json!({"contamination": 0.7}), "contamination"),
        (json!({"min_rows": 1}), "min_rows"),
        (
            json!({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}),
            "since",
        ),
        (json!({"kinds": ["flows"]}), "\"flows\""),
    ] {
        let r = post(&c, body.clone()).await;
        r.assert_status(StatusCode::BAD_REQUEST);
        let p: Value = r.json().await.value().deserialize();
        assert!(
            p["field"] == field || p["detail"].as_str().unwrap_or("").contains(field),
            "{body} -> {p}"
        );
    }
    assert!(get(&c, "/api/train").await.as_array().unwrap().is_empty());
    let r = c.post("/api/train").body_json(&json!({})).send().await;
    r.assert_status(StatusCode::UNAUTHORIZED);

    // A good run: flow trained and installed, device skipped for lack of rows.
    let id = start(&c, json!({})).await;
    let job = finished(&c, id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["progress"], 1.0);
    let flow = kind(&job, "flow");
    assert_eq!(flow["outcome"], "trained", "{job}");
    assert_eq!(flow["rows"], 1200);
    let installed = flow["models"].as_array().unwrap();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0]["file"], "flow_iforest.onnx");
    assert_eq!(installed[0]["model"], "iforest");
    assert!(installed[0]["vectors"].as_u64().unwrap() >= 16);
    assert!(installed[0]["max_score_diff"].as_f64().unwrap() < 1e-4);
    let device = kind(&job, "device");
    assert_eq!(device["outcome"], "skipped");
    assert_eq!(device["rows"], 0);
    assert!(
        device["reason"]
            .as_str()
            .unwrap()
            .contains("fewer than min_rows (1000)"),
        "{device}"
    );
    // The window ends just after the newest row and spans ml.train.days.
    let newest = "2024-05-01T04:59:45"; // row 1199 at 15 s spacing
    let at = |v: &Value| v.as_str().unwrap().replace("+00:00", "Z");
    assert_eq!(at(&job["until"]), "2024-05-01T04:59:46Z");
    assert_eq!(at(&job["since"]), "2024-04-24T04:59:46Z");
    let args = std::fs::read_to_string(work.path().join("args")).unwrap();
    for want in [
        "--kind flow",
        "--since 2024-04-24T04:59:46",
        "--until 2024-05-01T04:59:46",
        "--contamination 0.001",
        "--min-rows 1000",
    ] {
        assert!(args.contains(want), "{want} not in {args}");
    }
    // What the trainer was given: the window's rows, the schema and the alerts.
    let q = duckdb::Connection::open_in_memory().unwrap();
    let dd = work.path().join("data-flow");
    let count = |sql: String| -> i64 { q.query_row(&sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM read_parquet('{}')",
            dd.join("flow_features.parquet").display()
        )),
        1200
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM read_parquet('{}') WHERE ts = TIMESTAMP '{newest}'",
            dd.join("flow_features.parquet").display()
        )),
        1
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM read_parquet('{}')",
            dd.join("feature_schema.parquet").display()
        )),
        46
    );
    assert!(dd.join("alerts.parquet").is_file());
    // Installed byte for byte, loaded, and the staging data is gone.
    let bytes = std::fs::read(data().join("flow_iforest.onnx")).unwrap();
    assert_eq!(
        std::fs::read(models.join("flow_iforest.onnx")).unwrap(),
        bytes
    );
    assert!(job["reload_generation"].as_u64().unwrap() >= 1);
    let m = get(&c, "/api/models").await;
    let loaded = m["models"].as_array().unwrap();
    assert_eq!(loaded.len(), 1, "{m}");
    assert_eq!(loaded[0]["kind"], "flow");
    let train_dir = netguardian::detect::ml::train::train_dir(&f.state.cfg);
    assert_eq!(std::fs::read_dir(&train_dir).unwrap().count(), 0);

    // Scores tract would not reproduce: nothing installed, the job fails saying why.
    std::fs::write(work.path().join("mode"), "badvec").unwrap();
    let id2 = start(&c, json!({"kinds": ["flow"]})).await;
    let job = finished(&c, id2, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "failed", "{job}");
    let flow = kind(&job, "flow");
    assert_eq!(flow["outcome"], "failed");
    let reason = flow["reason"].as_str().unwrap();
    assert!(
        reason.contains("validation failed") && reason.contains("scikit-learn"),
        "{reason}"
    );
    assert!(job["error"].as_str().unwrap().contains("validation failed"));
    assert_eq!(job["kinds"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(models.join("flow_iforest.onnx")).unwrap(),
        bytes
    );
    assert!(!models.join("previous").exists());

    // A trainer that fails: its message is in the job.
    std::fs::write(work.path().join("mode"), "fail").unwrap();
    let id3 = start(&c, json!({})).await;
    let job = finished(&c, id3, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "failed");
    let flow = kind(&job, "flow");
    assert!(
        flow["reason"].as_str().unwrap().contains("exit 1")
            && flow["trainer_output"].as_str().unwrap().contains("boom"),
        "{flow}"
    );

    // One job at a time.
    std::fs::write(work.path().join("mode"), "sleep").unwrap();
    let id4 = start(&c, json!({})).await;
    let r = post(&c, json!({})).await;
    r.assert_status(StatusCode::CONFLICT);
    let p: Value = r.json().await.value().deserialize();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("job {id4}")),
        "{p}"
    );
    // The sleeping trainer then says "too few rows": skipped, not failed.
    let job = finished(&c, id4, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(kind(&job, "flow")["outcome"], "skipped");

    // A retrain of good models keeps the replaced ones in previous/.
    std::fs::write(work.path().join("mode"), "good").unwrap();
    let id5 = start(&c, json!({"kinds": ["flow"], "days": 1})).await;
    let job = finished(&c, id5, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(at(&job["since"]), "2024-04-30T04:59:46Z");
    assert_eq!(
        std::fs::read(models.join("previous/flow_iforest.onnx")).unwrap(),
        bytes
    );
    let list = get(&c, "/api/train").await;
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![id5, id4, id3, id2, id]);
    let (k, v) = sqlfix::auth();
    c.get("/api/train/999")
        .header(k, v)
        .send()
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

fn trainer_python() -> Option<PathBuf> {
    let venv = std::env::var_os("NG_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/netguardian-venv"))
    })?;
    let py = venv.join("bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import sklearn, onnx, onnxruntime, duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

/// The real trainer on synthetic baseline rows: both kinds trained, validated, installed
/// and loaded; the alert's device windows left out of the baseline; and the new device
/// models answer `POST /api/analyze`, which had no device model before.
#[tokio::test]
async fn the_python_trainer_retrains_both_kinds_and_the_service_loads_them() {
    let Some(py) = trainer_python() else {
        eprintln!(
            "skipped: no trainer venv with scikit-learn, onnx, onnxruntime and duckdb \
             ($NG_VENV or ~/.cache/netguardian-venv; scripts/deps creates it)"
        );
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("models");
    let mut cfg = Config::default();
    cfg.ml.models_dir = Some(models.clone());
    cfg.ml.train.python = py.display().to_string();
    cfg.ml.train.trainer_dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    let f = sqlfix::fixture_with(cfg);
    fill(&f.store, "flow", 1500);
    fill(&f.store, "device", 1500);
    // Device 02:..:01 raised an alert from 00:10 to 00:20: its windows then (and a
    // minute either side) are not baseline.
    f.store
        .connection()
        .unwrap()
        .execute_batch(
            "INSERT INTO alerts (ts, last_ts, rule, severity, title, device_mac) VALUES \
             (TIMESTAMP '2024-05-01 00:10:00', TIMESTAMP '2024-05-01 00:20:00', 'port_scan', \
              'high', 'scan', '02:00:00:00:00:01')",
        )
        .unwrap();
    let c = TestClient::new(netguardian::api::app(f.state.clone()));
    let (k, v) = sqlfix::auth();
    let device_item = json!({"kind": "device", "items": [
        DEVICE_FEATURES.iter().map(|d| (d.name.to_string(), json!(0.5))).collect::<serde_json::Map<_, _>>()
    ]});
    let r = c
        .post("/api/analyze")
        .header(k, v.clone())
        .body_json(&device_item)
        .send()
        .await;
    r.assert_status(StatusCode::CONFLICT);

    let id = start(&c, json!({"min_rows": 500})).await;
    let job = finished(&c, id, Duration::from_secs(600)).await;
    assert_eq!(job["state"], "done", "{job:#}");
    for k in ["flow", "device"] {
        let kr = kind(&job, k);
        assert_eq!(kr["outcome"], "trained", "{kr:#}");
        assert_eq!(kr["rows"], 1500);
        let files: Vec<&str> = kr["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["file"].as_str().unwrap())
            .collect();
        assert_eq!(
            files,
            vec![format!("{k}_iforest.onnx"), format!("{k}_autoencoder.onnx")]
        );
        assert!(models.join(format!("{k}_report.json")).is_file());
    }
    // The alert (00:10-00:20) widened by a window each side overlaps the windows
    // starting 00:09 to 00:20 of that device: 12 rows.
    let out = kind(&job, "device")["trainer_output"].as_str().unwrap();
    assert!(
        out.contains("1488 baseline rows (12 overlapping alerts excluded"),
        "{out}"
    );
    let m = get(&c, "/api/models").await;
    assert_eq!(m["models"].as_array().unwrap().len(), 4, "{m:#}");
    assert!(m["errors"].as_array().unwrap().is_empty(), "{m:#}");
    let r = c
        .post("/api/analyze")
        .header(k, v)
        .body_json(&device_item)
        .send()
        .await;
    r.assert_status_is_ok();
    let body: Value = r.json().await.value().deserialize();
    assert_eq!(body["models"].as_array().unwrap().len(), 2, "{body}");
}

/// `netguardian train --db FILE`: the same job in the foreground, printing what it
/// did; and without a service to ask, a clear error.
#[test]
fn the_command_line_trains_a_closed_database_and_explains_a_missing_service() {
    let work = tempfile::tempdir().unwrap();
    let db = sqlfix::closed_db(work.path());
    {
        let store = Store::open(&db).unwrap();
        fill(&store, "flow", 300);
    }
    let cmd = fake_trainer(work.path());
    let models = work.path().join("models");
    let conf = work.path().join("c.toml");
    std::fs::write(
        &conf,
        format!(
            "state_dir = {:?}\n[ml]\nmodels_dir = {:?}\n[ml.train]\ncommand = {}\n",
            work.path().join("state"),
            models,
            serde_json::to_string(&cmd).unwrap()
        ),
    )
    .unwrap();
    let out = sqlfix::bin()
        .args([
            "--config",
            conf.to_str().unwrap(),
            "train",
            "--db",
            db.to_str().unwrap(),
            "--min-rows",
            "100",
            "--kinds",
            "flow",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("flow    trained  300 rows; flow_iforest.onnx threshold"),
        "{text}"
    );
    assert!(models.join("flow_iforest.onnx").is_file());

    let out = sqlfix::bin()
        .args([
            "--config",
            conf.to_str().unwrap(),
            "train",
            "--days",
            "0",
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--days: must be 1..=366, got 0"));

    // No service: the token is missing, and with a token nothing listens.
    let out = sqlfix::bin()
        .args(["--config", conf.to_str().unwrap(), "train", "--wait"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no API token"), "{err}");
    std::fs::create_dir_all(work.path().join("state")).unwrap();
    std::fs::write(work.path().join("state/api-token"), "x".repeat(64)).unwrap();
    let port = free_port();
    let out = sqlfix::bin()
        .args([
            "--config",
            conf.to_str().unwrap(),
            "train",
            "--wait",
            "--api",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the service"), "{err}");
}

/// The nightly path: `netguardian train --wait` asks a running `serve` (as
/// netguardian-retrain.service does), waits for the job and reports it; the service
/// then scores with the new model.
#[test]
fn train_wait_drives_a_running_service() {
    let work = tempfile::tempdir().unwrap();
    let pcap = work.path().join("home.pcap");
    sqlfix::capture(0).write(&pcap);
    let cmd = fake_trainer(work.path());
    let state = work.path().join("state");
    let port = free_port();
    let conf = work.path().join("c.toml");
    std::fs::write(
        &conf,
        format!(
            // As root (CI) the service stays root: the stand-in trainer writes into
            // this test's private folder.
            "state_dir = {state:?}\n[service]\nuser = \"root\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
             [ml.train]\nmin_rows = 10\ncommand = {}\n",
            serde_json::to_string(&cmd).unwrap()
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let mut serve = sqlfix::bin()
        .args(["--config", conf, "serve", "--pcap"])
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    // Up once the token exists and the replay's features are stored (the database is
    // the service's; ask the API).
    let token = loop {
        assert!(Instant::now() < deadline, "service did not start");
        if let Some(status) = serve.try_wait().unwrap() {
            panic!("serve exited: {status}");
        }
        if let Ok(t) = std::fs::read_to_string(state.join("api-token"))
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            break t.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let serve = Kill(serve);
    let agent = ureq::agent();
    loop {
        let r: Value = agent
            .post(&format!("http://127.0.0.1:{port}/api/sql"))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(json!({"sql": "SELECT count(*) AS n FROM flow_features"}))
            .unwrap()
            .into_json()
            .unwrap();
        let row = &r["rows"][0];
        if row["n"].as_i64().or(row[0].as_i64()).unwrap_or(0) >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "no features stored: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = sqlfix::bin()
        .args(["--config", conf, "train", "--wait", "--kinds", "flow"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("training job 1: done"), "{text}");
    assert!(text.contains("flow    trained"), "{text}");
    let m: Value = agent
        .get(&format!("http://127.0.0.1:{port}/api/models"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(m["models"][0]["file"], "flow_iforest.onnx", "{m}");
    drop(serve);
}
