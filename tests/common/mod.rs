//! Shared helpers for integration tests that use the real-world capture
//! corpus at `../shared/corpus` (relative to the repository root).
//!
//! The corpus is not part of the repository. Every test that needs it must
//! call [`corpus_or_skip`] (or one of the `*_dir()` helpers in the
//! submodules) and return early when it yields `None`, so that a fresh clone
//! without `../shared` still passes with a one-line "skipping" message.
//!
//! * [`ndpi`]: parser for ndpiReader's per-flow output (`ndpi/result/*.out`)
//!   plus the documented meaning of its counters.
//! * [`ja4snap`]: parser for the JA4 reference tool's insta snapshots
//!   (`ja4/expected/*.snap`).
//!
//! Usage from an integration test (`tests/foo.rs`):
//!
//! ```ignore
//! mod common;
//! use common::ndpi;
//!
//! #[test]
//! fn flows_match_ndpi() {
//!     let Some(pcaps) = ndpi::ndpi_pcap_dir() else {
//!         return common::skip("flows_match_ndpi");
//!     };
//!     // ...
//! }
//! ```

#![allow(dead_code)]

pub mod ja4snap;
pub mod ndpi;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use netguardian::capture::Progress;
use netguardian::config::Config;
use netguardian::pipeline::{self, Input, RunSummary};
use netguardian::store::Store;

/// Environment variable that overrides the corpus location (useful when the
/// tests run from a scratch crate or a differently laid-out checkout).
pub const CORPUS_ENV: &str = "NETGUARDIAN_CORPUS";

/// Location of the capture corpus, if present.
///
/// Looks at `$NETGUARDIAN_CORPUS` first, then at `../shared/corpus` relative
/// to the crate root (`CARGO_MANIFEST_DIR`). Returns `None` when neither is
/// an existing directory.
pub fn corpus_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CORPUS_ENV) {
        let p = PathBuf::from(p);
        if p.is_dir() {
            return Some(p);
        }
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("corpus");
    if p.is_dir() { Some(p) } else { None }
}

/// A sub-directory of the corpus (e.g. `"ndpi/pcap"`), if it exists.
pub fn corpus_subdir(rel: &str) -> Option<PathBuf> {
    let p = corpus_dir()?.join(rel);
    if p.is_dir() { Some(p) } else { None }
}

/// Prints the one-line skip message for `test`.
pub fn skip(test: &str) {
    eprintln!("skipping {test}: capture corpus not found (../shared/corpus or ${CORPUS_ENV})");
}

/// `corpus_dir()`, printing the one-line skip message for `test` when absent.
pub fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let d = corpus_dir();
    if d.is_none() {
        skip(test);
    }
    d
}

/// Capture file format, detected from the magic bytes (about a hundred corpus
/// files carry the wrong extension, so never trust `.pcap`/`.pcapng`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap, microsecond timestamps (either byte order).
    Pcap,
    /// Classic libpcap, nanosecond timestamps (magic `a1b23c4d`).
    PcapNs,
    /// pcapng (section header block `0a0d0d0a`).
    PcapNg,
}

/// Detects the capture format from the first four bytes of `path`.
/// `None` for anything else (e.g. `ndpi/pcap/README.txt`) or on I/O error.
pub fn capture_format(path: &Path) -> Option<CaptureFormat> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut magic)
        .ok()?;
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => Some(CaptureFormat::Pcap),
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(CaptureFormat::PcapNs),
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(CaptureFormat::PcapNg),
        _ => None,
    }
}

/// The capture files of a corpus folder (files whose magic bytes are pcap or
/// pcapng), sorted by file name.
pub fn capture_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && capture_format(p).is_some())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Runs capture files through the pipeline into `store` with the default configuration,
/// as `netguardian analyze` does. `Err` when a pipeline thread panicked or the store
/// failed; unreadable files are listed in the summary's `errors`.
pub fn analyze_files(store: &Store, files: Vec<PathBuf>) -> anyhow::Result<RunSummary> {
    pipeline::run(
        &Config::default(),
        store,
        Input::Files(files),
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        None,
    )
}
