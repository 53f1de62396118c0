//! Live capture from a network interface through libpcap.
//!
//! Opening applies snaplen, promiscuous and immediate mode, the kernel buffer size and
//! the BPF filter; each failure is reported with the interface and libpcap's own words.
//! The read loop wakes every 100 ms even without packets, to send a clock tick (so a
//! quiet network still closes its flows) and to notice a stop request.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{PacketBatch, Progress, SourceMsg, SourceStats, StopFlag, stopped, timeval_us};
use crate::config::CaptureConfig;
use crate::decode::LinkType;

/// Why a live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no capture interface found (set capture.interface)")]
    NoInterface,
    #[error("cannot open interface {iface}: {msg}")]
    Open { iface: String, msg: String },
    #[error("invalid capture filter {filter:?}: {msg}")]
    Filter { filter: String, msg: String },
}

/// Picks the interface for "auto": libpcap's default device (first up, non-loopback).
pub fn resolve_interface(name: &str) -> Result<String, LiveError> {
    if name != "auto" && !name.is_empty() {
        return Ok(name.to_string());
    }
    match pcap::Device::lookup() {
        Ok(Some(d)) => Ok(d.name),
        _ => Err(LiveError::NoInterface),
    }
}

pub struct LiveSource {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    snaplen: u32,
}

/// Waits up to `ms` milliseconds for the capture's descriptor to become readable.
fn wait_readable(cap: &pcap::Capture<pcap::Active>, ms: i32) {
    use std::os::unix::io::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: cap.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd is owned by `cap`.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl LiveSource {
    pub fn open(cfg: &CaptureConfig) -> Result<LiveSource, LiveError> {
        let iface = resolve_interface(&cfg.interface)?;
        let open_err = |e: pcap::Error| LiveError::Open {
            iface: iface.clone(),
            msg: e.to_string(),
        };
        let mut cap = pcap::Capture::from_device(iface.as_str())
            .map_err(open_err)?
            .snaplen(cfg.snaplen)
            .promisc(cfg.promiscuous)
            .immediate_mode(cfg.immediate_mode)
            .buffer_size((cfg.buffer_mib.max(1) as i32).saturating_mul(1 << 20))
            .timeout(100)
            .open()
            .map_err(open_err)?
            // In immediate mode libpcap ignores the read timeout and blocks until a
            // packet arrives; non-blocking reads plus our own poll() keep the clock
            // ticking and the stop flag honoured on a silent interface.
            .setnonblock()
            .map_err(open_err)?;
        if !cfg.filter.trim().is_empty() {
            cap.filter(&cfg.filter, true)
                .map_err(|e| LiveError::Filter {
                    filter: cfg.filter.clone(),
                    msg: e.to_string(),
                })?;
        }
        let link = LinkType::from_dlt(cap.get_datalink().0);
        Ok(LiveSource {
            iface,
            cap,
            link,
            snaplen: cfg.snaplen.max(0) as u32,
        })
    }

    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// Reads until `stop` is set or the interface fails.
    pub fn run(
        mut self,
        tx: &Sender<SourceMsg>,
        pool: &Receiver<PacketBatch>,
        progress: &Progress,
        stop: &StopFlag,
    ) {
        let source = format!("live:{}", self.iface);
        let link = self.link;
        let snaplen = self.snaplen;
        let mut stats = SourceStats::default();
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
        let mut last_send = now_us();
        let mut last_stats = last_send;
        let mut batch_bytes = 0u64;
        loop {
            if stopped(stop) {
                break;
            }
            let mut timed_out = false;
            match self.cap.next_packet() {
                Ok(p) => {
                    let ts = timeval_us(&p.header.ts);
                    let len = batch.push_record(ts, p.header.len, p.data, snaplen);
                    stats.packets += 1;
                    stats.bytes += len as u64;
                    batch_bytes += len as u64;
                }
                Err(pcap::Error::TimeoutExpired) => {
                    wait_readable(&self.cap, 100);
                    timed_out = true;
                }
                Err(e) => {
                    stats.error = Some(format!("{source}: {e}"));
                    break;
                }
            }
            let now = now_us();
            // Ship a batch when full, or at least every 100 ms so a trickle is not delayed.
            if batch.is_full() || (!batch.is_empty() && now - last_send >= 100_000) {
                let n = batch.len() as u64;
                match tx.try_send(SourceMsg::Batch(batch)) {
                    Ok(()) => {
                        progress.packets.fetch_add(n, Relaxed);
                        progress.wire_bytes.fetch_add(batch_bytes, Relaxed);
                        batch = PacketBatch::reuse(pool, link);
                    }
                    Err(TrySendError::Full(SourceMsg::Batch(mut b))) => {
                        stats.queue_dropped += n;
                        progress.queue_dropped.fetch_add(n, Relaxed);
                        b.clear();
                        batch = b;
                    }
                    Err(_) => return,
                }
                last_send = now;
                batch_bytes = 0;
            } else if timed_out && batch.is_empty() {
                let _ = tx.try_send(SourceMsg::Tick(now));
                last_send = now;
            }
            if now - last_stats >= 1_000_000 {
                last_stats = now;
                if let Ok(s) = self.cap.stats() {
                    progress.kernel_dropped.store(s.dropped as u64, Relaxed);
                    progress.if_dropped.store(s.if_dropped as u64, Relaxed);
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(SourceMsg::Batch(batch));
        }
        if let Ok(s) = self.cap.stats() {
            stats.kernel_dropped = s.dropped as u64;
            stats.if_dropped = s.if_dropped as u64;
        }
        let _ = tx.send(SourceMsg::End { source, stats });
    }
}
