//! The `netguardian` command line as a user meets it: exit codes, messages, the
//! summary, and the JSON summary the benchmark reads.

mod craft;

use std::process::Command;

use craft::*;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netguardian"));
    // Keep the user's environment from leaking into the test.
    for (k, _) in std::env::vars() {
        if k.starts_with("NETGUARDIAN_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn analyze_prints_summary_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("dns.pcap");
    let mut p = Pcap::default();
    let q = dns_message(9, false, 0, "example.net", 1, &[]);
    p.push(
        T0,
        udp(
            CLIENT_MAC,
            ROUTER_MAC,
            [192, 168, 1, 10],
            5000,
            [192, 168, 1, 1],
            53,
            &q,
        ),
    );
    p.push(T0 + 10, vec![0u8; 8]); // runt frame
    p.write(&pcap);
    let db = dir.path().join("out.duckdb");
    let json = dir.path().join("s.json");
    let out = bin()
        .args(["analyze", "--no-progress", "--db"])
        .arg(&db)
        .arg("--summary-json")
        .arg(&json)
        .arg(&pcap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("packets    2 "), "{stdout}");
    assert!(
        stdout.contains("malformed  1 (truncated_link_header 1)"),
        "{stdout}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(s["packets"], 2);
    assert_eq!(s["flows"], 1);
    assert_eq!(s["dns"], 1);
    assert!(s["elapsed_secs"].as_f64().unwrap() > 0.0);
    assert!(db.exists());
}

#[test]
fn missing_or_non_capture_files_fail_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.duckdb");
    let out = bin()
        .args(["analyze", "--db"])
        .arg(&db)
        .arg("/nonexistent/x.pcap")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.pcap: no such file"));

    let junk = dir.path().join("junk.pcapng");
    std::fs::write(&junk, b"GIF89a not a capture").unwrap();
    let out = bin()
        .args(["analyze", "--no-progress", "--db"])
        .arg(&db)
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "nothing readable is a failure");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("junk.pcapng: not a pcap or pcapng file"),
        "{stdout}"
    );
}

#[test]
fn bad_configuration_exits_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[flow]\nmax_flows = 1000\nidle = 3\n").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("idle") && err.contains("bad.toml"), "{err}");

    let out = bin()
        .arg("check-config")
        .env("NETGUARDIAN_FLOW__MAX_FLOWS", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("flow.max_flows")
    );

    let out = bin()
        .arg("check-config")
        .env("NETGUARDIAN_FLOW__MAX_FLOWS", "5000")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_flows = 5000"));
}

#[test]
fn invalid_capture_filter_is_reported() {
    // Opening an interface needs privileges; "lo" exists everywhere. Without root
    // the error names the interface instead, which is also a clear error.
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "capture",
            "--interface",
            "lo",
            "--filter",
            "port nonsense",
            "--duration",
            "1",
            "--db",
        ])
        .arg(dir.path().join("x.duckdb"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(
            err.contains("invalid capture filter \"port nonsense\""),
            "{err}"
        );
    } else {
        assert!(err.contains("lo"), "{err}");
    }
}

/// Dotted paths of every key in a TOML table (arrays of tables count as one key).
fn key_paths(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if matches!(v, toml::Value::Table(_)) {
                key_paths(v, &p, out);
            }
            out.push(p);
        }
    }
}

/// config.example.toml (scripts/gen-config-example.py) lists every key with the code's
/// default: uncommented, it parses to exactly `Config::default()` and has the same keys.
#[test]
fn the_example_config_lists_every_key_with_its_default() {
    use netguardian::config::Config;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let uncommented: String = text
        .lines()
        .filter(|l| !l.starts_with("##"))
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        uncommented.lines().all(|l| !l.starts_with('#')),
        "every line is a `## ` description or a `# ` setting"
    );
    let parsed: Config = toml::from_str(&uncommented)
        .unwrap_or_else(|e| panic!("config.example.toml, uncommented: {e}"));
    assert!(
        parsed == Config::default(),
        "config.example.toml disagrees with the code's defaults; run scripts/gen-config-example.py"
    );
    let (mut have, mut want) = (Vec::new(), Vec::new());
    key_paths(&toml::from_str(&uncommented).unwrap(), "", &mut have);
    key_paths(
        &toml::Value::try_from(Config::default()).unwrap(),
        "",
        &mut want,
    );
    have.sort();
    want.sort();
    assert_eq!(have, want, "keys of config.example.toml vs the code's");
    // Options unset by default are described with an example value.
    for key in [
        "state_dir =",
        "models_dir =",
        "trainer_dir =",
        "passphrase =",
    ] {
        assert!(
            text.contains(&format!("## (unset by default) {key}")),
            "{key}"
        );
    }
}

/// A bad value is named with where it was set (the file or the environment variable),
/// and folders the configuration names must exist: `check-config` exits 78 like `serve`.
#[test]
fn config_errors_name_the_key_value_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, "[ml]\nbatch_size = 0\n").unwrap();
    let run = |envs: &[(&str, &str)]| {
        let out = bin()
            .args(["--config", conf.to_str().unwrap(), "check-config"])
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(78));
    assert!(
        err.contains(&format!(
            "ml.batch_size must be 1..=65536 rows, got 0 (set in {})",
            conf.display()
        )),
        "{err}"
    );
    std::fs::write(&conf, "[ml]\nmodels_dir = \"/nonexistent/models\"\n").unwrap();
    let (code, err) = run(&[("NETGUARDIAN_FLOW__MAX_FLOWS", "0")]);
    assert_eq!(code, Some(78));
    assert!(err.contains("set by NETGUARDIAN_FLOW__MAX_FLOWS"), "{err}");
    let (code, err) = run(&[]);
    assert_eq!(code, Some(78));
    assert!(
        err.contains(&format!(
            "ml.models_dir = \"/nonexistent/models\": cannot read that folder (No such file or directory (os error 2)) (set in {})",
            conf.display()
        )),
        "{err}"
    );
    let (code, err) = run(&[
        ("NETGUARDIAN_ML__MODELS_DIR", dir.path().to_str().unwrap()),
        (
            "NETGUARDIAN_ML__TRAIN__TRAINER_DIR",
            dir.path().to_str().unwrap(),
        ),
    ]);
    assert_eq!(code, Some(78));
    assert!(
        err.contains("ml.train.trainer_dir")
            && err.contains("it has no netguardian_models")
            && err.contains("set by NETGUARDIAN_ML__TRAIN__TRAINER_DIR"),
        "{err}"
    );
    std::fs::write(&conf, format!("[ml]\nmodels_dir = {:?}\n", dir.path())).unwrap();
    assert_eq!(run(&[]).0, Some(0));
}
