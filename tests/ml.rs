//! The anomaly models end to end: tract against the trainer's expected scores
//! (`tests/data/ml/*.vectors.json`, written by `models/netguardian_models` next to the
//! models it trained on synthetic data), metadata checks that disable one model and
//! not the service, and the `ng-ml` thread writing features and scores for a crafted
//! capture. `NG_ML_BENCH=1` with `--nocapture` also prints µs per row.

mod craft;
mod sqlfix;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use craft::*;
use netguardian::capture::Progress;
use netguardian::config::Config;
use netguardian::detect::ml::Registry;
use netguardian::detect::ml::model::{Expected, MAX_BATCH, Model, ModelType};
use netguardian::pipeline::{self, Input};
use netguardian::store::Store;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ml")
}

/// A `models` folder under `dir` holding every test model of `tests/data/ml`.
fn test_models(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    std::fs::create_dir(&models).unwrap();
    for f in std::fs::read_dir(data()).unwrap().flatten() {
        if f.path().extension().is_some_and(|e| e == "onnx") {
            std::fs::copy(f.path(), models.join(f.file_name())).unwrap();
        }
    }
    models
}

fn vectors(kind: &str, model: &str) -> (Vec<Vec<f32>>, serde_json::Value) {
    let p = data().join(format!("{kind}_{model}.vectors.json"));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let rows = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    (rows, doc)
}

fn check(kind: &str, model: &str) {
    let expected = Expected::for_kind(kind).unwrap();
    let m = Model::load(data().join(format!("{kind}_{model}.onnx")), &expected)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let (rows, doc) = vectors(kind, model);
    let tol = doc["tolerance"].as_f64().unwrap_or(1e-4);
    assert!(rows.len() >= 16, "too few vectors");
    assert_eq!(
        m.meta().threshold as f64,
        doc["threshold"].as_f64().unwrap() as f32 as f64
    );
    let want: Vec<f64> = doc["expected_score"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let close = |got: f32, want: f64| {
        let d = (got as f64 - want).abs();
        d <= tol || d <= tol * want.abs()
    };
    // The whole batch, then row by row (batch 1 takes other code paths in tract).
    let batch = m.score(&rows).unwrap();
    for (i, (g, w)) in batch.score.iter().zip(&want).enumerate() {
        assert!(
            close(*g, *w),
            "{kind}_{model} row {i}: tract {g} vs sklearn {w}"
        );
        let one = m.score(&rows[i..i + 1]).unwrap();
        assert!(close(one.score[0], *w), "{kind}_{model} row {i} alone");
    }
    match m.meta().model {
        ModelType::Autoencoder => {
            let fe = batch.feature_error.as_ref().expect("feature_error");
            for (i, want_row) in doc["expected_feature_error"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                for (j, w) in want_row.as_array().unwrap().iter().enumerate() {
                    let (g, w) = (fe.row(i)[j], w.as_f64().unwrap());
                    assert!(
                        close(g, w),
                        "{kind}_{model} row {i} feature {j}: {g} vs {w}"
                    );
                }
            }
        }
        ModelType::IsolationForest => assert!(batch.feature_error.is_none()),
    }
    if std::env::var_os("NG_ML_BENCH").is_some() {
        bench(&m, &rows, &format!("{kind}_{model}"));
    }
}

/// Wall-clock µs per row at batch 1 and 256: the best of 7 timed runs, since a
/// shared VM's speed drifts by tens of percent between runs.
fn bench(m: &Model, base: &[Vec<f32>], name: &str) {
    for batch in [1usize, 256] {
        let rows: Vec<Vec<f32>> = (0..batch).map(|i| base[i % base.len()].clone()).collect();
        let _ = m.score(&rows).unwrap();
        let reps = (20_000 / batch).max(20);
        let best = (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(m.score(&rows).unwrap());
                }
                t.elapsed().as_secs_f64() * 1e6 / (reps * batch) as f64
            })
            .fold(f64::MAX, f64::min);
        eprintln!("bench {name} batch {batch}: {best:.2} µs/row (best of 7)");
    }
}

#[test]
fn flow_iforest_matches_sklearn() {
    check("flow", "iforest");
}
#[test]
fn flow_autoencoder_matches_sklearn() {
    check("flow", "autoencoder");
}
#[test]
fn device_iforest_matches_sklearn() {
    check("device", "iforest");
}
#[test]
fn device_autoencoder_matches_sklearn() {
    check("device", "autoencoder");
}

#[test]
fn long_inputs_are_chunked_consistently_and_bad_rows_refused() {
    let m = Model::load(data().join("device_iforest.onnx"), &Expected::device()).unwrap();
    let (base, _) = vectors("device", "iforest");
    let n = MAX_BATCH * 2 + 7;
    let rows: Vec<Vec<f32>> = (0..n).map(|i| base[i % base.len()].clone()).collect();
    let all = m.score(&rows).unwrap().score;
    let one = m.score(&base).unwrap().score;
    for (i, s) in all.iter().enumerate() {
        assert_eq!(*s, one[i % base.len()], "row {i}");
    }
    assert!(m.score(&[vec![0f32; 9]]).is_err());
    let mut r = vec![0f32; 10];
    r[2] = f32::NAN;
    let e = m.score(&[r]).unwrap_err().to_string();
    assert!(e.contains("distinct_ports_log"), "{e}");
}

/// Copies the test models into `dir`, the device forest with one feature renamed in
/// its metadata (same length, so the protobuf stays valid).
fn models_with_a_mismatch(dir: &Path) {
    for f in [
        "flow_iforest.onnx",
        "flow_autoencoder.onnx",
        "device_autoencoder.onnx",
    ] {
        std::fs::copy(data().join(f), dir.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(data().join("device_iforest.onnx")).unwrap();
    let (from, to) = (b"\"nxdomain_ratio\"", b"\"nxdomain_rate_\"");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("feature name in metadata");
    bytes[at..at + to.len()].copy_from_slice(to);
    std::fs::write(dir.join("device_iforest.onnx"), bytes).unwrap();
}

#[test]
fn a_mismatched_model_is_disabled_with_the_difference_named() {
    let dir = tempfile::tempdir().unwrap();
    models_with_a_mismatch(dir.path());
    let mut cfg = Config::default();
    cfg.ml.models_dir = Some(dir.path().to_path_buf());
    cfg.ml.reload_check_secs = 1;
    let reg = Registry::new(&cfg);
    let cur = reg.current();
    assert_eq!(cur.models.len(), 3, "{:?}", cur.errors);
    assert_eq!(cur.errors.len(), 1);
    let e = &cur.errors[0];
    assert_eq!(e.file, "device_iforest.onnx");
    assert!(
        e.error.contains("feature #7")
            && e.error.contains("nxdomain_rate_")
            && e.error.contains("nxdomain_ratio"),
        "{}",
        e.error
    );
    // Fixing the file is picked up by the periodic check.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::copy(
        data().join("device_iforest.onnx"),
        dir.path().join("device_iforest.onnx"),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(reg.reload_if_changed());
    let cur = reg.current();
    assert_eq!((cur.models.len(), cur.errors.len()), (4, 0));
    assert_eq!(cur.generation, 2);
    assert!(!reg.reload_if_changed(), "nothing changed since");
}

#[test]
fn capture_becomes_feature_rows_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let models = test_models(dir.path());
    let mut cfg = Config::default();
    cfg.ml.models_dir = Some(models);
    cfg.ml.batch_size = 3;

    let (c, s, gw) = ([192, 168, 1, 10], [93, 184, 216, 34], [192, 168, 1, 1]);
    let mut p = Pcap::default();
    for i in 0..4 {
        http_exchange(
            &mut p,
            T0 + i * 5_000_000,
            (CLIENT_MAC, c),
            40000 + i as u16,
            s,
            b"hello",
        );
    }
    let nq = dns_message(0x7777, false, 0, "xk2j9qv7w1zp.example", 1, &[]);
    let nx = dns_message(0x7777, true, 3, "xk2j9qv7w1zp.example", 1, &[]);
    p.push(
        T0 + 70_000_000,
        udp(CLIENT_MAC, ROUTER_MAC, c, 53001, gw, 53, &nq),
    );
    p.push(
        T0 + 70_020_000,
        udp(ROUTER_MAC, CLIENT_MAC, gw, 53, c, 53001, &nx),
    );
    let pcap = dir.path().join("t.pcap");
    p.write(&pcap);
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let sum = pipeline::run(
        &cfg,
        &store,
        Input::Files(vec![pcap]),
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        None,
    )
    .unwrap();
    let ml = sum.ml.clone().expect("ml stats");
    assert_eq!(ml.flow_rows, sum.flows);
    assert_eq!((ml.failed_writes, ml.score_errors), (0, 0));
    let conn = store.connection().unwrap();
    let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(q("SELECT count(*) FROM flow_features") as u64, sum.flows);
    assert_eq!(
        q("SELECT count(*) FROM flow_features f JOIN flows ON flows.id = f.flow_id") as u64,
        sum.flows
    );
    // The DNS flow: NXDOMAIN, a random-looking label, owned by the client.
    let (nxd, ent, mac): (f64, f64, String) = conn
        .query_row(
            "SELECT dns_nxdomain, dns_max_label_entropy, device_mac FROM flow_features WHERE app_dns = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(nxd, 1.0);
    assert!(ent > 3.4, "{ent}");
    assert_eq!(mac, "b8:27:eb:11:22:33");
    // Two minutes of the client's traffic: two device windows.
    let windows = q("SELECT count(*) FROM device_features WHERE mac = 'b8:27:eb:11:22:33'");
    assert_eq!(windows, 2);
    let (flows, nxr): (f64, f64) = conn
        .query_row(
            "SELECT flows_log, nxdomain_ratio FROM device_features ORDER BY window_start DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Stored as FLOAT: ln 2 rounded to f32, the value the models are given.
    assert_eq!((flows, nxr), (2f64.ln() as f32 as f64, 1.0));
    let devices = q("SELECT count(*) FROM device_features");
    // Every row scored by both models of its kind.
    assert_eq!(
        q("SELECT count(*) FROM anomaly_scores"),
        2 * sum.flows as i64 + 2 * devices
    );
    assert_eq!(
        q("SELECT count(*) FROM anomaly_scores WHERE NOT isfinite(score)"),
        0
    );
    // Alerts raised by the models (if any) went through the lifecycle.
    let anomaly_alerts = q("SELECT count(*) FROM alerts WHERE rule = 'anomaly'");
    assert_eq!(
        anomaly_alerts as u64,
        sum.alerts_by_rule.get("anomaly").copied().unwrap_or(0)
    );
    let schema = q("SELECT count(*) FROM feature_schema WHERE schema_version = 1");
    assert_eq!(schema, 46);
}

/// `POST /api/analyze` scores feature items with the loaded models: each model's score is
/// the trainer's (the same vectors as above, sent as JSON objects by feature name), the
/// verdict follows `ml.require_agreement`, and bad items are refused naming the item
/// and the feature.
#[tokio::test]
async fn the_api_scores_feature_items_like_the_trainer() {
    use netguardian::flow::features::FLOW_FEATURES;
    use poem::http::StatusCode;
    use poem::test::TestClient;
    use serde_json::{Value, json};

    let models = tempfile::tempdir().unwrap();
    for f in ["flow_iforest.onnx", "flow_autoencoder.onnx"] {
        std::fs::copy(data().join(f), models.path().join(f)).unwrap();
    }
    let mut cfg = Config::default();
    cfg.ml.models_dir = Some(models.path().to_path_buf());
    let f = sqlfix::fixture_with(cfg);
    let c = TestClient::new(netguardian::api::app(f.state.clone()));
    let (k, v) = sqlfix::auth();
    let names: Vec<&str> = FLOW_FEATURES.iter().map(|d| d.name).collect();
    let items = |rows: &[Vec<f32>]| -> Vec<Value> {
        rows.iter()
            .map(|r| {
                Value::Object(
                    names
                        .iter()
                        .zip(r)
                        .map(|(n, x)| (n.to_string(), json!(*x as f64)))
                        .collect(),
                )
            })
            .collect()
    };
    for model in ["iforest", "autoencoder"] {
        let (rows, doc) = vectors("flow", model);
        let tol = doc["tolerance"].as_f64().unwrap_or(1e-4);
        let r = c
            .post("/api/analyze")
            .header(k, v.clone())
            .body_json(&json!({"kind": "flow", "items": items(&rows)}))
            .send()
            .await;
        r.assert_status_is_ok();
        let body: Value = r.json().await.value().deserialize();
        assert_eq!(body["models"].as_array().unwrap().len(), 2, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), rows.len());
        let mut flagged = 0;
        for (i, res) in results.iter().enumerate() {
            assert_eq!(res["item"], i as u64);
            let scores = res["scores"].as_array().unwrap();
            let s = scores.iter().find(|s| s["model"] == model).unwrap();
            let (got, want) = (
                s["score"].as_f64().unwrap(),
                doc["expected_score"][i].as_f64().unwrap(),
            );
            let d = (got - want).abs();
            assert!(
                d <= tol || d <= tol * want.abs(),
                "{model} item {i}: {got} vs sklearn {want}"
            );
            assert_eq!(s["above"], got > s["threshold"].as_f64().unwrap());
            // Default ml.require_agreement: anomalous only when both models are above.
            let all = scores.iter().all(|s| s["above"] == true);
            assert_eq!(res["anomalous"], all, "{res}");
            flagged += u64::from(all);
            let top = res["top_features"].as_array().unwrap();
            assert_eq!(top.len(), 5);
            assert!(
                top.iter()
                    .all(|t| names.contains(&t["name"].as_str().unwrap()))
            );
        }
        assert_eq!(body["anomalous"], flagged);
    }

    let (rows, _) = vectors("flow", "iforest");
    let good = items(&rows[..1]);
    let mut missing = good[0].clone();
    missing.as_object_mut().unwrap().remove(names[3]);
    let mut unknown = good[0].clone();
    unknown["bogus"] = json!(1.0);
    let mut huge = good[0].clone();
    huge[names[0]] = json!(1e300);
    for (items, want) in [
        (vec![], "no items".to_string()),
        (
            vec![good[0].clone(), missing],
            format!("item 1: feature \"{}\" is missing", names[3]),
        ),
        (
            vec![unknown],
            "item 0: unknown feature \"bogus\"".to_string(),
        ),
        (
            vec![huge],
            format!("item 0: feature \"{}\" = 1e300 is out of range", names[0]),
        ),
    ] {
        let r = c
            .post("/api/analyze")
            .header(k, v.clone())
            .body_json(&json!({"kind": "flow", "items": items}))
            .send()
            .await;
        r.assert_status(StatusCode::BAD_REQUEST);
        let p: Value = r.json().await.value().deserialize();
        assert_eq!(p["field"], "items");
        assert!(
            p["detail"].as_str().unwrap().contains(&want),
            "{p} vs {want}"
        );
    }
    // No device models in the folder: a conflict that says what to do.
    let r = c
        .post("/api/analyze")
        .header(k, v.clone())
        .body_json(&json!({"kind": "device", "items": [{}]}))
        .send()
        .await;
    r.assert_status(StatusCode::BAD_REQUEST); // the empty item is checked first
    let dev: serde_json::Map<String, Value> = netguardian::flow::device_features::DEVICE_FEATURES
        .iter()
        .map(|d| (d.name.to_string(), json!(0.0)))
        .collect();
    let r = c
        .post("/api/analyze")
        .header(k, v.clone())
        .body_json(&json!({"kind": "device", "items": [dev]}))
        .send()
        .await;
    r.assert_status(StatusCode::CONFLICT);
    let p: Value = r.json().await.value().deserialize();
    assert!(
        p["title"].as_str().unwrap().contains("no device models"),
        "{p}"
    );
    // A token is required.
    let r = c
        .post("/api/analyze")
        .body_json(&json!({"kind": "flow", "items": good}))
        .send()
        .await;
    r.assert_status(StatusCode::UNAUTHORIZED);
}

/// Starts `cmd` with memory-deny-write-execute (prctl PR_SET_MDWE, Linux 6.3+), what
/// systemd's MemoryDenyWriteExecute=yes enforces; None when the kernel lacks it.
fn spawn_mdwe(cmd: &mut std::process::Command) -> Option<std::process::Output> {
    use std::os::unix::process::CommandExt;
    const PR_SET_MDWE: libc::c_int = 65;
    const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.output() {
        Ok(o) => Some(o),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
        Err(e) => panic!("{e}"),
    }
}

/// The service's unit sets MemoryDenyWriteExecute=yes: DuckDB and tract (which builds
/// its kernels ahead of time, no JIT) must work under it. The whole pipeline with every
/// test model runs under the same kernel restriction; a JIT would be refused.
#[test]
fn duckdb_and_tract_run_under_memory_deny_write_execute() {
    // The restriction is real: a writable and executable mapping is refused.
    let probe = spawn_mdwe(std::process::Command::new("python3").args([
        "-c",
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
    ]));
    let Some(probe) = probe else {
        eprintln!("skipped: this kernel has no PR_SET_MDWE (Linux 6.3+)");
        return;
    };
    assert!(
        !probe.status.success()
            && String::from_utf8_lossy(&probe.stderr).contains("Permission denied"),
        "W+X mapping not refused: {probe:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let models = test_models(dir.path());
    let mut p = Pcap::default();
    for i in 0..6 {
        http_exchange(
            &mut p,
            T0 + i * 5_000_000,
            (CLIENT_MAC, [192, 168, 1, 10]),
            40000 + i as u16,
            [93, 184, 216, 34],
            b"hello",
        );
    }
    let pcap = dir.path().join("t.pcap");
    p.write(&pcap);
    let db = dir.path().join("t.duckdb");
    let out = spawn_mdwe(
        std::process::Command::new(env!("CARGO_BIN_EXE_netguardian"))
            .args(["analyze", "--no-progress", "--db"])
            .arg(&db)
            .arg(&pcap)
            .env("NETGUARDIAN_ML__MODELS_DIR", &models)
            .env("NETGUARDIAN_STATE_DIR", dir.path().join("state"))
            .env_remove("NETGUARDIAN_CONFIG"),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&db).unwrap();
    let conn = store.connection().unwrap();
    let (flows, scored): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM flows), \
                    (SELECT count(DISTINCT model) FROM anomaly_scores WHERE kind = 'flow')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(flows, 6);
    assert_eq!(scored, 2, "both flow models scored in tract");
}

/// A restart (a second run on the same database) does not make every destination new:
/// the destinations of the stored flows are primed, so only the first run counts them.
#[test]
fn stored_flows_prime_new_destinations_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::default();
    for i in 0..4 {
        http_exchange(
            &mut p,
            T0 + i * 5_000_000,
            (CLIENT_MAC, [192, 168, 1, 10]),
            40000 + i as u16,
            [93, 184, 216, 34 + i as u8],
            b"hello",
        );
    }
    let pcap = dir.path().join("t.pcap");
    p.write(&pcap);
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let run = || {
        pipeline::run(
            &Config::default(),
            &store,
            Input::Files(vec![pcap.clone()]),
            Arc::new(Progress::default()),
            Arc::new(AtomicBool::new(false)),
            None,
        )
        .unwrap()
    };
    let conn = store.connection().unwrap();
    let q = |sql: &str| -> f64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    // Each row's count comes back from a FLOAT log1p, so round it to the integer it was.
    let sum = "SELECT coalesce(sum(round(exp(new_destinations_log) - 1)), 0) FROM device_features";
    run();
    let first = q(sum);
    assert!(
        (first - 4.0).abs() < 1e-9,
        "4 destinations new in the first run: {first}"
    );
    run();
    assert_eq!(
        q("SELECT count(*)::DOUBLE FROM device_features"),
        2.0 * q("SELECT count(DISTINCT (window_start, mac))::DOUBLE FROM device_features")
    );
    assert!(
        (q(sum) - first).abs() < 1e-9,
        "the second run finds nothing new: {}",
        q(sum)
    );
}
