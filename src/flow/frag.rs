//! IP fragments without reassembly: which flow a later fragment belongs to.
//!
//! Only the first fragment of a datagram (offset 0) carries the transport header. The
//! pipeline accounts it to its flow like any packet, with the part of the payload it
//! carries, and records its ports here under (source, destination, protocol, IP
//! identification). A later fragment with the same four finds the ports here and adds
//! its packet and bytes to that flow. Nothing is reassembled: protocol parsers see the
//! first fragment's payload only.
//!
//! Bounded: at most [`CAPACITY`] datagrams are remembered, the oldest forgotten first,
//! and an entry serves only within [`MAX_AGE_US`] of its first fragment (Linux gives up
//! on an incomplete datagram after 30 s). A later fragment that arrives before its
//! first, or after it was forgotten, is counted by the caller and belongs to no flow.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Datagrams remembered at once (about 100 bytes each with the queue).
pub const CAPACITY: usize = 4096;
/// How long after its first fragment a datagram's later fragments are attributed.
pub const MAX_AGE_US: i64 = 30_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Datagram {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

/// Ports of recently seen first fragments, by datagram.
#[derive(Debug, Default)]
pub struct FragmentIndex {
    /// (source port, destination port, time of the first fragment).
    ports: HashMap<Datagram, (u16, u16, i64)>,
    /// Datagrams in the order first seen; each key of `ports` exactly once.
    order: VecDeque<Datagram>,
}

impl FragmentIndex {
    /// Records the ports of a first fragment seen at `ts`.
    #[allow(clippy::too_many_arguments)]
    pub fn first(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        id: u32,
        sport: u16,
        dport: u16,
        ts: i64,
    ) {
        let key = Datagram {
            src,
            dst,
            proto,
            id,
        };
        if let Some(e) = self.ports.get_mut(&key) {
            *e = (sport, dport, ts);
            return;
        }
        if self.order.len() >= CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.ports.remove(&old);
        }
        self.order.push_back(key);
        self.ports.insert(key, (sport, dport, ts));
    }

    /// The ports of the datagram a later fragment seen at `ts` belongs to, if its first
    /// fragment was seen recently enough.
    pub fn later(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        id: u32,
        ts: i64,
    ) -> Option<(u16, u16)> {
        let key = Datagram {
            src,
            dst,
            proto,
            id,
        };
        let &(sport, dport, first) = self.ports.get(&key)?;
        (ts.abs_diff(first) <= MAX_AGE_US as u64).then_some((sport, dport))
    }

    /// Datagrams remembered.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn later_fragments_find_their_first_within_the_age() {
        let mut x = FragmentIndex::default();
        x.first(ip(1), ip(2), 17, 77, 53, 5000, 1_000);
        assert_eq!(x.later(ip(1), ip(2), 17, 77, 2_000), Some((53, 5000)));
        // Another id, protocol or direction is another datagram.
        assert_eq!(x.later(ip(1), ip(2), 17, 78, 2_000), None);
        assert_eq!(x.later(ip(1), ip(2), 6, 77, 2_000), None);
        assert_eq!(x.later(ip(2), ip(1), 17, 77, 2_000), None);
        // Too late (or, with clocks going backwards, too early).
        assert_eq!(x.later(ip(1), ip(2), 17, 77, 1_000 + MAX_AGE_US + 1), None);
        assert_eq!(x.later(ip(1), ip(2), 17, 77, 1_000 - MAX_AGE_US - 1), None);
        // A repeated first fragment refreshes the entry.
        x.first(ip(1), ip(2), 17, 77, 53, 5001, 1_000 + MAX_AGE_US);
        assert_eq!(
            x.later(ip(1), ip(2), 17, 77, 1_000 + MAX_AGE_US + 1),
            Some((53, 5001))
        );
        assert_eq!(x.len(), 1);
    }

    #[test]
    fn bounded_oldest_forgotten_first() {
        let mut x = FragmentIndex::default();
        for id in 0..(CAPACITY as u32 + 10) {
            x.first(ip(1), ip(2), 17, id, 1, 2, 0);
        }
        assert_eq!(x.len(), CAPACITY);
        assert_eq!(x.order.len(), CAPACITY);
        assert_eq!(x.later(ip(1), ip(2), 17, 9, 0), None);
        assert_eq!(x.later(ip(1), ip(2), 17, 10, 0), Some((1, 2)));
        assert_eq!(
            x.later(ip(1), ip(2), 17, CAPACITY as u32 + 9, 0),
            Some((1, 2))
        );
    }
}
