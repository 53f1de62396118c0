//! Bounded in-order TCP reassembly for one direction of a flow.
//!
//! Application parsers need contiguous bytes (a ClientHello with post-quantum key
//! shares spans two segments, a certificate chain several), but the input is raw
//! segments that may be retransmitted, reordered or lost. This keeps at most
//! [`MAX_BUF`] bytes of in-order data plus [`MAX_OOO`] bytes of early segments, and
//! gives up on the direction (`is_broken`) instead of growing or guessing.

/// Most in-order, not yet consumed bytes kept per direction.
pub const MAX_BUF: usize = 16 * 1024;
/// Most bytes of out-of-order segments kept while waiting for a hole to fill.
const MAX_OOO: usize = 16 * 1024;
/// Most out-of-order segments kept.
const MAX_OOO_SEGS: usize = 16;
/// Segments further ahead than this are treated as bogus and ignored.
const MAX_AHEAD: u32 = 1 << 20;

/// Why a direction stopped delivering data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Not broken.
    No,
    /// A hole that will not be filled (segments lost or too many early ones).
    Gap,
    /// More unconsumed data than [`MAX_BUF`].
    Overflow,
}

/// Reassembly state of one direction.
#[derive(Debug)]
pub struct Reassembler {
    /// Sequence number of the next in-order byte, once known.
    next: Option<u32>,
    /// In-order bytes not yet consumed by the parser.
    buf: Vec<u8>,
    /// Early segments: (sequence number, bytes).
    ooo: Vec<(u32, Vec<u8>)>,
    ooo_bytes: usize,
    /// In-order bytes still to be thrown away unseen (e.g. an HTTP body).
    skip: u64,
    broken: Broken,
    /// Parser asked for no more data from this direction.
    stopped: bool,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Reassembler {
    pub const fn new() -> Self {
        Reassembler {
            next: None,
            buf: Vec::new(),
            ooo: Vec::new(),
            ooo_bytes: 0,
            skip: 0,
            broken: Broken::No,
            stopped: false,
        }
    }

    /// Adds one segment. Returns true when new in-order bytes became available.
    pub fn push(&mut self, seq: u32, syn: bool, payload: &[u8]) -> bool {
        if self.stopped || self.broken != Broken::No {
            return false;
        }
        // SYN consumes one sequence number before the data.
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let next = *self.next.get_or_insert(data_seq);
        if payload.is_empty() {
            return false;
        }
        let ahead = data_seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            self.stash(data_seq, ahead as u32, payload);
            return false;
        }
        // Old or overlapping data: keep only the part past `next`.
        let overlap = ahead.unsigned_abs() as usize;
        if overlap >= payload.len() {
            return false;
        }
        self.append(&payload[overlap..]);
        self.drain_ooo();
        true
    }

    fn stash(&mut self, seq: u32, ahead: u32, payload: &[u8]) {
        if ahead > MAX_AHEAD {
            return; // not plausibly part of this stream
        }
        if self
            .ooo
            .iter()
            .any(|(s, d)| *s == seq && d.len() >= payload.len())
        {
            return; // retransmission of an early segment
        }
        if self.ooo.len() >= MAX_OOO_SEGS || self.ooo_bytes + payload.len() > MAX_OOO {
            // Cannot keep it, and the sender will not send it again: a hole forever.
            self.set_broken(Broken::Gap);
            return;
        }
        self.ooo_bytes += payload.len();
        self.ooo.push((seq, payload.to_vec()));
    }

    fn drain_ooo(&mut self) {
        loop {
            let Some(next) = self.next else { return };
            let mut progressed = false;
            let mut i = 0;
            while i < self.ooo.len() {
                let ahead = self.ooo[i].0.wrapping_sub(next) as i32;
                if ahead > 0 {
                    i += 1;
                    continue;
                }
                let (_, data) = self.ooo.swap_remove(i);
                self.ooo_bytes = self.ooo_bytes.saturating_sub(data.len());
                let overlap = ahead.unsigned_abs() as usize;
                if overlap < data.len() {
                    self.append(&data[overlap..]);
                    progressed = true;
                    break;
                }
            }
            if !progressed || self.broken != Broken::No {
                return;
            }
        }
    }

    fn append(&mut self, mut data: &[u8]) {
        let Some(next) = self.next else { return };
        self.next = Some(next.wrapping_add(data.len() as u32));
        if self.skip > 0 {
            let n = (self.skip.min(data.len() as u64)) as usize;
            self.skip -= n as u64;
            data = &data[n..];
        }
        if data.is_empty() {
            return;
        }
        let room = MAX_BUF.saturating_sub(self.buf.len());
        if data.len() > room {
            self.buf.extend_from_slice(&data[..room]);
            self.broken = Broken::Overflow;
            self.ooo = Vec::new();
            self.ooo_bytes = 0;
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    fn set_broken(&mut self, why: Broken) {
        self.broken = why;
        self.ooo = Vec::new();
        self.ooo_bytes = 0;
    }

    /// Contiguous unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` buffered bytes.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        if n == self.buf.len() {
            // Give the memory back while idle.
            self.buf = Vec::new();
        } else {
            self.buf.drain(..n);
        }
    }

    /// Drops the next `n` bytes, buffered or still to come.
    pub fn skip(&mut self, n: u64) {
        let here = n.min(self.buf.len() as u64) as usize;
        self.consume(here);
        self.skip = self.skip.saturating_add(n - here as u64);
    }

    /// Bytes still to be skipped before data shows up again.
    pub fn pending_skip(&self) -> u64 {
        self.skip
    }

    /// Frees everything; later segments are ignored.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.buf = Vec::new();
        self.ooo = Vec::new();
        self.ooo_bytes = 0;
    }

    /// Whether in-order delivery ended because of a hole or overflow.
    pub fn broken(&self) -> Broken {
        self.broken
    }

    /// Buffered bytes of both kinds.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.ooo_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn in_order_with_syn() {
        let mut r = Reassembler::new();
        assert!(!r.push(1000, true, &[]));
        assert!(r.push(1001, false, b"hello "));
        assert!(r.push(1007, false, b"world"));
        assert_eq!(r.data(), b"hello world");
        r.consume(6);
        assert_eq!(r.data(), b"world");
        r.consume(100);
        assert!(r.data().is_empty());
    }

    #[test]
    fn retransmission_and_overlap() {
        let mut r = Reassembler::new();
        r.push(0, true, &[]);
        r.push(1, false, b"abcd");
        assert!(!r.push(1, false, b"abcd"));
        assert!(r.push(3, false, b"cdef"));
        assert_eq!(r.data(), b"abcdef");
    }

    #[test]
    fn out_of_order_is_put_back() {
        let data = stream(3000);
        let mut r = Reassembler::new();
        r.push(9, true, &[]);
        r.push(10 + 2000, false, &data[2000..]);
        r.push(10 + 1000, false, &data[1000..2000]);
        assert!(r.data().is_empty());
        r.push(10, false, &data[..1000]);
        assert_eq!(r.data(), &data[..]);
        assert_eq!(r.broken(), Broken::No);
    }

    #[test]
    fn sequence_wraps() {
        let mut r = Reassembler::new();
        r.push(u32::MAX - 2, true, &[]);
        r.push(u32::MAX - 1, false, b"ab");
        r.push(0, false, b"cd");
        assert_eq!(r.data(), b"abcd");
    }

    #[test]
    fn missing_segment_gives_up_without_growing() {
        let mut r = Reassembler::new();
        r.push(0, true, &[]);
        r.push(1, false, b"x");
        let seg = vec![7u8; 1400];
        let mut seq = 2 + 1400; // one segment lost
        for _ in 0..100 {
            r.push(seq, false, &seg);
            seq = seq.wrapping_add(1400);
            assert!(r.buffered() <= MAX_BUF + MAX_OOO);
        }
        assert_eq!(r.broken(), Broken::Gap);
        assert_eq!(r.data(), b"x");
    }

    #[test]
    fn overflow_is_capped() {
        let mut r = Reassembler::new();
        let seg = vec![1u8; 1460];
        let mut seq = 0u32;
        for _ in 0..50 {
            r.push(seq, false, &seg);
            seq = seq.wrapping_add(1460);
        }
        assert_eq!(r.data().len(), MAX_BUF);
        assert_eq!(r.broken(), Broken::Overflow);
    }

    #[test]
    fn skip_spans_segments_and_fin() {
        let mut r = Reassembler::new();
        r.push(0, true, &[]);
        r.push(1, false, b"head");
        r.consume(2);
        r.skip(11);
        assert!(r.data().is_empty());
        r.push(5, false, b"12345678");
        assert!(r.data().is_empty());
        r.push(13, false, b"9tail");
        assert_eq!(r.data(), b"tail");
    }

    #[test]
    fn bogus_far_segment_ignored_and_stop_frees() {
        let mut r = Reassembler::new();
        r.push(0, false, b"a");
        r.push(0x8000_0000, false, b"zzz");
        assert_eq!(r.broken(), Broken::No);
        r.stop();
        assert!(!r.push(1, false, b"b"));
        assert_eq!(r.buffered(), 0);
    }
}
