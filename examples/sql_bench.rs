//! SQL and export benchmark (issue #7): builds a database with N flows (default 10
//! million) in the real schema with DuckDB's own `INSERT ... SELECT FROM range(N)`,
//! then measures Parquet export speed (rows/s) and the latency of the README's example
//! queries through the SQL sandbox. `bench/sql.sh` builds and runs it.
//!
//! usage: sql_bench [DB] [FLOWS]   (DB default /tmp/ng-sql-bench.duckdb; reused if it
//! already holds FLOWS flows)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use netguardian::store::Store;
use netguardian::store::export::{self, Format, Progress, Request};
use netguardian::store::sql::{self, Limits, OutputFormat};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let db = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/tmp/ng-sql-bench.duckdb"),
    );
    let n: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let store = Store::open(&db)?;
    let conn = store.connection()?;
    let have: i64 = conn.query_row("SELECT count(*) FROM flows_closed", [], |r| r.get(0))?;
    if have as u64 != n {
        let t = Instant::now();
        conn.execute_batch(&format!(
            "DELETE FROM flows_closed; DELETE FROM dns; DELETE FROM devices; DELETE FROM device_addresses;
             -- 50 home devices on 192.168.1.0/24.
             INSERT INTO devices SELECT printf('b8:27:eb:00:00:%02x', i), 'Raspberry Pi Trading Ltd', false,
                 TIMESTAMP '2026-10-01', TIMESTAMP '2026-10-31', 'host-' || i, 'dhcp', NULL, NULL,
                 '192.168.1.' || (10 + i), NULL, 0, 0, 0, 0, 0 FROM range(50) t(i);
             INSERT INTO device_addresses SELECT printf('b8:27:eb:00:00:%02x', i), '192.168.1.' || (10 + i), 4,
                 TIMESTAMP '2026-10-01', TIMESTAMP '2026-10-31', 'dhcp' FROM range(50) t(i);
             -- {n} flows over 30 days, time ordered like the writer appends them.
             INSERT INTO flows_closed SELECT
                 i, ts, ts + INTERVAL 2 SECOND, 2.0, CASE WHEN i % 5 = 0 THEN 'udp' ELSE 'tcp' END,
                 CASE WHEN i % 5 = 0 THEN 17 ELSE 6 END, CASE WHEN i % 3 = 0 THEN 'tls' ELSE NULL END, 0,
                 '192.168.1.' || (10 + i % 50), (32768 + i % 28000)::USMALLINT,
                 '203.0.' || ((hash(i) % 64)::INTEGER) || '.' || ((hash(i * 7) % 250)::INTEGER), (CASE WHEN i % 5 = 0 THEN 53 ELSE 443 END)::USMALLINT,
                 printf('b8:27:eb:00:00:%02x', i % 50), '00:1b:21:44:55:66', '1:' || md5(i::VARCHAR)[:27] || '=',
                 'SF', 'ShADadFf', 10, 1200 + i % 5000, 800, 12, 40000 + i % 90000, 39000,
                 1, 1, 0, 5, 9, 0, 1, 1, 0, 6, 11, 0,
                 60, 120.0, 30.0, 1500, 60, 1400.0, 200.0, 1500,
                 0.0, 0.1, 0.05, 0.5, 0.0, 0.1, 0.05, 0.5, 'closed', true
             FROM (SELECT range AS i, TIMESTAMP '2026-10-01' + to_microseconds((range * (30 * 86400000000 // {n}))::BIGINT) AS ts FROM range({n}));
             -- One DNS lookup per 5 flows, 2000 names.
             INSERT INTO dns (ts, flow_id, orig_addr, orig_port, resp_addr, resp_port, orig_mac, transport, trans_id, query, qtype, qtype_name, qclass, rcode, rcode_name)
             SELECT ts, id, orig_addr, orig_port, '192.168.1.1', 53, orig_mac, 'udp', 1,
                 'site-' || (hash(id) % 2000) || '.example', 1, 'A', 1, 0, 'NOERROR'
             FROM flows_closed WHERE id % 5 = 0;
             CHECKPOINT;"
        ))?;
        println!("built {} flows in {:.1} s", n, t.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&db)?.len();
    println!("database {} ({:.0} MB)", db.display(), size as f64 / 1e6);

    let out = std::env::temp_dir().join(format!("ng-sql-bench-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let req = Request {
        format: Format::Parquet,
        tables: vec!["flows"],
        since: None,
        until: None,
        out: out.clone(),
        encryption: None,
    };
    let m = export::export(&conn, &req, &Progress::default())?;
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    println!(
        "export parquet: {} flows, {} files, {:.0} MB in {:.1} s = {:.2} M rows/s",
        m.total_rows,
        m.files.len(),
        bytes as f64 / 1e6,
        m.elapsed_secs,
        m.total_rows as f64 / m.elapsed_secs / 1e6
    );
    let _ = std::fs::remove_dir_all(&out);
    let day = Request {
        since: Some(chrono::DateTime::parse_from_rfc3339("2026-10-15T00:00:00Z")?.into()),
        until: Some(chrono::DateTime::parse_from_rfc3339("2026-10-16T00:00:00Z")?.into()),
        ..req
    };
    let m = export::export(&conn, &day, &Progress::default())?;
    println!(
        "export parquet, one day: {} flows in {:.2} s = {:.2} M rows/s",
        m.total_rows,
        m.elapsed_secs,
        m.total_rows as f64 / m.elapsed_secs / 1e6
    );
    let _ = std::fs::remove_dir_all(&out);

    store.restrict(&[])?;
    let limits = Limits {
        timeout: Duration::from_secs(120),
        max_rows: 10_000,
    };
    let queries = [
        "SELECT orig_mac, sum(orig_bytes + resp_bytes) / 1e6 AS mb FROM flows GROUP BY ALL ORDER BY mb DESC LIMIT 10",
        "SELECT * FROM device_bytes_daily WHERE day = DATE '2026-10-15' ORDER BY bytes DESC",
        "SELECT domain, queries FROM device_top_domains WHERE mac = 'b8:27:eb:00:00:05' AND rank <= 10",
        "SELECT mac, count(*) FROM new_destinations GROUP BY mac ORDER BY 2 DESC LIMIT 10",
        "SELECT count(*) FROM flows WHERE ts >= TIMESTAMP '2026-10-15' AND ts < TIMESTAMP '2026-10-16'",
        "SELECT orig_addr, resp_addr, resp_port, conn_state FROM flows WHERE conn_state IN ('S0', 'REJ') AND ts > (SELECT max(ts) FROM flows) - INTERVAL 1 HOUR",
    ];
    for q in queries {
        let c = store.connection()?;
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let r = sql::run(&c, q, OutputFormat::Json, limits, &store.scratch_dir())?;
            times.push(t.elapsed());
            rows = r.rows;
        }
        times.sort();
        println!(
            "{:>8.1} ms  {:>5} rows  {q}",
            times[1].as_secs_f64() * 1000.0,
            rows
        );
    }
    Ok(())
}
