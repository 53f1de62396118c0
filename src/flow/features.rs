//! Flow features for the anomaly models (feature schema v1): the one definition of
//! each feature (name, unit, transform, description) that the service computes, stores
//! in `flow_features` and scores, and that it writes into `feature_schema` so the
//! trainer in `models/` reads exactly the same list (`models/netguardian_models/contract.py`
//! holds the same names in the same order).
//!
//! Values are stored already transformed (`log1p`, ratios, one-hot flags) and are
//! always finite. A flow's DNS and TLS facts come from the protocol records
//! ([`crate::event::MetaRecord`]) that carry its `flow_id`; the flow table emits them
//! before the flow's final record, so [`FlowFacts`] are complete when the flow ends.

use std::net::IpAddr;

use crate::flow::FlowRecord;
use crate::proto::ProtoRecord;

/// Version of the feature definitions below. Bump it (and the trainer's contract)
/// whenever a feature's meaning, unit or transform changes.
pub const SCHEMA_VERSION: i32 = 1;

/// One feature column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureDef {
    pub name: &'static str,
    /// Unit of the value before the transform ("s", "bytes", "ms", "count", "bool", ...).
    pub unit: &'static str,
    /// `log1p` (natural log of 1 + x), `ratio` (0..1), `onehot` (0 or 1), `none`.
    pub transform: &'static str,
    pub description: &'static str,
}

/// A [`FeatureDef`] in a `const` table.
pub(crate) const fn def(
    name: &'static str,
    unit: &'static str,
    transform: &'static str,
    description: &'static str,
) -> FeatureDef {
    FeatureDef {
        name,
        unit,
        transform,
        description,
    }
}

pub const FLOW_N: usize = 36;

/// Flow features, schema v1, in column order.
pub const FLOW_FEATURES: [FeatureDef; FLOW_N] = [
    def("duration_log", "s", "log1p", "last minus first packet time"),
    def(
        "orig_pkts_log",
        "packets",
        "log1p",
        "packets sent by the initiator",
    ),
    def(
        "resp_pkts_log",
        "packets",
        "log1p",
        "packets sent by the responder",
    ),
    def(
        "orig_bytes_log",
        "bytes",
        "log1p",
        "wire bytes sent by the initiator",
    ),
    def(
        "resp_bytes_log",
        "bytes",
        "log1p",
        "wire bytes sent by the responder",
    ),
    def(
        "orig_payload_ratio",
        "ratio",
        "ratio",
        "initiator transport payload bytes / wire bytes (0 without packets)",
    ),
    def(
        "resp_payload_ratio",
        "ratio",
        "ratio",
        "responder transport payload bytes / wire bytes (0 without packets)",
    ),
    def(
        "orig_bytes_share",
        "ratio",
        "ratio",
        "initiator wire bytes / both directions' wire bytes (0 when both are 0)",
    ),
    def(
        "orig_size_mean_log",
        "bytes",
        "log1p",
        "mean packet size, initiator",
    ),
    def(
        "orig_size_std_log",
        "bytes",
        "log1p",
        "population standard deviation of packet size, initiator (0 below 2 packets)",
    ),
    def(
        "resp_size_mean_log",
        "bytes",
        "log1p",
        "mean packet size, responder",
    ),
    def(
        "resp_size_std_log",
        "bytes",
        "log1p",
        "population standard deviation of packet size, responder",
    ),
    def(
        "orig_iat_mean_log",
        "ms",
        "log1p",
        "mean gap between the initiator's packets (0 below 2 packets)",
    ),
    def(
        "orig_iat_std_log",
        "ms",
        "log1p",
        "standard deviation of the initiator's packet gaps",
    ),
    def(
        "resp_iat_mean_log",
        "ms",
        "log1p",
        "mean gap between the responder's packets",
    ),
    def(
        "resp_iat_std_log",
        "ms",
        "log1p",
        "standard deviation of the responder's packet gaps",
    ),
    def(
        "syn_log",
        "count",
        "log1p",
        "TCP SYN flags, both directions",
    ),
    def(
        "fin_log",
        "count",
        "log1p",
        "TCP FIN flags, both directions",
    ),
    def(
        "rst_log",
        "count",
        "log1p",
        "TCP RST flags, both directions",
    ),
    def(
        "psh_log",
        "count",
        "log1p",
        "TCP PSH flags, both directions",
    ),
    def(
        "state_established",
        "bool",
        "onehot",
        "conn_state S1, SF, S2, S3, RSTO or RSTR (both sides took part); other than TCP/UDP: both sides sent",
    ),
    def(
        "state_rejected",
        "bool",
        "onehot",
        "conn_state REJ (connection attempt refused)",
    ),
    def(
        "state_unanswered",
        "bool",
        "onehot",
        "conn_state S0, SH or RSTOS0 (no reply from the responder); other than TCP/UDP: only the originator sent",
    ),
    def("proto_tcp", "bool", "onehot", "IP protocol 6"),
    def("proto_udp", "bool", "onehot", "IP protocol 17"),
    def(
        "proto_icmp",
        "bool",
        "onehot",
        "IP protocol 1 or 58 (ICMP, ICMPv6)",
    ),
    def(
        "port_wellknown",
        "bool",
        "onehot",
        "TCP/UDP responder port below 1024",
    ),
    def(
        "port_registered",
        "bool",
        "onehot",
        "TCP/UDP responder port 1024..=49151",
    ),
    def(
        "port_dynamic",
        "bool",
        "onehot",
        "TCP/UDP responder port 49152 and above",
    ),
    def(
        "app_dns",
        "bool",
        "onehot",
        "application protocol identified as DNS",
    ),
    def(
        "app_tls",
        "bool",
        "onehot",
        "application protocol identified as TLS",
    ),
    def(
        "app_http",
        "bool",
        "onehot",
        "application protocol identified as HTTP",
    ),
    def(
        "dns_max_label_entropy",
        "bits/char",
        "none",
        "highest Shannon entropy of one label of a DNS query name in the flow (0 without DNS)",
    ),
    def(
        "dns_nxdomain",
        "bool",
        "onehot",
        "a DNS response in the flow was NXDOMAIN",
    ),
    def(
        "tls_no_sni",
        "bool",
        "onehot",
        "a TLS ClientHello in the flow had no server name",
    ),
    def(
        "tls_old_version",
        "bool",
        "onehot",
        "TLS version below 1.2 (negotiated, else the highest the client offered)",
    ),
];

/// Flow features in column order, names only.
pub fn flow_feature_names() -> [&'static str; FLOW_N] {
    FLOW_FEATURES.map(|d| d.name)
}

/// Most DNS labels examined per flow (a flow of thousands of queries costs no more).
const MAX_DNS_PER_FLOW: u32 = 64;

/// What the protocol records of one flow said, gathered until the flow ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowFacts {
    pub dns_records: u32,
    pub dns_nxdomain: bool,
    pub dns_max_label_entropy: f64,
    pub tls_no_sni: bool,
    pub tls_old_version: bool,
}

impl FlowFacts {
    pub fn add(&mut self, rec: &ProtoRecord) {
        match rec {
            ProtoRecord::Dns(d) => {
                self.dns_records = self.dns_records.saturating_add(1);
                if d.rcode == Some(3) {
                    self.dns_nxdomain = true;
                }
                if self.dns_records <= MAX_DNS_PER_FLOW {
                    let e = max_label_entropy(&d.query);
                    if e > self.dns_max_label_entropy {
                        self.dns_max_label_entropy = e;
                    }
                }
            }
            ProtoRecord::Tls(t) => {
                if t.sni.as_deref().is_none_or(str::is_empty) {
                    self.tls_no_sni = true;
                }
                if tls_version(t) < 0x0303 {
                    self.tls_old_version = true;
                }
            }
            _ => {}
        }
    }
}

/// The TLS version of a handshake: the negotiated one, else the highest the client
/// offered (supported_versions, else the ClientHello's legacy version). SSL 2.0's
/// 0x0002 sorts below everything, as it should.
pub fn tls_version(t: &crate::proto::TlsRecord) -> u16 {
    t.server_version.unwrap_or_else(|| {
        t.supported_versions
            .iter()
            .copied()
            .filter(|v| *v <= 0x0304)
            .max()
            .unwrap_or(t.client_version)
    })
}

/// Shannon entropy in bits per character of the most random-looking label of `name`
/// (labels longer than 63 bytes, which DNS does not allow, are cut at 63).
pub fn max_label_entropy(name: &str) -> f64 {
    name.split('.')
        .map(|l| entropy(&l.as_bytes()[..l.len().min(63)]))
        .fold(0.0, f64::max)
}

/// Shannon entropy of `s` in bits per byte: DNS labels here, and the DNS-tunnel rule's
/// test for encoded-looking names.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    h.max(0.0)
}

/// How a flow's `conn_state` is summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateClass {
    Established,
    Rejected,
    Unanswered,
    Other,
}

/// The [`StateClass`] of a flow's feature row. TCP and UDP: from `conn_state`. Other
/// protocols, whose `conn_state` is always OTH (as in Zeek): from who sent packets,
/// both sides (Established) or only the originator (Unanswered), as their old S0/SF
/// `conn_state` said, so the models' inputs keep their meaning.
pub fn flow_state_class(f: &FlowRecord) -> StateClass {
    match f.proto {
        6 | 17 => state_class(f.conn_state),
        _ => match (f.orig.pkts > 0, f.resp.pkts > 0) {
            (true, true) => StateClass::Established,
            (true, false) => StateClass::Unanswered,
            _ => StateClass::Other,
        },
    }
}

pub fn state_class(conn_state: &str) -> StateClass {
    match conn_state {
        "S1" | "SF" | "S2" | "S3" | "RSTO" | "RSTR" => StateClass::Established,
        "REJ" => StateClass::Rejected,
        "S0" | "SH" | "RSTOS0" => StateClass::Unanswered,
        _ => StateClass::Other,
    }
}

fn l1p(x: f64) -> f64 {
    // Every input is a non-negative count or duration; clamp anyway so the result is finite.
    if x.is_finite() {
        x.max(0.0).ln_1p()
    } else {
        0.0
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        (a / b).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The feature row of a flow, in [`FLOW_FEATURES`] order.
pub fn flow_features(f: &FlowRecord, facts: &FlowFacts) -> [f64; FLOW_N] {
    let (o, r) = (&f.orig, &f.resp);
    let dur = (f.last_ts - f.first_ts).max(0) as f64 / 1e6;
    let ms = |us: f64| us / 1e3;
    let state = flow_state_class(f);
    let ported = matches!(f.proto, 6 | 17);
    let port = f.resp_port;
    let app = f.app_proto.unwrap_or("");
    let v = [
        l1p(dur),
        l1p(o.pkts as f64),
        l1p(r.pkts as f64),
        l1p(o.bytes as f64),
        l1p(r.bytes as f64),
        ratio(o.payload_bytes as f64, o.bytes as f64),
        ratio(r.payload_bytes as f64, r.bytes as f64),
        ratio(o.bytes as f64, o.bytes.saturating_add(r.bytes) as f64),
        l1p(o.size_mean),
        l1p(o.size_std),
        l1p(r.size_mean),
        l1p(r.size_std),
        l1p(ms(o.iat_mean_us)),
        l1p(ms(o.iat_std_us)),
        l1p(ms(r.iat_mean_us)),
        l1p(ms(r.iat_std_us)),
        l1p((o.syn + r.syn) as f64),
        l1p((o.fin + r.fin) as f64),
        l1p((o.rst + r.rst) as f64),
        l1p((o.psh as u64 + r.psh as u64) as f64),
        flag(state == StateClass::Established),
        flag(state == StateClass::Rejected),
        flag(state == StateClass::Unanswered),
        flag(f.proto == 6),
        flag(f.proto == 17),
        flag(f.proto == 1 || f.proto == 58),
        flag(ported && port < 1024),
        flag(ported && (1024..=49151).contains(&port)),
        flag(ported && port >= 49152),
        flag(app == "dns"),
        flag(app == "tls"),
        flag(app == "http"),
        if facts.dns_max_label_entropy.is_finite() {
            facts.dns_max_label_entropy
        } else {
            0.0
        },
        flag(facts.dns_nxdomain),
        flag(facts.tls_no_sni),
        flag(facts.tls_old_version),
    ];
    v.map(|x| if x.is_finite() { x } else { 0.0 })
}

/// Which home device a flow or protocol record belongs to: the initiator when its
/// address is local, else the responder when its address is local, else the initiator.
/// Returns the MAC and whether that device is the initiator.
pub fn device_of(
    is_local: &dyn Fn(IpAddr) -> bool,
    orig: (IpAddr, Option<[u8; 6]>),
    resp: (IpAddr, Option<[u8; 6]>),
) -> Option<([u8; 6], bool)> {
    if let (true, Some(m)) = (is_local(orig.0), orig.1) {
        return Some((m, true));
    }
    if let (true, Some(m)) = (is_local(resp.0), resp.1) {
        return Some((m, false));
    }
    orig.1.map(|m| (m, true))
}

/// Writes the feature definitions of both kinds into `feature_schema` (replacing the
/// rows of this schema version), so the trainer can check what it reads.
pub fn write_feature_schema(conn: &duckdb::Connection) -> duckdb::Result<()> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let res = (|| {
        conn.execute(
            "DELETE FROM feature_schema WHERE schema_version = ?",
            [SCHEMA_VERSION],
        )?;
        let mut app = conn.appender("feature_schema")?;
        for (kind, defs) in [
            ("flow", &FLOW_FEATURES[..]),
            ("device", &super::device_features::DEVICE_FEATURES[..]),
        ] {
            for (i, d) in defs.iter().enumerate() {
                app.append_row(duckdb::params![
                    kind,
                    i as i32,
                    d.name,
                    d.unit,
                    d.transform,
                    d.description,
                    SCHEMA_VERSION
                ])?;
            }
        }
        app.flush()?;
        conn.execute_batch("COMMIT")
    })();
    if res.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    res
}

/// The trainer's side of the feature contract (tests keep both sides in step).
#[cfg(test)]
pub(crate) const CONTRACT: &str = include_str!("../../models/netguardian_models/contract.py");

/// The names of the tuple `name` (`FLOW_FEATURES`, `DEVICE_FEATURES`) in [`CONTRACT`].
#[cfg(test)]
pub(crate) fn contract_names(name: &str) -> Vec<&'static str> {
    CONTRACT
        .split(&format!("{name}: tuple[str, ...] = ("))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in contract.py"))
        .split(')')
        .next()
        .unwrap_or_default()
        .split('"')
        .skip(1)
        .step_by(2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{DirSummary, EndReason};

    pub(crate) fn record() -> FlowRecord {
        FlowRecord {
            id: 7,
            community_id: String::new(),
            proto: 6,
            vlan: 0,
            orig_addr: "192.168.1.10".parse().unwrap(),
            orig_port: 50000,
            resp_addr: "93.184.216.34".parse().unwrap(),
            resp_port: 443,
            orig_mac: Some([2, 0, 0, 0, 0, 1]),
            resp_mac: Some([2, 0, 0, 0, 0, 0xfe]),
            first_ts: 1_700_000_000_000_000,
            last_ts: 1_700_000_002_000_000,
            orig: DirSummary {
                pkts: 4,
                bytes: 400,
                payload_bytes: 100,
                syn: 1,
                fin: 1,
                psh: 1,
                ack: 3,
                size_mean: 100.0,
                size_std: 20.0,
                iat_mean_us: 500_000.0,
                iat_std_us: 100_000.0,
                ..Default::default()
            },
            resp: DirSummary {
                pkts: 3,
                bytes: 1600,
                payload_bytes: 1400,
                syn: 1,
                fin: 1,
                rst: 0,
                psh: 2,
                size_mean: 1600.0 / 3.0,
                size_std: 0.0,
                iat_mean_us: 999.0,
                iat_std_us: 0.0,
                ..Default::default()
            },
            conn_state: "SF",
            history: String::new(),
            app_proto: Some("tls"),
            end_reason: EndReason::Closed,
            is_final: true,
        }
    }

    fn get(v: &[f64; FLOW_N], name: &str) -> f64 {
        v[FLOW_FEATURES.iter().position(|d| d.name == name).unwrap()]
    }

    #[test]
    fn names_match_the_trainer_contract() {
        assert_eq!(
            contract_names("FLOW_FEATURES"),
            flow_feature_names().to_vec()
        );
        assert!(CONTRACT.contains("SCHEMA_VERSION = 1"));
    }

    #[test]
    fn hand_computed_values() {
        let v = flow_features(&record(), &FlowFacts::default());
        let close = |name: &str, want: f64| {
            let got = get(&v, name);
            assert!((got - want).abs() < 1e-12, "{name}: {got} vs {want}");
        };
        close("duration_log", 3f64.ln()); // 2 s
        close("orig_pkts_log", 5f64.ln());
        close("resp_pkts_log", 4f64.ln());
        close("orig_bytes_log", 401f64.ln());
        close("resp_bytes_log", 1601f64.ln());
        close("orig_payload_ratio", 0.25);
        close("resp_payload_ratio", 1400.0 / 1600.0);
        close("orig_bytes_share", 0.2);
        close("orig_size_mean_log", 101f64.ln());
        close("orig_size_std_log", 21f64.ln());
        close("resp_size_std_log", 0.0);
        close("orig_iat_mean_log", 501f64.ln()); // 500 ms
        close("orig_iat_std_log", 101f64.ln());
        close("resp_iat_mean_log", 1.999f64.ln());
        close("syn_log", 3f64.ln());
        close("fin_log", 3f64.ln());
        close("rst_log", 0.0);
        close("psh_log", 4f64.ln());
        close("state_established", 1.0);
        close("state_rejected", 0.0);
        close("proto_tcp", 1.0);
        close("proto_udp", 0.0);
        close("port_wellknown", 1.0);
        close("port_registered", 0.0);
        close("app_tls", 1.0);
        close("app_dns", 0.0);
        close("dns_max_label_entropy", 0.0);
        close("tls_old_version", 0.0);
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn empty_and_extreme_flows_stay_finite() {
        let mut r = record();
        r.orig = DirSummary::default();
        r.resp = DirSummary::default();
        r.last_ts = r.first_ts - 5; // clock oddity: never negative
        r.proto = 1;
        r.conn_state = "OTH";
        let v = flow_features(&r, &FlowFacts::default());
        assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0), "{v:?}");
        assert_eq!(get(&v, "duration_log"), 0.0);
        assert_eq!(get(&v, "proto_icmp"), 1.0);
        assert_eq!(get(&v, "port_wellknown"), 0.0);
        r.orig.size_mean = f64::NAN;
        r.orig.bytes = u64::MAX;
        let v = flow_features(&r, &FlowFacts::default());
        assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
    }

    #[test]
    fn states_and_ports() {
        let mut r = record();
        for (s, e, j, u) in [
            ("REJ", 0.0, 1.0, 0.0),
            ("S0", 0.0, 0.0, 1.0),
            ("RSTOS0", 0.0, 0.0, 1.0),
            ("OTH", 0.0, 0.0, 0.0),
            ("RSTR", 1.0, 0.0, 0.0),
        ] {
            r.conn_state = s;
            let v = flow_features(&r, &FlowFacts::default());
            assert_eq!(
                (
                    get(&v, "state_established"),
                    get(&v, "state_rejected"),
                    get(&v, "state_unanswered")
                ),
                (e, j, u),
                "{s}"
            );
        }
        r.resp_port = 1024;
        assert_eq!(
            get(&flow_features(&r, &FlowFacts::default()), "port_registered"),
            1.0
        );
        r.resp_port = 49152;
        assert_eq!(
            get(&flow_features(&r, &FlowFacts::default()), "port_dynamic"),
            1.0
        );
    }

    /// ICMP (and every protocol but TCP and UDP) has conn_state OTH, as in Zeek; its
    /// state features still say whether the other side answered.
    #[test]
    fn portless_flows_take_their_state_from_who_sent() {
        let mut r = record();
        r.proto = 1;
        r.conn_state = "OTH";
        let states = |r: &FlowRecord| {
            let v = flow_features(r, &FlowFacts::default());
            (
                get(&v, "state_established"),
                get(&v, "state_rejected"),
                get(&v, "state_unanswered"),
            )
        };
        assert_eq!(states(&r), (1.0, 0.0, 0.0), "echo answered");
        r.resp.pkts = 0;
        assert_eq!(states(&r), (0.0, 0.0, 1.0), "echo unanswered");
        r.orig.pkts = 0;
        r.resp.pkts = 2;
        assert_eq!(states(&r), (0.0, 0.0, 0.0));
        // TCP and UDP still go by conn_state.
        r.proto = 17;
        assert_eq!(states(&r), (0.0, 0.0, 0.0));
    }

    #[test]
    fn label_entropy_by_hand() {
        assert_eq!(max_label_entropy(""), 0.0);
        assert_eq!(max_label_entropy("aaaa.com"), 1.584962500721156); // "com": log2 3
        // "ab": 1 bit; "abcd": 2 bits per character.
        assert!((max_label_entropy("ab.abcd") - 2.0).abs() < 1e-12);
        let long = "x".repeat(300);
        assert_eq!(max_label_entropy(&long), 0.0);
    }

    #[test]
    fn dns_and_tls_facts() {
        let mut facts = FlowFacts::default();
        let dns = crate::proto::DnsRecord {
            ts: 0,
            trans_id: 1,
            query: "abcd.example".into(),
            qtype: 1,
            qclass: 1,
            rcode: Some(3),
            answers: vec![],
            rtt_us: None,
            over_tcp: false,
        };
        facts.add(&ProtoRecord::Dns(dns));
        assert!(facts.dns_nxdomain);
        // "example": e, x, a, m, p, l, e -> 6 symbols, one twice.
        let want =
            -(5.0 * (1.0f64 / 7.0) * (1.0f64 / 7.0).log2()) - (2.0 / 7.0) * (2.0f64 / 7.0).log2();
        assert!((facts.dns_max_label_entropy - want).abs() < 1e-12);
        let mut r = record();
        r.app_proto = Some("dns");
        let v = flow_features(&r, &facts);
        assert_eq!(get(&v, "dns_nxdomain"), 1.0);
        assert_eq!(get(&v, "app_dns"), 1.0);

        let tls = crate::proto::TlsRecord {
            ts: 0,
            client_version: 0x0301,
            supported_versions: vec![],
            sni: None,
            alpn: vec![],
            cipher_count: 3,
            ja3: String::new(),
            ja3_string: String::new(),
            ja4: String::new(),
            server_version: None,
            server_cipher: None,
            ja3s: None,
            cert_subject: None,
            cert_issuer: None,
            cert_not_before: None,
            cert_not_after: None,
            cert_san: vec![],
            cert_self_signed: None,
        };
        let mut facts = FlowFacts::default();
        facts.add(&ProtoRecord::Tls(tls.clone()));
        assert!(facts.tls_no_sni && facts.tls_old_version);
        let modern = crate::proto::TlsRecord {
            sni: Some("example.com".into()),
            supported_versions: vec![0x0304, 0x0303],
            client_version: 0x0303,
            ..tls
        };
        let mut facts = FlowFacts::default();
        facts.add(&ProtoRecord::Tls(modern));
        assert!(!facts.tls_no_sni && !facts.tls_old_version);
    }

    #[test]
    fn device_is_the_local_side() {
        let local = |ip: IpAddr| matches!(ip, IpAddr::V4(v) if v.is_private());
        let a: IpAddr = "192.168.1.10".parse().unwrap();
        let w: IpAddr = "8.8.8.8".parse().unwrap();
        let (ma, mw) = (Some([1; 6]), Some([2; 6]));
        assert_eq!(device_of(&local, (a, ma), (w, mw)), Some(([1; 6], true)));
        assert_eq!(device_of(&local, (w, mw), (a, ma)), Some(([1; 6], false)));
        assert_eq!(device_of(&local, (w, mw), (w, ma)), Some(([2; 6], true)));
        assert_eq!(device_of(&local, (w, None), (w, ma)), None);
    }
}
