//! Live capture test: a network namespace joined to the host by a veth pair, real
//! traffic (ping, a DNS query, an HTTP request) crossing it while `netguardian capture`
//! listens on the host end. Needs root (CI runs as root); skips with a message otherwise.

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A namespace joined to the host by a veth pair whose host end is up; removed on drop.
struct Netns {
    ns: String,
    host_if: String,
    peer_if: String,
}

impl Netns {
    /// Names are `{tag}n{id}` (namespace), `{tag}h{id}` (host end), `{tag}p{id}`
    /// (namespace end), all within the 15-character interface name limit.
    fn create(tag: &str) -> Netns {
        let id = std::process::id() % 100_000;
        let env = Netns {
            ns: format!("{tag}n{id}"),
            host_if: format!("{tag}h{id}"),
            peer_if: format!("{tag}p{id}"),
        };
        sh(&["ip", "netns", "add", &env.ns]);
        sh(&[
            "ip",
            "link",
            "add",
            &env.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &env.peer_if,
        ]);
        sh(&["ip", "link", "set", &env.peer_if, "netns", &env.ns]);
        sh(&["ip", "link", "set", &env.host_if, "up"]);
        env
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect(args[0]);
    assert!(st.success(), "command failed: {args:?}");
}

fn can_run() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    for tool in ["ip", "ping"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("{tool} not installed"));
        }
    }
    Ok(())
}

/// Answers DNS queries on `sock` with one A record, until `n` have been answered.
fn dns_responder(sock: UdpSocket, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        for _ in 0..n {
            let Ok((len, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let mut r = buf[..len].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[7] = 1; // one answer
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 213, 0, 1]);
            let _ = sock.send_to(&r, peer);
        }
    })
}

#[test]
fn live_capture_on_veth() {
    if let Err(why) = can_run() {
        eprintln!("skipping live capture test: {why} (needs root, iproute2 and ping)");
        return;
    }
    let env = Netns::create("ng");
    let peer_if = env.peer_if.clone();
    sh(&["ip", "addr", "add", "10.213.0.1/24", "dev", &env.host_if]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &env.ns,
        "ip",
        "addr",
        "add",
        "10.213.0.2/24",
        "dev",
        &peer_if,
    ]);
    sh(&[
        "ip", "netns", "exec", &env.ns, "ip", "link", "set", &peer_if, "up",
    ]);
    sh(&[
        "ip", "netns", "exec", &env.ns, "ip", "link", "set", "lo", "up",
    ]);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.duckdb");
    let summary = dir.path().join("summary.json");
    let mut cap = Command::new(env!("CARGO_BIN_EXE_netguardian"))
        .args([
            "capture",
            "--interface",
            &env.host_if,
            "--duration",
            "8",
            "--db",
        ])
        .arg(&db)
        .arg("--summary-json")
        .arg(&summary)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // DNS: a responder on the host, a query from the namespace.
    let dns_sock = UdpSocket::bind("10.213.0.1:53").unwrap();
    let dns = dns_responder(dns_sock, 1);
    // HTTP: a server on the host, a request from the namespace.
    let http = std::net::TcpListener::bind("10.213.0.1:8080").unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = http.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
    });
    sh(&[
        "ip",
        "netns",
        "exec",
        &env.ns,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "10.213.0.1",
    ]);
    let py = r#"
import socket, urllib.request
q = bytes.fromhex('beef01000001000000000000') + b'\x07printer\x04home\x00' + bytes.fromhex('00010001')
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(q, ('10.213.0.1', 53)); s.recv(512)
urllib.request.urlopen('http://10.213.0.1:8080/live-test', timeout=5).read()
"#;
    sh(&["ip", "netns", "exec", &env.ns, "python3", "-c", py]);
    dns.join().unwrap();
    server.join().unwrap();

    let status = cap.wait().unwrap();
    assert!(status.success(), "capture exited with {status}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(s["packets"].as_u64().unwrap() >= 6 + 2 + 5, "{s}");

    let store = netguardian::store::Store::open(&db).unwrap();
    let conn = store.connection().unwrap();
    let flows: Vec<String> = conn
        .prepare("SELECT proto || ' ' || orig_addr || ' ' || resp_addr || ' ' || resp_port || ' ' || conn_state || ' ' || orig_pkts || ' ' || resp_pkts FROM flows WHERE orig_addr = '10.213.0.2' ORDER BY proto, resp_port")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        flows.contains(&"icmp 10.213.0.2 10.213.0.1 0 OTH 3 3".to_string()),
        "{flows:?}"
    );
    assert!(
        flows.contains(&"udp 10.213.0.2 10.213.0.1 53 SF 1 1".to_string()),
        "{flows:?}"
    );
    assert!(
        flows
            .iter()
            .any(|f| f.starts_with("tcp 10.213.0.2 10.213.0.1 8080 SF")),
        "{flows:?}"
    );
    let uri: String = conn
        .query_row("SELECT uri || ' ' || status FROM http", [], |r| r.get(0))
        .unwrap();
    assert_eq!(uri, "/live-test 204");
    let dns: String = conn
        .query_row("SELECT query || ' ' || answers[1] FROM dns", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dns, "printer.home 10.213.0.1");
    let devices: i64 = conn
        .query_row(
            "SELECT count(*) FROM device_addresses WHERE addr IN ('10.213.0.1', '10.213.0.2')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(devices, 2, "both veth ends are learned as devices");
}

#[test]
fn silent_interface_still_stops_on_time() {
    if let Err(why) = can_run() {
        eprintln!("skipping silent interface test: {why} (needs root, iproute2 and ping)");
        return;
    }
    let env = Netns::create("nq");
    let host_if = env.host_if.clone();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    // No traffic at all crosses this link: libpcap in immediate mode would block forever.
    let out = Command::new(env!("CARGO_BIN_EXE_netguardian"))
        .args([
            "capture",
            "--interface",
            &host_if,
            "--duration",
            "1",
            "--db",
        ])
        .arg(dir.path().join("quiet.duckdb"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "capture ignored its duration on a silent link: {took:?}"
    );
}

/// The least privilege the service needs, checked: `serve` as user nobody with only
/// CAP_NET_RAW (ambient, as systemd's AmbientCapabilities= gives it) captures on an
/// interface, and keeps no other capability.
#[test]
fn serve_captures_as_nobody_with_only_cap_net_raw() {
    if let Err(why) = can_run() {
        eprintln!("skipping unprivileged serve test: {why} (needs root, iproute2 and ping)");
        return;
    }
    if !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipping unprivileged serve test: setpriv (util-linux) not installed");
        return;
    }
    unprivileged_serve("ngr", 214, true);
}

/// Started as root outside systemd, `serve` becomes service.user first thing, with only
/// CAP_NET_RAW (also in the bounding set), no-new-privileges and no supplementary
/// groups, and hands it the state folder it creates.
#[test]
fn serve_started_as_root_drops_to_the_service_user() {
    if let Err(why) = can_run() {
        eprintln!("skipping privilege-drop test: {why} (needs root, iproute2 and ping)");
        return;
    }
    unprivileged_serve("ngd", 215, false);
}

/// Runs `serve` on a veth (10.{net}.0.1) either through setpriv as nobody or as root
/// with service.user = nobody, checks its credentials, pings across, and checks the
/// flow was stored.
fn unprivileged_serve(tag: &str, net: u8, via_setpriv: bool) {
    let env = Netns::create(tag);
    let peer_if = env.peer_if.clone();
    let (host_ip, peer_ip) = (format!("10.{net}.0.1"), format!("10.{net}.0.2"));
    sh(&[
        "ip",
        "addr",
        "add",
        &format!("{host_ip}/24"),
        "dev",
        &env.host_if,
    ]);
    let peer_cidr = format!("{peer_ip}/24");
    for args in [
        vec!["ip", "addr", "add", &peer_cidr, "dev", &peer_if],
        vec!["ip", "link", "set", &peer_if, "up"],
    ] {
        let mut a = vec!["ip", "netns", "exec", &env.ns];
        a.extend(args);
        sh(&a);
    }
    // Everything nobody must reach: a traversable folder, the binary (a hard link, as
    // the build folder under /root is not), its own state folder.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("netguardian");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_netguardian"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_netguardian"), &bin).unwrap();
    }
    let state = dir.path().join("state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = if via_setpriv {
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+net_raw",
            "--ambient-caps=-all,+net_raw",
            "--bounding-set=-all,+net_raw",
            "--",
        ])
        .arg(&bin);
        c
    } else {
        let mut c = Command::new(&bin);
        c.env("NETGUARDIAN_SERVICE__USER", "nobody");
        c
    };
    let mut child = cmd
        .arg("serve")
        .env("NETGUARDIAN_STATE_DIR", &state)
        .env("NETGUARDIAN_CAPTURE__INTERFACE", &env.host_if)
        .env("NETGUARDIAN_API__LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("NETGUARDIAN_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("serve exited with {st}: {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the API never came up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| {
                l[k.len()..]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534");
    assert_eq!(field("Gid:"), "65534 65534 65534 65534");
    assert_eq!(field("Groups:"), "");
    assert_eq!(field("CapEff:"), "0000000000002000", "only CAP_NET_RAW");
    assert_eq!(field("CapPrm:"), "0000000000002000");
    assert_eq!(field("CapBnd:"), "0000000000002000");
    if !via_setpriv {
        assert_eq!(field("NoNewPrivs:"), "1");
        let md = std::fs::metadata(state.join("netguardian.duckdb")).unwrap();
        assert_eq!(
            (
                std::os::unix::fs::MetadataExt::uid(&md),
                std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&state).unwrap())
            ),
            (65534, 65534),
            "the database and the state folder belong to the service user"
        );
    }
    std::thread::sleep(Duration::from_millis(1000));
    sh(&[
        "ip", "netns", "exec", &env.ns, "ping", "-c", "3", "-i", "0.2", &host_ip,
    ]);
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let st = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(st.success(), "serve exited with {st}: {err}");
    let store = netguardian::store::Store::open(&state.join("netguardian.duckdb")).unwrap();
    let icmp: String = store
        .connection()
        .unwrap()
        .query_row(
            &format!(
                "SELECT proto || ' ' || conn_state || ' ' || orig_pkts || ' ' || resp_pkts \
                 FROM flows WHERE orig_addr = '{peer_ip}' AND resp_addr = '{host_ip}'"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(icmp, "icmp OTH 3 3");
}
