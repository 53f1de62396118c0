//! Capture files: pcap (including the "modified" pcap format) and pcapng, recognised
//! by their magic bytes (libpcap reads them all; the file name's extension is never
//! consulted).
//!
//! A file that is not a capture, or one that is cut short, ends that source with an
//! error message naming the file and libpcap's reason; packets read before the damage
//! are kept, and the next file is read. A record whose wire length cannot be (below
//! its captured length, or beyond any frame: see [`super::wire_len`]) is accounted
//! with its captured length and counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};

use super::{PacketBatch, Progress, SourceMsg, SourceStats, StopFlag, stopped, timeval_us};
use crate::decode::LinkType;

unsafe extern "C" {
    // libpcap's `FILE *pcap_file(pcap_t *)`: the stdio stream of an offline capture.
    fn pcap_file(p: *mut std::ffi::c_void) -> *mut libc::FILE;
    // libpcap's `int pcap_snapshot(pcap_t *)`: the capture's snaplen.
    fn pcap_snapshot(p: *mut std::ffi::c_void) -> libc::c_int;
}

/// The snaplen libpcap reports for an open capture (0 if it reports none).
fn snaplen(cap: &pcap::Capture<pcap::Offline>) -> u32 {
    // SAFETY: `as_ptr` is a live pcap_t owned by `cap` for the duration of this call;
    // pcap_snapshot only reads it.
    let n = unsafe { pcap_snapshot(cap.as_ptr() as *mut std::ffi::c_void) };
    n.max(0) as u32
}

/// Position in the file being read, for progress reporting.
fn file_pos(cap: &pcap::Capture<pcap::Offline>) -> Option<u64> {
    // SAFETY: `as_ptr` is a live pcap_t owned by `cap` for the duration of this call;
    // pcap_file returns its FILE* (or NULL), which ftell only reads.
    unsafe {
        let f = pcap_file(cap.as_ptr() as *mut std::ffi::c_void);
        if f.is_null() {
            return None;
        }
        let p = libc::ftell(f);
        (p >= 0).then_some(p as u64)
    }
}

/// Checks that a file exists and starts with a magic number libpcap reads: pcap (µs or
/// ns, the "modified" variant with longer record headers too, either byte order) or
/// pcapng.
pub fn sniff(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| format!("{}: too short to be a capture file", path.display()))?;
    const KNOWN: [[u8; 4]; 7] = [
        [0xd4, 0xc3, 0xb2, 0xa1], // pcap, little endian, µs
        [0xa1, 0xb2, 0xc3, 0xd4], // pcap, big endian, µs
        [0x4d, 0x3c, 0xb2, 0xa1], // pcap, little endian, ns
        [0xa1, 0xb2, 0x3c, 0x4d], // pcap, big endian, ns
        [0x34, 0xcd, 0xb2, 0xa1], // "modified" pcap (Kuznetzov's patches), little endian
        [0xa1, 0xb2, 0xcd, 0x34], // "modified" pcap, big endian
        [0x0a, 0x0d, 0x0d, 0x0a], // pcapng section header block
    ];
    if KNOWN.contains(&magic) {
        Ok(())
    } else {
        Err(format!(
            "{}: not a pcap or pcapng file (magic {:02x}{:02x}{:02x}{:02x})",
            path.display(),
            magic[0],
            magic[1],
            magic[2],
            magic[3]
        ))
    }
}

/// Reads `paths` in order into `tx`. Empty batches come back on `pool` for reuse.
pub fn read_files(
    paths: &[PathBuf],
    tx: &Sender<SourceMsg>,
    pool: &Receiver<PacketBatch>,
    progress: &Progress,
    stop: &StopFlag,
) {
    let total: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    let mut done_before = 0u64;
    for path in paths {
        if stopped(stop) {
            break;
        }
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        read_one(path, tx, pool, progress, done_before, stop);
        done_before += size;
        progress.bytes_done.store(done_before, Ordering::Relaxed);
    }
}

fn read_one(
    path: &Path,
    tx: &Sender<SourceMsg>,
    pool: &Receiver<PacketBatch>,
    progress: &Progress,
    done_before: u64,
    stop: &StopFlag,
) {
    let source = path.display().to_string();
    let mut stats = SourceStats::default();
    let opened = sniff(path).and_then(|_| {
        pcap::Capture::from_file(path).map_err(|e| format!("{}: {e}", path.display()))
    });
    let mut cap = match opened {
        Ok(c) => c,
        Err(e) => {
            let link = LinkType::Unsupported(-1);
            let _ = tx.send(SourceMsg::Start {
                source: source.clone(),
                link,
            });
            stats.error = Some(e);
            let _ = tx.send(SourceMsg::End { source, stats });
            return;
        }
    };
    let link = LinkType::from_dlt(cap.get_datalink().0);
    let snaplen = snaplen(&cap);
    if tx
        .send(SourceMsg::Start {
            source: source.clone(),
            link,
        })
        .is_err()
    {
        return;
    }
    let mut batch = PacketBatch::reuse(pool, link);
    let mut batch_bytes = 0u64;
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ts = timeval_us(&p.header.ts);
                let len = batch.push_record(ts, p.header.len, p.data, snaplen);
                stats.packets += 1;
                stats.bytes += len as u64;
                batch_bytes += len as u64;
                if batch.is_full() {
                    progress
                        .packets
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    progress
                        .wire_bytes
                        .fetch_add(std::mem::take(&mut batch_bytes), Ordering::Relaxed);
                    if tx.send(SourceMsg::Batch(batch)).is_err() {
                        return;
                    }
                    batch = PacketBatch::reuse(pool, link);
                    if let Some(pos) = file_pos(&cap) {
                        progress
                            .bytes_done
                            .store(done_before + pos, Ordering::Relaxed);
                    }
                    if stopped(stop) {
                        break;
                    }
                }
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                // libpcap reports truncated or corrupt records here; keep what we have.
                stats.error = Some(format!("{source}: {e}"));
                break;
            }
        }
    }
    if !batch.is_empty() {
        progress
            .packets
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        progress
            .wire_bytes
            .fetch_add(batch_bytes, Ordering::Relaxed);
        let _ = tx.send(SourceMsg::Batch(batch));
    }
    let _ = tx.send(SourceMsg::End { source, stats });
}
