//! The read-only SQL sandbox, through the API and the command line: answers in JSON,
//! CSV and Parquet, the views, and every escape we know of refused with a 400 that
//! names why — while the writer keeps writing into the same database.

mod craft;
mod sqlfix;

use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};
use sqlfix::*;

fn client(f: &Fixture) -> TestClient<impl poem::Endpoint> {
    TestClient::new(netguardian::api::app(f.state.clone()))
}

async fn post_sql(c: &TestClient<impl poem::Endpoint>, body: Value) -> poem::test::TestResponse {
    let (k, v) = auth();
    c.post("/api/sql")
        .header(k, v)
        .body_json(&body)
        .send()
        .await
}

async fn rejected(c: &TestClient<impl poem::Endpoint>, sql: &str) -> String {
    let r = post_sql(c, json!({ "sql": sql })).await;
    r.assert_status(StatusCode::BAD_REQUEST);
    r.assert_header("content-type", "application/problem+json");
    let v: Value = r.json().await.value().deserialize();
    assert_eq!(v["field"], "sql", "{v}");
    format!(
        "{} | {}",
        v["title"].as_str().unwrap(),
        v["detail"].as_str().unwrap_or("")
    )
}

#[tokio::test]
async fn escapes_are_refused_with_the_reason() {
    let f = fixture();
    let c = client(&f);
    let outside = f.dir.join("escaped.csv");
    let o = outside.display();
    let cases: Vec<(String, &str)> = vec![
        ("SELECT * FROM read_csv('/etc/passwd')".into(), "read_csv"),
        ("SELECT * FROM read_text('/etc/passwd')".into(), "read_text"),
        ("SELECT * FROM '/etc/passwd'".into(), "looks like a file"),
        ("SELECT * FROM glob('/etc/*')".into(), "glob"),
        ("SELECT * FROM query('SELECT 1')".into(), "query"),
        (
            format!("COPY flows TO '{o}'"),
            "COPY statements are not allowed",
        ),
        (format!("COPY (SELECT 1) TO '{o}' (FORMAT csv)"), "COPY"),
        (
            format!("EXPLAIN ANALYZE COPY flows TO '{o}'"),
            "EXPLAIN of COPY",
        ),
        (
            "ATTACH '/tmp/other.duckdb' AS o".into(),
            "ATTACH statements are not allowed",
        ),
        ("INSTALL httpfs".into(), "INSTALL"),
        ("LOAD httpfs".into(), "LOAD"),
        ("PRAGMA enable_external_access".into(), "PRAGMA"),
        ("SET enable_external_access = true".into(), "SET"),
        ("RESET lock_configuration".into(), "RESET"),
        ("CALL checkpoint()".into(), "CALL"),
        ("DELETE FROM flows_closed".into(), "DELETE"),
        ("DROP TABLE flows_closed".into(), "DROP"),
        ("SELECT 1; SELECT 2".into(), "multiple statements"),
        (
            "SELECT 1; DROP TABLE flows_closed".into(),
            "multiple statements",
        ),
        (
            "SELECT 1 /* ; */ ; -- x\n; DELETE FROM dns".into(),
            "multiple statements",
        ),
        ("WITH x AS (SELECT 1) DELETE FROM dns".into(), "allowed"),
        ("SELECT nextval('alert_id_seq')".into(), "nextval"),
        ("SELECT ?".into(), "parameters"),
        ("".into(), "empty statement"),
        ("SELEC 1".into(), "SELEC"),
        ("SELECT 'unterminated".into(), "unterminated"),
    ];
    for (sql, want) in &cases {
        let why = rejected(&c, sql).await;
        assert!(
            why.contains(want),
            "{sql:?}: {why:?} does not name {want:?}"
        );
    }
    assert!(!outside.exists(), "a file was written");
    // The database itself refuses files too (layer 1), on any connection.
    let conn = f.store.connection().unwrap();
    let e = conn
        .query_row("SELECT count(*) FROM read_csv('/etc/passwd')", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("disabled"), "{e}");
    assert!(
        conn.execute_batch("SET enable_external_access = true")
            .is_err()
    );
    assert!(
        conn.execute_batch(&format!(
            "ATTACH '{}' AS x",
            f.dir.join("x.duckdb").display()
        ))
        .is_err()
    );
    // ... and the tables are intact.
    let v: Value = post_sql(&c, json!({"sql": "SELECT count(*) FROM dns"}))
        .await
        .json()
        .await
        .value()
        .deserialize();
    assert_eq!(v["rows"][0][0], 5);
}

#[tokio::test]
async fn a_runaway_cross_join_is_stopped_by_the_time_limit() {
    let f = fixture();
    let c = client(&f);
    let t = Instant::now();
    let r = post_sql(
        &c,
        json!({"sql": "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1", "timeout_secs": 1.0}),
    )
    .await;
    let took = t.elapsed();
    r.assert_status(StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.value().deserialize();
    assert!(v["title"].as_str().unwrap().contains("time limit"), "{v}");
    assert!(
        took < Duration::from_secs(10),
        "interrupted only after {took:?}"
    );
    // The service answers the next statement normally.
    let r = post_sql(&c, json!({"sql": "SELECT 42 AS answer"})).await;
    r.assert_status_is_ok();
}

#[tokio::test]
async fn results_come_as_json_csv_and_parquet_within_the_row_limit() {
    let f = fixture();
    let c = client(&f);
    // Without the token: 401.
    let r = c
        .post("/api/sql")
        .body_json(&json!({"sql": "SELECT 1"}))
        .send()
        .await;
    r.assert_status(StatusCode::UNAUTHORIZED);

    let r = post_sql(
        &c,
        json!({"sql": "SELECT resp_port, count(*) AS n, min(ts) AS first FROM flows WHERE resp_port = 80 GROUP BY ALL ORDER BY n DESC", "max_rows": 100}),
    )
    .await;
    r.assert_status_is_ok();
    r.assert_header("x-row-count", "1");
    let v: Value = r.json().await.value().deserialize();
    assert_eq!(v["columns"][0]["name"], "resp_port");
    assert_eq!(v["columns"][0]["type"], "USMALLINT");
    assert_eq!(v["columns"][2]["type"], "TIMESTAMP");
    assert_eq!(v["rows"][0][0], 80);
    assert_eq!(v["rows"][0][1], 31);
    assert_eq!(v["truncated"], false);

    let r = post_sql(&c, json!({"sql": "FROM flows ORDER BY ts", "max_rows": 5})).await;
    let v: Value = r.json().await.value().deserialize();
    assert_eq!(v["row_count"], 5);
    assert_eq!(v["truncated"], true);

    let r = post_sql(
        &c,
        json!({"sql": "SELECT 'a,b' AS x, NULL AS y, [1, 2] AS l -- trailing comment", "format": "csv"}),
    )
    .await;
    r.assert_status_is_ok();
    r.assert_header("content-type", "text/csv");
    assert_eq!(
        r.0.into_body().into_string().await.unwrap(),
        "x,y,l\r\n\"a,b\",,\"[1, 2]\"\r\n"
    );

    let r = post_sql(&c, json!({"sql": "SELECT * FROM dns", "format": "parquet"})).await;
    r.assert_status_is_ok();
    r.assert_header("x-row-count", "5");
    let bytes = r.0.into_body().into_vec().await.unwrap();
    assert_eq!(&bytes[..4], b"PAR1");

    for sql in [
        "DESCRIBE flows",
        "SUMMARIZE dns",
        "EXPLAIN SELECT * FROM flows",
        "VALUES (1), (2)",
    ] {
        let r = post_sql(&c, json!({ "sql": sql })).await;
        r.assert_status_is_ok();
        let v: Value = r.json().await.value().deserialize();
        assert!(v["row_count"].as_u64().unwrap() > 0, "{sql}: {v}");
    }
    let why = rejected(&c, "EXPLAIN DELETE FROM dns").await;
    assert!(why.contains("EXPLAIN of DELETE"), "{why}");
}

#[tokio::test]
async fn bad_format_is_a_400() {
    let f = fixture();
    let c = client(&f);
    let r = post_sql(&c, json!({"sql": "SELECT 1", "format": "xlsx"})).await;
    r.assert_status(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_views_answer_common_questions_in_one_line() {
    let f = fixture();
    let c = client(&f);
    let v: Value = post_sql(
        &c,
        json!({"sql": "SELECT mac, day::VARCHAR, bytes_sent, bytes_recv, flows FROM device_bytes_daily ORDER BY mac, day"}),
    )
    .await
    .json()
    .await
    .value()
    .deserialize();
    let rows = v["rows"].as_array().unwrap();
    let pi: Vec<&Value> = rows
        .iter()
        .filter(|r| r[0] == "b8:27:eb:11:22:33")
        .collect();
    assert_eq!(pi.len(), 2, "{v}");
    assert_eq!(pi[0][1], "2023-11-14");
    assert_eq!(pi[1][1], "2023-11-15");
    assert_eq!(pi[1][4], 10);
    let v: Value = post_sql(&c, json!({"sql": "SELECT domain, queries FROM device_top_domains WHERE mac = 'b8:27:eb:11:22:33' AND rank <= 2 ORDER BY rank"}))
        .await.json().await.value().deserialize();
    assert_eq!(
        v["rows"],
        json!([["example.com", 3], ["netguardian.test", 1]])
    );
    let v: Value = post_sql(&c, json!({"sql": "SELECT mac, addr, flows, ports FROM new_destinations WHERE addr = '93.184.216.34' ORDER BY mac"}))
        .await.json().await.value().deserialize();
    assert_eq!(v["rows"][0][0], "7a:11:22:33:44:55");
    assert_eq!(v["rows"][1][2], 30);
    assert_eq!(v["rows"][1][3], json!([80]));
}

#[tokio::test]
async fn the_writer_keeps_writing_after_the_sandbox_is_on() {
    let f = fixture();
    let c = client(&f);
    post_sql(&c, json!({"sql": "SELECT 1"}))
        .await
        .assert_status_is_ok();
    assert!(f.store.restricted_to().is_some());
    let pcap = f.dir.join("more.pcap");
    capture(10 * HOURS).write(&pcap);
    analyze(&f.store, &pcap);
    let v: Value = post_sql(&c, json!({"sql": "SELECT count(*) FROM flows"}))
        .await
        .json()
        .await
        .value()
        .deserialize();
    assert_eq!(v["rows"][0][0], 72);
}

#[test]
fn the_command_line_runs_one_read_only_statement() {
    let dir = tempfile::tempdir().unwrap();
    let db = closed_db(dir.path());
    let out = bin()
        .args(["sql", "--db"])
        .arg(&db)
        .arg("SELECT count(*) AS n FROM flows")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"][0][0], 36);
    let out = bin()
        .args(["sql", "--format", "csv", "--db"])
        .arg(&db)
        .arg("SELECT query FROM dns ORDER BY ts LIMIT 1")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "query\r\nexample.com\r\n"
    );
    let pq = dir.path().join("r.parquet");
    let child = bin()
        .args(["sql", "--format", "parquet", "--out"])
        .arg(&pq)
        .arg("--db")
        .arg(&db)
        .arg("FROM dns")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&std::fs::read(&pq).unwrap()[..4], b"PAR1");
    // The Parquet answer went through the store's scratch folder; the process removed
    // it on the way out (it used to stay in /tmp, one folder per run).
    let prefix = format!("netguardian-sql-{pid}");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == &prefix || n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "scratch folders left behind: {left:?}");
    for (sql, want) in [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("COPY flows TO '/tmp/ng-escape.csv'", "COPY"),
        ("SELECT 1; SELECT 2", "multiple statements"),
        ("ATTACH '/tmp/x.duckdb'", "ATTACH"),
    ] {
        let out = bin()
            .args(["sql", "--db"])
            .arg(&db)
            .arg(sql)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{sql}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{sql}: {err}");
    }
    assert!(!std::path::Path::new("/tmp/ng-escape.csv").exists());
    let out = bin()
        .args(["sql", "--timeout-secs", "0.5", "--db"])
        .arg(&db)
        .arg("SELECT count(*) FROM range(100000000) a, range(100000000) b")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("time limit"));
    let out = bin()
        .args(["sql", "--format", "xml", "--db"])
        .arg(&db)
        .arg("SELECT 1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}
