//! Shared fixture of the SQL and export tests: a database filled from a crafted
//! capture spanning two UTC days (so day partitions are exercised), and an API state
//! over it.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::craft::*;
use netguardian::api::ApiState;
use netguardian::capture::Progress;
use netguardian::config::Config;
use netguardian::pipeline::{self, Input};
use netguardian::service::control::{CaptureSettings, Control, Mode};
use netguardian::service::stream::Hub;
use netguardian::store::Store;
use netguardian::store::query::ReadPool;

pub const TOKEN: &str = "test-token-0123456789";
const C: [u8; 4] = [192, 168, 1, 10];
const PHONE: [u8; 4] = [192, 168, 1, 20];
const S: [u8; 4] = [93, 184, 216, 34];
const GW: [u8; 4] = [192, 168, 1, 1];
pub const SEC: i64 = 1_000_000;
/// Sessions before and after midnight UTC of 2023-11-15 (T0 is 22:13:20 on the 14th).
pub const HOURS: i64 = 3600 * SEC;

fn lookup(p: &mut Pcap, t: i64, id: u16, name: &str) {
    let q = dns_message(id, false, 0, name, 1, &[]);
    let a = dns_message(
        id,
        true,
        0,
        name,
        1,
        &[(Ipv4Addr::new(93, 184, 216, 34), 300)],
    );
    p.push(t, udp(CLIENT_MAC, ROUTER_MAC, C, 6000 + id, GW, 53, &q));
    p.push(
        t + 2000,
        udp(ROUTER_MAC, CLIENT_MAC, GW, 53, C, 6000 + id, &a),
    );
}

/// 20 HTTP sessions of the Pi on the 14th, 10 on the 15th, one of the phone; DNS
/// lookups (example.com three times, other names once).
pub fn capture(offset: i64) -> Pcap {
    let mut p = Pcap::default();
    for i in 0..20 {
        http_exchange(
            &mut p,
            offset + T0 + i * SEC,
            (CLIENT_MAC, C),
            40000 + i as u16,
            S,
            b"hello",
        );
    }
    for i in 0..10 {
        http_exchange(
            &mut p,
            offset + T0 + 2 * HOURS + i * SEC,
            (CLIENT_MAC, C),
            41000 + i as u16,
            S,
            b"hello",
        );
    }
    http_exchange(
        &mut p,
        offset + T0 + 30 * SEC,
        (PHONE_MAC, PHONE),
        50000,
        S,
        &[b'x'; 1000],
    );
    for (i, n) in [
        "example.com",
        "example.com",
        "example.com",
        "netguardian.test",
        "pool.ntp.org",
    ]
    .iter()
    .enumerate()
    {
        lookup(
            &mut p,
            offset + T0 + 50 * SEC + i as i64 * SEC,
            100 + i as u16,
            n,
        );
    }
    p
}

pub fn analyze(store: &Store, pcap: &Path) {
    pipeline::run(
        &Config::default(),
        store,
        Input::Files(vec![pcap.to_path_buf()]),
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        None,
    )
    .unwrap();
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub db: PathBuf,
    pub store: Arc<Store>,
    pub state: Arc<ApiState>,
}

pub fn fixture_with(mut cfg: Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let pcap = path.join("home.pcap");
    capture(0).write(&pcap);
    let db = path.join("t.duckdb");
    let store = Arc::new(Store::open(&db).unwrap());
    analyze(&store, &pcap);
    cfg.state_dir = Some(path.join("state"));
    let settings = CaptureSettings {
        mode: Mode::Replay,
        interface: "auto".into(),
        filter: String::new(),
        pcap: Some(pcap),
    };
    let control = Arc::new(Control::new(
        cfg.clone(),
        store.clone(),
        Hub::new(64),
        settings,
    ));
    let state = Arc::new(ApiState {
        cfg,
        db: ReadPool::new(store.clone(), 4),
        token: TOKEN.into(),
        started: Instant::now(),
        control,
    });
    Fixture {
        _dir: dir,
        dir: path,
        db,
        store,
        state,
    }
}

pub fn fixture() -> Fixture {
    fixture_with(Config::default())
}

pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_netguardian"));
    for (k, _) in std::env::vars() {
        if k.starts_with("NETGUARDIAN_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

/// A database file built from [`capture`] and closed again (for the command line,
/// which opens it read-only in another process).
pub fn closed_db(dir: &Path) -> PathBuf {
    let pcap = dir.join("home.pcap");
    capture(0).write(&pcap);
    let db = dir.join("closed.duckdb");
    let store = Store::open(&db).unwrap();
    analyze(&store, &pcap);
    drop(store);
    db
}
