//! Exports: Parquet partitioned by table and day, CSV, JSON and DuckDB files with a
//! manifest, encrypted with age (and decrypted by the `age` command-line tool), the
//! API job with its download links, scheduled exports and retention.

mod craft;
mod sqlfix;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use duckdb::Connection;
use netguardian::config::{Config, ScheduledExport};
use netguardian::store::{export, retention};
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};
use sqlfix::*;

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn count(sql: &str) -> i64 {
    Connection::open_in_memory()
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn parquet_is_partitioned_by_table_and_day_with_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let db = closed_db(dir.path());
    let out = dir.path().join("pq");
    let o = bin()
        .args([
            "export",
            "--format",
            "parquet",
            "--tables",
            "flows,dns",
            "--db",
        ])
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rows/s"));
    let d14 = out.join("flows/date=2023-11-14/part-0.parquet");
    let d15 = out.join("flows/date=2023-11-15/part-0.parquet");
    assert!(d14.is_file() && d15.is_file());
    assert!(out.join("dns/date=2023-11-14/part-0.parquet").is_file());
    // Any DuckDB reads the folder directly, day as a hive column.
    let n = count(&format!(
        "SELECT count(*) FROM read_parquet('{}/flows/*/*.parquet', hive_partitioning = true) WHERE date = DATE '2023-11-15'",
        out.display()
    ));
    assert_eq!(n, 10);
    let m = manifest(&out);
    assert_eq!(m["tables"], json!({"flows": 36, "dns": 5}));
    assert_eq!(m["total_rows"], 41);
    assert!(m["encryption"].is_null());
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        let p = out.join(f["path"].as_str().unwrap());
        assert_eq!(f["sha256"], sha256(&p));
        assert_eq!(f["bytes"], std::fs::metadata(&p).unwrap().len());
    }
    let f15 = files
        .iter()
        .find(|f| f["path"] == "flows/date=2023-11-15/part-0.parquet")
        .unwrap();
    assert_eq!(f15["rows"], 10);
    assert!(
        f15["min_ts"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-15T00:13:20")
    );
}

#[test]
fn csv_json_and_duckdb_formats_and_the_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = closed_db(dir.path());
    for fmt in ["csv", "json", "duckdb"] {
        let out = dir.path().join(fmt);
        let o = bin()
            .args([
                "export",
                "--format",
                fmt,
                "--tables",
                "flows",
                "--since",
                "2023-11-15",
                "--db",
            ])
            .arg(&db)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{fmt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(manifest(&out)["tables"]["flows"], 10, "{fmt}");
        let n = match fmt {
            "csv" => count(&format!(
                "SELECT count(*) FROM read_csv('{}/flows.csv')",
                out.display()
            )),
            "json" => count(&format!(
                "SELECT count(*) FROM read_json('{}/flows.json')",
                out.display()
            )),
            _ => {
                let c = Connection::open(out.join("netguardian.duckdb")).unwrap();
                c.query_row("SELECT count(*) FROM flows", [], |r| r.get(0))
                    .unwrap()
            }
        };
        assert_eq!(n, 10, "{fmt}");
    }
}

#[test]
fn bad_export_arguments_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let db = closed_db(dir.path());
    let nonempty = dir.path().join("full");
    std::fs::create_dir_all(&nonempty).unwrap();
    std::fs::write(nonempty.join("x"), "x").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--format", "xlsx"], "xlsx"),
        (vec!["--format", "csv", "--tables", "flowz"], "flowz"),
        (
            vec![
                "--format",
                "csv",
                "--since",
                "2023-11-15",
                "--until",
                "2023-11-14",
            ],
            "since",
        ),
        (vec!["--format", "csv", "--since", "yesterday"], "yesterday"),
        (
            vec!["--format", "csv", "--recipient", "age1notakey"],
            "age1notakey",
        ),
        (vec!["--format", "csv", "--encrypt"], "export.recipients"),
    ];
    for (args, want) in cases {
        let o = bin()
            .arg("export")
            .args(&args)
            .arg("--db")
            .arg(&db)
            .arg("--out")
            .arg(dir.path().join("never"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let o = bin()
        .args(["export", "--format", "csv", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&nonempty)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    assert!(!dir.path().join("never").exists());
}

#[test]
fn encrypted_exports_decrypt_with_the_age_tool() {
    let dir = tempfile::tempdir().unwrap();
    let db = closed_db(dir.path());
    let id = age::x25519::Identity::generate();
    let key = dir.path().join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    }
    let out = dir.path().join("enc");
    let o = bin()
        .args([
            "export",
            "--format",
            "parquet",
            "--tables",
            "flows",
            "--recipient",
        ])
        .arg(id.to_public().to_string())
        .arg("--db")
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = manifest(&out);
    assert_eq!(m["encryption"], "age-x25519");
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let rel = f["path"].as_str().unwrap();
        assert!(rel.ends_with(".parquet.age"), "{rel}");
        let p = out.join(rel);
        assert_eq!(f["sha256"], sha256(&p));
        assert!(
            !out.join(rel.trim_end_matches(".age")).exists(),
            "plaintext left behind"
        );
        assert!(!std::fs::read(&p).unwrap().starts_with(b"PAR1"));
    }
    if std::process::Command::new("age")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "skipping the age CLI half of encrypted_exports_decrypt_with_the_age_tool: `age` not installed (apt install age)"
        );
        return;
    }
    let mut rows = 0;
    for f in files {
        let p = out.join(f["path"].as_str().unwrap());
        let plain = dir.path().join("plain.parquet");
        let o = std::process::Command::new("age")
            .args(["--decrypt", "-i"])
            .arg(&key)
            .arg("-o")
            .arg(&plain)
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "age: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let n = count(&format!(
            "SELECT count(*) FROM read_parquet('{}')",
            plain.display()
        ));
        assert_eq!(n as u64, f["rows"].as_u64().unwrap());
        rows += n;
        std::fs::remove_file(&plain).unwrap();
    }
    assert_eq!(rows, 36);
}

#[test]
fn passphrase_exports_decrypt_with_the_age_crate() {
    let f = fixture();
    let conn = f.store.connection().unwrap();
    let out = f.dir.join("pp");
    let req = export::Request {
        format: export::Format::Csv,
        tables: vec!["dns"],
        since: None,
        until: None,
        out: out.clone(),
        encryption: Some(export::Encryption::Passphrase(
            "correct horse".to_string().into(),
        )),
    };
    let m = export::export(&conn, &req, &export::Progress::default()).unwrap();
    assert_eq!(m.encryption.as_deref(), Some("age-scrypt"));
    let data = std::fs::read(out.join("dns.csv.age")).unwrap();
    let d = age::Decryptor::new(&data[..]).unwrap();
    let id = age::scrypt::Identity::new("correct horse".to_string().into());
    let mut r = d
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut r, &mut text).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
}

#[tokio::test]
async fn the_api_runs_an_export_job_with_download_links() {
    let f = fixture();
    let c = TestClient::new(netguardian::api::app(f.state.clone()));
    let (k, v) = auth();
    let r = c
        .post("/api/exports")
        .body_json(&json!({"format": "parquet"}))
        .send()
        .await;
    r.assert_status(StatusCode::UNAUTHORIZED);
    for (body, field) in [
        (json!({"format": "parquet", "tables": ["nope"]}), "tables"),
        (
            json!({"format": "parquet", "since": "2023-11-15T00:00:00Z", "until": "2023-11-14T00:00:00Z"}),
            "since",
        ),
        (json!({"format": "parquet", "encrypt": true}), "encrypt"),
        (json!({"format": "xlsx"}), "body"),
    ] {
        let r = c
            .post("/api/exports")
            .header(k, v.clone())
            .body_json(&body)
            .send()
            .await;
        r.assert_status(StatusCode::BAD_REQUEST);
        let p: Value = r.json().await.value().deserialize();
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let r = c
        .post("/api/exports")
        .header(k, v.clone())
        .body_json(&json!({"format": "parquet", "tables": ["flows", "dns"], "since": "2023-11-14T00:00:00Z"}))
        .send()
        .await;
    r.assert_status(StatusCode::ACCEPTED);
    let job: Value = r.json().await.value().deserialize();
    let id = job["id"].as_u64().unwrap();
    let t = Instant::now();
    let job = loop {
        let r = c
            .get(format!("/api/exports/{id}"))
            .header(k, v.clone())
            .send()
            .await;
        r.assert_status_is_ok();
        let j: Value = r.json().await.value().deserialize();
        if j["state"] != "running" {
            break j;
        }
        assert!(t.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["rows"], 41);
    let files = job["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    let url = files[0]["url"].as_str().unwrap();
    assert!(url.contains("date=2023-11-14"), "{url}");
    let r = c.get(url).header(k, v.clone()).send().await;
    r.assert_status_is_ok();
    let body = r.0.into_body().into_vec().await.unwrap();
    assert_eq!(&body[..4], b"PAR1");
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&body)), files[0]["sha256"]);
    let r = c
        .get(job["manifest_url"].as_str().unwrap())
        .header(k, v.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    // Only listed files: no path traversal.
    let r = c
        .get(format!("/api/exports/{id}/file?path=../../t.duckdb"))
        .header(k, v.clone())
        .send()
        .await;
    r.assert_status(StatusCode::NOT_FOUND);
    let r = c.get("/api/exports/999").header(k, v.clone()).send().await;
    r.assert_status(StatusCode::NOT_FOUND);
    // The SQL sandbox is on now, yet exports keep writing into the export folder.
    assert!(f.store.restricted_to().is_some());
}

/// Several DuckDB-file exports at once (the fuzzer found it: attached databases are
/// shared by every connection, so a fixed alias made the second job fail).
#[tokio::test]
async fn concurrent_duckdb_exports_all_finish() {
    let f = fixture();
    let c = TestClient::new(netguardian::api::app(f.state.clone()));
    let (k, v) = auth();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let r = c
            .post("/api/exports")
            .header(k, v.clone())
            .body_json(&json!({"format": "duckdb"}))
            .send()
            .await;
        r.assert_status(StatusCode::ACCEPTED);
        let job: Value = r.json().await.value().deserialize();
        ids.push(job["id"].as_u64().unwrap());
    }
    let t = Instant::now();
    for id in ids {
        let job = loop {
            let r = c
                .get(format!("/api/exports/{id}"))
                .header(k, v.clone())
                .send()
                .await;
            let j: Value = r.json().await.value().deserialize();
            if j["state"] != "running" {
                break j;
            }
            assert!(t.elapsed() < Duration::from_secs(60));
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(job["state"], "done", "{job}");
        assert!(job["rows"].as_u64().unwrap() > 0, "{job}");
    }
}

#[test]
fn scheduled_exports_write_the_previous_day_once() {
    let f = fixture();
    let sched = f.dir.join("usb");
    let mut cfg = Config::default();
    cfg.export.scheduled = vec![ScheduledExport {
        dir: sched.clone(),
        tables: vec!["flows".into()],
        at: "02:00".into(),
        ..Default::default()
    }];
    cfg.validate().unwrap();
    let before = Utc.with_ymd_and_hms(2023, 11, 16, 1, 0, 0).unwrap();
    assert!(export::due_scheduled(&cfg, before).is_empty());
    let now = Utc.with_ymd_and_hms(2023, 11, 16, 3, 0, 0).unwrap();
    let due = export::due_scheduled(&cfg, now);
    assert_eq!(due.len(), 1);
    let (i, day, dir) = due[0].clone();
    assert_eq!(dir, sched.join("2023-11-15"));
    let m = export::run_scheduled(&f.store, &cfg, i, day, dir.clone()).unwrap();
    assert_eq!(m.total_rows, 10);
    assert!(dir.join("flows/date=2023-11-15/part-0.parquet").is_file());
    assert!(export::due_scheduled(&cfg, now).is_empty());
    // Bad schedules are configuration errors naming the key.
    cfg.export.scheduled[0].at = "2am".into();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("export.scheduled[0].at")
    );
    cfg.export.scheduled[0].at = "02:00".into();
    cfg.export.scheduled[0].format = "xlsx".into();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("export.scheduled[0].format")
    );
}

#[test]
fn retention_deletes_old_rows_and_keeps_recent_ones() {
    let f = fixture();
    let conn = f.store.connection().unwrap();
    // One recent DNS row next to the 2023 ones.
    conn.execute_batch(
        "INSERT INTO dns (ts, flow_id, orig_addr, orig_port, resp_addr, resp_port, transport, trans_id, query, qtype, qtype_name, qclass)
         VALUES (now()::TIMESTAMP, 1, '192.168.1.10', 5000, '192.168.1.1', 53, 'udp', 1, 'recent.test', 1, 'A', 1)",
    )
    .unwrap();
    let mut cfg = Config::default().retention;
    cfg.days.insert("dns".into(), 30);
    let r = retention::run_once(&conn, &cfg, Utc::now()).unwrap();
    assert_eq!(r.deleted, vec![("dns".to_string(), 5)]);
    let left: Vec<String> = conn
        .prepare("SELECT query FROM dns")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, vec!["recent.test"]);
    let flows: i64 = conn
        .query_row("SELECT count(*) FROM flows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(flows, 36, "tables without retention are untouched");
    // A size cap below what is used drops whole days, oldest first.
    let mut cfg = Config::default().retention;
    cfg.max_db_mib = 0;
    cfg.default_days = 0;
    let r = retention::run_once(&conn, &cfg, Utc::now()).unwrap();
    assert!(r.deleted.is_empty());
    let mut bad = Config::default();
    bad.retention.days.insert("flowz".into(), 3);
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("retention.days.flowz")
    );
}

#[test]
fn the_size_cap_drops_the_oldest_days() {
    let f = fixture();
    let conn = f.store.connection().unwrap();
    // Make the database big enough to measure: 300k old DNS rows on 2023-11-14.
    conn.execute_batch(
        "INSERT INTO dns (ts, flow_id, orig_addr, orig_port, resp_addr, resp_port, transport, trans_id, query, qtype, qtype_name, qclass)
         SELECT TIMESTAMP '2023-11-14 23:00:00', i, '192.168.1.10', 5000, '192.168.1.1', 53, 'udp', 1, 'filler-' || i || '.test', 1, 'A', 1
         FROM range(300000) t(i); CHECKPOINT;",
    )
    .unwrap();
    let used = retention::used_bytes(&conn).unwrap();
    let mut cfg = Config::default().retention;
    cfg.max_db_mib = (used >> 20).saturating_sub(1).max(1);
    let r = retention::run_once(&conn, &cfg, Utc::now()).unwrap();
    assert!(r.days_dropped_for_size >= 1, "{r:?}");
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM dns WHERE ts < '2023-11-15'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0);
}

/// Old alerts go only once closed: an alert still active (or acknowledged) is what the
/// user has to act on, whatever its age; resolved and dismissed ones age by their last
/// occurrence.
#[test]
fn retention_keeps_open_alerts_however_old() {
    let f = fixture();
    let conn = f.store.connection().unwrap();
    conn.execute_batch(
        "DELETE FROM alerts;
         INSERT INTO alerts (ts, last_ts, rule, severity, state, title) VALUES
           (TIMESTAMP '2023-01-01', TIMESTAMP '2023-01-02', 'port_scan', 'high', 'active', 'old active'),
           (TIMESTAMP '2023-01-01', TIMESTAMP '2023-01-02', 'port_scan', 'high', 'acknowledged', 'old acknowledged'),
           (TIMESTAMP '2023-01-01', TIMESTAMP '2023-01-02', 'port_scan', 'high', 'resolved', 'old resolved'),
           (TIMESTAMP '2023-01-01', TIMESTAMP '2023-01-02', 'port_scan', 'high', 'dismissed', 'old dismissed'),
           (TIMESTAMP '2023-01-01', now()::TIMESTAMP, 'port_scan', 'high', 'resolved', 'first old, last recent');",
    )
    .unwrap();
    let mut cfg = Config::default().retention;
    cfg.days.insert("alerts".into(), 30);
    let r = retention::run_once(&conn, &cfg, Utc::now()).unwrap();
    assert_eq!(r.deleted, vec![("alerts".to_string(), 2)]);
    let left: Vec<String> = conn
        .prepare("SELECT title FROM alerts ORDER BY title")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        left,
        vec!["first old, last recent", "old acknowledged", "old active"]
    );
}
