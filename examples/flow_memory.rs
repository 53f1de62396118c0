//! Measures what a tracked flow costs: fills a flow table with N distinct flows (one
//! SYN each, as in a flood from random sources) and reports the resident-memory growth
//! per flow, next to the table entry's static size, and what stays resident once the
//! flood's flows have expired.
//!
//! `cargo run --release --example flow_memory -- 1000000`

use std::net::{IpAddr, Ipv4Addr};

use netguardian::config::FlowConfig;
use netguardian::flow::{FlowTable, PacketInfo};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = FlowConfig {
        max_flows: n,
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(cfg, 1);
    let mut out = Vec::new();
    let before = rss_bytes();
    let t = std::time::Instant::now();
    for i in 0..n as u32 {
        let p = PacketInfo {
            ts: 1_700_000_000_000_000 + i as i64,
            wire_len: 60,
            src_mac: Some([2, 0, 0, 0, 0, 1]),
            dst_mac: Some([2, 0, 0, 0, 0, 2]),
            vlan: 0,
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            proto: 6,
            sport: 1024 + (i % 60000) as u16,
            dport: 80,
            tcp: Some((i, 0x02, 1024)),
            payload_len: 0,
            msg_len: 0,
            payload: &[],
            later_fragment: false,
        };
        table.process(&p, &mut out);
        out.clear();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    println!("flows tracked        {}", table.len());
    println!(
        "entry size (static)  {} bytes",
        netguardian::flow::table::flow_entry_size()
    );
    println!(
        "RSS growth per flow  {:.1} bytes (incl. hash table slack)",
        grown as f64 / table.len().max(1) as f64
    );
    println!(
        "insert rate          {:.2} M new flows/s",
        n as f64 / elapsed / 1e6
    );
    // A minute later the flood's unanswered SYNs have expired: what stays resident?
    table.advance(1_700_000_000_000_000 + n as i64 + 60_000_000, &mut out);
    let expired = out.len();
    drop(out);
    println!(
        "a minute later       {} flows left, {} written; RSS {:.1} MB above the start (was {:.1} MB)",
        table.len(),
        expired,
        rss_bytes().saturating_sub(before) as f64 / 1e6,
        grown as f64 / 1e6
    );
}
