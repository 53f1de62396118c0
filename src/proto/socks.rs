//! SOCKS4/4a/5 handshakes, skipped so that the tunnelled protocol (usually TLS)
//! can be sniffed and parsed like a direct connection.
//!
//! Nothing is recorded about SOCKS itself; this only walks the fixed-format
//! greeting, authentication and connect messages of each side and reports when
//! both sides have reached the tunnelled bytes. Credentials are skipped unread.

use super::stream::Reassembler;

/// Whether the first client bytes are a SOCKS greeting. `None`: need more bytes.
pub(crate) fn sniff(data: &[u8]) -> Option<bool> {
    match data.first() {
        Some(5) => {
            let n = *data.get(1)? as usize;
            Some((1..=16).contains(&n) && data.len() == 2 + n)
        }
        Some(4) => {
            if data.len() < 9 {
                return None;
            }
            Some(matches!(data[1], 1 | 2) && data[8..].len() < 512 && data.last() == Some(&0))
        }
        _ => Some(false),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// First message (client greeting or v4 request; server method choice or v4 reply).
    First,
    /// After the v5 greeting/choice: optional auth, then the request/reply.
    Second,
    Done,
    Failed,
}

/// Progress of both sides through the SOCKS handshake.
#[derive(Debug)]
pub(crate) struct SocksSkip {
    v5: bool,
    stage: [Stage; 2],
}

/// Length of a v5 address of type `atyp` starting at `data[0]`, port included.
fn addr_len(atyp: u8, data: &[u8]) -> Option<Option<usize>> {
    match atyp {
        1 => Some(Some(4 + 2)),
        4 => Some(Some(16 + 2)),
        3 => Some(data.first().map(|&n| 1 + n as usize + 2)),
        _ => None,
    }
}

/// Length of the v5 request/reply at the start of `data`: `Err` = malformed.
fn v5_message(data: &[u8]) -> Result<Option<usize>, ()> {
    if data.len() < 4 {
        return Ok(None);
    }
    if data[0] != 5 || data[2] != 0 {
        return Err(());
    }
    let rest = addr_len(data[3], &data[4..]).ok_or(())?;
    Ok(rest.map(|n| 4 + n).filter(|&n| n <= data.len()))
}

/// Length of a v5 username/password message: [1, ulen, user, plen, pass].
fn v5_auth(data: &[u8]) -> Option<usize> {
    let ulen = *data.get(1)? as usize;
    let plen = *data.get(2 + ulen)? as usize;
    let n = 3 + ulen + plen;
    (n <= data.len()).then_some(n)
}

impl SocksSkip {
    pub fn new(first: u8) -> Self {
        SocksSkip {
            v5: first == 5,
            stage: [Stage::First; 2],
        }
    }

    pub fn failed(&self) -> bool {
        self.stage.contains(&Stage::Failed)
    }

    pub fn done(&self) -> bool {
        self.stage == [Stage::Done; 2]
    }

    /// Consumes handshake bytes of side `d` (0 = client, 1 = server).
    pub fn on_data(&mut self, d: usize, rs: &mut Reassembler) {
        loop {
            let data = rs.data();
            let step = match (self.stage[d], self.v5, d) {
                (Stage::Done | Stage::Failed, ..) => return,
                (Stage::First, true, 0) => data
                    .get(1)
                    .map(|&n| 2 + n as usize)
                    .filter(|&n| n <= data.len())
                    .map(|n| (n, Stage::Second)),
                (Stage::First, true, _) => (data.len() >= 2).then_some((2, Stage::Second)),
                (Stage::Second, true, _) if data.first() == Some(&1) => {
                    let n = if d == 0 {
                        v5_auth(data)
                    } else {
                        (data.len() >= 2).then_some(2)
                    };
                    n.map(|n| (n, Stage::Second))
                }
                (Stage::Second, true, _) => match v5_message(data) {
                    Err(()) => Some((0, Stage::Failed)),
                    Ok(n) if d == 1 && data.get(1).is_some_and(|&r| r != 0) => {
                        n.map(|_| (0, Stage::Failed)) // connection refused
                    }
                    Ok(n) => n.map(|n| (n, Stage::Done)),
                },
                (_, false, 0) => {
                    // v4: fixed 8 bytes, user id, NUL, and for 4a a host name, NUL.
                    let socks4a = data.get(4..7) == Some(&[0, 0, 0]) && data.get(7) != Some(&0);
                    let nuls_needed = if socks4a { 2 } else { 1 };
                    data.iter()
                        .enumerate()
                        .skip(8)
                        .filter(|(_, b)| **b == 0)
                        .nth(nuls_needed - 1)
                        .map(|(i, _)| (i + 1, Stage::Done))
                }
                (_, false, _) => (data.len() >= 8).then(|| {
                    if data[1] == 0x5a {
                        (8, Stage::Done)
                    } else {
                        (0, Stage::Failed)
                    }
                }),
            };
            match step {
                Some((n, next)) => {
                    rs.consume(n);
                    self.stage[d] = next;
                }
                None => {
                    if data.len() >= 1024 {
                        self.stage[d] = Stage::Failed;
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut SocksSkip, d: usize, rs: &mut Reassembler, seq: &mut u32, bytes: &[u8]) {
        rs.push(*seq, false, bytes);
        *seq += bytes.len() as u32;
        s.on_data(d, rs);
    }

    #[test]
    fn socks5_with_auth_and_domain() {
        assert_eq!(sniff(&[5, 2, 0, 2]), Some(true));
        assert_eq!(sniff(&[5]), None);
        assert_eq!(sniff(&[5, 1, 0, 9]), Some(false));
        let mut s = SocksSkip::new(5);
        let (mut c, mut sv) = (Reassembler::new(), Reassembler::new());
        let (mut cs, mut ss) = (0u32, 0u32);
        feed(&mut s, 0, &mut c, &mut cs, &[5, 2, 0, 2]);
        feed(&mut s, 1, &mut sv, &mut ss, &[5, 2]);
        feed(
            &mut s,
            0,
            &mut c,
            &mut cs,
            &[1, 3, b'b', b'o', b'b', 2, b'p', b'w'],
        );
        feed(&mut s, 1, &mut sv, &mut ss, &[1, 0]);
        let mut req = vec![5, 1, 0, 3, 11];
        req.extend_from_slice(b"example.com");
        req.extend_from_slice(&[1, 187]);
        feed(&mut s, 0, &mut c, &mut cs, &req[..6]);
        assert!(!s.done());
        feed(&mut s, 0, &mut c, &mut cs, &req[6..]);
        feed(
            &mut s,
            1,
            &mut sv,
            &mut ss,
            &[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90],
        );
        assert!(s.done() && !s.failed());
        feed(&mut s, 0, &mut c, &mut cs, &[0x16, 3, 1]);
        assert_eq!(c.data(), &[0x16, 3, 1]);
    }

    #[test]
    fn socks4a_and_refusal() {
        let mut req = vec![4, 1, 1, 187, 0, 0, 0, 1];
        req.extend_from_slice(b"user\0example.com\0");
        assert_eq!(sniff(&req), Some(true));
        let mut s = SocksSkip::new(4);
        let (mut c, mut sv) = (Reassembler::new(), Reassembler::new());
        let (mut cs, mut ss) = (0u32, 0u32);
        feed(&mut s, 0, &mut c, &mut cs, &req);
        feed(&mut s, 1, &mut sv, &mut ss, &[0, 0x5a, 0, 0, 0, 0, 0, 0]);
        assert!(s.done());
        let mut s = SocksSkip::new(5);
        let (mut c, mut sv) = (Reassembler::new(), Reassembler::new());
        let (mut cs, mut ss) = (0u32, 0u32);
        feed(
            &mut s,
            0,
            &mut c,
            &mut cs,
            &[5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 80],
        );
        feed(
            &mut s,
            1,
            &mut sv,
            &mut ss,
            &[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0],
        );
        assert!(s.failed());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 5;
        for i in 0..500 {
            let mut s = SocksSkip::new(if i % 2 == 0 { 5 } else { 4 });
            let (mut c, mut sv) = (Reassembler::new(), Reassembler::new());
            let (mut cs, mut ss) = (0u32, 0u32);
            for _ in 0..5 {
                let buf: Vec<u8> = (0..(x % 40))
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x % 7) as u8
                    })
                    .collect();
                feed(&mut s, 0, &mut c, &mut cs, &buf);
                feed(&mut s, 1, &mut sv, &mut ss, &buf);
                let _ = sniff(&buf);
            }
        }
    }
}
