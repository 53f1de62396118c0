//! Mutated real traffic through the whole pipeline: decode, flows, inventory, every
//! application parser, every detection rule, the feature rows and the store.
//!
//! Why: "nothing from the network can panic" is checked elsewhere with fuzzer-found
//! packets (tcpdump's suite, which mostly breaks headers) and with random bytes fed to
//! each parser (which rarely get past the first length check). Neither reaches deep
//! into a TLS handshake, a DNS answer section or a DHCP option list that is *almost*
//! right, which is where parsers break. Here every packet of the nDPI and JA4 captures
//! is replayed in order, and a third of them are mutated the way coverage fuzzers do
//! (bit flips, boundary bytes and lengths, truncation, deleted, duplicated and spliced
//! chunks), so flows, TCP reassembly and parser state carry on around each corrupt
//! packet. Seeded: a failure names its round and replays the same way.
//!
//! The second test damages the capture files themselves (cut short, header bits, record
//! and block lengths set to edge values): each must be read up to the damage or refused
//! with an error naming it, and the run goes on with the next file.
//!
//! `NG_MUTATION_ROUNDS` (default 8; about 1.5 s per round for each test) sets how many
//! differently seeded rounds run; raise it to hunt locally. Skips with a message when the
//! corpus is absent.

mod common;
#[path = "craft/mod.rs"]
mod craft;

use std::path::{Path, PathBuf};

use netguardian::pipeline::RunSummary;
use netguardian::store::Store;

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..hi` (`lo < hi`).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }
}

/// Bytes an Ethernet + IPv4 + UDP header take: most mutations land after them, so the
/// packet still decodes and reaches the flow table and the parsers.
const HEADERS: usize = 42;

/// What a mutation did, counted so the test can show every kind ran.
const KINDS: [&str; 7] = [
    "bit flips",
    "boundary byte",
    "boundary length",
    "truncation",
    "deleted chunk",
    "duplicated chunk",
    "spliced tail",
];

/// One coverage-fuzzer style mutation of `data`; `donor` supplies spliced tails.
fn mutate(rng: &mut Rng, data: &[u8], donor: &[u8]) -> (usize, Vec<u8>) {
    let mut v = data.to_vec();
    let n = v.len();
    // A quarter of the mutations may hit the headers too.
    let start = if rng.below(4) == 0 || n <= HEADERS + 1 {
        0
    } else {
        HEADERS
    };
    if n <= start + 1 {
        v.push(rng.next() as u8);
        return (1, v);
    }
    let kind = rng.below(KINDS.len());
    match kind {
        0 => {
            for _ in 0..rng.range(1, 5) {
                let i = rng.range(start, n);
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let i = rng.range(start, n);
            v[i] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff][rng.below(6)];
        }
        2 => {
            // A 16- or 32-bit big-endian length field set to an edge value.
            let i = rng.range(start, n - 1);
            let edge: u32 =
                [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, n as u32][rng.below(9)];
            if rng.below(2) == 0 || i + 4 > n {
                v[i..i + 2].copy_from_slice(&(edge as u16).to_be_bytes());
            } else {
                let wide = if edge == 0xffff { u32::MAX } else { edge };
                v[i..i + 4].copy_from_slice(&wide.to_be_bytes());
            }
        }
        3 => v.truncate(rng.range(start, n)),
        4 => {
            let a = rng.range(start, n);
            let b = rng.range(a, n.min(a + 64) + 1);
            v.drain(a..b);
        }
        5 => {
            let a = rng.range(start, n);
            let b = rng.range(a, n.min(a + 256) + 1);
            let chunk = v[a..b].to_vec();
            let at = rng.range(start, n + 1);
            v.splice(at..at, chunk);
        }
        _ => {
            let cut = rng.range(start, n);
            v.truncate(cut);
            if !donor.is_empty() {
                let from = rng.below(donor.len());
                v.extend_from_slice(&donor[from..]);
            }
        }
    }
    v.truncate(65_535);
    (kind, v)
}

/// Writes a mutated copy of every capture in `captures` into `out`; returns the files
/// and the packet total, and counts the mutations by kind into `kinds`.
fn mutated_round(
    captures: &[PathBuf],
    out: &Path,
    seed: u64,
    kinds: &mut [u64; KINDS.len()],
) -> (Vec<PathBuf>, u64) {
    let mut rng = Rng(seed);
    let mut files = Vec::new();
    let mut total = 0u64;
    for (i, path) in captures.iter().enumerate() {
        let Ok(mut cap) = pcap::Capture::from_file(path) else {
            continue;
        };
        let link = cap.get_datalink().0 as u32;
        let mut pcap = craft::Pcap::default();
        let mut donor: Vec<u8> = Vec::new();
        while let Ok(p) = cap.next_packet() {
            let ts = netguardian::capture::timeval_us(&p.header.ts);
            let data = if rng.below(3) == 0 {
                let (kind, v) = mutate(&mut rng, p.data, &donor);
                kinds[kind] += 1;
                v
            } else {
                p.data.to_vec()
            };
            donor.clear();
            donor.extend_from_slice(p.data);
            pcap.push(ts, data);
        }
        if pcap.packets.is_empty() {
            continue;
        }
        total += pcap.packets.len() as u64;
        let f = out.join(format!("{i:04}.pcap"));
        pcap.write_link(&f, link, 65_535, None);
        files.push(f);
    }
    (files, total)
}

fn run(store: &Store, files: Vec<PathBuf>, round: u64) -> RunSummary {
    common::analyze_files(store, files)
        .unwrap_or_else(|e| panic!("round {round}: the pipeline failed on mutated traffic: {e:#}"))
}

/// `NG_MUTATION_ROUNDS`, default 8.
fn rounds() -> u64 {
    std::env::var("NG_MUTATION_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .connection()
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn mutated_corpus_traffic_is_counted_never_crashes() {
    let Some(corpus) = common::corpus_or_skip("mutated_corpus_traffic_is_counted_never_crashes")
    else {
        return;
    };
    let rounds = rounds();
    let mut captures = common::capture_files(&corpus.join("ndpi/pcap"));
    captures.extend(common::capture_files(&corpus.join("ja4/pcap")));
    assert!(captures.len() > 500, "corpus captures: {}", captures.len());

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mutated.duckdb")).unwrap();
    let mut kinds = [0u64; KINDS.len()];
    let mut stored_before = 0;
    for round in 0..rounds {
        let out = dir.path().join(format!("round{round}"));
        std::fs::create_dir(&out).unwrap();
        let (files, packets) = mutated_round(&captures, &out, 0x6e67_0000 + round, &mut kinds);
        let s = run(&store, files.clone(), round);
        eprintln!(
            "round {round}: {} files, {} packets, {} flows, {} devices, {} dns / {} tls / {} http / {} dhcp, \
             {} malformed {:?}, {} alerts",
            files.len(),
            s.packets,
            s.flows,
            s.devices,
            s.dns,
            s.tls,
            s.http,
            s.dhcp,
            s.malformed,
            s.malformed_by_reason,
            s.alerts
        );
        // Every mutated file is a valid capture: all of it was read, none refused.
        assert!(s.errors.is_empty(), "round {round}: {:?}", s.errors);
        assert_eq!(s.packets, packets, "round {round}: packets read");
        // Corrupt headers are counted by reason, and the intact majority still yields
        // flows and metadata.
        assert!(
            s.malformed > 100,
            "round {round}: malformed {}",
            s.malformed
        );
        assert!(
            s.malformed_by_reason.len() >= 3,
            "{:?}",
            s.malformed_by_reason
        );
        // Packets not decoded: every reason but the two length ones (a truncated or
        // shortened packet whose headers claim more than the frame now holds is
        // `bogus_length`, still decoded and accounted with the capped lengths).
        let undecoded: u64 = s
            .malformed_by_reason
            .iter()
            .filter(|(r, _)| !r.starts_with("bogus_"))
            .map(|(_, n)| n)
            .sum();
        assert!(
            undecoded < s.packets / 10,
            "round {round}: not decoded {undecoded}"
        );
        assert!(
            s.malformed_by_reason.get("bogus_length") > Some(&100),
            "round {round}: {:?}",
            s.malformed_by_reason
        );
        // (An unmutated replay: 10.7 k flows, 1.5 k DNS, 0.7 k TLS, 1 k HTTP records.)
        assert!(
            s.flows > 5_000 && s.dns > 700 && s.tls > 350 && s.http > 450,
            "round {round}: too little decoded"
        );
        // Each round adds to what earlier rounds stored; nothing stored is lost.
        let stored = count(&store, "SELECT count(*) FROM flows");
        assert!(
            stored > stored_before,
            "round {round}: flows stored {stored}, before {stored_before}"
        );
        stored_before = stored;
        std::fs::remove_dir_all(&out).unwrap();
    }
    eprintln!(
        "mutations by kind: {:?}",
        KINDS.iter().zip(kinds).collect::<Vec<_>>()
    );
    assert!(kinds.iter().all(|&k| k > 1_000), "{kinds:?}");
    // Every protocol record still points at its flow.
    for t in ["dns", "tls", "http", "dhcp", "names"] {
        let orphans = count(
            &store,
            &format!("SELECT count(*) FROM {t} WHERE flow_id NOT IN (SELECT id FROM flows)"),
        );
        assert_eq!(orphans, 0, "{t} rows without their flow");
    }
}

/// One damaged copy of a capture file: cut short, a header byte changed, or a 32-bit
/// field (a record or block length, a timestamp) set to an edge value.
fn damage(rng: &mut Rng, file: &[u8]) -> Vec<u8> {
    let mut v = file.to_vec();
    let n = v.len();
    match rng.below(4) {
        0 => v.truncate(rng.range(1, n)),
        1 => {
            // The file header and the first record or block headers.
            let i = rng.below(n.min(96));
            v[i] ^= 1 << rng.below(8);
        }
        _ => {
            let i = rng.below(n - 4) & !3;
            let edge: u32 = [0, 1, 0xffff, 0x0004_0000, 0x7fff_ffff, u32::MAX][rng.below(6)];
            v[i..i + 4].copy_from_slice(&edge.to_le_bytes());
        }
    }
    v
}

#[test]
fn damaged_capture_files_are_named_never_crash() {
    let Some(corpus) = common::corpus_or_skip("damaged_capture_files_are_named_never_crash") else {
        return;
    };
    // Small pcap and pcapng captures of both byte orders and several link types.
    let sources: Vec<PathBuf> = common::capture_files(&corpus.join("ndpi/pcap"))
        .into_iter()
        .chain(common::capture_files(&corpus.join("tcpdump")))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 200 && m.len() < 20_000))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("damaged.duckdb")).unwrap();
    let mut stats_before = 0;
    for round in 0..rounds() {
        let mut rng = Rng(0x6e67_f11e + round);
        let out = dir.path().join(format!("round{round}"));
        std::fs::create_dir(&out).unwrap();
        let mut files = Vec::new();
        let mut formats = std::collections::BTreeMap::new();
        for (i, src) in sources.iter().enumerate() {
            let bytes = std::fs::read(src).unwrap();
            *formats
                .entry(format!("{:?}", common::capture_format(src).unwrap()))
                .or_insert(0) += 1;
            let f = out.join(format!("{i:04}.pcap"));
            std::fs::write(&f, damage(&mut rng, &bytes)).unwrap();
            files.push(f);
        }
        assert!(files.len() > 300, "damaged files: {}", files.len());
        let s = run(&store, files.clone(), round);
        eprintln!(
            "round {round}: damaged copies of {} captures {formats:?}: {} packets, {} flows, {} malformed, {} errors, e.g. {:?}",
            files.len(),
            s.packets,
            s.flows,
            s.malformed,
            s.errors.len(),
            s.errors.first()
        );
        // Every refused or cut-short file is named in its error, and the rest was read.
        assert!(!s.errors.is_empty() && s.errors.len() < files.len() / 2);
        for e in &s.errors {
            assert!(
                files.iter().any(|f| e.contains(&*f.display().to_string())),
                "round {round}: error without its file name: {e}"
            );
        }
        assert!(
            s.packets > 1_000 && s.flows > 100,
            "round {round}: too little read"
        );
        // What was read before each damaged spot is stored: a capture_stats row for
        // every file that opened.
        let stats = count(&store, "SELECT count(*) FROM capture_stats");
        assert!(
            stats - stats_before > files.len() as i64 / 2,
            "round {round}: capture_stats rows {stats}, before {stats_before}"
        );
        stats_before = stats;
    }
}
