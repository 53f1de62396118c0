//! Capture: where packets come from — capture files ([`file`]) or a live interface
//! ([`live`]) through libpcap.
//!
//! Sources copy packets into reusable [`PacketBatch`]es and send them, with start/end
//! markers and clock ticks, down one bounded channel to the processing thread. A file
//! source waits when that channel is full (nothing is lost); a live source never waits:
//! it drops the batch and counts it, so a slow consumer cannot stall the kernel ring.

pub mod file;
pub mod live;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::decode::LinkType;

/// Packets per batch; large enough to amortise channel costs, small enough for latency.
pub const BATCH_PACKETS: usize = 256;

/// Bytes of packet data a batch is allocated for. A batch counts as full once less than
/// one full-size frame ([`FRAME_ROOM`]) fits, so ordinary traffic never grows the buffer;
/// a jumbo or offloaded packet may, and the batch shrinks back when it is reused. With
/// the queue and pool (about 72 batches) this bounds capture buffers near 9 MiB; batches
/// that grew to 1 MiB used to hold 24 MB at the peak.
pub const BATCH_BYTES: usize = 128 * 1024;

/// Room left for one more Ethernet frame with VLAN tags.
pub const FRAME_ROOM: usize = 2048;

#[derive(Clone, Copy, Debug)]
pub struct PktMeta {
    /// Capture timestamp, µs since the Unix epoch.
    pub ts: i64,
    pub caplen: u32,
    pub wire_len: u32,
    pub off: u32,
    /// The record's wire length was implausible and `wire_len` is the corrected one
    /// (see [`wire_len`]).
    pub len_corrected: bool,
}

/// Packets of one link type, stored back to back in one buffer.
#[derive(Debug)]
pub struct PacketBatch {
    pub link: LinkType,
    pub data: Vec<u8>,
    pub meta: Vec<PktMeta>,
}

impl PacketBatch {
    pub fn new(link: LinkType) -> Self {
        PacketBatch {
            link,
            data: Vec::with_capacity(BATCH_BYTES),
            meta: Vec::with_capacity(BATCH_PACKETS),
        }
    }

    /// An empty batch for `link`: a recycled one from `pool` if any, else a new one.
    pub fn reuse(pool: &crossbeam_channel::Receiver<PacketBatch>, link: LinkType) -> Self {
        let mut b = pool.try_recv().unwrap_or_else(|_| PacketBatch::new(link));
        b.clear();
        b.link = link;
        b
    }

    pub fn push(&mut self, ts: i64, wire_len: u32, bytes: &[u8]) {
        self.push_meta(ts, wire_len, bytes, false);
    }

    /// Adds a packet as libpcap reported it: `len` bytes on the wire, in a capture of
    /// `snaplen`. An implausible `len` is corrected by [`wire_len`] and the packet
    /// marked. Returns the wire length accounted.
    pub fn push_record(&mut self, ts: i64, len: u32, bytes: &[u8], snaplen: u32) -> u32 {
        let (len, corrected) = wire_len(bytes.len() as u32, len, snaplen);
        self.push_meta(ts, len, bytes, corrected);
        len
    }

    fn push_meta(&mut self, ts: i64, wire_len: u32, bytes: &[u8], len_corrected: bool) {
        let off = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        self.meta.push(PktMeta {
            ts,
            caplen: bytes.len() as u32,
            wire_len,
            off,
            len_corrected,
        });
    }

    pub fn packet(&self, i: usize) -> (&PktMeta, &[u8]) {
        let m = &self.meta[i];
        (m, &self.data[m.off as usize..(m.off + m.caplen) as usize])
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.meta.clear();
        if self.data.capacity() > BATCH_BYTES {
            self.data.shrink_to(BATCH_BYTES);
        }
    }

    pub fn is_full(&self) -> bool {
        self.meta.len() >= BATCH_PACKETS || self.data.len() + FRAME_ROOM > BATCH_BYTES
    }
}

/// Messages from a source to the processing thread, in order.
#[derive(Debug)]
pub enum SourceMsg {
    /// A source (file or interface) begins.
    Start {
        source: String,
        link: LinkType,
    },
    Batch(PacketBatch),
    /// Wall-clock time (µs) from a live source with no packets: lets flows expire.
    Tick(i64),
    /// The source ended (end of file, read error, or stop requested).
    End {
        source: String,
        stats: SourceStats,
    },
}

/// What a source knows about its own reading.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    pub packets: u64,
    pub bytes: u64,
    /// libpcap: dropped by the kernel for lack of buffer space (live only).
    pub kernel_dropped: u64,
    /// libpcap: dropped by the interface or driver (live only).
    pub if_dropped: u64,
    /// Dropped by us because the processing queue was full (live only).
    pub queue_dropped: u64,
    /// Why the source stopped early (corrupt file, interface gone), if it did.
    pub error: Option<String>,
}

/// Shared progress counters for progress bars, status lines and `GET /api/stats`.
/// Written by the capture and processing threads with relaxed stores; readers sample.
#[derive(Debug, Default)]
pub struct Progress {
    /// File sources: bytes of the files read so far, and in total.
    pub bytes_done: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Packets and their on-the-wire bytes handed to processing.
    pub packets: AtomicU64,
    pub wire_bytes: AtomicU64,
    /// Live sources: libpcap's kernel and interface drops (sampled about once a second)
    /// and packets we dropped because processing was behind.
    pub kernel_dropped: AtomicU64,
    pub if_dropped: AtomicU64,
    pub queue_dropped: AtomicU64,
    /// Flows tracked right now and created so far (processing thread).
    pub active_flows: AtomicU64,
    pub flows_created: AtomicU64,
    /// Messages the processing thread has handled (packet batches and clock ticks):
    /// the systemd watchdog pings only while this moves.
    pub heartbeats: AtomicU64,
}

/// A stop flag shared by sources and the service.
pub type StopFlag = Arc<AtomicBool>;

pub fn stopped(stop: &StopFlag) -> bool {
    stop.load(Ordering::Relaxed)
}

/// The longest wire length believed without a larger snaplen: libpcap's
/// MAXIMUM_SNAPLEN, above any real link's frames (with offloads) that it captures.
pub const MAX_WIRE_LEN: u32 = 262_144;

/// The wire length to account for a record of `caplen` captured bytes that claims
/// `len` on the wire, in a capture of `snaplen`, and whether the claim was corrected.
///
/// A `len` below `caplen` cannot be (the bytes are there), nor can one beyond both
/// [`MAX_WIRE_LEN`] and `snaplen` (fuzzed files claim gigabytes): either way the
/// captured length is all that is known, and is used.
pub fn wire_len(caplen: u32, len: u32, snaplen: u32) -> (u32, bool) {
    if len < caplen || len > MAX_WIRE_LEN.max(snaplen) {
        (caplen, true)
    } else {
        (len, false)
    }
}

/// Converts a libpcap timeval to µs since the epoch.
pub fn timeval_us(tv: &libc::timeval) -> i64 {
    tv.tv_sec.saturating_mul(1_000_000) + tv.tv_usec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_wire_lengths_become_the_captured_length() {
        let mut b = PacketBatch::new(LinkType::Ethernet);
        assert_eq!(b.push_record(0, 4_000_000_000, &[0u8; 48], 65535), 48);
        assert_eq!(b.push_record(1, 1514, &[0u8; 96], 96), 1514);
        assert!(b.meta[0].len_corrected && !b.meta[1].len_corrected);
        assert_eq!(
            std::mem::size_of::<PktMeta>(),
            24,
            "the flag fits in the padding"
        );
        assert_eq!(wire_len(60, 60, 65535), (60, false));
        assert_eq!(wire_len(96, 1514, 96), (1514, false), "snaplen cut");
        assert_eq!(wire_len(60, 40, 65535), (60, true), "shorter than captured");
        assert_eq!(wire_len(48, 4_093_509_168, 65535), (48, true));
        assert_eq!(wire_len(60, MAX_WIRE_LEN, 65535), (MAX_WIRE_LEN, false));
        assert_eq!(wire_len(60, MAX_WIRE_LEN + 1, 65535), (60, true));
        // A capture whose snaplen is larger still is believed up to its snaplen.
        assert_eq!(wire_len(60, 400_000, 524_288), (400_000, false));
    }

    /// Full-size frames fill a batch without ever growing its buffer, and a batch that
    /// grew for a huge packet shrinks back when it is cleared for reuse.
    #[test]
    fn batches_keep_their_buffer_size() {
        let mut b = PacketBatch::new(LinkType::Ethernet);
        let cap = b.data.capacity();
        assert!(cap >= BATCH_BYTES);
        let frame = [0xabu8; 1518];
        let mut n = 0;
        while !b.is_full() {
            b.push(n, 1518, &frame);
            n += 1;
        }
        assert_eq!(b.data.capacity(), cap, "a full-size frame grew the buffer");
        assert_eq!(n as usize, BATCH_BYTES / 1518 - 1, "room left unused");
        assert_eq!(b.packet(3).1, &frame[..]);

        b.clear();
        b.push(0, 1000, &[1u8; 1000]);
        b.push(1, 300_000, &vec![2u8; 300_000]);
        assert!(b.is_full());
        assert_eq!(b.packet(1).1.len(), 300_000);
        b.clear();
        assert_eq!(b.data.capacity(), BATCH_BYTES);
        assert!(b.is_empty());
    }
}
