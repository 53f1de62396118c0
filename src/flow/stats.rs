//! Per-direction packet accounting of a flow: counters, sizes, inter-arrival times and
//! TCP flag counts, kept in fixed-size integers so a tracked flow stays small.
//!
//! Means come from totals (bytes / packets, duration / gaps); standard deviations from
//! sums of squares. Inter-arrival times are microseconds of packet time.

use crate::decode::tcp_flags::*;

/// A byte counter in six bytes, saturating at 2^48 − 1 (256 TiB: a day and a half
/// of one 10 Gbit/s flow). Two of them instead of two `u64` keep [`DirStats`] at 72
/// bytes, which is what lets a tracked flow fit in 240.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter48([u16; 3]);

impl Counter48 {
    const MAX: u64 = (1 << 48) - 1;

    pub fn get(self) -> u64 {
        let [a, b, c] = self.0;
        a as u64 | (b as u64) << 16 | (c as u64) << 32
    }

    pub fn add(&mut self, v: u64) {
        let n = self.get().saturating_add(v).min(Self::MAX);
        self.0 = [n as u16, (n >> 16) as u16, (n >> 32) as u16];
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DirStats {
    pub pkts: u32,
    pub bytes: Counter48,
    pub payload: Counter48,
    pub first_ts: i64,
    pub last_ts: i64,
    size_sq: u64,
    iat_sq: f64,
    pub size_min: u16,
    pub size_max: u16,
    pub iat_min: u32,
    pub iat_max: u32,
    /// SYN/FIN/RST/URG counts saturate at 255 per direction (a flow with more is
    /// anomalous either way); PSH and ACK are counted in full.
    pub syn: u8,
    pub fin: u8,
    pub rst: u8,
    pub urg: u8,
    pub psh: u32,
    pub ack: u32,
}

/// Summary of one direction as exported in a flow record.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct DirSummary {
    pub pkts: u64,
    pub bytes: u64,
    pub payload_bytes: u64,
    pub syn: u32,
    pub fin: u32,
    pub rst: u32,
    pub psh: u32,
    pub ack: u32,
    pub urg: u32,
    pub size_min: u32,
    pub size_max: u32,
    pub size_mean: f64,
    pub size_std: f64,
    pub iat_min_us: u64,
    pub iat_max_us: u64,
    pub iat_mean_us: f64,
    pub iat_std_us: f64,
}

impl DirStats {
    /// Accounts one packet of `wire_len` bytes on the wire and `payload` transport
    /// payload bytes at time `ts` (µs).
    pub fn add(&mut self, ts: i64, wire_len: u32, payload: u32, tcp_flags: Option<u8>) {
        let size = wire_len.min(u16::MAX as u32) as u16;
        if self.pkts == 0 {
            self.first_ts = ts;
            self.size_min = size;
            self.size_max = size;
            self.iat_min = u32::MAX;
        } else {
            let gap = (ts - self.last_ts).max(0);
            let g32 = gap.min(u32::MAX as i64) as u32;
            self.iat_min = self.iat_min.min(g32);
            self.iat_max = self.iat_max.max(g32);
            self.iat_sq += (gap as f64) * (gap as f64);
            self.size_min = self.size_min.min(size);
            self.size_max = self.size_max.max(size);
        }
        self.last_ts = self.last_ts.max(ts);
        self.pkts = self.pkts.saturating_add(1);
        self.bytes.add(wire_len as u64);
        self.payload.add(payload as u64);
        self.size_sq = self.size_sq.saturating_add((size as u64) * (size as u64));
        if let Some(f) = tcp_flags {
            let inc = |c: &mut u8, bit: u8| {
                if f & bit != 0 {
                    *c = c.saturating_add(1)
                }
            };
            inc(&mut self.syn, SYN);
            inc(&mut self.fin, FIN);
            inc(&mut self.rst, RST);
            inc(&mut self.urg, URG);
            if f & PSH != 0 {
                self.psh = self.psh.saturating_add(1);
            }
            if f & ACK != 0 {
                self.ack = self.ack.saturating_add(1);
            }
        }
    }

    pub fn summary(&self) -> DirSummary {
        let n = self.pkts as f64;
        let std = |sum: f64, sq: f64, n: f64| {
            if n < 2.0 {
                0.0
            } else {
                let mean = sum / n;
                ((sq / n) - mean * mean).max(0.0).sqrt()
            }
        };
        let (size_mean, size_std) = if self.pkts == 0 {
            (0.0, 0.0)
        } else {
            // Sizes are capped at 65535 for the squares; the mean uses the same cap.
            let sum = (self.bytes.get() as f64).min(n * u16::MAX as f64);
            (sum / n, std(sum, self.size_sq as f64, n))
        };
        let gaps = n - 1.0;
        let (iat_mean, iat_std) = if self.pkts < 2 {
            (0.0, 0.0)
        } else {
            let total = (self.last_ts - self.first_ts) as f64;
            (total / gaps, std(total, self.iat_sq, gaps))
        };
        DirSummary {
            pkts: self.pkts as u64,
            bytes: self.bytes.get(),
            payload_bytes: self.payload.get(),
            syn: self.syn as u32,
            fin: self.fin as u32,
            rst: self.rst as u32,
            psh: self.psh,
            ack: self.ack,
            urg: self.urg as u32,
            size_min: self.size_min as u32,
            size_max: self.size_max as u32,
            size_mean,
            size_std,
            iat_min_us: if self.pkts < 2 {
                0
            } else {
                self.iat_min as u64
            },
            iat_max_us: self.iat_max as u64,
            iat_mean_us: iat_mean,
            iat_std_us: iat_std,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_gaps() {
        let mut d = DirStats::default();
        d.add(1_000_000, 100, 46, Some(SYN));
        d.add(1_000_010, 200, 146, Some(ACK | PSH));
        d.add(1_000_030, 300, 246, Some(ACK | FIN));
        let s = d.summary();
        assert_eq!((s.pkts, s.bytes, s.payload_bytes), (3, 600, 438));
        assert_eq!((s.size_min, s.size_max), (100, 300));
        assert!((s.size_mean - 200.0).abs() < 1e-9);
        assert!((s.size_std - 81.6496580927726).abs() < 1e-6);
        assert_eq!((s.iat_min_us, s.iat_max_us), (10, 20));
        assert!((s.iat_mean_us - 15.0).abs() < 1e-9);
        assert!((s.iat_std_us - 5.0).abs() < 1e-9);
        assert_eq!((s.syn, s.ack, s.psh, s.fin), (1, 2, 1, 1));
    }

    #[test]
    fn byte_counters_hold_48_bits_and_saturate() {
        let mut c = Counter48::default();
        c.add(0xffff);
        c.add(1);
        assert_eq!(c.get(), 0x1_0000, "carry into the second word");
        c.add(5_000_000_000);
        assert_eq!(c.get(), 5_000_065_536, "past 32 bits");
        c.add(u64::MAX);
        assert_eq!(c.get(), (1 << 48) - 1, "saturates, never wraps");
        assert_eq!(std::mem::size_of::<DirStats>(), 72);
    }

    #[test]
    fn single_packet() {
        let mut d = DirStats::default();
        d.add(5, 60, 0, None);
        let s = d.summary();
        assert_eq!((s.iat_min_us, s.iat_max_us, s.iat_mean_us), (0, 0, 0.0));
        assert_eq!(s.size_std, 0.0);
    }
}
