//! Live capture from a network interface through libpcap.
//!
//! `capture.interface = "auto"` means the interface of the default route (the Linux
//! route tables, IPv4 then IPv6), else libpcap's default device. Opening applies
//! snaplen, promiscuous and immediate mode, the kernel buffer size and the BPF filter;
//! each failure is reported with the interface and libpcap's own words.
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

/// Picks the interface for "auto" (or empty): the interface of the default route
/// ([`default_route_interface`]), else libpcap's default device (the first usable
/// one `pcap_findalldevs` lists).
pub fn resolve_interface(name: &str) -> Result<String, LiveError> {
    if name != "auto" && !name.is_empty() {
        return Ok(name.to_string());
    }
    if let Some(iface) = default_route_interface() {
        return Ok(iface);
    }
    match pcap::Device::lookup() {
        Ok(Some(d)) => Ok(d.name),
        _ => Err(LiveError::NoInterface),
    }
}

/// The interface of the default route: IPv4 (`/proc/net/route`), else IPv6
/// (`/proc/net/ipv6_route`). `None` where neither exists or has one (not Linux, no
/// default route).
pub fn default_route_interface() -> Option<String> {
    let v4 = std::fs::read_to_string("/proc/net/route").ok();
    v4.as_deref().and_then(default_route_v4).or_else(|| {
        let v6 = std::fs::read_to_string("/proc/net/ipv6_route").ok()?;
        default_route_v6(&v6)
    })
}

/// The lowest-metric IPv4 default route's interface in `/proc/net/route` text:
/// destination and mask 0, the route up (RTF_UP), not a reject route (RTF_REJECT).
fn default_route_v4(text: &str) -> Option<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let metric: u32 = f.get(6)?.parse().ok()?;
            let default = f[1] == "00000000" && *f.get(7)? == "00000000";
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0)
                .then(|| (metric, f[0].to_string()))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, iface)| iface)
}

/// The lowest-metric IPv6 default route's interface in `/proc/net/ipv6_route` text
/// (destination ::/0, up, not a reject route: the kernel keeps unreachable defaults on
/// `lo`).
fn default_route_v6(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            let default = f[0].bytes().all(|b| b == b'0') && f[1] == "00";
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && f[9] != "lo")
                .then(|| (metric, f[9].to_string()))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, iface)| iface)
}

/// Route flags of the Linux route tables (linux/route.h).
const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

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

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
";

    #[test]
    fn ipv4_default_route_lowest_metric_wins() {
        assert_eq!(default_route_v4(ROUTE).as_deref(), Some("eth0"));
        // A default route that is down, or a reject route, is not one.
        let down = ROUTE.replace("0003\t0\t0\t100", "0002\t0\t0\t100");
        assert_eq!(default_route_v4(&down).as_deref(), Some("wlan0"));
        let reject = ROUTE.replace("0003\t0\t0\t100", "0201\t0\t0\t100");
        assert_eq!(default_route_v4(&reject).as_deref(), Some("wlan0"));
        // A /0 destination with a non-zero mask is no default route; no routes, none.
        let masked = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask
eth0\t00000000\t00000000\t0001\t0\t0\t0\t000000FF
";
        assert_eq!(default_route_v4(masked), None);
        assert_eq!(default_route_v4(ROUTE.lines().next().unwrap()), None);
        assert_eq!(default_route_v4(""), None);
        assert_eq!(default_route_v4("garbage\nx y z\n\t\n"), None);
    }

    #[test]
    fn ipv6_default_route_skips_unreachable_defaults_on_lo() {
        let z = "00000000000000000000000000000000";
        let table = format!(
            "fd000000000000000000000000000000 40 {z} 00 {z} 00000100 00000001 00000000 00000001     eth0
{z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200       lo
{z} 00 {z} 00 fe800000000000000000000000000001 00000400 00000002 00000000 00000003    wlan0
{z} 00 {z} 00 fd000000000000000000000000000001 00000100 00000002 00000000 00000003     eth1
"
        );
        assert_eq!(default_route_v6(&table).as_deref(), Some("eth1"));
        let only_lo = format!("{z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200       lo\n");
        assert_eq!(default_route_v6(&only_lo), None);
        assert_eq!(default_route_v6("short line\n"), None);
    }

    #[test]
    fn named_interfaces_are_taken_as_given() {
        assert_eq!(resolve_interface("eth7").unwrap(), "eth7");
    }
}
