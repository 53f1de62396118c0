//! TCP connection tracking the way Zeek reports it: per-endpoint states, the
//! `conn_state` summary (S0, S1, SF, REJ, RSTO, ...) and the `history` letters; and
//! the `conn_state` of the other protocols (UDP by who sent, ICMP and the rest OTH).
//!
//! Users who know Zeek's conn.log read our flows without a new vocabulary, and the
//! detection rules (scans, floods, brute force) key on these outcomes.

use crate::decode::tcp_flags::*;

/// Per-endpoint TCP state, after Zeek's `TCP_Endpoint` states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    /// Seen only mid-stream (no SYN).
    Partial,
    Established,
    Closed,
    Reset,
}

/// Applies one packet sent by endpoint `me` (peer `peer`) to the state machine.
pub fn update(me: &mut EndpointState, peer: &mut EndpointState, flags: u8, payload: bool) {
    use EndpointState::*;
    let syn = flags & SYN != 0;
    let ack = flags & ACK != 0;
    if flags & RST != 0 {
        *me = Reset;
        return;
    }
    if syn && !ack {
        if matches!(*me, Inactive | Partial) {
            *me = SynSent;
        }
    } else if syn && ack {
        if matches!(*me, Inactive | SynSent | Partial) {
            *me = SynAckSent;
        }
    } else if ack || payload {
        match *me {
            SynSent | SynAckSent => {
                *me = Established;
                if matches!(*peer, SynAckSent | SynSent) {
                    *peer = Established;
                }
            }
            Inactive => *me = Partial,
            _ => {}
        }
    }
    if flags & FIN != 0 && *me != Reset {
        *me = Closed;
    }
}

/// Zeek's `conn_state` for a TCP flow (`conn_state` in base/protocols/conn/main.zeek).
pub fn conn_state(
    os: EndpointState,
    rs: EndpointState,
    history: &History,
    orig_payload: u64,
    resp_payload: u64,
) -> &'static str {
    use EndpointState::*;
    let o_inactive = matches!(os, Inactive | Partial);
    let r_inactive = matches!(rs, Inactive | Partial);
    if rs == Reset {
        if matches!(os, SynSent | SynAckSent)
            || (os == Reset && orig_payload == 0 && resp_payload == 0)
        {
            "REJ"
        } else if o_inactive {
            "RSTRH"
        } else {
            "RSTR"
        }
    } else if os == Reset {
        if !r_inactive {
            "RSTO"
        } else if history.syn_then_reset() {
            "RSTOS0"
        } else {
            // The responder never took part and the originator did not open with a
            // SYN (a reset of a connection seen mid-stream): Zeek calls this OTH.
            "OTH"
        }
    } else if rs == Closed && os == Closed {
        "SF"
    } else if os == Closed {
        if r_inactive { "SH" } else { "S2" }
    } else if rs == Closed {
        if o_inactive { "SHR" } else { "S3" }
    } else if os == SynSent && rs == Inactive {
        "S0"
    } else if os == Established && rs == Established {
        "S1"
    } else {
        "OTH"
    }
}

/// Zeek's `conn_state` for a flow that is not TCP: for UDP whether each side sent
/// (S0, SF, SHR, OTH); always OTH for ICMP and every other protocol, as Zeek's
/// conn.log has it (the packet counts tell who answered).
pub fn connless_state(proto: u8, orig_pkts: u64, resp_pkts: u64) -> &'static str {
    if proto != 17 {
        return "OTH";
    }
    match (orig_pkts > 0, resp_pkts > 0) {
        (true, true) => "SF",
        (true, false) => "S0",
        (false, true) => "SHR",
        (false, false) => "OTH",
    }
}

/// The letters a history can hold: `^` and each of Zeek's letters this tracker
/// writes, uppercase for the originator and lowercase for the responder.
const ALPHABET: &[u8; 19] = b"^SHADFRTWQshadfrtwq";
/// Letters kept; more than this many distinct letters are dropped, as Zeek caps too.
const MAX_LETTERS: usize = 18;

/// History letters in the order they first happened, at most once per letter and
/// direction (uppercase: originator, lowercase: responder), as in Zeek.
///
/// Stored as 5-bit codes (index + 1 into [`ALPHABET`], 0 = end), three to a `u16`:
/// 12 bytes where a byte per letter took 19, part of what keeps a tracked flow in
/// 240 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    codes: [u16; MAX_LETTERS / 3],
}

impl History {
    /// Appends `letter` (case set by `orig`) unless it is already there. Letters
    /// outside [`ALPHABET`] are ignored.
    pub fn push(&mut self, letter: u8, orig: bool) {
        let l = if orig {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        };
        let Some(pos) = ALPHABET.iter().position(|&c| c == l) else {
            return;
        };
        let code = pos as u16 + 1;
        for i in 0..MAX_LETTERS {
            let word = &mut self.codes[i / 3];
            let shift = (i % 3) * 5;
            match (*word >> shift) & 31 {
                0 => {
                    *word |= code << shift;
                    return;
                }
                c if c == code => return,
                _ => {}
            }
        }
    }

    /// Marks that the initiator was decided against the first packet's direction.
    pub fn flip(&mut self) {
        self.push(b'^', true);
    }

    fn letters(&self) -> impl Iterator<Item = u8> + '_ {
        (0..MAX_LETTERS)
            .map(|i| (self.codes[i / 3] >> ((i % 3) * 5)) & 31)
            .take_while(|&c| c != 0)
            .map(|c| ALPHABET[c as usize - 1])
    }

    pub fn contains(&self, c: u8) -> bool {
        self.letters().any(|l| l == c)
    }

    /// Whether the history matches Zeek's `^\^?S[^HAFGIQ]*R`: the originator opened
    /// with a SYN and reset before sending a SYN-ACK, ACK, FIN or SYN+FIN/RST (G and I,
    /// Zeek's gap and inconsistency letters, are not tracked here).
    pub fn syn_then_reset(&self) -> bool {
        let mut letters = self.letters().skip_while(|&l| l == b'^');
        if letters.next() != Some(b'S') {
            return false;
        }
        for l in letters {
            match l {
                b'R' => return true,
                b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
                _ => {}
            }
        }
        false
    }
}

impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.letters()
            .try_for_each(|l| std::fmt::Write::write_char(f, l as char))
    }
}

/// Records the history letters one TCP packet contributes.
pub fn tcp_history(
    h: &mut History,
    orig: bool,
    flags: u8,
    payload: bool,
    retrans: bool,
    window: u16,
) {
    let syn = flags & SYN != 0;
    let ack = flags & ACK != 0;
    let fin = flags & FIN != 0;
    let rst = flags & RST != 0;
    if syn && (fin || rst) {
        h.push(b'q', orig);
    }
    if syn && !ack {
        h.push(b's', orig);
    } else if syn && ack {
        h.push(b'h', orig);
    }
    if fin {
        h.push(b'f', orig);
    }
    if rst {
        h.push(b'r', orig);
    }
    if payload {
        if retrans {
            h.push(b't', orig);
        } else {
            h.push(b'd', orig);
        }
    } else if ack && !syn && !fin && !rst {
        h.push(b'a', orig);
    }
    if window == 0 && !rst && !syn {
        h.push(b'w', orig);
    }
}

/// Wrapping "a is before b" for 32-bit TCP sequence numbers.
pub fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointState::*;

    fn run(pkts: &[(bool, u8, bool)]) -> (&'static str, String) {
        let (mut o, mut r) = (Inactive, Inactive);
        let mut h = History::default();
        let (mut op, mut rp) = (0u64, 0u64);
        for &(orig, flags, payload) in pkts {
            if orig {
                update(&mut o, &mut r, flags, payload);
                op += payload as u64;
            } else {
                update(&mut r, &mut o, flags, payload);
                rp += payload as u64;
            }
            tcp_history(&mut h, orig, flags, payload, false, 1000);
        }
        (conn_state(o, r, &h, op, rp), h.to_string())
    }

    #[test]
    fn zeek_states() {
        let hs = [
            (true, SYN, false),
            (false, SYN | ACK, false),
            (true, ACK, false),
        ];
        let mut full = hs.to_vec();
        full.extend([
            (true, ACK | PSH, true),
            (false, ACK | PSH, true),
            (true, FIN | ACK, false),
            (false, FIN | ACK, false),
            (true, ACK, false),
        ]);
        assert_eq!(run(&full), ("SF", "ShADdFf".to_string()));
        assert_eq!(run(&hs), ("S1", "ShA".to_string()));
        assert_eq!(run(&[(true, SYN, false)]).0, "S0");
        assert_eq!(
            run(&[(true, SYN, false), (false, RST | ACK, false)]),
            ("REJ", "Sr".to_string())
        );
        let mut rsto = hs.to_vec();
        rsto.push((true, RST, false));
        assert_eq!(run(&rsto).0, "RSTO");
        let mut rstr = hs.to_vec();
        rstr.push((false, RST, false));
        assert_eq!(run(&rstr).0, "RSTR");
        assert_eq!(run(&[(true, SYN, false), (true, FIN, false)]).0, "SH");
        assert_eq!(run(&[(true, SYN, false), (true, RST, false)]).0, "RSTOS0");
        assert_eq!(
            run(&[(true, ACK | PSH, true), (false, ACK, false)]).0,
            "OTH"
        );
        let mut s2 = hs.to_vec();
        s2.push((true, FIN | ACK, false));
        assert_eq!(run(&s2).0, "S2");
        let mut s3 = hs.to_vec();
        s3.push((false, FIN | ACK, false));
        assert_eq!(run(&s3).0, "S3");
        assert_eq!(connless_state(17, 1, 0), "S0");
        assert_eq!(connless_state(17, 1, 1), "SF");
        assert_eq!(connless_state(17, 0, 1), "SHR");
    }

    /// What Zeek's conn_state gives where ours used to differ: an originator's reset
    /// with a silent responder is RSTOS0 only after a bare SYN (history
    /// `^?S[^HAFGIQ]*R`), otherwise OTH; RSTO needs a responder that took part.
    #[test]
    fn originator_resets_as_zeek() {
        // Mid-stream: no SYN seen, the originator resets, the responder is silent.
        assert_eq!(run(&[(true, RST, false)]), ("OTH", "R".to_string()));
        assert_eq!(
            run(&[(true, ACK | PSH, true), (true, RST | ACK, false)]),
            ("OTH", "DR".to_string())
        );
        // SYN, then ACK or data, then RST, without a reply: not RSTOS0 either.
        assert_eq!(
            run(&[(true, SYN, false), (true, ACK, false), (true, RST, false)]),
            ("OTH", "SAR".to_string())
        );
        // SYN then RST (lowercase responder letters do not count, there are none here).
        assert_eq!(
            run(&[(true, SYN, false), (true, SYN, false), (true, RST, false)]).0,
            "RSTOS0"
        );
        // A responder seen only mid-stream is "partial", inactive to Zeek as well: OTH.
        // RSTO needs a responder that went through the handshake.
        assert_eq!(
            run(&[
                (true, ACK | PSH, true),
                (false, ACK, false),
                (true, RST, false)
            ])
            .0,
            "OTH"
        );
        assert_eq!(
            run(&[
                (true, SYN, false),
                (false, SYN | ACK, false),
                (true, ACK, false),
                (true, RST, false)
            ])
            .0,
            "RSTO"
        );
    }

    #[test]
    fn icmp_and_other_protocols_are_oth_as_in_zeek() {
        for proto in [1, 58, 47, 50] {
            for (o, r) in [(1, 0), (1, 1), (0, 1)] {
                assert_eq!(connless_state(proto, o, r), "OTH", "proto {proto}");
            }
        }
    }

    #[test]
    fn history_keeps_first_order_once_per_letter_up_to_the_cap() {
        let mut h = History::default();
        assert_eq!(h.to_string(), "");
        h.flip();
        for (l, o) in [
            (b's', true),
            (b'h', false),
            (b's', true),
            (b'a', true),
            (b'd', false),
        ] {
            h.push(l, o);
        }
        h.push(b'x', true); // not a history letter: ignored
        assert_eq!(h.to_string(), "^ShAd");
        assert!(h.contains(b'h') && !h.contains(b'H'));
        // Every letter in both directions: 18 kept, in order, the 19th dropped.
        let mut all = History::default();
        for &l in ALPHABET.iter().rev() {
            all.push(l, l.is_ascii_uppercase() || l == b'^');
        }
        let want: String = ALPHABET.iter().rev().take(18).map(|&c| c as char).collect();
        assert_eq!(all.to_string(), want);
        assert_eq!(std::mem::size_of::<History>(), 12);
    }

    #[test]
    fn sequence_compare_wraps() {
        assert!(seq_lt(1, 2));
        assert!(seq_lt(u32::MAX, 3));
        assert!(!seq_lt(3, u32::MAX));
    }
}
