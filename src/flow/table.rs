//! The flow table: finds the flow of each packet, keeps its state, and writes flows
//! out when they end.
//!
//! Bounded by design: a hard cap on tracked flows (a SYN flood from random sources
//! evicts old flows instead of growing memory), idle timeouts per protocol and TCP
//! state, an active timeout that writes long flows as updates, and a periodic expiry
//! scan driven by packet time (or by the wall clock through [`FlowTable::advance`] when
//! a live network is quiet).
//!
//! Small by design too: flows live in a dense slab of 240-byte slots (key and state
//! together), found through a hash index of 4-byte slot numbers. A hash map holding
//! the slots itself keeps up to twice as many buckets as flows, each the size of a
//! slot; the index pays that slack in 5 bytes a bucket instead, so a tracked flow
//! costs 245–251 bytes at any fill, where a map cost 340–540.

use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::HashTable;

use super::key::{Endpoint, FlowKey};
use super::stats::DirStats;
use super::tcp::{self, EndpointState, History};
use super::{Direction, EndReason, FlowRecord};
use crate::config::FlowConfig;
use crate::decode::tcp_flags::{ACK, RST, SYN};
use crate::event::{Event, MetaRecord};
use crate::proto::{APP_LABELS, AppState, ProtoRecord, Transport};

const SEC: i64 = 1_000_000;

/// The transport facts of one packet the table needs.
#[derive(Debug)]
pub struct PacketInfo<'a> {
    pub ts: i64,
    pub wire_len: u32,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    pub vlan: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// (seq, flags, window) for TCP.
    pub tcp: Option<(u32, u8, u16)>,
    /// Payload bytes this packet carried (not limited by snaplen).
    pub payload_len: u32,
    /// Length of the message `payload` begins: `payload_len`, except for the first
    /// fragment of a UDP datagram (the whole datagram's payload). Lets a parser tell a
    /// message cut short from a malformed one.
    pub msg_len: u32,
    /// Captured payload, handed to the protocol parsers.
    pub payload: &'a [u8],
    /// A later IP fragment (no transport header): counted in the flow, never parsed.
    pub later_fragment: bool,
}

/// What a packet did to the table, for the inventory's counters.
#[derive(Debug, Clone, Copy)]
pub struct PacketOutcome {
    pub new_flow: bool,
    pub direction: Direction,
    pub flow_id: u64,
}

struct Flow {
    id: u64,
    dirs: [DirStats; 2],
    /// Next expected TCP sequence number per side (valid once `F_SEQ_INIT` says so).
    next_seq: [u32; 2],
    /// Protocol parser, created at the first payload (SYN-only flows never pay for one).
    app: Option<Box<AppState>>,
    macs: [[u8; 6]; 2],
    tcp: [EndpointState; 2],
    history: History,
    /// `F_*` bits: kept in one byte so a tracked flow stays within its 240-byte slot.
    bits: u8,
    /// Active-timeout updates written so far; the next is due at
    /// `first_ts + (updates + 1) * active_timeout`.
    updates: u16,
    /// Index + 1 into [`APP_LABELS`], 0 while unknown.
    app_label: u8,
}

/// The originator is the key's `lo` endpoint.
const F_ORIG_IS_LO: u8 = 1;
const F_ORIG_MAC: u8 = 2;
const F_RESP_MAC: u8 = 4;
// (8 is free: "the originator sent a SYN" is read from the history now.)
/// The parser was created and finished, or no parser applies.
const F_APP_DONE: u8 = 16;
/// `next_seq[side]` holds a sequence number (bit per side).
const F_SEQ_INIT: [u8; 2] = [32, 64];

fn label_code(label: Option<&'static str>) -> u8 {
    match label {
        None => 0,
        Some(l) => {
            APP_LABELS
                .iter()
                .position(|x| *x == l)
                .unwrap_or(APP_LABELS.len() - 1) as u8
                + 1
        }
    }
}

fn mac_bit(side: usize) -> u8 {
    if side == 0 { F_ORIG_MAC } else { F_RESP_MAC }
}

impl Flow {
    fn first_ts(&self) -> i64 {
        match (self.dirs[0].pkts, self.dirs[1].pkts) {
            (0, _) => self.dirs[1].first_ts,
            (_, 0) => self.dirs[0].first_ts,
            _ => self.dirs[0].first_ts.min(self.dirs[1].first_ts),
        }
    }

    fn last_ts(&self) -> i64 {
        self.dirs[0].last_ts.max(self.dirs[1].last_ts)
    }

    fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }

    fn app_proto(&self) -> Option<&'static str> {
        APP_LABELS
            .get((self.app_label as usize).checked_sub(1)?)
            .copied()
    }

    fn mac(&self, side: usize) -> Option<[u8; 6]> {
        self.has(mac_bit(side)).then_some(self.macs[side])
    }

    fn tcp_closed(&self) -> bool {
        let [o, r] = self.tcp;
        o == EndpointState::Reset
            || r == EndpointState::Reset
            || (o == EndpointState::Closed && r == EndpointState::Closed)
    }
}

/// Counters the table keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableStats {
    pub created: u64,
    pub expired: u64,
    pub evicted: u64,
    pub updates: u64,
    pub active: u64,
    pub peak_active: u64,
}

/// One tracked flow: its key beside its state.
struct Slot {
    key: FlowKey,
    flow: Flow,
}

/// The per-flow budget (the issue asks for at most 256 bytes per tracked flow; the
/// index adds 5–10 bytes a flow on top of the slot).
const _: () = assert!(std::mem::size_of::<Slot>() <= 240);

/// Tables this small (about 4 MiB) are never shrunk: not worth a rehash.
const SHRINK_ABOVE: usize = 16_384;

pub struct FlowTable {
    /// Slot numbers, found by the hash of the slot's key.
    index: HashTable<u32>,
    /// The flows, packed: removing one moves the last slot into its place.
    slots: Vec<Slot>,
    hasher: foldhash::fast::RandomState,
    cfg: FlowConfig,
    next_id: u64,
    now: i64,
    last_scan: i64,
    /// Packets since the last expiry scan: scans are paced by work, not only by time.
    since_scan: u64,
    stats: FlowTableStats,
    proto_out: Vec<ProtoRecord>,
}

impl FlowTable {
    /// `first_id` is the first flow id to hand out (the store reserves a range per run).
    pub fn new(cfg: FlowConfig, first_id: u64) -> Self {
        FlowTable {
            index: HashTable::new(),
            slots: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            cfg,
            next_id: first_id,
            now: i64::MIN,
            last_scan: i64::MIN,
            since_scan: 0,
            stats: FlowTableStats::default(),
            proto_out: Vec::new(),
        }
    }

    pub fn stats(&self) -> FlowTableStats {
        FlowTableStats {
            active: self.slots.len() as u64,
            ..self.stats
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot holding `key`'s flow (`hash` is [`Self::hash`] of it).
    fn find(&self, hash: u64, key: &FlowKey) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    /// Adds a flow for a key not in the table; returns its slot.
    fn insert(&mut self, hash: u64, key: FlowKey, flow: Flow) -> usize {
        let i = self.slots.len();
        self.slots.push(Slot { key, flow });
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, i as u32, |&j| hasher.hash_one(slots[j as usize].key));
        i
    }

    /// Takes slot `i` out; the last slot moves into its place.
    fn remove_at(&mut self, i: usize) -> Slot {
        let hash = self.hash(&self.slots[i].key);
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == i) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        let slot = self.slots.swap_remove(i);
        if i != last {
            let moved = self.hash(&self.slots[i].key);
            if let Some(j) = self.index.find_mut(moved, |&j| j as usize == last) {
                *j = i as u32;
            }
        }
        slot
    }

    fn remove(&mut self, key: &FlowKey) -> Option<Flow> {
        let i = self.find(self.hash(key), key)?;
        Some(self.remove_at(i).flow)
    }

    /// Accounts one packet, writing ended flows and protocol records to `out`.
    pub fn process(&mut self, p: &PacketInfo, out: &mut Vec<Event>) -> PacketOutcome {
        self.advance(p.ts, out);
        let src = Endpoint::new(p.src, p.sport);
        let dst = Endpoint::new(p.dst, p.dport);
        let (key, src_is_lo) = FlowKey::new(p.proto, p.vlan, src, dst);
        let flags = p.tcp.map(|t| t.1).unwrap_or(0);
        let is_syn = flags & SYN != 0 && flags & ACK == 0 && flags & RST == 0;

        self.since_scan += 1;
        // The flow on this key has ended if it idled out (whenever the next scan would
        // have noticed), or if a new SYN reuses the 5-tuple of a closed connection.
        let hash = self.hash(&key);
        let mut found = self.find(hash, &key);
        if let Some(i) = found {
            let f = &self.slots[i].flow;
            let why = if p.ts - f.last_ts() >= self.idle_timeout(&key, f) {
                Some(if key.proto == 6 && f.tcp_closed() {
                    EndReason::Closed
                } else {
                    EndReason::Idle
                })
            } else if is_syn && f.tcp_closed() {
                Some(EndReason::Reused)
            } else {
                None
            };
            if let Some(why) = why {
                let f = self.remove_at(i).flow;
                self.stats.expired += 1;
                self.export(&key, f, why, true, out);
                found = None;
            }
        }

        let new_flow = found.is_none();
        let i = if let Some(i) = found {
            i
        } else {
            if self.slots.len() >= self.max_flows() {
                self.evict(out);
            }
            // The initiator sent the first packet, unless that packet is a SYN-ACK:
            // then the other side must have sent the (unseen) SYN.
            let syn_ack_first = flags & SYN != 0 && flags & ACK != 0;
            let orig_is_lo = if syn_ack_first { !src_is_lo } else { src_is_lo };
            let transport = transport_of(p.proto);
            let mut history = History::default();
            if syn_ack_first {
                history.flip();
            }
            let id = self.next_id;
            self.next_id += 1;
            self.stats.created += 1;
            let i = self.insert(
                hash,
                key,
                Flow {
                    id,
                    dirs: [DirStats::default(); 2],
                    next_seq: [0; 2],
                    app: None,
                    macs: [[0; 6]; 2],
                    tcp: [EndpointState::Inactive; 2],
                    history,
                    bits: if orig_is_lo { F_ORIG_IS_LO } else { 0 }
                        | if transport.is_none() { F_APP_DONE } else { 0 },
                    updates: 0,
                    app_label: 0,
                },
            );
            self.stats.peak_active = self.stats.peak_active.max(self.slots.len() as u64);
            i
        };
        let flow = &mut self.slots[i].flow;
        let dir = if src_is_lo == flow.has(F_ORIG_IS_LO) {
            Direction::Orig
        } else {
            Direction::Resp
        };
        let (me, peer) = match dir {
            Direction::Orig => (0, 1),
            Direction::Resp => (1, 0),
        };
        if !flow.has(mac_bit(me))
            && let Some(m) = p.src_mac
        {
            flow.macs[me] = m;
            flow.bits |= mac_bit(me);
        }
        if !flow.has(mac_bit(peer))
            && let Some(m) = p.dst_mac
        {
            flow.macs[peer] = m;
            flow.bits |= mac_bit(peer);
        }
        let orig = dir == Direction::Orig;
        let has_payload = p.payload_len > 0;
        if let Some((seq, flags, window)) = p.tcp {
            // Retransmission: payload that ends at or before what this side already sent.
            let seq_init = flow.has(F_SEQ_INIT[me]);
            let next_seq = &mut flow.next_seq[me];
            let seg_end = seq
                .wrapping_add(p.payload_len)
                .wrapping_add((flags & SYN != 0) as u32);
            let retrans = has_payload
                && seq_init
                && tcp::seq_lt(seq, *next_seq)
                && !tcp::seq_lt(*next_seq, seg_end);
            if !seq_init || tcp::seq_lt(*next_seq, seg_end) {
                *next_seq = seg_end;
                flow.bits |= F_SEQ_INIT[me];
            }
            let [a, b] = &mut flow.tcp;
            let (mine, theirs) = if me == 0 { (a, b) } else { (b, a) };
            tcp::update(mine, theirs, flags, has_payload);
            tcp::tcp_history(&mut flow.history, orig, flags, has_payload, retrans, window);
        } else if has_payload {
            flow.history.push(b'd', orig);
        }
        flow.dirs[me].add(p.ts, p.wire_len, p.payload_len, p.tcp.map(|t| t.1));

        if flow.app.is_none() && !flow.has(F_APP_DONE) && !p.payload.is_empty() {
            let (o, r) = endpoints(&key, flow);
            flow.app = transport_of(p.proto).and_then(|t| AppState::for_flow(t, o.port, r.port));
            if flow.app.is_none() {
                flow.bits |= F_APP_DONE;
            }
        }
        if let Some(app) = flow.app.as_mut() {
            let out_recs = &mut self.proto_out;
            match p.tcp {
                Some((seq, flags, _)) => app.on_tcp(
                    p.ts,
                    dir,
                    seq,
                    flags & SYN != 0,
                    flags & crate::decode::tcp_flags::FIN != 0,
                    p.payload,
                    out_recs,
                ),
                None if p.proto == 17 && !p.later_fragment => {
                    app.on_udp_part(p.ts, dir, p.payload, p.msg_len as usize, out_recs)
                }
                None => {}
            }
            if flow.app_label == 0 {
                flow.app_label = label_code(app.app_proto());
            }
            if app.is_done() {
                flow.app = None;
                flow.bits |= F_APP_DONE;
            }
        }
        // ICMPv6 carries a payload here only when it is a router advertisement the
        // processor vetted (hop limit 255, link-local source).
        if p.proto == 58 && !p.payload.is_empty() && !p.later_fragment {
            crate::proto::on_icmpv6(p.ts, p.src, p.src_mac, p.payload, &mut self.proto_out);
        }
        let outcome = PacketOutcome {
            new_flow,
            direction: dir,
            flow_id: flow.id,
        };
        if !self.proto_out.is_empty() {
            emit_meta(&key, &self.slots[i].flow, &mut self.proto_out, out);
        }
        outcome
    }

    /// Moves the table's clock to `now` (µs) and, at most once a second, expires idle
    /// flows and writes active-timeout updates. Live capture calls this on quiet
    /// networks so flows still end.
    pub fn advance(&mut self, now: i64, out: &mut Vec<Event>) {
        if now > self.now {
            self.now = now;
        }
        if self.last_scan == i64::MIN {
            self.last_scan = self.now;
            return;
        }
        // Scan at most once a second of packet time, and only when enough packets
        // went by to pay for walking the table (or 10 s passed): sparse captures
        // spanning days would otherwise spend their time scanning.
        let waited = self.now - self.last_scan;
        if waited >= SEC && (self.since_scan * 4 >= self.slots.len() as u64 || waited >= 10 * SEC) {
            self.last_scan = self.now;
            self.since_scan = 0;
            self.scan(out);
        }
    }

    fn idle_timeout(&self, key: &FlowKey, f: &Flow) -> i64 {
        let c = &self.cfg;
        let secs = match key.proto {
            6 => {
                if f.tcp_closed() {
                    c.tcp_closed_timeout_secs
                } else if f.tcp[1] == EndpointState::Inactive && f.tcp[0] == EndpointState::SynSent
                {
                    c.tcp_syn_timeout_secs
                } else {
                    c.tcp_idle_timeout_secs
                }
            }
            17 => c.udp_idle_timeout_secs,
            1 | 58 => c.icmp_idle_timeout_secs,
            _ => c.other_idle_timeout_secs,
        };
        (secs * SEC as f64) as i64
    }

    fn scan(&mut self, out: &mut Vec<Event>) {
        let now = self.now;
        let active = (self.cfg.active_timeout_secs * SEC as f64) as i64;
        // (last_ts, id, key): written in end order so the store receives rows roughly
        // sorted by time, ties and updates by flow id. Slot order depends on which
        // flows ended before, and what follows (device windows, rules) must see the
        // same stream every replay.
        let mut ended: Vec<(i64, u64, FlowKey, EndReason)> = Vec::new();
        let mut updates: Vec<(i64, u64, FlowKey)> = Vec::new();
        for Slot { key: k, flow: f } in &self.slots {
            if now - f.last_ts() >= self.idle_timeout(k, f) {
                let why = if k.proto == 6 && f.tcp_closed() {
                    EndReason::Closed
                } else {
                    EndReason::Idle
                };
                ended.push((f.last_ts(), f.id, *k, why));
            } else if active > 0 && now - f.first_ts() >= (f.updates as i64 + 1) * active {
                updates.push((f.last_ts(), f.id, *k));
            }
        }
        ended.sort_unstable_by_key(|e| (e.0, e.1));
        updates.sort_unstable_by_key(|u| (u.0, u.1));
        for (_, _, k, why) in ended {
            if let Some(f) = self.remove(&k) {
                self.stats.expired += 1;
                self.export(&k, f, why, true, out);
            }
        }
        for (_, _, k) in updates {
            if let Some(i) = self.find(self.hash(&k), &k) {
                let f = &mut self.slots[i].flow;
                // Catch up in one step after a long gap (quiet live network).
                f.updates = ((now - f.first_ts()) / active).min(u16::MAX as i64) as u16;
                self.stats.updates += 1;
                out.push(Event::Flow(record(&k, f, EndReason::ActiveTimeout, false)));
            }
        }
        self.shrink_after_flood();
    }

    /// A flood or scan fills the table, and its flows expire within a minute; the map
    /// never gives back its buckets by itself, and the flood's scattered inserts touched
    /// every page of them. Shrunk once it is seven-eighths empty, so after a flood
    /// from random sources the service returns to the memory of a quiet network.
    fn shrink_after_flood(&mut self) {
        let cap = self.slots.capacity();
        let len = self.slots.len();
        if cap > SHRINK_ABOVE && len < cap / 8 {
            self.slots.shrink_to(len * 2);
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.index
                .shrink_to(len * 2, |&j| hasher.hash_one(slots[j as usize].key));
        }
    }

    /// The cap on tracked flows (slot numbers are `u32`).
    fn max_flows(&self) -> usize {
        self.cfg.max_flows.clamp(1, u32::MAX as usize)
    }

    /// Table full: expire what is due, then push out the least recently active
    /// sixteenth of the table (flows that never got a reply go first).
    fn evict(&mut self, out: &mut Vec<Event>) {
        self.scan(out);
        let cap = self.max_flows();
        if self.slots.len() < cap {
            return;
        }
        let n = (cap / 16).max(1);
        // Unanswered flows (typical of floods and scans) rank as older than any answered one.
        let rank = |f: &Flow| -> i64 {
            if f.dirs[0].pkts == 0 || f.dirs[1].pkts == 0 {
                f.last_ts().saturating_sub(i64::MAX / 2)
            } else {
                f.last_ts()
            }
        };
        let mut ranks: Vec<i64> = self.slots.iter().map(|s| rank(&s.flow)).collect();
        let idx = n.min(ranks.len()) - 1;
        let (_, cut, _) = ranks.select_nth_unstable(idx);
        let cut = *cut;
        // Which of the flows tied at the cut go is decided by flow id, not by slot order.
        let mut victims: Vec<(i64, u64, FlowKey)> = self
            .slots
            .iter()
            .filter(|s| rank(&s.flow) <= cut)
            .map(|s| (rank(&s.flow), s.flow.id, s.key))
            .collect();
        victims.sort_unstable_by_key(|v| (v.0, v.1));
        victims.truncate(n);
        for (_, _, k) in victims {
            if let Some(f) = self.remove(&k) {
                self.stats.evicted += 1;
                self.export(&k, f, EndReason::Evicted, true, out);
            }
        }
    }

    /// Writes every live flow (end of a capture file, shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Event>) {
        self.index.clear();
        let mut all = std::mem::take(&mut self.slots);
        all.sort_unstable_by_key(|s| (s.flow.last_ts(), s.flow.id));
        for Slot { key, flow } in all {
            self.export(&key, flow, EndReason::Shutdown, true, out);
        }
    }

    fn export(
        &mut self,
        key: &FlowKey,
        mut f: Flow,
        why: EndReason,
        fin: bool,
        out: &mut Vec<Event>,
    ) {
        let last = f.last_ts();
        if let Some(app) = f.app.as_mut() {
            app.on_close(last, &mut self.proto_out);
            if f.app_label == 0 {
                f.app_label = label_code(app.app_proto());
            }
        }
        if !self.proto_out.is_empty() {
            emit_meta(key, &f, &mut self.proto_out, out);
        }
        out.push(Event::Flow(record(key, &f, why, fin)));
    }
}

fn transport_of(proto: u8) -> Option<Transport> {
    match proto {
        6 => Some(Transport::Tcp),
        17 => Some(Transport::Udp),
        _ => None,
    }
}

fn endpoints(key: &FlowKey, f: &Flow) -> (Endpoint, Endpoint) {
    if f.has(F_ORIG_IS_LO) {
        (key.lo, key.hi)
    } else {
        (key.hi, key.lo)
    }
}

fn emit_meta(key: &FlowKey, f: &Flow, recs: &mut Vec<ProtoRecord>, out: &mut Vec<Event>) {
    let (o, r) = endpoints(key, f);
    for rec in recs.drain(..) {
        out.push(Event::Meta(Box::new(MetaRecord {
            flow_id: f.id,
            proto: key.proto,
            orig_addr: o.ip(),
            orig_port: o.port,
            resp_addr: r.ip(),
            resp_port: r.port,
            orig_mac: f.mac(0),
            resp_mac: f.mac(1),
            record: rec,
        })));
    }
}

fn record(key: &FlowKey, f: &Flow, why: EndReason, is_final: bool) -> FlowRecord {
    let (o, r) = endpoints(key, f);
    let (orig_addr, resp_addr) = (o.ip(), r.ip());
    let conn_state = if key.proto == 6 {
        tcp::conn_state(
            f.tcp[0],
            f.tcp[1],
            &f.history,
            f.dirs[0].payload.get(),
            f.dirs[1].payload.get(),
        )
    } else {
        tcp::connless_state(key.proto, f.dirs[0].pkts as u64, f.dirs[1].pkts as u64)
    };
    FlowRecord {
        id: f.id,
        community_id: super::community_id::community_id(
            key.proto, orig_addr, o.port, resp_addr, r.port,
        ),
        proto: key.proto,
        vlan: key.vlan,
        orig_addr,
        orig_port: o.port,
        resp_addr,
        resp_port: r.port,
        orig_mac: f.mac(0),
        resp_mac: f.mac(1),
        first_ts: f.first_ts(),
        last_ts: f.last_ts(),
        orig: f.dirs[0].summary(),
        resp: f.dirs[1].summary(),
        conn_state,
        history: f.history.to_string(),
        app_proto: f.app_proto(),
        end_reason: why,
        is_final,
    }
}

/// Bytes one tracked flow's slot takes (key and state, excluding the index's 5–10
/// bytes and heap-held parser state).
pub const fn flow_entry_size() -> usize {
    std::mem::size_of::<Slot>()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn syn(i: u32, ts: i64) -> PacketInfo<'static> {
        PacketInfo {
            ts,
            wire_len: 60,
            src_mac: Some([2, 0, 0, 0, 0, 1]),
            dst_mac: Some([2, 0, 0, 0, 0, 2]),
            vlan: 0,
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            proto: 6,
            sport: 1024 + (i % 60_000) as u16,
            dport: 80,
            tcp: Some((i, 0x02, 1024)),
            payload_len: 0,
            msg_len: 0,
            payload: &[],
            later_fragment: false,
        }
    }

    #[test]
    fn the_map_shrinks_once_a_flood_has_expired() {
        let t0 = 1_700_000_000_000_000;
        let mut table = FlowTable::new(FlowConfig::default(), 1);
        let mut out = Vec::new();
        // A SYN flood from 100,000 random sources, then a quiet minute with one
        // ordinary connection still open.
        for i in 0..100_000 {
            table.process(&syn(i, t0 + i as i64), &mut out);
        }
        let flooded = table.slots.capacity();
        assert!(flooded >= 100_000, "capacity during the flood: {flooded}");
        let quiet = t0 + 60 * SEC;
        table.process(&syn(200_000, quiet), &mut out);
        table.advance(quiet + 2 * SEC, &mut out);
        assert_eq!(table.len(), 1, "the flood's unanswered SYNs expired");
        assert_eq!(
            out.iter().filter(|e| matches!(e, Event::Flow(_))).count(),
            100_000,
            "each flood flow was written once"
        );
        assert!(
            table.slots.capacity() < 64 && table.index.capacity() < 64,
            "capacity after the flood: {} slots, {} index (was {flooded})",
            table.slots.capacity(),
            table.index.capacity()
        );
        // The table still works after shrinking.
        table.process(&syn(200_000, quiet + 3 * SEC), &mut out);
        table.process(&syn(7, quiet + 3 * SEC), &mut out);
        assert_eq!(table.len(), 2);
    }

    fn udp(i: u32, ts: i64, reply: bool) -> PacketInfo<'static> {
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        );
        let (sport, dport) = (2000 + (i % 50_000) as u16, 9999);
        PacketInfo {
            ts,
            wire_len: 80 + i % 7,
            src_mac: None,
            dst_mac: None,
            vlan: 0,
            src: if reply { b } else { a },
            dst: if reply { a } else { b },
            proto: 17,
            sport: if reply { dport } else { sport },
            dport: if reply { sport } else { dport },
            tcp: None,
            payload_len: 20,
            msg_len: 20,
            payload: &[],
            later_fragment: false,
        }
    }

    /// Removing a flow moves the last slot into the hole: every flow that moved must
    /// still be found by its key, keep its id and keep counting.
    #[test]
    fn flows_stay_found_as_others_leave() {
        let t0 = 1_700_000_000_000_000;
        let mut table = FlowTable::new(FlowConfig::default(), 1);
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for i in 0..3_000 {
            ids.push(table.process(&udp(i, t0, false), &mut out).flow_id);
        }
        // Two thirds get a reply 40 s later; the rest idle out (60 s) at 70 s.
        for i in (0..3_000).filter(|i| i % 3 != 0) {
            let o = table.process(&udp(i, t0 + 40 * SEC, true), &mut out);
            assert!(!o.new_flow && o.flow_id == ids[i as usize]);
            assert_eq!(o.direction, crate::flow::Direction::Resp);
        }
        table.advance(t0 + 70 * SEC, &mut out);
        assert_eq!(table.len(), 2_000);
        for i in (0..3_000).filter(|i| i % 3 != 0) {
            let o = table.process(&udp(i, t0 + 71 * SEC, false), &mut out);
            assert!(!o.new_flow, "flow {i} was lost when others left");
            assert_eq!(o.flow_id, ids[i as usize], "flow {i} changed id");
        }
        // An expired flow's key starts a new flow with a new id.
        let again = table.process(&udp(3, t0 + 72 * SEC, false), &mut out);
        assert!(again.new_flow && again.flow_id > ids[2_999]);
        out.clear();
        table.flush_all(&mut out);
        let flows: Vec<&FlowRecord> = out
            .iter()
            .filter_map(|e| match e {
                Event::Flow(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(flows.len(), 2_001);
        assert!(table.is_empty() && table.index.is_empty());
        for f in flows.iter().filter(|f| f.id != again.flow_id) {
            assert_eq!((f.orig.pkts, f.resp.pkts), (2, 1), "flow {}", f.id);
            assert_eq!(f.history, "Dd");
        }
        // Written in end order, then by id.
        assert!(
            flows
                .windows(2)
                .all(|w| (w[0].last_ts, w[0].id) < (w[1].last_ts, w[1].id))
        );
    }

    #[test]
    fn small_tables_are_left_alone() {
        let t0 = 1_700_000_000_000_000;
        let mut table = FlowTable::new(FlowConfig::default(), 1);
        let mut out = Vec::new();
        for i in 0..5_000 {
            table.process(&syn(i, t0), &mut out);
        }
        table.process(&syn(9_999, t0 + 60 * SEC), &mut out);
        table.advance(t0 + 62 * SEC, &mut out);
        assert_eq!(table.len(), 1);
        // (The index's `capacity` is what fits before the next rehash: it moves a
        // little as removals leave tombstones, but a shrink would take it near the
        // length.)
        assert!(
            table.slots.capacity() >= 5_000 && table.index.capacity() >= 5_000,
            "capacity {} slots, {} index",
            table.slots.capacity(),
            table.index.capacity()
        );
    }
}
