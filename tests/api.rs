//! API tests: poem's test client against a database filled from crafted captures —
//! every endpoint, filters, paging, auth and error bodies — and the WebSocket stream
//! against a real listener.

mod craft;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use craft::*;
use netguardian::api::ApiState;
use netguardian::capture::Progress;
use netguardian::config::Config;
use netguardian::pipeline::{self, Input};
use netguardian::service::control::{CaptureSettings, Control, Mode};
use netguardian::service::stream::Hub;
use netguardian::store::Store;
use netguardian::store::query::ReadPool;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::Value;

const C: [u8; 4] = [192, 168, 1, 10];
const PHONE: [u8; 4] = [192, 168, 1, 20];
const S: [u8; 4] = [93, 184, 216, 34];
const GW: [u8; 4] = [192, 168, 1, 1];
const SEC: i64 = 1_000_000;
const TOKEN: &str = "test-token-0123456789";

fn http_session(p: &mut Pcap, t: i64, mac: [u8; 6], ip: [u8; 4], sport: u16, body: usize) {
    http_exchange(p, t, (mac, ip), sport, S, &vec![b'x'; body]);
}

/// A small home: a Pi doing 30 HTTP sessions and a DNS lookup, a phone doing one
/// larger download, and 5 unanswered SYNs from the Pi.
fn home_capture() -> Pcap {
    let mut p = Pcap::default();
    for i in 0..30 {
        http_session(&mut p, T0 + i * SEC, CLIENT_MAC, C, 40000 + i as u16, 5);
    }
    http_session(&mut p, T0 + 40 * SEC, PHONE_MAC, PHONE, 50000, 1000);
    let q = dns_message(0x1234, false, 0, "example.com", 1, &[]);
    let a = dns_message(
        0x1234,
        true,
        0,
        "example.com",
        1,
        &[(Ipv4Addr::new(93, 184, 216, 34), 300)],
    );
    p.push(
        T0 + 50 * SEC,
        udp(CLIENT_MAC, ROUTER_MAC, C, 5353 + 1000, GW, 53, &q),
    );
    p.push(
        T0 + 50 * SEC + 2000,
        udp(ROUTER_MAC, CLIENT_MAC, GW, 53, C, 6353, &a),
    );
    for port in [22u16, 23, 445, 3389, 5900] {
        p.push(
            T0 + 60 * SEC,
            tcp(CLIENT_MAC, ROUTER_MAC, C, 41000, S, port, 7, 0, SYN, &[]),
        );
    }
    p
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    state: Arc<ApiState>,
}

fn fixture_with(cfg: Config) -> Fixture {
    fixture_from(cfg, home_capture())
}

/// The capture is analyzed once without detection (the tests below count the alerts
/// they insert themselves); the service's own replays (`capture.start`) detect.
fn fixture_from(cfg: Config, capture: Pcap) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let pcap = path.join("home.pcap");
    capture.write(&pcap);
    let store = Arc::new(Store::open(&path.join("t.duckdb")).unwrap());
    let mut quiet = cfg.clone();
    quiet.detect.enabled = false;
    quiet.ml.enabled = false;
    pipeline::run(
        &quiet,
        &store,
        Input::Files(vec![pcap.clone()]),
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        None,
    )
    .unwrap();
    // Two alerts for the Pi, one dismissed for the phone.
    store
        .connection()
        .unwrap()
        .execute_batch(
            "INSERT INTO alerts (ts, last_ts, rule, severity, state, title, device_mac, peer, count, flow_ids, evidence) VALUES
             ('2023-11-14 22:14:20', '2023-11-14 22:14:21', 'port_scan', 'high', 'active', 'Port scan', 'b8:27:eb:11:22:33', '93.184.216.34', 5, [1, 2], '{\"ports\": 5}'),
             ('2023-11-14 22:14:30', '2023-11-14 22:14:30', 'new_device', 'info', 'active', 'New device', 'b8:27:eb:11:22:33', NULL, 1, [], NULL),
             ('2023-11-14 22:14:40', '2023-11-14 22:14:40', 'dga', 'medium', 'dismissed', 'DGA domain', '7a:11:22:33:44:55', NULL, 1, [], NULL);",
        )
        .unwrap();
    let mut cfg = cfg;
    cfg.state_dir = Some(path.join("state"));
    let settings = CaptureSettings {
        mode: Mode::Replay,
        interface: "auto".into(),
        filter: String::new(),
        pcap: Some(pcap),
    };
    let hub = Hub::new(256);
    let control = Arc::new(Control::new(cfg.clone(), store.clone(), hub, settings));
    let state = Arc::new(ApiState {
        cfg,
        db: ReadPool::new(store, 4),
        token: TOKEN.into(),
        started: Instant::now(),
        control,
    });
    Fixture {
        _dir: dir,
        dir: path,
        state,
    }
}

fn fixture() -> Fixture {
    fixture_with(Config::default())
}

fn client(f: &Fixture) -> TestClient<impl poem::Endpoint> {
    TestClient::new(netguardian::api::app(f.state.clone()))
}

fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

async fn get_json(c: &TestClient<impl poem::Endpoint>, uri: &str) -> Value {
    let (k, v) = auth();
    let r = c.get(uri).header(k, v).send().await;
    r.assert_status_is_ok();
    r.json().await.value().deserialize::<Value>()
}

/// Asserts a problem+json error with `status`, returning the body.
async fn problem(r: poem::test::TestResponse, status: StatusCode) -> Value {
    r.assert_status(status);
    r.assert_header("content-type", "application/problem+json");
    let v: Value = r.json().await.value().deserialize();
    assert_eq!(v["status"], status.as_u16());
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    v
}

#[tokio::test]
async fn health_is_open_and_reads_need_the_token() {
    let f = fixture();
    let c = client(&f);
    for path in ["/health", "/api/health"] {
        let r = c.get(path).send().await;
        r.assert_status_is_ok();
        let v: Value = r.json().await.value().deserialize();
        assert_eq!(v["db_ok"], true);
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }
    let v = problem(c.get("/api/devices").send().await, StatusCode::UNAUTHORIZED).await;
    assert!(v["detail"].as_str().unwrap().contains("netguardian token"));
    let r = c
        .get("/api/devices")
        .header("Authorization", "Bearer wrong")
        .send()
        .await;
    problem(r, StatusCode::UNAUTHORIZED).await;
    // Mutations need the token even with anonymous reads.
    let mut cfg = Config::default();
    cfg.api.anonymous_reads = true;
    let f2 = fixture_with(cfg);
    let c2 = client(&f2);
    c2.get("/api/devices").send().await.assert_status_is_ok();
    problem(
        c2.post("/api/alerts/1/acknowledge").send().await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn devices_list_filters_sorts_and_pages() {
    let f = fixture();
    let c = client(&f);
    let v = get_json(&c, "/api/devices?sort=bytes&order=desc").await;
    let items = v["items"].as_array().unwrap();
    let macs: Vec<&str> = items.iter().map(|d| d["mac"].as_str().unwrap()).collect();
    assert!(
        macs.contains(&"b8:27:eb:11:22:33") && macs.contains(&"7a:11:22:33:44:55"),
        "{macs:?}"
    );
    assert_eq!(v["total"].as_u64().unwrap() as usize, items.len());
    let pi = items
        .iter()
        .find(|d| d["mac"] == "b8:27:eb:11:22:33")
        .unwrap();
    assert_eq!(pi["vendor"], "Raspberry Pi Foundation");
    assert_eq!(pi["ipv4"], "192.168.1.10");
    assert_eq!(pi["open_alerts"], 2, "active port_scan + new_device");
    assert_eq!(
        pi["risk_score"], 15,
        "high 15 + info 0 (the device_risk view)"
    );
    let phone = items
        .iter()
        .find(|d| d["mac"] == "7a:11:22:33:44:55")
        .unwrap();
    assert_eq!(phone["randomized"], true);
    assert_eq!(phone["open_alerts"], 0, "its only alert is dismissed");
    // Sorted by bytes, descending.
    let bytes: Vec<u64> = items
        .iter()
        .map(|d| d["bytes_sent"].as_u64().unwrap() + d["bytes_recv"].as_u64().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    // Filters.
    let v = get_json(&c, "/api/devices?vendor=raspberry").await;
    assert_eq!(v["total"], 1);
    let v = get_json(&c, "/api/devices?has_alerts=true").await;
    assert_eq!(v["items"][0]["mac"], "b8:27:eb:11:22:33");
    assert_eq!(v["total"], 1);
    let v = get_json(&c, "/api/devices?seen_since=2030-01-01T00:00:00Z").await;
    assert_eq!(v["total"], 0);
    // Paging walks every device exactly once.
    let total = get_json(&c, "/api/devices").await["total"]
        .as_u64()
        .unwrap();
    let mut seen = Vec::new();
    for off in 0..total {
        let v = get_json(
            &c,
            &format!("/api/devices?limit=1&offset={off}&sort=first_seen&order=asc"),
        )
        .await;
        seen.push(v["items"][0]["mac"].as_str().unwrap().to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len() as u64, total);
    // Bad parameters name the field.
    let (k, a) = auth();
    for (uri, field) in [
        ("/api/devices?limit=0", "limit"),
        ("/api/devices?limit=5000", "limit"),
        ("/api/devices?sort=nope", "sort"),
        ("/api/devices?seen_since=yesterday", "seen_since"),
        ("/api/devices?has_alerts=maybe", "has_alerts"),
    ] {
        let v = problem(
            c.get(uri).header(k, a.clone()).send().await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(v["field"], field, "{uri}: {v}");
    }
}

#[tokio::test]
async fn device_detail_has_addresses_peers_and_alerts() {
    let f = fixture();
    let c = client(&f);
    let v = get_json(&c, "/api/devices/B8-27-EB-11-22-33").await;
    assert_eq!(v["device"]["mac"], "b8:27:eb:11:22:33");
    assert!(
        v["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["addr"] == "192.168.1.10")
    );
    assert_eq!(v["top_peers"][0]["addr"], "93.184.216.34");
    assert_eq!(
        v["top_peers"][0]["flows"], 35,
        "30 HTTP sessions and 5 SYNs: {v}"
    );
    assert_eq!(v["recent_alerts"].as_array().unwrap().len(), 2);
    assert!(v["flow_bytes_sent"].as_u64().unwrap() > 0);
    let (k, a) = auth();
    let r = c
        .get("/api/devices/00:00:00:00:00:01")
        .header(k, a.clone())
        .send()
        .await;
    problem(r, StatusCode::NOT_FOUND).await;
    let r = c.get("/api/devices/not-a-mac").header(k, a).send().await;
    assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "mac");
}

#[tokio::test]
async fn flows_filter_and_cursor_paging_visit_each_flow_once() {
    let f = fixture();
    let c = client(&f);
    let all = f
        .state
        .db
        .run(|c| c.query_row("SELECT count(*) FROM flows", [], |r| r.get::<_, i64>(0)))
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(cur) => format!("/api/flows?limit=7&cursor={cur}"),
            None => "/api/flows?limit=7".to_string(),
        };
        let v = get_json(&c, &uri).await;
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        ids.extend(items.iter().map(|f| f["id"].as_i64().unwrap()));
        match v["next_cursor"].as_str() {
            Some(cur) => cursor = Some(cur.to_string()),
            None => break,
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no flow twice");
    assert_eq!(n as i64, all, "every flow once");

    let v = get_json(&c, "/api/flows?protocol=http&limit=1000").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 31);
    let v = get_json(&c, "/api/flows?device=7a:11:22:33:44:55").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert!(v["items"][0]["resp_bytes"].as_u64().unwrap() > 1000);
    let v = get_json(&c, "/api/flows?min_bytes=1000").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let v = get_json(&c, "/api/flows?port=53").await;
    assert_eq!(v["items"][0]["app_proto"], "dns");
    let v = get_json(&c, "/api/flows?state=s0&limit=1000").await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        5,
        "five unanswered SYNs"
    );
    let v = get_json(&c, "/api/flows?address=192.168.1.20").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let v = get_json(
        &c,
        "/api/flows?since=2023-11-14T22:14:01Z&until=2023-11-14T22:14:05Z",
    )
    .await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        0,
        "nothing started in that gap"
    );

    // Detail with direction statistics and metadata.
    let dns_id = get_json(&c, "/api/flows?port=53").await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let v = get_json(&c, &format!("/api/flows/{dns_id}")).await;
    assert_eq!(v["dns"][0]["query"], "example.com");
    assert_eq!(v["dns"][0]["answers"][0], "93.184.216.34");
    assert_eq!(v["orig"]["pkts"], 1);
    let (k, a) = auth();
    for (uri, field) in [
        ("/api/flows?cursor=garbage", "cursor"),
        ("/api/flows?address=999.1.1.1", "address"),
        ("/api/flows?port=70000", "port"),
        ("/api/flows?device=xyz", "device"),
        (
            "/api/flows?since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z",
            "since",
        ),
    ] {
        let v = problem(
            c.get(uri).header(k, a.clone()).send().await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(v["field"], field, "{uri}: {v}");
    }
    problem(
        c.get("/api/flows/12345").header(k, a).send().await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn metadata_endpoints_filter_by_device_and_time() {
    let f = fixture();
    let c = client(&f);
    let v = get_json(&c, "/api/http?limit=1000").await;
    assert_eq!(v.as_array().unwrap().len(), 31);
    assert_eq!(v[0]["host"], "example.com");
    let v = get_json(&c, "/api/http?device=7a:11:22:33:44:55").await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["response_body_len"], 1000);
    let v = get_json(&c, "/api/dns").await;
    assert_eq!(v[0]["rcode"], "NOERROR");
    let v = get_json(&c, "/api/dns?since=2030-01-01T00:00:00Z").await;
    assert!(v.as_array().unwrap().is_empty());
    let v = get_json(&c, "/api/tls").await;
    assert!(v.as_array().unwrap().is_empty());
    let v = get_json(&c, "/api/dhcp").await;
    assert!(v.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn alerts_lifecycle_and_threats_alias() {
    let f = fixture();
    let c = client(&f);
    let v = get_json(&c, "/api/alerts").await;
    assert_eq!(v["total"], 3);
    let v = get_json(&c, "/api/alerts?severity=medium").await;
    assert_eq!(v["total"], 2, "high and medium");
    let v = get_json(&c, "/api/threats?active_only=true").await;
    assert_eq!(v["total"], 2);
    let v = get_json(
        &c,
        "/api/alerts?device=b8:27:eb:11:22:33&state=active&rule=port_scan",
    )
    .await;
    assert_eq!(v["total"], 1);
    let a = &v["items"][0];
    assert_eq!(a["evidence"]["ports"], 5);
    assert_eq!(a["flow_ids"], serde_json::json!([1, 2]));
    let id = a["id"].as_i64().unwrap();

    let (k, t) = auth();
    let r = c.post(format!("/api/alerts/{id}/acknowledge")).send().await;
    problem(r, StatusCode::UNAUTHORIZED).await;
    let r = c
        .post(format!("/api/alerts/{id}/acknowledge"))
        .header(k, t.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    assert_eq!(
        r.json().await.value().object().get("state").string(),
        "acknowledged"
    );
    let v = get_json(&c, &format!("/api/alerts/{id}")).await;
    assert_eq!(v["state"], "acknowledged");
    let r = c
        .post(format!("/api/alerts/{id}/dismiss"))
        .header(k, t.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    // A dismissed alert cannot be acknowledged; the problem says why.
    let r = c
        .post(format!("/api/alerts/{id}/acknowledge"))
        .header(k, t.clone())
        .send()
        .await;
    let p = problem(r, StatusCode::CONFLICT).await;
    assert_eq!(p["title"], "alert cannot become acknowledged");
    assert_eq!(
        p["detail"],
        format!("alert {id} is dismissed; it cannot become acknowledged")
    );
    let r = c
        .post("/api/alerts/999/dismiss")
        .header(k, t.clone())
        .send()
        .await;
    problem(r, StatusCode::NOT_FOUND).await;
    let r = c
        .get("/api/alerts?severity=urgent")
        .header(k, t)
        .send()
        .await;
    assert_eq!(
        problem(r, StatusCode::BAD_REQUEST).await["field"],
        "severity"
    );
}

#[tokio::test]
async fn analytics_and_protocol_mix() {
    let f = fixture();
    let c = client(&f);
    let v = get_json(
        &c,
        "/api/analytics?hours=1&until=2023-11-14T23:00:00Z&interval_secs=60",
    )
    .await;
    let bw = v["bandwidth"].as_array().unwrap();
    let flows: u64 = bw.iter().map(|b| b["flows"].as_u64().unwrap()).sum();
    assert_eq!(flows, 37, "31 HTTP + 1 DNS + 5 SYN flows");
    assert_eq!(v["top_talkers"][0]["mac"], "b8:27:eb:11:22:33");
    assert_eq!(v["top_destinations"][0]["addr"], "93.184.216.34");
    assert_eq!(v["top_domains"][0]["name"], "example.com");
    assert!(v["new_devices"].as_array().unwrap().len() >= 2);
    let v = get_json(&c, "/api/protocols?hours=1&until=2023-11-14T23:00:00Z").await;
    assert_eq!(v[0]["protocol"], "http");
    let share: f64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["byte_share"].as_f64().unwrap())
        .sum();
    assert!((share - 1.0).abs() < 1e-9, "{share}");
    let (k, t) = auth();
    let r = c
        .get("/api/analytics?hours=0")
        .header(k, t.clone())
        .send()
        .await;
    assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "hours");
    let r = c
        .get("/api/analytics?hours=8760&interval_secs=60")
        .header(k, t)
        .send()
        .await;
    assert_eq!(
        problem(r, StatusCode::BAD_REQUEST).await["field"],
        "interval_secs"
    );
}

#[tokio::test]
async fn stats_config_and_interfaces() {
    let f = fixture();
    let c = client(&f);
    let v = get_json(&c, "/api/stats").await;
    assert!(v["db_size_bytes"].as_u64().unwrap() > 0);
    let flows = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "flows")
        .unwrap()
        .clone();
    assert_eq!(flows["rows"], 37);
    assert_eq!(flows["oldest"], "2023-11-14T22:13:20+00:00");
    let v = get_json(&c, "/api/config").await;
    assert_eq!(v["api"]["listen"], "127.0.0.1:8080");
    assert_eq!(v["flow"]["max_flows"], 262144);
    let v = get_json(&c, "/api/interfaces").await;
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "lo" && i["loopback"] == true),
        "{v}"
    );
}

#[tokio::test]
async fn uploads_become_jobs_and_corrupt_files_are_rejected() {
    let f = fixture();
    let c = client(&f);
    let (k, t) = auth();
    let r = c
        .post("/api/pcap")
        .header(k, t.clone())
        .content_type("application/octet-stream")
        .body("this is not a capture file")
        .send()
        .await;
    let v = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("not a pcap or pcapng"),
        "{v}"
    );

    let mut p = Pcap::default();
    http_session(&mut p, T0 + 3600 * SEC, CLIENT_MAC, C, 45000, 5);
    let up = f.dir.join("up.pcap");
    p.write(&up);
    let r = c
        .post("/api/pcap")
        .header(k, t.clone())
        .content_type("application/octet-stream")
        .body(std::fs::read(&up).unwrap())
        .send()
        .await;
    r.assert_status_is_ok();
    let v: Value = r.json().await.value().deserialize();
    let id = v["id"].as_u64().unwrap();
    let mut job = Value::Null;
    for _ in 0..200 {
        job = get_json(&c, &format!("/api/jobs/{id}")).await;
        if job["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["summary"]["packets"], 8);
    assert_eq!(job["progress"], 1.0);
    let v = get_json(&c, "/api/flows?since=2023-11-14T23:13:00Z").await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "the uploaded flow is queryable"
    );
    let r = c.get("/api/jobs/99").header(k, t.clone()).send().await;
    problem(r, StatusCode::NOT_FOUND).await;
    // The upload limit is enforced.
    let mut cfg = Config::default();
    cfg.api.max_upload_mib = 1;
    let f2 = fixture_with(cfg);
    let c2 = client(&f2);
    let r = c2
        .post("/api/pcap")
        .header(k, t)
        .content_type("application/octet-stream")
        .body(vec![0u8; 2 << 20])
        .send()
        .await;
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn capture_control_validates_before_touching_the_capture() {
    let f = fixture();
    let c = client(&f);
    let (k, t) = auth();
    let v = get_json(&c, "/api/capture").await;
    assert_eq!(v["mode"], "replay");
    assert_eq!(v["running"], false);
    problem(
        c.post("/api/capture/start").send().await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Replay of a file that is not a capture: 400 naming the field; settings unchanged.
    let r = c
        .put("/api/capture")
        .header(k, t.clone())
        .body_json(&serde_json::json!({"pcap": "/etc/hostname"}))
        .send()
        .await;
    assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "pcap");
    assert!(
        get_json(&c, "/api/capture").await["pcap"]
            .as_str()
            .unwrap()
            .ends_with("home.pcap")
    );
    // Unknown body fields and wrong types are 400s.
    let r = c
        .put("/api/capture")
        .header(k, t.clone())
        .body_json(&serde_json::json!({"mode": "telepathy"}))
        .send()
        .await;
    problem(r, StatusCode::BAD_REQUEST).await;
    // Start replays the file; the run's flows land in the database.
    let r = c
        .post("/api/capture/start")
        .header(k, t.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    let mut v = Value::Null;
    for _ in 0..200 {
        v = get_json(&c, "/api/capture").await;
        if v["running"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(v["running"], false);
    assert_eq!(v["packets"], home_capture().packets.len() as u64);
    assert!(v["last_error"].is_null(), "{v}");
    if !is_root() {
        eprintln!("SKIP live part of capture control: needs root (CAP_NET_RAW) to open lo");
        return;
    }
    // An invalid BPF filter on a live interface is a 400 quoting libpcap.
    let r = c
        .put("/api/capture")
        .header(k, t.clone())
        .body_json(
            &serde_json::json!({"mode": "live", "interface": "lo", "filter": "port nonsense"}),
        )
        .send()
        .await;
    let v = problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(v["field"], "filter");
    assert!(v["detail"].as_str().unwrap().contains("nonsense"), "{v}");
    let r = c
        .put("/api/capture")
        .header(k, t.clone())
        .body_json(&serde_json::json!({"mode": "live", "interface": "lo", "filter": "tcp"}))
        .send()
        .await;
    r.assert_status_is_ok();
    c.post("/api/capture/start")
        .header(k, t.clone())
        .send()
        .await
        .assert_status_is_ok();
    let v = get_json(&c, "/api/capture").await;
    assert_eq!(v["running"], true);
    assert_eq!(v["source"], "live:lo");
    // A bad filter while running: 400, and the capture keeps running on the old one.
    let r = c
        .put("/api/capture")
        .header(k, t.clone())
        .body_json(&serde_json::json!({"filter": "tcp port"}))
        .send()
        .await;
    problem(r, StatusCode::BAD_REQUEST).await;
    let v = get_json(&c, "/api/capture").await;
    assert_eq!(
        (v["running"].clone(), v["filter"].clone()),
        (Value::Bool(true), Value::from("tcp"))
    );
    let r = c.post("/api/capture/stop").header(k, t).send().await;
    r.assert_status_is_ok();
    assert_eq!(get_json(&c, "/api/capture").await["running"], false);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn errors_are_problem_json_for_unknown_routes_and_bad_bodies() {
    let f = fixture();
    let c = client(&f);
    problem(
        c.get("/api/nothing-here").send().await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let (k, t) = auth();
    let r = c
        .put("/api/capture")
        .header(k, t)
        .content_type("application/json")
        .body("{not json")
        .send()
        .await;
    problem(r, StatusCode::BAD_REQUEST).await;
    let r = c.get("/docs/").send().await;
    r.assert_status_is_ok();
    let r = c.get("/openapi.json").send().await;
    r.assert_status_is_ok();
}

/// The committed spec is what the code generates; regenerate with
/// `netguardian openapi > openapi/openapi.json`.
#[test]
fn committed_openapi_spec_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed");
    let generated = netguardian::api::spec_json();
    assert!(
        committed.trim() == generated.trim(),
        "openapi/openapi.json is stale: run `netguardian openapi > openapi/openapi.json`"
    );
    let v: Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/health",
        "/health",
        "/api/devices",
        "/api/devices/{mac}",
        "/api/flows",
        "/api/flows/{id}",
        "/api/dns",
        "/api/tls",
        "/api/http",
        "/api/dhcp",
        "/api/alerts",
        "/api/alerts/{id}",
        "/api/alerts/{id}/acknowledge",
        "/api/alerts/{id}/dismiss",
        "/api/alerts/{id}/resolve",
        "/api/alerts/{id}/reopen",
        "/api/mutes",
        "/api/mutes/{id}",
        "/api/threats",
        "/api/analytics",
        "/api/protocols",
        "/api/stats",
        "/api/interfaces",
        "/api/capture",
        "/api/capture/start",
        "/api/capture/stop",
        "/api/pcap",
        "/api/jobs/{id}",
        "/api/config",
    ] {
        assert!(v["paths"][path].is_object(), "{path} missing from the spec");
    }
}

/// The live stream over a real listener: subscribe to flows of one device, replay a
/// capture, receive its flows; a client that never reads does not hold anything up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_flows_and_honours_subscriptions() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let app = netguardian::api::app(f.state.clone());
    tokio::spawn(poem::Server::new(poem::listener::TcpListener::bind(addr.to_string())).run(app));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Without a token: refused.
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/stream"))
            .await
            .is_err()
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/stream?token={TOKEN}"))
            .await
            .unwrap();
    // A second client that never reads.
    let (_stuck, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/stream?token={TOKEN}"))
            .await
            .unwrap();
    ws.send(Message::Text(r#"{"subscribe": ["nope"]}"#.into()))
        .await
        .unwrap();
    let m: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(m["type"], "error");
    assert_eq!(m["data"]["field"], "subscribe");
    ws.send(Message::Text(
        r#"{"subscribe": ["flow"], "device": "7A:11:22:33:44:55"}"#.into(),
    ))
    .await
    .unwrap();
    let m: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(m["type"], "subscribed");
    // Replay the capture through the service's capture path (the hub is attached).
    ws.send(Message::Text(r#"{"command": "capture.start"}"#.into()))
        .await
        .unwrap();
    let mut flows = Vec::new();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while Instant::now() < deadline && flows.is_empty() {
        let Ok(Some(Ok(msg))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await
        else {
            break;
        };
        let m: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert!(m["timestamp"].is_string());
        match m["type"].as_str().unwrap() {
            "flow" => flows.push(m["data"].clone()),
            "capture" | "lagged" => {}
            other => panic!("unsubscribed type {other}: {m}"),
        }
    }
    assert_eq!(flows.len(), 1, "exactly the phone's one flow: {flows:?}");
    assert_eq!(flows[0]["orig_mac"], "7a:11:22:33:44:55");
    assert_eq!(flows[0]["resp_port"], 80);
}

/// A port scan in a capture the service replays: the detection thread's alert reaches
/// WebSocket clients as an `alert` message and the API; a mute then swallows the
/// repeat of a second replay (counted on the mute, the alert's count unchanged), and
/// the lifecycle moves through resolve and reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detected_alerts_stream_and_mutes_silence_repeats() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const ATT: [u8; 6] = [0x02, 0x66, 0x66, 0x66, 0x66, 0x66];
    let mut p = Pcap::default();
    let (att, dev) = ([192, 168, 1, 66], [192, 168, 1, 10]);
    for port in 0..40u16 {
        let t = T0 + port as i64 * 20_000;
        p.push(
            t,
            tcp(
                ATT,
                CLIENT_MAC,
                att,
                45000,
                dev,
                1000 + port,
                1,
                0,
                SYN,
                &[],
            ),
        );
        p.push(
            t + 300,
            tcp(
                CLIENT_MAC,
                ATT,
                dev,
                1000 + port,
                att,
                45000,
                0,
                2,
                RSTACK,
                &[],
            ),
        );
    }
    let f = fixture_from(Config::default(), p);
    let c = client(&f);
    let (k, t) = auth();
    let v = get_json(&c, "/api/alerts").await;
    assert_eq!(v["total"], 3, "only the fixture's inserted alerts so far");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let app = netguardian::api::app(f.state.clone());
    tokio::spawn(poem::Server::new(poem::listener::TcpListener::bind(addr.to_string())).run(app));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/stream?token={TOKEN}"))
            .await
            .unwrap();
    ws.send(Message::Text(r#"{"subscribe": ["alert"]}"#.into()))
        .await
        .unwrap();
    let m: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(m["type"], "subscribed");
    ws.send(Message::Text(r#"{"command": "capture.start"}"#.into()))
        .await
        .unwrap();
    let mut alerts = Vec::new();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while Instant::now() < deadline && !alerts.iter().any(|a: &Value| a["rule"] == "port_scan") {
        let Ok(Some(Ok(msg))) =
            tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await
        else {
            break;
        };
        let m: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        match m["type"].as_str().unwrap() {
            "alert" => alerts.push(m["data"].clone()),
            "capture" | "lagged" => {}
            other => panic!("unsubscribed type {other}: {m}"),
        }
    }
    let scan = alerts
        .iter()
        .find(|a| a["rule"] == "port_scan")
        .unwrap_or_else(|| panic!("no port_scan alert streamed: {alerts:?}"))
        .clone();
    assert_eq!(scan["new"], true);
    assert_eq!(scan["state"], "active");
    assert!(
        ["medium", "high"].contains(&scan["severity"].as_str().unwrap()),
        "{scan}"
    );
    let id = scan["id"].as_i64().unwrap();
    let stored = get_json(&c, &format!("/api/alerts/{id}")).await;
    assert_eq!(stored["rule"], "port_scan");
    assert_eq!(stored["count"], 1);
    assert_eq!(stored["device_mac"], scan["device_mac"]);

    // Wait for the replay to end before starting the next one.
    let wait_idle = || async {
        for _ in 0..200 {
            if get_json(&c, "/api/capture").await["running"] == false {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("replay did not end");
    };
    wait_idle().await;

    // Bad mutes are refused with the field named.
    for (body, field) in [
        (r#"{"rule": "nope"}"#, "rule"),
        (r#"{"rule": "port_scan", "device": "zz"}"#, "device"),
        (
            r#"{"rule": "port_scan", "hours": 2, "until": "2030-01-01T00:00:00Z"}"#,
            "hours",
        ),
    ] {
        let r = c
            .post("/api/mutes")
            .header(k, t.clone())
            .content_type("application/json")
            .body(body)
            .send()
            .await;
        assert_eq!(
            problem(r, StatusCode::BAD_REQUEST).await["field"],
            field,
            "{body}"
        );
    }
    let r = c
        .post("/api/mutes")
        .content_type("application/json")
        .body(r#"{"rule": "port_scan"}"#)
        .send()
        .await;
    problem(r, StatusCode::UNAUTHORIZED).await;
    let body = serde_json::json!({
        "rule": "port_scan",
        "device": scan["device_mac"],
        "reason": "my own nmap",
    })
    .to_string();
    let r = c
        .post("/api/mutes")
        .header(k, t.clone())
        .content_type("application/json")
        .body(body)
        .send()
        .await;
    r.assert_status_is_ok();
    let mute: Value = serde_json::from_str(&r.0.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(mute["rule"], "port_scan");
    assert_eq!(mute["suppressed"], 0);
    assert!(mute["until"].is_null());
    let mute_id = mute["id"].as_i64().unwrap();

    // Second replay: the scan repeats within the dedup window but is muted.
    let r = c
        .post("/api/capture/start")
        .header(k, t.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    wait_idle().await;
    let mutes = get_json(&c, "/api/mutes").await;
    assert_eq!(mutes.as_array().unwrap().len(), 1);
    assert!(mutes[0]["suppressed"].as_u64().unwrap() >= 1, "{mutes}");
    let stored = get_json(&c, &format!("/api/alerts/{id}")).await;
    assert_eq!(
        stored["count"], 1,
        "the muted repeat did not bump the alert"
    );

    // Lifecycle: resolve, reopen; a dismissed alert cannot be resolved.
    for (action, state) in [
        ("resolve", "resolved"),
        ("reopen", "active"),
        ("dismiss", "dismissed"),
    ] {
        let r = c
            .post(format!("/api/alerts/{id}/{action}"))
            .header(k, t.clone())
            .send()
            .await;
        r.assert_status_is_ok();
        assert_eq!(
            get_json(&c, &format!("/api/alerts/{id}")).await["state"],
            state
        );
    }
    let r = c
        .post(format!("/api/alerts/{id}/resolve"))
        .header(k, t.clone())
        .send()
        .await;
    problem(r, StatusCode::CONFLICT).await;

    let r = c
        .delete(format!("/api/mutes/{mute_id}"))
        .header(k, t.clone())
        .send()
        .await;
    r.assert_status_is_ok();
    let r = c
        .delete(format!("/api/mutes/{mute_id}"))
        .header(k, t.clone())
        .send()
        .await;
    problem(r, StatusCode::NOT_FOUND).await;
    assert_eq!(get_json(&c, "/api/mutes").await, serde_json::json!([]));
}

#[tokio::test]
async fn models_are_listed_and_reloaded_with_load_errors_named() {
    let models = tempfile::tempdir().unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ml");
    for f in ["flow_iforest.onnx", "device_autoencoder.onnx"] {
        std::fs::copy(data.join(f), models.path().join(f)).unwrap();
    }
    let mut cfg = Config::default();
    cfg.ml.models_dir = Some(models.path().to_path_buf());
    let f = fixture_with(cfg);
    let c = client(&f);
    let v = get_json(&c, "/api/models").await;
    assert_eq!(v["enabled"], true);
    assert_eq!(v["schema_version"], 1);
    let kinds: Vec<(String, String)> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["model"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("device".to_string(), "autoencoder".to_string()),
            ("flow".to_string(), "iforest".to_string())
        ]
    );
    assert_eq!(
        v["models"][1]["feature_names"].as_array().unwrap().len(),
        36
    );
    assert!(v["models"][1]["threshold"].as_f64().unwrap() > 0.0);
    assert_eq!(v["errors"], serde_json::json!([]));
    let generation = v["generation"].as_u64().unwrap();

    // A broken file: listed with its error after a reload; the others stay in use.
    std::fs::write(models.path().join("broken.onnx"), b"not a model").unwrap();
    let r = c.post("/api/models/reload").send().await;
    problem(r, StatusCode::UNAUTHORIZED).await;
    let (k, t) = auth();
    let r = c.post("/api/models/reload").header(k, t).send().await;
    r.assert_status_is_ok();
    let v: Value = r.json().await.value().deserialize();
    assert_eq!(v["generation"].as_u64().unwrap(), generation + 1);
    assert_eq!(v["models"].as_array().unwrap().len(), 2);
    assert_eq!(v["errors"][0]["file"], "broken.onnx");
    assert!(!v["errors"][0]["error"].as_str().unwrap().is_empty());
}
