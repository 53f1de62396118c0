//! End-to-end tests of the data plane on crafted captures: packets are built with
//! etherparse, written as pcap, run through the same pipeline `analyze` uses, and the
//! resulting DuckDB rows are checked exactly.

mod craft;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use craft::*;
use netguardian::capture::Progress;
use netguardian::config::Config;
use netguardian::pipeline::{self, Input, RunSummary};
use netguardian::store::Store;

const C: [u8; 4] = [192, 168, 1, 10];
const S: [u8; 4] = [93, 184, 216, 34];
const GW: [u8; 4] = [192, 168, 1, 1];
const SEC: i64 = 1_000_000;

fn run_files(cfg: &Config, store: &Store, files: Vec<PathBuf>) -> RunSummary {
    pipeline::run(
        cfg,
        store,
        Input::Files(files),
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        None,
    )
    .expect("pipeline run")
}

fn analyze(pcap: &Pcap, cfg: &Config) -> (tempfile::TempDir, Store, RunSummary) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pcap");
    pcap.write(&p);
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let s = run_files(cfg, &store, vec![p]);
    (dir, store, s)
}

fn q<T: duckdb::types::FromSql>(store: &Store, sql: &str) -> Vec<T> {
    let conn = store.connection().unwrap();
    let mut st = conn.prepare(sql).unwrap();
    st.query_map([], |r| r.get::<_, T>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn q1<T: duckdb::types::FromSql>(store: &Store, sql: &str) -> T {
    let mut v = q::<T>(store, sql);
    assert_eq!(v.len(), 1, "{sql}: expected one row, got {}", v.len());
    v.remove(0)
}

/// A complete HTTP exchange: handshake, request, response, FIN/FIN, last ACK.
fn http_session(p: &mut Pcap, t: i64, sport: u16) {
    http_exchange(p, t, (CLIENT_MAC, C), sport, S, b"hello");
}

#[test]
fn http_session_becomes_one_sf_flow_with_metadata() {
    let mut p = Pcap::default();
    http_session(&mut p, T0, 40000);
    let (_d, store, sum) = analyze(&p, &Config::default());
    assert_eq!(sum.packets, 8);
    assert_eq!(sum.flows, 1);
    assert_eq!(q1::<String>(&store, "SELECT conn_state FROM flows"), "SF");
    assert_eq!(q1::<String>(&store, "SELECT history FROM flows"), "ShADdFf");
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT orig_addr || ':' || orig_port || '>' || resp_addr || ':' || resp_port FROM flows"
        ),
        "192.168.1.10:40000>93.184.216.34:80"
    );
    // Client: SYN 54 + ACK 54 + request (54+70) + FIN 54 + ACK 54; server: SYN-ACK, response (54+65), FIN.
    let (op, ob, opl): (u64, u64, u64) = {
        let conn = store.connection().unwrap();
        conn.query_row(
            "SELECT orig_pkts, orig_bytes, orig_payload_bytes FROM flows",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!((op, ob, opl), (5, 5 * 54 + 69, 69), "request is 69 bytes");
    assert_eq!(q1::<u64>(&store, "SELECT resp_pkts FROM flows"), 3);
    assert_eq!(
        q1::<u64>(&store, "SELECT resp_bytes FROM flows"),
        3 * 54 + 69
    );
    assert_eq!(
        q1::<u64>(&store, "SELECT resp_payload_bytes FROM flows"),
        69
    );
    assert_eq!(q1::<f64>(&store, "SELECT duration FROM flows"), 0.007);
    assert_eq!(q1::<String>(&store, "SELECT app_proto FROM flows"), "http");
    assert_eq!(
        q1::<String>(&store, "SELECT end_reason FROM flows"),
        "shutdown"
    );
    assert_eq!(
        q1::<String>(&store, "SELECT orig_mac FROM flows"),
        "b8:27:eb:11:22:33"
    );
    assert_eq!(q1::<String>(&store, "SELECT proto FROM flows"), "tcp");
    assert_eq!(
        q1::<u32>(
            &store,
            "SELECT orig_syn + orig_fin * 10 + resp_syn * 100 + resp_fin * 1000 FROM flows"
        ),
        1111
    );
    // HTTP metadata, linked to the flow.
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT method || ' ' || host || uri || ' ' || status || ' ' || user_agent FROM http"
        ),
        "GET example.com/index.html 200 curl/8.0"
    );
    assert_eq!(
        q1::<i64>(
            &store,
            "SELECT count(*) FROM http JOIN flows ON http.flow_id = flows.id"
        ),
        1
    );
    // Timestamps are packet time.
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT strftime(ts, '%Y-%m-%d %H:%M:%S.%f') FROM flows"
        ),
        "2023-11-14 22:13:20.000000"
    );
}

#[test]
fn rejected_unanswered_and_midstream_connections() {
    let mut p = Pcap::default();
    let (c, s) = (CLIENT_MAC, ROUTER_MAC);
    // REJ: SYN answered by RST.
    p.push(T0, tcp(c, s, C, 40001, S, 23, 1, 0, SYN, &[]));
    p.push(T0 + 100, tcp(s, c, S, 23, C, 40001, 0, 2, RSTACK, &[]));
    // S0: SYN, never answered.
    p.push(T0 + 200, tcp(c, s, C, 40002, S, 3389, 1, 0, SYN, &[]));
    // SYN-ACK seen first: the other side is the initiator.
    p.push(T0 + 300, tcp(s, c, S, 443, C, 40003, 9, 2, SYNACK, &[]));
    p.push(T0 + 400, tcp(c, s, C, 40003, S, 443, 2, 10, ACK, &[]));
    // Seen mid-stream: data, then the originator resets; the responder never spoke.
    // Zeek: OTH (RSTO needs a responder that took part, RSTOS0 a history `S...R`).
    p.push(T0 + 500, tcp(c, s, C, 40004, S, 8443, 7, 9, PSHACK, b"x"));
    p.push(T0 + 600, tcp(c, s, C, 40004, S, 8443, 8, 9, RST, &[]));
    // SYN, then the originator resets: RSTOS0.
    p.push(T0 + 700, tcp(c, s, C, 40005, S, 8080, 1, 0, SYN, &[]));
    p.push(T0 + 800, tcp(c, s, C, 40005, S, 8080, 2, 0, RST, &[]));
    let (_d, store, _) = analyze(&p, &Config::default());
    let rows = q::<String>(
        &store,
        "SELECT resp_port || ' ' || conn_state || ' ' || history || ' ' || orig_addr FROM flows ORDER BY resp_port",
    );
    assert_eq!(
        rows,
        vec![
            "23 REJ Sr 192.168.1.10",
            "443 OTH ^hA 192.168.1.10",
            "3389 S0 S 192.168.1.10",
            "8080 RSTOS0 SR 192.168.1.10",
            "8443 OTH DR 192.168.1.10",
        ]
    );
}

#[test]
fn dns_transaction_and_udp_flow() {
    let mut p = Pcap::default();
    let query = dns_message(0x1234, false, 0, "www.example.com", 1, &[]);
    let r = dns_message(
        0x1234,
        true,
        0,
        "www.example.com",
        1,
        &[(Ipv4Addr::new(93, 184, 216, 34), 300)],
    );
    let nx = dns_message(0x7777, true, 3, "nope.example.com", 1, &[]);
    let nq = dns_message(0x7777, false, 0, "nope.example.com", 1, &[]);
    p.push(T0, udp(CLIENT_MAC, ROUTER_MAC, C, 53000, GW, 53, &query));
    p.push(
        T0 + 12_000,
        udp(ROUTER_MAC, CLIENT_MAC, GW, 53, C, 53000, &r),
    );
    p.push(
        T0 + 20_000,
        udp(CLIENT_MAC, ROUTER_MAC, C, 53001, GW, 53, &nq),
    );
    p.push(
        T0 + 25_000,
        udp(ROUTER_MAC, CLIENT_MAC, GW, 53, C, 53001, &nx),
    );
    let (_d, store, sum) = analyze(&p, &Config::default());
    assert_eq!(sum.dns, 2);
    assert_eq!(
        q::<String>(
            &store,
            "SELECT query || ' ' || qtype_name || ' ' || rcode_name || ' ' || coalesce(answers[1], '-') || ' ' || coalesce(ttls[1]::VARCHAR, '-') FROM dns ORDER BY ts"
        ),
        vec![
            "www.example.com A NOERROR 93.184.216.34 300",
            "nope.example.com A NXDOMAIN - -"
        ]
    );
    assert_eq!(
        q1::<f64>(&store, "SELECT rtt FROM dns WHERE trans_id = 4660"),
        0.012
    );
    assert_eq!(
        q::<String>(
            &store,
            "SELECT conn_state || ' ' || history || ' ' || app_proto FROM flows ORDER BY ts"
        ),
        vec!["SF Dd dns", "SF Dd dns"]
    );
}

#[test]
fn devices_from_arp_and_dhcp() {
    let mut p = Pcap::default();
    let params = [1u8, 121, 3, 6, 15, 119, 252];
    let disc = dhcp_message(
        1,
        1,
        0xabcd,
        PHONE_MAC,
        [0; 4],
        Some("Pixel-7"),
        Some("android-dhcp-14"),
        &params,
    );
    let ack = dhcp_message(2, 5, 0xabcd, PHONE_MAC, [192, 168, 1, 23], None, None, &[]);
    p.push(
        T0,
        udp(PHONE_MAC, [0xff; 6], [0, 0, 0, 0], 68, [255; 4], 67, &disc),
    );
    p.push(
        T0 + 1000,
        udp(ROUTER_MAC, PHONE_MAC, GW, 67, [192, 168, 1, 23], 68, &ack),
    );
    p.push(T0 + 2000, arp(ROUTER_MAC, GW, [0; 6], [192, 168, 1, 23]));
    p.push(T0 + 3000, arp(PHONE_MAC, [192, 168, 1, 23], ROUTER_MAC, GW));
    http_session(&mut p, T0 + 10 * SEC, 40010);
    let (_d, store, sum) = analyze(&p, &Config::default());
    assert_eq!(sum.dhcp, 2);
    assert_eq!(sum.devices, 3, "phone, router, client");
    let phone = q1::<String>(
        &store,
        "SELECT hostname || ' ' || randomized || ' ' || dhcp_vendor_class || ' ' || dhcp_fingerprint || ' ' || last_ipv4 FROM devices WHERE mac = '7a:11:22:33:44:55'",
    );
    assert_eq!(
        phone,
        "Pixel-7 true android-dhcp-14 1,121,3,6,15,119,252 192.168.1.23"
    );
    assert!(
        q1::<Option<String>>(
            &store,
            "SELECT vendor FROM devices WHERE mac = '7a:11:22:33:44:55'"
        )
        .is_none()
    );
    let pi_vendor = q1::<String>(
        &store,
        "SELECT vendor FROM devices WHERE mac = 'b8:27:eb:11:22:33'",
    );
    assert!(
        pi_vendor.to_lowercase().contains("raspberry"),
        "{pi_vendor}"
    );
    assert_eq!(
        q::<String>(
            &store,
            "SELECT mac || ' ' || addr || ' ' || source FROM device_addresses ORDER BY mac, addr"
        ),
        vec![
            "00:1b:21:44:55:66 192.168.1.1 arp",
            "7a:11:22:33:44:55 192.168.1.23 dhcp",
            "b8:27:eb:11:22:33 192.168.1.10 ip",
        ]
    );
    // The client device carries its traffic counters and its one flow.
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT pkts_sent || ' ' || pkts_recv || ' ' || flows FROM devices WHERE mac = 'b8:27:eb:11:22:33'"
        ),
        "5 3 1"
    );
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT client_mac || ' ' || msg_type || ' ' || hostname FROM dhcp WHERE msg_type = 'DISCOVER'"
        ),
        "7a:11:22:33:44:55 DISCOVER Pixel-7"
    );
}

/// A local host that only receives (here: a camera's answers are not mirrored) is
/// still a device, named by the local address its frames are sent to.
#[test]
fn a_receive_only_host_is_a_device() {
    const CAM_MAC: [u8; 6] = [0x00, 0x12, 0x34, 0x56, 0x78, 0x9a];
    let mut p = Pcap::default();
    for i in 0..3 {
        p.push(
            T0 + i * SEC,
            udp(
                ROUTER_MAC,
                CAM_MAC,
                S,
                5000,
                [192, 168, 1, 77],
                554,
                b"hello",
            ),
        );
    }
    let (_d, store, sum) = analyze(&p, &Config::default());
    assert_eq!(
        sum.devices, 1,
        "the camera; the router sent from an internet address"
    );
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT d.mac || ' ' || pkts_sent || ' ' || pkts_recv || ' ' || bytes_recv || ' ' || d.last_ipv4 || ' ' || a.source FROM devices d JOIN device_addresses a USING (mac)"
        ),
        "00:12:34:56:78:9a 0 3 141 192.168.1.77 ip"
    );
}

/// A second run (a service restart, or `analyze` of the next day's capture into the
/// same database) adds to what the first stored about a device: first seen, counters
/// and the DHCP hostname survive; last seen and the latest address move on.
#[test]
fn devices_accumulate_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.duckdb");
    let mut day1 = Pcap::default();
    let disc = dhcp_message(
        1,
        1,
        0x1234,
        PHONE_MAC,
        [0; 4],
        Some("Pixel-7"),
        None,
        &[1, 3],
    );
    day1.push(
        T0,
        udp(PHONE_MAC, [0xff; 6], [0, 0, 0, 0], 68, [255; 4], 67, &disc),
    );
    http_session(&mut day1, T0 + SEC, 40010);
    let mut day2 = Pcap::default();
    let t1 = T0 + 86_400 * SEC;
    http_session(&mut day2, t1, 40020);
    http_session(&mut day2, t1 + 5 * SEC, 40021);
    day2.push(
        t1 + 20 * SEC,
        arp(PHONE_MAC, [192, 168, 1, 24], ROUTER_MAC, GW),
    );
    let p1 = dir.path().join("day1.pcap");
    let p2 = dir.path().join("day2.pcap");
    day1.write(&p1);
    day2.write(&p2);
    let row = |store: &Store, mac: &str| {
        q1::<String>(
            store,
            &format!(
                "SELECT epoch(first_seen)::BIGINT || ' ' || epoch(last_seen)::BIGINT || ' ' || pkts_sent || ' ' || pkts_recv || ' ' || flows || ' ' || coalesce(hostname, '-') || ' ' || coalesce(last_ipv4, '-') FROM devices WHERE mac = '{mac}'"
            ),
        )
    };
    let s0 = T0 / SEC;
    {
        let store = Store::open(&db).unwrap();
        run_files(&Config::default(), &store, vec![p1]);
        assert_eq!(
            row(&store, "b8:27:eb:11:22:33"),
            format!("{} {} 5 3 1 - 192.168.1.10", s0 + 1, s0 + 1)
        );
        assert_eq!(
            row(&store, "7a:11:22:33:44:55"),
            format!("{s0} {s0} 0 0 0 Pixel-7 -")
        );
    }
    let store = Store::open(&db).unwrap();
    run_files(&Config::default(), &store, vec![p2]);
    let s1 = t1 / SEC;
    assert_eq!(
        row(&store, "b8:27:eb:11:22:33"),
        format!("{} {} 15 9 3 - 192.168.1.10", s0 + 1, s1 + 5)
    );
    assert_eq!(
        row(&store, "7a:11:22:33:44:55"),
        format!("{s0} {} 1 0 0 Pixel-7 192.168.1.24", s1 + 20)
    );
    assert_eq!(
        q1::<i64>(&store, "SELECT count(*) FROM devices"),
        2,
        "phone and client: one row each"
    );
}

/// A run killed mid-way leaves its long flows' latest updates in `flows_open`; the next
/// run closes them as `interrupted` instead of showing them as running forever.
#[test]
fn flows_a_killed_run_left_open_are_closed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::default();
    http_session(&mut p, T0, 40010);
    let pcap = dir.path().join("t.pcap");
    p.write(&pcap);
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    run_files(&Config::default(), &store, vec![pcap.clone()]);
    // What a kill between two active-timeout updates leaves behind.
    store
        .connection()
        .unwrap()
        .execute_batch(
            "INSERT INTO flows_open SELECT * REPLACE (false AS is_final, 'active_timeout' AS end_reason) FROM flows_closed;
             DELETE FROM flows_closed;",
        )
        .unwrap();
    assert_eq!(q1::<i64>(&store, "SELECT count(*) FROM flows_open"), 1);
    run_files(&Config::default(), &store, vec![pcap]);
    assert_eq!(q1::<i64>(&store, "SELECT count(*) FROM flows_open"), 0);
    assert_eq!(
        q::<String>(
            &store,
            "SELECT (id >> 40) || ' ' || end_reason || ' ' || is_final FROM flows ORDER BY id"
        ),
        vec!["1 interrupted true", "2 shutdown true"]
    );
}

#[test]
fn malformed_packets_are_counted_by_reason() {
    let mut p = Pcap::default();
    http_session(&mut p, T0, 40020);
    let good = udp(CLIENT_MAC, ROUTER_MAC, C, 1, GW, 2, b"x");
    p.push(T0 + 10, good[..10].to_vec()); // shorter than an Ethernet header
    p.push(T0 + 20, good[..14 + 8].to_vec()); // IPv4 header cut
    let t = tcp(CLIENT_MAC, ROUTER_MAC, C, 1, GW, 2, 0, 0, SYN, &[]);
    p.push(T0 + 30, t[..14 + 20 + 6].to_vec()); // TCP header cut
    // Whole headers with invalid contents are "bad", not "truncated".
    let mut bad_tcp = t.clone();
    bad_tcp[14 + 20 + 12] = 2 << 4; // TCP data offset 2
    p.push(T0 + 40, bad_tcp);
    let mut bad_ip = good.clone();
    bad_ip[14] = 0x43; // IPv4 IHL 3
    p.push(T0 + 50, bad_ip);
    let (_d, store, sum) = analyze(&p, &Config::default());
    assert_eq!(sum.packets, 13);
    assert_eq!(sum.malformed, 5);
    assert_eq!(sum.malformed_by_reason.get("bad_tcp_header"), Some(&1));
    assert_eq!(sum.malformed_by_reason.get("bad_ip_header"), Some(&1));
    assert_eq!(
        sum.malformed_by_reason.get("truncated_link_header"),
        Some(&1)
    );
    assert_eq!(sum.malformed_by_reason.get("truncated_ip_header"), Some(&1));
    assert_eq!(
        sum.malformed_by_reason.get("truncated_tcp_header"),
        Some(&1)
    );
    assert_eq!(sum.flows, 1);
    let reasons = q1::<String>(&store, "SELECT malformed_by_reason FROM capture_stats");
    assert!(reasons.contains("\"truncated_tcp_header\":1"), "{reasons}");
}

/// Length fields are believed only as far as the wire length allows: a UDP length or
/// IPv4 total length beyond the frame, or a capture record claiming an impossible wire
/// length, is counted as malformed and the packet accounted with the capped length.
#[test]
fn header_lengths_are_capped_at_the_wire_length() {
    let mut p = Pcap::default();
    // 0: 46-byte frame (14 + 20 + 8 + 4) whose UDP length claims 60,000.
    let mut f = udp(CLIENT_MAC, ROUTER_MAC, C, 1000, GW, 2000, b"abcd");
    f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&60_000u16.to_be_bytes());
    p.push(T0, f);
    // 1: 58-byte frame (14 + 20 + 20 + 4) whose IPv4 total length claims 60,000.
    let mut f = tcp(
        CLIENT_MAC, ROUTER_MAC, C, 1001, S, 80, 1, 1, PSHACK, b"abcd",
    );
    f[16..18].copy_from_slice(&60_000u16.to_be_bytes());
    p.push(T0 + 1, f);
    // 2 and 3: ordinary 52-byte frames (10 bytes of payload) whose capture records
    // claim 4,093,509,168 and 20 bytes on the wire.
    p.push(
        T0 + 2,
        udp(CLIENT_MAC, ROUTER_MAC, C, 1002, GW, 2002, b"0123456789"),
    );
    p.push(
        T0 + 3,
        udp(CLIENT_MAC, ROUTER_MAC, C, 1003, GW, 2003, b"0123456789"),
    );
    // 4: a 43-byte frame padded to Ethernet's 60: IP says less than the wire, fine.
    let mut f = udp(CLIENT_MAC, ROUTER_MAC, C, 1004, GW, 2004, b"x");
    f.resize(60, 0);
    p.push(T0 + 4, f);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pcap");
    p.write_claiming(&path, &[(2, 4_093_509_168), (3, 20)]);
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let sum = run_files(&Config::default(), &store, vec![path]);
    assert_eq!(sum.packets, 5);
    assert_eq!(sum.bytes, 46 + 58 + 52 + 52 + 60);
    assert_eq!(sum.malformed, 4, "{:?}", sum.malformed_by_reason);
    assert_eq!(sum.malformed_by_reason.get("bogus_length"), Some(&2));
    assert_eq!(
        sum.malformed_by_reason.get("bogus_capture_length"),
        Some(&2)
    );
    assert_eq!(
        q::<String>(
            &store,
            "SELECT orig_port || ' ' || orig_pkts || ' ' || orig_bytes || ' ' || orig_payload_bytes FROM flows ORDER BY orig_port"
        ),
        vec![
            "1000 1 46 4",
            "1001 1 58 4",
            "1002 1 52 10",
            "1003 1 52 10",
            "1004 1 60 1"
        ]
    );
    assert_eq!(
        q1::<i64>(&store, "SELECT malformed FROM capture_stats"),
        4,
        "stored as counted"
    );
}

/// IP fragments are not reassembled, but each one counts in its flow: the first (which
/// carries the UDP header) by its ports, with the part of the DNS response it carries
/// for the parser; the later ones through the first one's datagram id. A later
/// fragment whose first was never seen is counted apart.
#[test]
fn fragmented_udp_exchange_counts_every_fragment_in_its_flow() {
    let mut p = Pcap::default();
    let answers: Vec<(Ipv4Addr, u32)> = (0..40).map(|i| (Ipv4Addr::new(10, 0, 0, i), 60)).collect();
    let query = dns_message(0x1234, false, 0, "big.example", 1, &[]);
    // 12 header + 17 question + 40 answers of 16 bytes = 669 bytes; 677 with UDP.
    let resp = dns_message(0x1234, true, 0, "big.example", 1, &answers);
    assert_eq!(resp.len(), 669);
    let dgram = udp_datagram(53, 5000, &resp);
    p.push(T0, udp(CLIENT_MAC, ROUTER_MAC, C, 5000, GW, 53, &query));
    // Three fragments, the last two out of order: 296, 296 and 85 bytes of datagram.
    let frag = |offset: usize, end: usize, more: bool| {
        ipv4_fragment(
            ROUTER_MAC,
            CLIENT_MAC,
            GW,
            C,
            17,
            77,
            offset,
            more,
            &dgram[offset..end],
        )
    };
    p.push(T0 + 1000, frag(0, 296, true));
    p.push(T0 + 1100, frag(592, 677, false));
    p.push(T0 + 1200, frag(296, 592, true));
    // A later fragment of a datagram whose first fragment was never captured.
    p.push(
        T0 + 1300,
        ipv4_fragment(ROUTER_MAC, CLIENT_MAC, GW, C, 17, 999, 8, false, &[0u8; 40]),
    );
    // The same over IPv6: the response in two fragments (fragment header of 8 bytes).
    let (c6, r6) = (
        "fd00::10".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
    );
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC)
        .ipv6(c6, r6, 64)
        .udp(5001, 53);
    let mut q6 = Vec::new();
    b.write(&mut q6, &query).unwrap();
    p.push(T0 + 2000, q6);
    let dgram6 = udp_datagram(53, 5001, &resp);
    p.push(
        T0 + 3000,
        ipv6_fragment(
            ROUTER_MAC,
            CLIENT_MAC,
            r6,
            c6,
            17,
            0xabcd,
            0,
            true,
            &dgram6[..400],
        ),
    );
    p.push(
        T0 + 3100,
        ipv6_fragment(
            ROUTER_MAC,
            CLIENT_MAC,
            r6,
            c6,
            17,
            0xabcd,
            400,
            false,
            &dgram6[400..],
        ),
    );
    let (_d, store, sum) = analyze(&p, &Config::default());
    assert_eq!(sum.packets, 8);
    assert_eq!(sum.flows, 2);
    assert_eq!((sum.fragments, sum.fragments_unattributed), (6, 1));
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT fragments || ' ' || fragments_unattributed FROM capture_stats"
        ),
        "6 1"
    );
    assert_eq!(sum.malformed, 0);
    // Responses: IPv4 frames of 14 + 20 + 296, 14 + 20 + 296 and 14 + 20 + 85 bytes;
    // IPv6 frames of 14 + 40 + 8 + 400 and 14 + 40 + 8 + 277. Payload: the whole
    // DNS response each time.
    assert_eq!(
        q::<String>(
            &store,
            "SELECT orig_pkts || ' ' || orig_payload_bytes || ' ' || resp_pkts || ' ' || resp_bytes || ' ' || resp_payload_bytes || ' ' || conn_state || ' ' || history FROM flows ORDER BY ts"
        ),
        vec![
            format!("1 {} 3 779 669 SF Dd", query.len()),
            format!("1 {} 2 801 669 SF Dd", query.len()),
        ]
    );
    assert_eq!(q1::<i64>(&store, "SELECT fragments FROM capture_stats"), 6);
    // The parser saw the first fragment: 288 bytes of DNS, the header, the question
    // and the first 16 answers; the IPv6 one 392 bytes, 22 answers.
    assert_eq!(
        q::<String>(
            &store,
            "SELECT query || ' ' || rcode || ' ' || len(answers) || ' ' || answers[1] FROM dns ORDER BY ts"
        ),
        vec!["big.example 0 16 10.0.0.0", "big.example 0 22 10.0.0.0"]
    );
}

#[test]
fn idle_timeout_splits_and_active_timeout_updates() {
    let mut cfg = Config::default();
    cfg.flow.udp_idle_timeout_secs = 60.0;
    cfg.flow.active_timeout_secs = 100.0;
    let mut p = Pcap::default();
    // A UDP conversation every 10 s for 250 s: one flow, updated at the active timeout.
    for i in 0..26 {
        p.push(
            T0 + i * 10 * SEC,
            udp(CLIENT_MAC, ROUTER_MAC, C, 5000, S, 4000, b"ping"),
        );
    }
    // Silence for 2 minutes, then the same 5-tuple again: a new flow.
    p.push(
        T0 + 370 * SEC,
        udp(CLIENT_MAC, ROUTER_MAC, C, 5000, S, 4000, b"ping"),
    );
    let (_d, store, sum) = analyze(&p, &cfg);
    assert_eq!(sum.flows, 2);
    assert_eq!(
        q::<String>(
            &store,
            "SELECT orig_pkts || ' ' || end_reason || ' ' || is_final FROM flows ORDER BY ts"
        ),
        vec!["26 idle true", "1 shutdown true"],
        "the active-timeout update rows were replaced by the final rows"
    );
    assert_eq!(
        q1::<f64>(
            &store,
            "SELECT orig_iat_mean FROM flows ORDER BY ts LIMIT 1"
        ),
        10.0
    );
}

#[test]
fn flow_table_cap_evicts_and_counts() {
    let mut cfg = Config::default();
    cfg.flow.max_flows = 64;
    let mut p = Pcap::default();
    // A SYN flood from 1000 spoofed sources.
    for i in 0..1000u32 {
        let src = [10, 9, (i >> 8) as u8, i as u8];
        p.push(
            T0 + i as i64,
            tcp(
                ROUTER_MAC,
                CLIENT_MAC,
                src,
                1024 + i as u16,
                C,
                80,
                i,
                0,
                SYN,
                &[],
            ),
        );
    }
    let (_d, store, sum) = analyze(&p, &cfg);
    assert_eq!(sum.flows, 1000);
    assert!(
        sum.peak_active_flows <= 64,
        "peak {}",
        sum.peak_active_flows
    );
    assert!(
        sum.flows_evicted >= 1000 - 64,
        "evicted {}",
        sum.flows_evicted
    );
    assert_eq!(
        q1::<i64>(&store, "SELECT count(*) FROM flows"),
        1000,
        "evicted flows are written, not lost"
    );
    assert_eq!(
        q1::<i64>(
            &store,
            "SELECT count(*) FROM flows WHERE end_reason = 'evicted'"
        ) as u64,
        sum.flows_evicted
    );
}

#[test]
fn icmp_echo_pairs_and_ipv6() {
    let mut p = Pcap::default();
    p.push(T0, icmp_echo(CLIENT_MAC, ROUTER_MAC, C, S, false, 7, 1));
    p.push(
        T0 + 500,
        icmp_echo(ROUTER_MAC, CLIENT_MAC, S, C, true, 7, 1),
    );
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC)
        .ipv6(
            "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            "2001:db8::53"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            64,
        )
        .udp(5555, 53);
    let mut v6 = Vec::new();
    b.write(&mut v6, &dns_message(1, false, 0, "example.org", 28, &[]))
        .unwrap();
    p.push(T0 + 1000, v6);
    let (_d, store, _) = analyze(&p, &Config::default());
    assert_eq!(
        q::<String>(
            &store,
            "SELECT proto || ' ' || orig_addr || ' ' || resp_addr || ' ' || orig_port || ' ' || resp_port || ' ' || conn_state || ' ' || community_id FROM flows ORDER BY ts"
        ),
        vec![
            format!(
                "icmp 192.168.1.10 93.184.216.34 8 0 OTH {}",
                netguardian::flow::community_id::community_id(
                    1,
                    "192.168.1.10".parse().unwrap(),
                    8,
                    "93.184.216.34".parse().unwrap(),
                    0
                )
            ),
            format!(
                "udp fe80::1 2001:db8::53 5555 53 S0 {}",
                netguardian::flow::community_id::community_id(
                    17,
                    "fe80::1".parse().unwrap(),
                    5555,
                    "2001:db8::53".parse().unwrap(),
                    53
                )
            ),
        ]
    );
    assert_eq!(
        q1::<String>(&store, "SELECT query || ' ' || qtype_name FROM dns"),
        "example.org AAAA"
    );
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT addr FROM device_addresses WHERE addr LIKE 'fe80%'"
        ),
        "fe80::1"
    );
}

/// An IPv6 router advertisement: `prefix` /64 with the on-link and autonomous flags,
/// `rdnss` as resolver, sent with `hop_limit` from fe80::1 (the router).
fn router_advert(hop_limit: u8, prefix: &str, rdnss: &str) -> Vec<u8> {
    router_advert_from(ROUTER_MAC, "fe80::1", hop_limit, prefix, rdnss)
}

fn router_advert_from(
    mac: [u8; 6],
    from: &str,
    hop_limit: u8,
    prefix: &str,
    rdnss: &str,
) -> Vec<u8> {
    let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let b = etherparse::PacketBuilder::ethernet2(mac, [0x33, 0x33, 0, 0, 0, 1])
        .ipv6(v6(from), v6("ff02::1"), hop_limit)
        // cur hop limit 64, no flags, router lifetime 1800 s
        .icmpv6_raw(134, 0, [64, 0, 0x07, 0x08]);
    let mut body = vec![0u8; 8]; // reachable time, retrans timer
    body.extend([
        3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0,
    ]);
    body.extend(v6(prefix));
    body.extend([25, 3, 0, 0, 0, 0, 0x0e, 0x10]);
    body.extend(v6(rdnss));
    body.extend([1, 1]);
    body.extend(mac);
    let mut out = Vec::new();
    b.write(&mut out, &body).unwrap();
    out
}

/// A TCP SYN from `src` (CLIENT_MAC) to a public IPv6 address.
fn v6_syn(src: &str, sport: u16) -> Vec<u8> {
    let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC)
        .ipv6(v6(src), v6("2606:4700::1111"), 64)
        .tcp(sport, 443, 1, 64240)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

#[test]
fn ipv6_router_advert_makes_the_home_prefix_local() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let mut p = Pcap::default();
    // Before any advertisement the global address is nobody's.
    p.push(T0, v6_syn("2001:db8:1:2::10", 40000));
    // Forwarded (hop limit 64): must be ignored, its prefix stays foreign.
    p.push(
        T0 + 1_000,
        router_advert(64, "2001:db8:9:9::", "2001:db8:9:9::1"),
    );
    p.push(
        T0 + 2_000,
        router_advert(255, "2001:db8:1:2::", "2001:db8:1:2::1"),
    );
    p.push(T0 + 3_000, v6_syn("2001:db8:1:2::10", 40001));
    p.push(T0 + 4_000, v6_syn("2001:db8:9:9::10", 40002));
    // A second router offering itself as default router.
    p.push(
        T0 + 5_000,
        router_advert_from(
            PHONE_MAC,
            "fe80::66",
            255,
            "2001:db8:66::",
            "2001:db8:66::53",
        ),
    );
    let path = dir.path().join("ra.pcap");
    p.write(&path);
    run_files(&Config::default(), &store, vec![path]);
    assert_eq!(
        q::<String>(
            &store,
            "SELECT router_addr || ' ' || router_mac || ' ' || router_lifetime_s || ' ' || \
             home_prefixes::VARCHAR || ' ' || rdnss::VARCHAR || ' ' || source_mac FROM router_adverts ORDER BY ts"
        ),
        vec![
            "fe80::1 00:1b:21:44:55:66 1800 ['2001:db8:1:2::/64'] ['2001:db8:1:2::1'] 00:1b:21:44:55:66",
            "fe80::66 7a:11:22:33:44:55 1800 ['2001:db8:66::/64'] ['2001:db8:66::53'] 7a:11:22:33:44:55"
        ]
    );
    assert_eq!(
        q::<String>(
            &store,
            "SELECT rule || ' ' || severity || ' ' || device_mac || ' ' || peer FROM alerts WHERE rule = 'rogue_ra'"
        ),
        vec!["rogue_ra high 7a:11:22:33:44:55 fe80::66"]
    );
    let addrs = |store: &Store| {
        q::<String>(
            store,
            "SELECT mac || ' ' || addr || ' ' || source FROM device_addresses WHERE addr LIKE '2001:%' ORDER BY addr",
        )
    };
    assert_eq!(addrs(&store), vec!["b8:27:eb:11:22:33 2001:db8:1:2::10 ip"]);
    assert_eq!(
        q1::<String>(
            &store,
            "SELECT last_ipv6 FROM devices WHERE mac = 'b8:27:eb:11:22:33'"
        ),
        "2001:db8:1:2::10"
    );

    // The next run knows the prefix before any advertisement.
    let mut p = Pcap::default();
    p.push(T0 + 60_000_000, v6_syn("2001:db8:1:2::20", 40003));
    let path = dir.path().join("later.pcap");
    p.write(&path);
    run_files(&Config::default(), &store, vec![path]);
    assert_eq!(
        addrs(&store),
        vec![
            "b8:27:eb:11:22:33 2001:db8:1:2::10 ip",
            "b8:27:eb:11:22:33 2001:db8:1:2::20 ip"
        ]
    );

    // Switched off, nothing is learned.
    let mut cfg = Config::default();
    cfg.network.learn_ipv6_prefixes = false;
    let off = Store::open(&dir.path().join("off.duckdb")).unwrap();
    run_files(&cfg, &off, vec![dir.path().join("ra.pcap")]);
    assert!(addrs(&off).is_empty());
    assert_eq!(q1::<i64>(&off, "SELECT count(*) FROM router_adverts"), 2);
}

/// An ARP-only sweep of the LAN (what `nmap -sn` sends there): 40 broadcast who-has
/// requests from one laptop in four seconds, among ordinary ARP (a reply, a gratuitous
/// announcement, a probe) that must not count.
#[test]
fn lan_arp_sweep_raises_host_scan() {
    let mut p = Pcap::default();
    p.push(
        T0,
        arp(ROUTER_MAC, [192, 168, 1, 1], [0; 6], [192, 168, 1, 1]),
    );
    p.push(
        T0 + 10,
        arp(CLIENT_MAC, [0, 0, 0, 0], [0; 6], [192, 168, 1, 10]),
    );
    p.push(
        T0 + 20,
        arp(ROUTER_MAC, [192, 168, 1, 1], CLIENT_MAC, [192, 168, 1, 10]),
    );
    for i in 0..40u8 {
        p.push(
            T0 + 1_000 + i as i64 * 100_000,
            arp(
                CLIENT_MAC,
                [192, 168, 1, 10],
                [0; 6],
                [192, 168, 1, 100 + i],
            ),
        );
    }
    let (_d, store, _) = analyze(&p, &Config::default());
    assert_eq!(
        q::<String>(
            &store,
            "SELECT rule || ' ' || severity || ' ' || device_mac || ' ' || mitre_technique || ' ' || (evidence->>'hosts') FROM alerts WHERE rule = 'host_scan'"
        ),
        vec!["host_scan medium b8:27:eb:11:22:33 T1018 25"]
    );
}

/// One upload from the client to an internet server: handshake, `n` segments of
/// 1,400 bytes, FIN. Starts at `t`.
fn upload(p: &mut Pcap, t: i64, sport: u16, n: u32) {
    let srv = [198, 51, 100, 7];
    p.push(
        t,
        tcp(CLIENT_MAC, ROUTER_MAC, C, sport, srv, 443, 1, 0, SYN, &[]),
    );
    p.push(
        t + 1_000,
        tcp(
            ROUTER_MAC,
            CLIENT_MAC,
            srv,
            443,
            C,
            sport,
            9,
            2,
            SYNACK,
            &[],
        ),
    );
    let data = vec![0x17u8; 1400];
    for i in 0..n {
        p.push(
            t + 2_000 + i as i64 * 100,
            tcp(
                CLIENT_MAC,
                ROUTER_MAC,
                C,
                sport,
                srv,
                443,
                2 + i * 1400,
                10,
                PSHACK,
                &data,
            ),
        );
    }
    let end = t + 2_000 + n as i64 * 100 + 1_000;
    p.push(
        end,
        tcp(
            CLIENT_MAC,
            ROUTER_MAC,
            C,
            sport,
            srv,
            443,
            2 + n * 1400,
            10,
            FINACK,
            &[],
        ),
    );
    p.push(
        end + 500,
        tcp(
            ROUTER_MAC,
            CLIENT_MAC,
            srv,
            443,
            C,
            sport,
            10,
            3 + n * 1400,
            FINACK,
            &[],
        ),
    );
}

/// The exfiltration baseline of one run (30 hours of ~280 KB uploads an hour) is
/// saved in `detect_state` and taken back by the next run, which reports a 4 MB upload
/// at once; a database without that history cannot judge it.
#[test]
fn exfiltration_baseline_survives_a_restart() {
    let mut cfg = Config::default();
    cfg.detect.exfiltration.min_bytes = 1_000_000;
    cfg.ml.enabled = false;
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000_000i64;
    let mut base = Pcap::default();
    for h in 0..30 {
        upload(&mut base, T0 + h * hour, 40000 + h as u16, 200);
    }
    let base_path = dir.path().join("baseline.pcap");
    base.write(&base_path);
    let mut spike = Pcap::default();
    upload(&mut spike, T0 + 31 * hour, 41000, 3000);
    let spike_path = dir.path().join("spike.pcap");
    spike.write(&spike_path);

    let exfil = |store: &Store| {
        q::<String>(
            store,
            "SELECT rule || ' ' || device_mac || ' ' || peer FROM alerts WHERE rule = 'exfiltration'",
        )
    };
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    run_files(&cfg, &store, vec![base_path]);
    assert!(exfil(&store).is_empty());
    assert_eq!(
        q::<String>(&store, "SELECT rule FROM detect_state ORDER BY rule"),
        vec!["beaconing", "exfiltration"]
    );
    run_files(&cfg, &store, vec![spike_path.clone()]);
    assert_eq!(
        exfil(&store),
        vec!["exfiltration b8:27:eb:11:22:33 198.51.100.7"]
    );

    let fresh = Store::open(&dir.path().join("fresh.duckdb")).unwrap();
    run_files(&cfg, &fresh, vec![spike_path]);
    assert!(exfil(&fresh).is_empty());
}

#[test]
fn corrupt_file_is_named_and_earlier_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    let mut p = Pcap::default();
    http_session(&mut p, T0, 40030);
    p.write(&good);
    let not_pcap = dir.path().join("notes.pcap");
    std::fs::write(&not_pcap, b"this is not a capture file at all").unwrap();
    // A capture cut off in the middle of a record.
    let cut = dir.path().join("cut.pcap");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let first = run_files(&Config::default(), &store, vec![good.clone()]);
    assert_eq!(first.flows, 1);
    let second = run_files(&Config::default(), &store, vec![not_pcap, cut]);
    assert_eq!(second.errors.len(), 2, "{:?}", second.errors);
    assert!(
        second.errors[0].contains("notes.pcap") && second.errors[0].contains("not a pcap"),
        "{:?}",
        second.errors
    );
    assert!(second.errors[1].contains("cut.pcap"), "{:?}", second.errors);
    assert_eq!(second.packets, 7, "packets before the damage are kept");
    assert_eq!(q1::<i64>(&store, "SELECT count(*) FROM flows"), 2);
    assert_eq!(q1::<i64>(&store, "SELECT count(*) FROM runs"), 2);
}

/// The "modified" pcap format (magic a1b2cd34, 24-byte record headers: ifindex,
/// protocol, packet type), which libpcap reads, in both byte orders.
#[test]
fn modified_pcap_format_is_read_in_both_byte_orders() {
    let dir = tempfile::tempdir().unwrap();
    let frame = udp(CLIENT_MAC, ROUTER_MAC, C, 1234, S, 4321, b"abc");
    let mut files = Vec::new();
    for big in [false, true] {
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend_from_slice(&u32b(0xa1b2_cd34));
        f.extend_from_slice(&u16b(2));
        f.extend_from_slice(&u16b(4));
        for v in [0, 0, 65535, 1] {
            f.extend_from_slice(&u32b(v));
        }
        for i in 0..2u32 {
            for v in [
                (T0 / SEC) as u32 + i,
                0,
                frame.len() as u32,
                frame.len() as u32,
            ] {
                f.extend_from_slice(&u32b(v));
            }
            f.extend_from_slice(&u32b(2)); // ifindex
            f.extend_from_slice(&u16b(0x0800)); // protocol
            f.extend_from_slice(&[0, 0]); // packet type, padding
            f.extend_from_slice(&frame);
        }
        let p = dir.path().join(if big { "be.pcap" } else { "le.pcap" });
        std::fs::write(&p, f).unwrap();
        files.push(p);
    }
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let s = run_files(&Config::default(), &store, files);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.packets, s.malformed), (4, 0));
    assert_eq!(s.bytes, 4 * frame.len() as u64);
    assert_eq!(
        q1::<String>(&store, "SELECT orig_port || ' ' || orig_pkts FROM flows"),
        "1234 4"
    );
}

#[test]
fn linux_sll_and_raw_ip_link_types() {
    let dir = tempfile::tempdir().unwrap();
    let frame = udp(CLIENT_MAC, ROUTER_MAC, C, 1234, S, 4321, b"abc");
    let ip = frame[14..].to_vec();
    // SLL: packet type, ARPHRD_ETHER, addr len 6, addr(8), protocol.
    let mut sll = vec![0, 4, 0, 1, 0, 6];
    sll.extend_from_slice(&CLIENT_MAC);
    sll.extend_from_slice(&[0, 0, 0x08, 0x00]);
    sll.extend_from_slice(&ip);
    let mut a = Pcap::default();
    a.push(T0, sll);
    let pa = dir.path().join("sll.pcap");
    a.write_link(&pa, 113, 65535, None);
    let mut b = Pcap::default();
    // Another source port: the same 5-tuple in two files of one run is one flow.
    let raw = udp(CLIENT_MAC, ROUTER_MAC, C, 1235, S, 4321, b"abc")[14..].to_vec();
    b.push(T0, raw);
    let pb = dir.path().join("raw.pcap");
    b.write_link(&pb, 101, 65535, None);
    let mut c = Pcap::default();
    c.push(T0, ip);
    let pc = dir.path().join("wifi.pcap");
    c.write_link(&pc, 105, 65535, None); // 802.11: not decoded
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let s = run_files(&Config::default(), &store, vec![pa, pb, pc]);
    assert_eq!(s.packets, 3);
    assert_eq!(s.unsupported_link, 1);
    assert_eq!(s.malformed, 0);
    assert_eq!(
        q1::<i64>(&store, "SELECT count(*) FROM flows WHERE resp_port = 4321"),
        2
    );
    assert_eq!(
        q::<String>(
            &store,
            "SELECT link_type FROM capture_stats ORDER BY source"
        ),
        vec!["raw_ip", "linux_sll", "unsupported(105)"]
    );
}

#[test]
fn snaplen_truncated_capture_counts_wire_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::default();
    http_session(&mut p, T0, 40040);
    let path = dir.path().join("snap.pcap");
    p.write_link(&path, 1, 60, Some(60));
    let store = Store::open(&dir.path().join("t.duckdb")).unwrap();
    let s = run_files(&Config::default(), &store, vec![path]);
    assert_eq!(s.malformed, 0);
    assert_eq!(
        q1::<u64>(&store, "SELECT orig_payload_bytes FROM flows"),
        69
    );
    assert_eq!(
        q1::<u64>(&store, "SELECT orig_bytes FROM flows"),
        5 * 54 + 69
    );
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}

/// Every row of the tables a replay fills, as text in a fixed order.
fn dump(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for (table, order) in [
        ("flows", "id"),
        ("devices", "mac"),
        ("device_addresses", "mac, addr"),
        ("alerts", "id"),
        ("flow_features", "flow_id"),
        ("device_features", "window_start, mac"),
    ] {
        let rows = q::<String>(
            store,
            &format!("SELECT CAST(t AS VARCHAR) FROM (SELECT * FROM {table} ORDER BY {order}) t"),
        );
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    out
}

/// Replaying a capture gives the same database every time, even where the pipeline
/// walks hash maps (whose order differs between map instances): flows that end at the
/// same packet time, devices that appear together, flows evicted from a full table that
/// tie on age, the alerts that follow from all of them and their ids.
#[test]
fn a_replay_gives_the_same_database_every_time() {
    let mut cfg = Config::default();
    cfg.flow.max_flows = 64;
    let mut p = Pcap::default();
    for i in 0..40u8 {
        let mac = [0x02, 0, 0, 0, 0x10, i];
        let ip = [192, 168, 1, 100 + i];
        // All at the same instant: new devices, and unanswered telnet/SMB/RDP attempts
        // that all end in the same expiry scan.
        p.push(T0, arp(mac, ip, [0; 6], GW));
        for (k, port) in [23u16, 445, 3389].into_iter().enumerate() {
            p.push(
                T0 + SEC,
                tcp(
                    mac,
                    ROUTER_MAC,
                    ip,
                    40000 + k as u16,
                    S,
                    port,
                    7,
                    0,
                    SYN,
                    &[],
                ),
            );
        }
        // Four UDP flows each at one instant: 160 flows of the same age in a table of 64.
        for k in 0..4u16 {
            p.push(
                T0 + 2 * SEC,
                udp(mac, ROUTER_MAC, ip, 50000 + k, [8, 8, 4, 4], 9000 + k, b"x"),
            );
        }
    }
    // Something later, so the idle timeouts pass in packet time.
    p.push(T0 + 400 * SEC, arp(CLIENT_MAC, C, [0; 6], GW));
    // Concurrently: the maps' seeds come from the stack address and a per-thread
    // counter, so replays one after another in one process would reuse a thread stack
    // and get the same order by luck; threads alive together cannot.
    let runs: Vec<Vec<String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                sc.spawn(|| {
                    let (_d, store, sum) = analyze(&p, &cfg);
                    assert!(sum.flows_evicted > 0, "the table never filled");
                    dump(&store)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let alerts = runs[0].iter().filter(|r| r.starts_with("alerts:")).count();
    assert!(alerts >= 41, "every device is new: {alerts} alerts");
    for r in &runs[1..] {
        assert_eq!(r.len(), runs[0].len());
        for (a, b) in runs[0].iter().zip(r) {
            assert_eq!(a, b);
        }
    }
}
