//! Flow: the stage that turns decoded packets into bidirectional conversations.
//!
//! - [`key`]: canonical keys shared by both directions.
//! - [`table`]: the flow table with timeouts, active-timeout updates and eviction.
//! - [`tcp`]: Zeek-compatible TCP states, `conn_state` and `history`.
//! - [`stats`]: per-direction counters and size / inter-arrival statistics.
//! - [`community_id`]: Community ID v1 hashes.
//! - [`frag`]: the ports of recent first IP fragments, so later fragments (which carry
//!   no transport header) count towards their flow without reassembly.
//! - [`features`], [`device_features`]: the anomaly models' feature rows (per flow,
//!   per device per minute) and their definitions.
//!
//! Packet timestamps drive every timeout, so replaying a file gives the same flows as
//! watching the same traffic live.

pub mod community_id;
pub mod device_features;
pub mod features;
pub mod frag;
pub mod key;
pub mod stats;
pub mod table;
pub mod tcp;

use std::net::IpAddr;

pub use stats::DirSummary;
pub use table::{FlowTable, FlowTableStats, PacketInfo};

/// Which side of a flow sent a packet. `Orig` is the initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Direction {
    Orig,
    Resp,
}

/// Why a flow record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No packet for the protocol's idle timeout.
    Idle,
    /// TCP closed by FIN/RST and the close linger passed.
    Closed,
    /// A new connection reused the 5-tuple of a closed one.
    Reused,
    /// Long flow: intermediate update, the flow continues (`final = false`).
    ActiveTimeout,
    /// The table was full and this flow was pushed out.
    Evicted,
    /// Capture ended (end of file or shutdown).
    Shutdown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Closed => "closed",
            EndReason::Reused => "reused",
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::Evicted => "evicted",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A flow as written to the store and sent to later stages.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FlowRecord {
    pub id: u64,
    pub community_id: String,
    pub proto: u8,
    pub vlan: u16,
    pub orig_addr: IpAddr,
    pub orig_port: u16,
    pub resp_addr: IpAddr,
    pub resp_port: u16,
    pub orig_mac: Option<[u8; 6]>,
    pub resp_mac: Option<[u8; 6]>,
    /// First and last packet time, µs since the epoch.
    pub first_ts: i64,
    pub last_ts: i64,
    pub orig: DirSummary,
    pub resp: DirSummary,
    pub conn_state: &'static str,
    pub history: String,
    pub app_proto: Option<&'static str>,
    pub end_reason: EndReason,
    /// False for active-timeout updates of a flow that continues.
    pub is_final: bool,
}

impl FlowRecord {
    pub fn proto_name(&self) -> &'static str {
        proto_name(self.proto)
    }
}

pub fn proto_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        58 => "icmp6",
        132 => "sctp",
        _ => "other",
    }
}
