//! Events: the typed records every stage after `flow` consumes.
//!
//! The processing thread publishes batches of events once; the store writer, and later
//! the detection rules, the models and the WebSocket stream, each subscribe to the same
//! batches through [`crate::pipeline::EventBus`] — no second pass over the data.

use std::net::IpAddr;

use crate::flow::FlowRecord;
use crate::inventory::{DeviceAddressRecord, DeviceRecord};
use crate::proto::ProtoRecord;

// Flows are by far the most common event; boxing them would add an allocation per
// flow to spare a few bytes on the rare small variants.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Event {
    /// A flow ended, or a long flow's active-timeout update.
    Flow(FlowRecord),
    /// Protocol metadata (DNS, TLS, HTTP, DHCP, names) tied to its flow.
    Meta(Box<MetaRecord>),
    /// A device was first seen or changed (snapshot of its current state).
    Device(Box<DeviceRecord>),
    /// A device used an address (first sighting or a later refresh of last_seen).
    DeviceAddress(DeviceAddressRecord),
    /// Capture counters for one source (file or interface).
    CaptureStats(Box<crate::pipeline::CaptureStats>),
    /// A broadcast ARP request ("who has `target_ip`?"): host discovery on the LAN, read
    /// by `host_scan`. Probes (sender 0.0.0.0) and gratuitous ARP are not published.
    ArpRequest(ArpRequest),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRequest {
    pub ts: i64,
    pub sender_mac: [u8; 6],
    pub sender_ip: std::net::Ipv4Addr,
    pub target_ip: std::net::Ipv4Addr,
}

/// Protocol metadata plus the identity of the flow it came from.
#[derive(Clone, Debug)]
pub struct MetaRecord {
    pub flow_id: u64,
    pub proto: u8,
    pub orig_addr: IpAddr,
    pub orig_port: u16,
    pub resp_addr: IpAddr,
    pub resp_port: u16,
    pub orig_mac: Option<[u8; 6]>,
    pub resp_mac: Option<[u8; 6]>,
    pub record: ProtoRecord,
}
