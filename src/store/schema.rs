//! The DuckDB schema, as an ordered list of migrations.
//!
//! `schema_migrations` records which have run; opening a database applies the missing
//! ones in a transaction each, so an older database upgrades in place and a newer one
//! (from a later netguardian) is refused rather than misread.
//!
//! Conventions: times are `TIMESTAMP` (UTC, µs); addresses are canonical text (`'192.168.1.10'`,
//! `'fe80::1'`) and MACs `'aa:bb:cc:dd:ee:ff'`, so SQL users filter with `=` and `LIKE`;
//! rows are appended in time order so DuckDB's min/max zone maps make time ranges fast.

pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "flows, devices, protocol metadata, alerts, capture statistics",
        sql: r#"
CREATE TABLE runs (
    id BIGINT PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    mode VARCHAR NOT NULL,          -- 'analyze' or 'live'
    sources VARCHAR,
    version VARCHAR NOT NULL
);

CREATE TABLE capture_stats (
    run_id BIGINT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL,
    link_type VARCHAR,
    first_ts TIMESTAMP,
    last_ts TIMESTAMP,
    packets UBIGINT NOT NULL,
    bytes UBIGINT NOT NULL,
    ip_packets UBIGINT NOT NULL,
    arp_packets UBIGINT NOT NULL,
    non_ip_packets UBIGINT NOT NULL,
    fragments UBIGINT NOT NULL,
    unsupported_link UBIGINT NOT NULL,
    malformed UBIGINT NOT NULL,
    malformed_by_reason VARCHAR,    -- JSON object reason -> count
    flows_created UBIGINT NOT NULL,
    flows_evicted UBIGINT NOT NULL,
    kernel_dropped UBIGINT NOT NULL,
    if_dropped UBIGINT NOT NULL,
    queue_dropped UBIGINT NOT NULL,
    store_dropped UBIGINT NOT NULL,
    error VARCHAR
);

CREATE TABLE flows_closed (
    id BIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,          -- first packet
    end_ts TIMESTAMP NOT NULL,      -- last packet
    duration DOUBLE NOT NULL,       -- seconds
    proto VARCHAR NOT NULL,         -- 'tcp', 'udp', 'icmp', ...
    ip_proto UTINYINT NOT NULL,
    app_proto VARCHAR,
    vlan USMALLINT NOT NULL,
    orig_addr VARCHAR NOT NULL,
    orig_port USMALLINT NOT NULL,
    resp_addr VARCHAR NOT NULL,
    resp_port USMALLINT NOT NULL,
    orig_mac VARCHAR,
    resp_mac VARCHAR,
    community_id VARCHAR NOT NULL,
    conn_state VARCHAR NOT NULL,
    history VARCHAR NOT NULL,
    orig_pkts UBIGINT NOT NULL,
    orig_bytes UBIGINT NOT NULL,
    orig_payload_bytes UBIGINT NOT NULL,
    resp_pkts UBIGINT NOT NULL,
    resp_bytes UBIGINT NOT NULL,
    resp_payload_bytes UBIGINT NOT NULL,
    orig_syn UINTEGER, orig_fin UINTEGER, orig_rst UINTEGER, orig_psh UINTEGER, orig_ack UINTEGER, orig_urg UINTEGER,
    resp_syn UINTEGER, resp_fin UINTEGER, resp_rst UINTEGER, resp_psh UINTEGER, resp_ack UINTEGER, resp_urg UINTEGER,
    orig_size_min UINTEGER, orig_size_mean DOUBLE, orig_size_std DOUBLE, orig_size_max UINTEGER,
    resp_size_min UINTEGER, resp_size_mean DOUBLE, resp_size_std DOUBLE, resp_size_max UINTEGER,
    orig_iat_min DOUBLE, orig_iat_mean DOUBLE, orig_iat_std DOUBLE, orig_iat_max DOUBLE,   -- seconds
    resp_iat_min DOUBLE, resp_iat_mean DOUBLE, resp_iat_std DOUBLE, resp_iat_max DOUBLE,
    end_reason VARCHAR NOT NULL,    -- idle, closed, reused, active_timeout, evicted, shutdown, interrupted
    is_final BOOLEAN NOT NULL       -- false: a long flow's update; the row is replaced later
);

-- Flows still running (written at each active timeout) live in a small table of their
-- own, so replacing their row never scans the large one; `flows` is both.
CREATE TABLE flows_open AS SELECT * FROM flows_closed LIMIT 0;
CREATE VIEW flows AS SELECT * FROM flows_closed UNION ALL SELECT * FROM flows_open;

CREATE TABLE dns (
    ts TIMESTAMP NOT NULL,
    flow_id BIGINT NOT NULL,
    orig_addr VARCHAR NOT NULL, orig_port USMALLINT NOT NULL,
    resp_addr VARCHAR NOT NULL, resp_port USMALLINT NOT NULL,
    orig_mac VARCHAR,
    transport VARCHAR NOT NULL,     -- 'udp' or 'tcp'
    trans_id USMALLINT NOT NULL,
    query VARCHAR NOT NULL,
    qtype USMALLINT NOT NULL,
    qtype_name VARCHAR NOT NULL,
    qclass USMALLINT NOT NULL,
    rcode USMALLINT,                -- NULL: no response seen
    rcode_name VARCHAR,
    answers VARCHAR[],
    answer_types VARCHAR[],
    ttls UINTEGER[],
    rtt DOUBLE                      -- seconds
);

CREATE TABLE tls (
    ts TIMESTAMP NOT NULL,
    flow_id BIGINT NOT NULL,
    orig_addr VARCHAR NOT NULL, orig_port USMALLINT NOT NULL,
    resp_addr VARCHAR NOT NULL, resp_port USMALLINT NOT NULL,
    orig_mac VARCHAR,
    client_version VARCHAR,
    supported_versions VARCHAR[],
    version VARCHAR,                -- negotiated
    cipher VARCHAR,                 -- negotiated, hex
    sni VARCHAR,
    alpn VARCHAR[],
    ja3 VARCHAR,
    ja3_string VARCHAR,
    ja4 VARCHAR,
    ja3s VARCHAR,
    cert_subject VARCHAR,
    cert_issuer VARCHAR,
    cert_not_before TIMESTAMP,
    cert_not_after TIMESTAMP,
    cert_san VARCHAR[],
    cert_self_signed BOOLEAN
);

CREATE TABLE http (
    ts TIMESTAMP NOT NULL,
    flow_id BIGINT NOT NULL,
    orig_addr VARCHAR NOT NULL, orig_port USMALLINT NOT NULL,
    resp_addr VARCHAR NOT NULL, resp_port USMALLINT NOT NULL,
    orig_mac VARCHAR,
    method VARCHAR NOT NULL,
    host VARCHAR,
    uri VARCHAR NOT NULL,
    user_agent VARCHAR,
    referrer VARCHAR,
    content_type VARCHAR,
    request_body_len UBIGINT,
    status USMALLINT,
    status_msg VARCHAR,
    response_body_len UBIGINT,
    auth_scheme VARCHAR,
    auth_user VARCHAR
);

CREATE TABLE dhcp (
    ts TIMESTAMP NOT NULL,
    flow_id BIGINT NOT NULL,
    orig_addr VARCHAR NOT NULL, orig_port USMALLINT NOT NULL,
    resp_addr VARCHAR NOT NULL, resp_port USMALLINT NOT NULL,
    client_mac VARCHAR NOT NULL,
    msg_type VARCHAR NOT NULL,
    xid UINTEGER NOT NULL,
    client_ip VARCHAR,
    your_ip VARCHAR,
    requested_ip VARCHAR,
    server_id VARCHAR,
    hostname VARCHAR,
    vendor_class VARCHAR,
    param_list VARCHAR,             -- option 55, comma-separated: the DHCP fingerprint
    lease_secs UINTEGER,
    router VARCHAR,
    dns_servers VARCHAR[]
);

CREATE TABLE names (
    ts TIMESTAMP NOT NULL,
    flow_id BIGINT NOT NULL,
    source VARCHAR NOT NULL,        -- mdns, ssdp, netbios-ns, llmnr
    kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    mac VARCHAR,                    -- MAC of the side that announced it
    addr VARCHAR                    -- announcing side's address, or the record's address
);

CREATE TABLE devices (
    mac VARCHAR PRIMARY KEY,
    vendor VARCHAR,
    randomized BOOLEAN NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    hostname VARCHAR,
    hostname_source VARCHAR,
    dhcp_vendor_class VARCHAR,
    dhcp_fingerprint VARCHAR,
    last_ipv4 VARCHAR,
    last_ipv6 VARCHAR,
    pkts_sent UBIGINT NOT NULL,
    bytes_sent UBIGINT NOT NULL,
    pkts_recv UBIGINT NOT NULL,
    bytes_recv UBIGINT NOT NULL,
    flows UBIGINT NOT NULL
);

CREATE TABLE device_addresses (
    mac VARCHAR NOT NULL,
    addr VARCHAR NOT NULL,
    family UTINYINT NOT NULL,       -- 4 or 6
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL,        -- arp, dhcp, ip
    PRIMARY KEY (mac, addr)
);

CREATE SEQUENCE alert_id_seq START 1;
CREATE TABLE alerts (
    id BIGINT PRIMARY KEY DEFAULT nextval('alert_id_seq'),
    ts TIMESTAMP NOT NULL,          -- first occurrence
    last_ts TIMESTAMP NOT NULL,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,      -- info, low, medium, high, critical
    state VARCHAR NOT NULL DEFAULT 'active',  -- active, acknowledged, dismissed, resolved
    title VARCHAR NOT NULL,
    explanation VARCHAR,
    device_mac VARCHAR,
    peer VARCHAR,
    mitre_technique VARCHAR,
    count UBIGINT NOT NULL DEFAULT 1,
    flow_ids BIGINT[],
    evidence JSON
);
"#,
    },
    Migration {
        version: 2,
        description: "alert mutes and the device risk score",
        sql: r#"
-- Mutes (detect/lifecycle.rs): rule x device x peer, NULL device or peer = any; `until`
-- is compared with the alert's packet time, NULL = until unmuted.
CREATE SEQUENCE alert_mute_id_seq START 1;
CREATE TABLE alert_mutes (
    id BIGINT PRIMARY KEY DEFAULT nextval('alert_mute_id_seq'),
    rule VARCHAR NOT NULL,
    device_mac VARCHAR,
    peer VARCHAR,
    created_at TIMESTAMP NOT NULL,
    until TIMESTAMP,
    reason VARCHAR,
    suppressed UBIGINT NOT NULL DEFAULT 0,   -- occurrences the mute dropped
    last_suppressed TIMESTAMP
);

-- Risk per device over its open alerts: min(100, sum of weight(severity) x (1 active,
-- 0.5 acknowledged)), weights info 0, low 1, medium 5, high 15, critical 40 (the same
-- formula as detect::lifecycle::risk_score). Devices without open alerts have no row.
CREATE VIEW device_risk AS
SELECT device_mac AS mac,
       least(100, round(sum(
           CASE severity WHEN 'critical' THEN 40 WHEN 'high' THEN 15 WHEN 'medium' THEN 5
                         WHEN 'low' THEN 1 ELSE 0 END
           * CASE state WHEN 'active' THEN 1.0 ELSE 0.5 END)))::INTEGER AS score,
       count(*) AS open_alerts,
       count(*) FILTER (WHERE severity IN ('high', 'critical')) AS serious_alerts,
       max(last_ts) AS last_alert
FROM alerts
WHERE state IN ('active', 'acknowledged') AND device_mac IS NOT NULL
GROUP BY device_mac;
"#,
    },
    Migration {
        version: 3,
        description: "views for common questions: device bytes per day, top domains per device, new destinations",
        sql: r#"
-- Bytes each home device sent and received per UTC day. A flow side counts for a device
-- only when its address is one of the device's own (the router's MAC also carries every
-- internet host).
CREATE VIEW device_bytes_daily AS
WITH sides AS (
    SELECT orig_mac AS mac, orig_addr AS addr, ts, orig_bytes AS sent, resp_bytes AS recv
    FROM flows WHERE orig_mac IS NOT NULL
    UNION ALL
    SELECT resp_mac, resp_addr, ts, resp_bytes, orig_bytes
    FROM flows WHERE resp_mac IS NOT NULL)
SELECT s.mac, d.hostname, d.vendor, CAST(s.ts AS DATE) AS day,
       sum(s.sent)::UBIGINT AS bytes_sent, sum(s.recv)::UBIGINT AS bytes_recv,
       sum(s.sent + s.recv)::UBIGINT AS bytes, count(*)::UBIGINT AS flows
FROM sides s
JOIN device_addresses a ON a.mac = s.mac AND a.addr = s.addr
JOIN devices d ON d.mac = s.mac
GROUP BY s.mac, d.hostname, d.vendor, CAST(s.ts AS DATE);

-- Domains each device looked up, ranked per device by number of queries
-- (`WHERE rank <= 10` is the top ten).
CREATE VIEW device_top_domains AS
SELECT q.orig_mac AS mac, d.hostname, lower(q.query) AS domain,
       count(*)::UBIGINT AS queries, min(q.ts) AS first_seen, max(q.ts) AS last_seen,
       row_number() OVER (PARTITION BY q.orig_mac ORDER BY count(*) DESC, lower(q.query)) AS rank
FROM dns q LEFT JOIN devices d ON d.mac = q.orig_mac
WHERE q.orig_mac IS NOT NULL
GROUP BY q.orig_mac, d.hostname, lower(q.query);

-- Destinations a device contacted for the first time in the 7 days up to the newest
-- flow (packet time, so a replayed capture answers the same as live data). Pairs seen in
-- the window, minus those seen before it: an anti-join, not an aggregate over all history.
CREATE VIEW new_destinations AS
WITH win AS (SELECT max(ts) - INTERVAL 7 DAY AS since FROM flows),
recent AS (
    SELECT orig_mac AS mac, resp_addr AS addr, min(ts) AS first_seen, max(ts) AS last_seen,
           count(*)::UBIGINT AS flows, sum(orig_bytes + resp_bytes)::UBIGINT AS bytes,
           list(DISTINCT resp_port ORDER BY resp_port) AS ports
    FROM flows, win WHERE orig_mac IS NOT NULL AND ts >= win.since
    GROUP BY orig_mac, resp_addr),
before AS (
    SELECT DISTINCT orig_mac AS mac, resp_addr AS addr
    FROM flows, win WHERE orig_mac IS NOT NULL AND ts < win.since)
SELECT r.mac, d.hostname, r.addr, r.first_seen, r.last_seen, r.flows, r.bytes, r.ports
FROM recent r
ANTI JOIN before b ON b.mac = r.mac AND b.addr = r.addr
LEFT JOIN devices d ON d.mac = r.mac;
"#,
    },
    Migration {
        version: 4,
        description: "feature tables of the anomaly models (feature schema v1) and their scores",
        sql: r#"
-- The contract with the trainer (models/README.md): definitions of every feature, one
-- row each, written by the service from flow/features.rs and flow/device_features.rs.
CREATE TABLE feature_schema (
    model_kind VARCHAR NOT NULL,    -- 'flow' or 'device'
    position INTEGER NOT NULL,      -- column order of the model input
    name VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    transform VARCHAR NOT NULL,     -- log1p, ratio, onehot, none
    description VARCHAR NOT NULL,
    schema_version INTEGER NOT NULL
);

-- One row per ended flow; values already transformed, all finite.
CREATE TABLE flow_features (
    flow_id BIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,          -- first packet of the flow
    device_mac VARCHAR,             -- the flow's local side
    schema_version INTEGER NOT NULL,
    duration_log DOUBLE NOT NULL,
    orig_pkts_log DOUBLE NOT NULL,
    resp_pkts_log DOUBLE NOT NULL,
    orig_bytes_log DOUBLE NOT NULL,
    resp_bytes_log DOUBLE NOT NULL,
    orig_payload_ratio DOUBLE NOT NULL,
    resp_payload_ratio DOUBLE NOT NULL,
    orig_bytes_share DOUBLE NOT NULL,
    orig_size_mean_log DOUBLE NOT NULL,
    orig_size_std_log DOUBLE NOT NULL,
    resp_size_mean_log DOUBLE NOT NULL,
    resp_size_std_log DOUBLE NOT NULL,
    orig_iat_mean_log DOUBLE NOT NULL,
    orig_iat_std_log DOUBLE NOT NULL,
    resp_iat_mean_log DOUBLE NOT NULL,
    resp_iat_std_log DOUBLE NOT NULL,
    syn_log DOUBLE NOT NULL,
    fin_log DOUBLE NOT NULL,
    rst_log DOUBLE NOT NULL,
    psh_log DOUBLE NOT NULL,
    state_established DOUBLE NOT NULL,
    state_rejected DOUBLE NOT NULL,
    state_unanswered DOUBLE NOT NULL,
    proto_tcp DOUBLE NOT NULL,
    proto_udp DOUBLE NOT NULL,
    proto_icmp DOUBLE NOT NULL,
    port_wellknown DOUBLE NOT NULL,
    port_registered DOUBLE NOT NULL,
    port_dynamic DOUBLE NOT NULL,
    app_dns DOUBLE NOT NULL,
    app_tls DOUBLE NOT NULL,
    app_http DOUBLE NOT NULL,
    dns_max_label_entropy DOUBLE NOT NULL,
    dns_nxdomain DOUBLE NOT NULL,
    tls_no_sni DOUBLE NOT NULL,
    tls_old_version DOUBLE NOT NULL
);

-- One row per device (MAC) per epoch-aligned 60 s window with traffic.
CREATE TABLE device_features (
    window_start TIMESTAMP NOT NULL,
    mac VARCHAR NOT NULL,
    schema_version INTEGER NOT NULL,
    flows_log DOUBLE NOT NULL,
    distinct_peers_log DOUBLE NOT NULL,
    distinct_ports_log DOUBLE NOT NULL,
    bytes_out_log DOUBLE NOT NULL,
    bytes_in_log DOUBLE NOT NULL,
    new_destinations_log DOUBLE NOT NULL,
    dns_queries_log DOUBLE NOT NULL,
    nxdomain_ratio DOUBLE NOT NULL,
    distinct_snis_log DOUBLE NOT NULL,
    failed_connections_log DOUBLE NOT NULL
);

-- Model scores: kind 'flow' rows carry flow_id, kind 'device' rows (mac, window_start).
CREATE TABLE anomaly_scores (
    ts TIMESTAMP NOT NULL,          -- the flow's first packet or the window start
    kind VARCHAR NOT NULL,          -- 'flow' or 'device'
    model VARCHAR NOT NULL,         -- 'iforest' or 'autoencoder'
    model_sha256 VARCHAR NOT NULL,  -- netguardian.data_sha256 of the model file
    flow_id BIGINT,
    mac VARCHAR,
    window_start TIMESTAMP,
    score DOUBLE NOT NULL,
    threshold DOUBLE NOT NULL,
    anomalous BOOLEAN NOT NULL
);
"#,
    },
    Migration {
        version: 5,
        description: "feature values as FLOAT (the models' own precision): half the memory and disk",
        sql: r#"
-- The models take float32 inputs (models/README.md), so a DOUBLE carried 4 bytes per
-- value that no model reads; at one row per flow the feature tables were the largest
-- share of what a capture writes (and of DuckDB's memory until each checkpoint).
ALTER TABLE flow_features ALTER duration_log TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_pkts_log TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_pkts_log TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_bytes_log TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_bytes_log TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_payload_ratio TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_payload_ratio TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_bytes_share TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_size_mean_log TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_size_std_log TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_size_mean_log TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_size_std_log TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_iat_mean_log TYPE FLOAT;
ALTER TABLE flow_features ALTER orig_iat_std_log TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_iat_mean_log TYPE FLOAT;
ALTER TABLE flow_features ALTER resp_iat_std_log TYPE FLOAT;
ALTER TABLE flow_features ALTER syn_log TYPE FLOAT;
ALTER TABLE flow_features ALTER fin_log TYPE FLOAT;
ALTER TABLE flow_features ALTER rst_log TYPE FLOAT;
ALTER TABLE flow_features ALTER psh_log TYPE FLOAT;
ALTER TABLE flow_features ALTER state_established TYPE FLOAT;
ALTER TABLE flow_features ALTER state_rejected TYPE FLOAT;
ALTER TABLE flow_features ALTER state_unanswered TYPE FLOAT;
ALTER TABLE flow_features ALTER proto_tcp TYPE FLOAT;
ALTER TABLE flow_features ALTER proto_udp TYPE FLOAT;
ALTER TABLE flow_features ALTER proto_icmp TYPE FLOAT;
ALTER TABLE flow_features ALTER port_wellknown TYPE FLOAT;
ALTER TABLE flow_features ALTER port_registered TYPE FLOAT;
ALTER TABLE flow_features ALTER port_dynamic TYPE FLOAT;
ALTER TABLE flow_features ALTER app_dns TYPE FLOAT;
ALTER TABLE flow_features ALTER app_tls TYPE FLOAT;
ALTER TABLE flow_features ALTER app_http TYPE FLOAT;
ALTER TABLE flow_features ALTER dns_max_label_entropy TYPE FLOAT;
ALTER TABLE flow_features ALTER dns_nxdomain TYPE FLOAT;
ALTER TABLE flow_features ALTER tls_no_sni TYPE FLOAT;
ALTER TABLE flow_features ALTER tls_old_version TYPE FLOAT;
ALTER TABLE device_features ALTER flows_log TYPE FLOAT;
ALTER TABLE device_features ALTER distinct_peers_log TYPE FLOAT;
ALTER TABLE device_features ALTER distinct_ports_log TYPE FLOAT;
ALTER TABLE device_features ALTER bytes_out_log TYPE FLOAT;
ALTER TABLE device_features ALTER bytes_in_log TYPE FLOAT;
ALTER TABLE device_features ALTER new_destinations_log TYPE FLOAT;
ALTER TABLE device_features ALTER dns_queries_log TYPE FLOAT;
ALTER TABLE device_features ALTER nxdomain_ratio TYPE FLOAT;
ALTER TABLE device_features ALTER distinct_snis_log TYPE FLOAT;
ALTER TABLE device_features ALTER failed_connections_log TYPE FLOAT;
"#,
    },
    Migration {
        version: 6,
        description: "IPv6 router advertisements; fragments attributed to no flow in capture_stats",
        sql: r#"
-- What the home's IPv6 routers advertise. Their on-link / autonomous prefixes are what
-- makes a dual-stack device's global addresses "local"; each run starts knowing the
-- prefixes advertised in the 30 days before the newest row here.
CREATE TABLE router_adverts (
    ts TIMESTAMP NOT NULL,
    flow_id BIGINT NOT NULL,
    router_addr VARCHAR NOT NULL,   -- the router's link-local address
    router_mac VARCHAR,             -- frame source
    router_lifetime_s USMALLINT NOT NULL, -- 0: not a default router
    managed BOOLEAN NOT NULL,       -- M flag: addresses from DHCPv6
    other_config BOOLEAN NOT NULL,  -- O flag: DNS etc. from DHCPv6
    prefixes VARCHAR[] NOT NULL,    -- every prefix information option, e.g. '2001:db8:1::/64'
    home_prefixes VARCHAR[] NOT NULL, -- those counted as local (on-link or SLAAC, valid, /32 or longer)
    rdnss VARCHAR[] NOT NULL,       -- recursive DNS servers (option 25)
    mtu UINTEGER,
    source_mac VARCHAR              -- source link-layer address option
);
ALTER TABLE capture_stats ADD COLUMN fragments_unattributed UBIGINT;
"#,
    },
    Migration {
        version: 7,
        description: "detection rules' learned state (baselines) across restarts",
        sql: r#"
-- One row per rule that keeps a baseline (exfiltration: each device's upload per
-- period), replaced every hour of packet time and at the end of a run, read when the
-- next run starts, so a restart does not blind the rule for a day.
CREATE TABLE detect_state (
    rule VARCHAR PRIMARY KEY,
    saved_at TIMESTAMP NOT NULL,    -- wall clock
    packet_ts TIMESTAMP,            -- latest packet time the state includes
    state VARCHAR NOT NULL          -- JSON, the rule's own format
);
"#,
    },
];

pub fn latest_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A database made by a netguardian that knew only migration 1 upgrades in place,
    /// keeping its alerts.
    #[test]
    fn version_1_database_upgrades_to_latest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.duckdb");
        {
            let c = duckdb::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL, description VARCHAR NOT NULL);",
            )
            .unwrap();
            c.execute_batch(MIGRATIONS[0].sql).unwrap();
            c.execute_batch(
                "INSERT INTO schema_migrations VALUES (1, now()::TIMESTAMP, 'v1');
                 INSERT INTO alerts (ts, last_ts, rule, severity, title, device_mac)
                 VALUES (TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-01', 'port_scan', 'high', 't', 'aa:bb:cc:dd:ee:ff');",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let applied: Vec<i32> = {
            let c = store.connection().unwrap();
            let mut st = c
                .prepare("SELECT version FROM schema_migrations ORDER BY version")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(applied, (1..=latest_version()).collect::<Vec<_>>());
        assert!(latest_version() >= 3, "the views migration is missing");
        let c = store.connection().unwrap();
        let score: i32 = c
            .query_row(
                "SELECT score FROM device_risk WHERE mac = 'aa:bb:cc:dd:ee:ff'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(score, 15);
        let mutes: i64 = c
            .query_row("SELECT count(*) FROM alert_mutes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mutes, 0);
    }

    /// Migrations come from branches merged in either order: a database that recorded 1
    /// and 3 (the views) but not 2 (mutes, risk) gets 2 applied, and 3 is not redone.
    #[test]
    fn a_missing_middle_migration_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v13.duckdb");
        {
            let c = duckdb::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL, description VARCHAR NOT NULL);",
            )
            .unwrap();
            for m in MIGRATIONS.iter().filter(|m| m.version != 2) {
                c.execute_batch(m.sql).unwrap();
                c.execute(
                    "INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP, 'old')",
                    [m.version],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        let c = store.connection().unwrap();
        let (n, old): (i64, i64) = c
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE description = 'old') FROM schema_migrations",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(n as usize, MIGRATIONS.len());
        assert_eq!(old as usize, MIGRATIONS.len() - 1);
        c.execute_batch(
            "SELECT * FROM alert_mutes; SELECT * FROM device_risk; SELECT * FROM new_destinations;",
        )
        .unwrap();
    }

    /// The feature tables have exactly the columns the Rust definitions list, in order,
    /// and `feature_schema` is filled from them.
    #[test]
    fn feature_tables_follow_the_definitions() {
        use crate::flow::device_features::DEVICE_FEATURES;
        use crate::flow::features::FLOW_FEATURES;
        let store = Store::open_in_memory().unwrap();
        let c = store.connection().unwrap();
        let cols = |t: &str| -> Vec<String> {
            c.prepare(&format!("SELECT column_name FROM (DESCRIBE {t})"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let mut want = vec!["flow_id", "ts", "device_mac", "schema_version"];
        want.extend(FLOW_FEATURES.iter().map(|d| d.name));
        assert_eq!(cols("flow_features"), want);
        let mut want = vec!["window_start", "mac", "schema_version"];
        want.extend(DEVICE_FEATURES.iter().map(|d| d.name));
        assert_eq!(cols("device_features"), want);
        let (n, flows, v): (i64, i64, i32) = c
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE model_kind = 'flow'), max(schema_version) FROM feature_schema",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, flows, v), (46, 36, 1));
        let name: String = c
            .query_row(
                "SELECT name FROM feature_schema WHERE model_kind = 'device' AND position = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(name, "nxdomain_ratio");
        let types: Vec<(String, String)> = c
            .prepare(
                "SELECT table_name, data_type FROM information_schema.columns
                 WHERE table_name IN ('flow_features', 'device_features')
                   AND column_name NOT IN ('flow_id', 'ts', 'device_mac', 'schema_version', 'window_start', 'mac')
                 GROUP BY ALL ORDER BY ALL",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let want = [("device_features", "FLOAT"), ("flow_features", "FLOAT")];
        assert_eq!(types, want.map(|(t, d)| (t.to_string(), d.to_string())));
    }

    /// A database whose feature tables still hold DOUBLEs (migrations 1-4) keeps its rows
    /// through migration 5, each value rounded to the nearest f32 and nothing else changed.
    #[test]
    fn double_feature_rows_survive_the_float_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.duckdb");
        let value = 1.0f64 / 3.0;
        {
            let c = duckdb::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL, description VARCHAR NOT NULL);",
            )
            .unwrap();
            for m in MIGRATIONS.iter().filter(|m| m.version <= 4) {
                c.execute_batch(m.sql).unwrap();
                c.execute(
                    "INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP, 'old')",
                    [m.version],
                )
                .unwrap();
            }
            let n_values = crate::flow::features::FLOW_N;
            let values = vec!["?"; n_values].join(", ");
            let sql = format!(
                "INSERT INTO flow_features VALUES (7, TIMESTAMP '2024-05-01 10:00:00', 'aa:bb:cc:dd:ee:ff', 1, {values})"
            );
            let params: Vec<f64> = (0..n_values).map(|j| value * j as f64).collect();
            c.execute(&sql, duckdb::params_from_iter(params)).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let c = store.connection().unwrap();
        let (id, mac, first, last): (i64, String, f32, f32) = c
            .query_row(
                "SELECT flow_id, device_mac, orig_pkts_log, tls_old_version FROM flow_features",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let last_j = (crate::flow::features::FLOW_N - 1) as f64;
        assert_eq!((id, mac.as_str()), (7, "aa:bb:cc:dd:ee:ff"));
        assert_eq!(first, (value * 1.0) as f32);
        assert_eq!(last, (value * last_j) as f32);
    }
}
