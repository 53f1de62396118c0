//! The service under a fake service manager: a Unix datagram socket as NOTIFY_SOCKET,
//! a watchdog interval, SIGTERM — the same protocol systemd speaks to `Type=notify`.

mod craft;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use craft::*;

const BIN: &str = env!("CARGO_BIN_EXE_netguardian");

fn capture(dir: &std::path::Path) -> std::path::PathBuf {
    let mut p = Pcap::default();
    for i in 0..20u16 {
        let t = T0 + i as i64 * 1_000_000;
        let (c, s) = ([192, 168, 1, 10], [93, 184, 216, 34]);
        p.push(
            t,
            tcp(CLIENT_MAC, ROUTER_MAC, c, 40000 + i, s, 443, 1, 0, SYN, &[]),
        );
        p.push(
            t + 500,
            tcp(
                ROUTER_MAC,
                CLIENT_MAC,
                s,
                443,
                c,
                40000 + i,
                9,
                2,
                SYNACK,
                &[],
            ),
        );
    }
    let path = dir.join("svc.pcap");
    p.write(&path);
    path
}

/// Collects notify messages until `until` says stop or the deadline passes.
fn collect(
    sock: &UnixDatagram,
    msgs: &mut Vec<String>,
    deadline: Instant,
    until: impl Fn(&[String]) -> bool,
) {
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !until(msgs) {
        if let Ok(n) = sock.recv(&mut buf) {
            msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn notify_ready_status_watchdog_stopping_and_clean_exit() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Run as root (CI), the service becomes "nobody" first thing: it must reach its
    // state folder and the notify socket, as with systemd's.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let pcap = capture(dir.path());
    let mut child = Command::new(BIN)
        .args(["serve", "--pcap"])
        .arg(&pcap)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("NETGUARDIAN_STATE_DIR", dir.path().join("state"))
        .env("NETGUARDIAN_API__LISTEN", "127.0.0.1:0")
        .env("NETGUARDIAN_SERVICE__USER", "nobody")
        .env_remove("NETGUARDIAN_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut msgs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    collect(&sock, &mut msgs, deadline, |m| {
        m.iter().any(|s| s.contains("READY=1"))
            && m.iter().filter(|s| s.contains("WATCHDOG=1")).count() >= 3
            && m.iter()
                .any(|s| s.contains("STATUS=") && s.contains("flows"))
    });
    let ready = msgs.iter().position(|s| s.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1: {msgs:?}");
    assert!(
        msgs.iter().filter(|s| s.contains("WATCHDOG=1")).count() >= 3,
        "watchdog pings every half interval: {msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|s| s.contains("STATUS=") && s.contains("packets/s")),
        "{msgs:?}"
    );
    // SIGTERM: STOPPING=1, then a clean exit with everything stored.
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { kill(child.id() as i32, 15) };
    assert_eq!(rc, 0);
    collect(
        &sock,
        &mut msgs,
        Instant::now() + Duration::from_secs(15),
        |m| m.iter().any(|s| s.contains("STOPPING=1")),
    );
    assert!(msgs.iter().any(|s| s.contains("STOPPING=1")), "{msgs:?}");
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    let conn = duckdb::Connection::open(dir.path().join("state/netguardian.duckdb")).unwrap();
    let flows: i64 = conn
        .query_row("SELECT count(*) FROM flows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(flows, 20, "every replayed flow is stored");
    let token = std::fs::read_to_string(dir.path().join("state/api-token")).unwrap();
    let out = Command::new(BIN)
        .arg("token")
        .env("NETGUARDIAN_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        token,
        "`netguardian token` prints it"
    );
}

#[test]
fn bad_config_exits_78_without_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    for (key, value, named) in [
        ("NETGUARDIAN_API__LISTEN", "not-an-address", "api.listen"),
        ("NETGUARDIAN_CAPTURE__INTERFACE", "nosuchif0", "nosuchif0"),
        ("NETGUARDIAN_LOGGING__LEVEL", "loud", "logging.level"),
        ("NETGUARDIAN_API__LISTN", "127.0.0.1:1", "listn"),
    ] {
        let out = Command::new("timeout")
            .args(["20", BIN, "serve"])
            .env("NOTIFY_SOCKET", &sock_path)
            .env("NETGUARDIAN_STATE_DIR", dir.path().join("state"))
            .env("NETGUARDIAN_API__LISTEN", "127.0.0.1:0")
            .env(key, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{key}={value}: {err}");
        assert!(err.contains(named), "{key}: error names {named}: {err}");
        let mut buf = [0u8; 512];
        assert!(
            sock.recv(&mut buf).is_err(),
            "{key}: nothing may be notified"
        );
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Started as root, `serve` refuses to go on when it cannot become its user or that
/// user cannot write its state folder, naming what is wrong (root only).
#[test]
fn privilege_drop_failures_are_named() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping privilege-drop failure test: not root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Mode 0700 and root's: nobody cannot enter it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let pcap = capture(dir.path());
    for (user, says) in [
        (
            "nosuchuser",
            "service.user \"nosuchuser\" does not exist".to_string(),
        ),
        (
            "nobody",
            format!(
                "user nobody cannot write in {}",
                dir.path().join("state").display()
            ),
        ),
    ] {
        let out = Command::new("timeout")
            .args(["30", BIN, "serve", "--pcap"])
            .arg(&pcap)
            .env("NETGUARDIAN_STATE_DIR", dir.path().join("state"))
            .env("NETGUARDIAN_API__LISTEN", "127.0.0.1:0")
            .env("NETGUARDIAN_SERVICE__USER", user)
            .env_remove("NETGUARDIAN_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{user}: {err}");
        assert!(err.contains(&says), "{user}: {err}");
    }
}
