//! Stream: live events for WebSocket clients.
//!
//! The hub subscribes to the pipeline's event bus as a *lossy* subscriber and turns
//! flows and device changes into small JSON messages on a tokio broadcast channel; the
//! detection engine and the stats ticker publish alerts and stats the same way. The
//! broadcast channel has a fixed capacity: a client that falls behind skips messages
//! (it is told how many), and no client can ever slow the pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use chrono::Utc;
use serde_json::json;
use tokio::sync::broadcast;

use crate::detect::lifecycle::StoredAlert;
use crate::event::Event;
use crate::inventory::oui::format_mac;
use crate::pipeline::{Delivery, EventBus};
use crate::store::query::utc_us;

/// One message as sent to clients: `{"type", "data", "timestamp"}`, pre-serialized
/// once for all clients, with the device MACs it concerns for per-client filters.
#[derive(Debug)]
pub struct StreamMsg {
    pub kind: &'static str,
    pub macs: Vec<String>,
    pub json: String,
}

pub struct Hub {
    tx: broadcast::Sender<Arc<StreamMsg>>,
    /// Drop counters of every bus subscription (events the hub was too slow for).
    dropped: std::sync::Mutex<Vec<Arc<AtomicU64>>>,
}

/// The kinds of messages clients can subscribe to.
pub const KINDS: [&str; 4] = ["flow", "alert", "device", "stats"];

impl Hub {
    pub fn new(capacity: usize) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Arc::new(Hub {
            tx,
            dropped: Default::default(),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamMsg>> {
        self.tx.subscribe()
    }

    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events lost before reaching the hub because it was behind.
    pub fn dropped(&self) -> u64 {
        let counters = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        counters.iter().map(|d| d.load(Relaxed)).sum()
    }

    /// Sends a message to every connected client (nothing happens without clients).
    pub fn publish(&self, kind: &'static str, macs: Vec<String>, data: serde_json::Value) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let json = json!({"type": kind, "data": data, "timestamp": Utc::now()}).to_string();
        let _ = self.tx.send(Arc::new(StreamMsg { kind, macs, json }));
    }

    /// Subscribes the hub to a pipeline's event bus (called from `pipeline::run`'s
    /// subscribe hook) and forwards its events on a thread of their own.
    pub fn attach(self: &Arc<Self>, bus: &mut EventBus) {
        let (rx, dropped) = bus.subscribe("stream", 64, Delivery::Lossy);
        self.dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dropped);
        let hub = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ng-stream".into())
            .spawn(move || {
                for batch in rx.iter() {
                    if hub.clients() == 0 {
                        continue;
                    }
                    for ev in batch.iter() {
                        hub.forward(ev);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the stream thread; live stream disabled");
        }
    }

    /// A channel for the detection thread's stored alerts (`pipeline::Hooks::alerts`);
    /// a thread of its own turns each into an `alert` message until every sender is
    /// gone (the run ended). Bounded: when clients are far behind, notifications are
    /// lost, never alerts (they are in the store).
    pub fn alert_sender(self: &Arc<Self>) -> Option<crossbeam_channel::Sender<StoredAlert>> {
        let (tx, rx) = crossbeam_channel::bounded::<StoredAlert>(1024);
        let hub = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ng-alerts".into())
            .spawn(move || {
                for stored in rx.iter() {
                    hub.publish_alert(&stored);
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the alert stream thread; alerts not streamed");
                None
            }
        }
    }

    /// Publishes one stored alert, shaped like the API's `Alert` plus `new`.
    pub fn publish_alert(&self, s: &StoredAlert) {
        let a = &s.alert;
        let mac = a.device_mac.map(format_mac);
        self.publish(
            "alert",
            mac.iter().cloned().collect(),
            json!({
                "id": s.id,
                "new": s.new,
                "count": s.count,
                "state": s.state.as_str(),
                "last_ts": utc_us(a.ts),
                "rule": a.rule,
                "severity": a.severity,
                "title": a.title,
                "explanation": a.explanation,
                "device_mac": mac,
                "peer": a.peer,
                "mitre_technique": a.mitre,
                "flow_ids": a.flow_ids,
                "evidence": a.evidence,
            }),
        );
    }

    fn forward(&self, ev: &Event) {
        match ev {
            Event::Flow(f) => {
                let macs = [f.orig_mac, f.resp_mac]
                    .into_iter()
                    .flatten()
                    .map(format_mac)
                    .collect();
                self.publish(
                    "flow",
                    macs,
                    json!({
                        "id": f.id,
                        "ts": utc_us(f.first_ts),
                        "end_ts": utc_us(f.last_ts),
                        "proto": f.proto_name(),
                        "app_proto": f.app_proto,
                        "orig_addr": f.orig_addr.to_string(),
                        "orig_port": f.orig_port,
                        "resp_addr": f.resp_addr.to_string(),
                        "resp_port": f.resp_port,
                        "orig_mac": f.orig_mac.map(format_mac),
                        "resp_mac": f.resp_mac.map(format_mac),
                        "orig_bytes": f.orig.bytes,
                        "resp_bytes": f.resp.bytes,
                        "orig_pkts": f.orig.pkts,
                        "resp_pkts": f.resp.pkts,
                        "conn_state": f.conn_state,
                        "is_final": f.is_final,
                    }),
                );
            }
            Event::Device(d) => {
                let mac = format_mac(d.mac);
                self.publish(
                    "device",
                    vec![mac.clone()],
                    json!({
                        "mac": mac,
                        "new": d.is_new,
                        "vendor": d.vendor,
                        "hostname": d.hostname,
                        "randomized": d.randomized,
                        "first_seen": utc_us(d.first_seen),
                        "last_seen": utc_us(d.last_seen),
                        "ipv4": d.last_ipv4.map(|a| a.to_string()),
                        "ipv6": d.last_ipv6.map(|a| a.to_string()),
                    }),
                );
            }
            _ => {}
        }
    }
}
