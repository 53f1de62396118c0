//! DGA (domain generation algorithm) domain detector.
//!
//! Malware that finds its command-and-control server through a DGA looks up
//! many machine-made names (`xjvbqkzt.info`, `swimmingsortstomachlook.com`).
//! [`score`] gives a probability-like number in 0..=1 that a name is such a
//! name, [`is_dga`] compares it with [`THRESHOLD`].
//!
//! Only the label left of the public suffix is judged ([`registrable`]):
//! `login.example.co.uk` is scored as `example` under `co.uk`. The suffix list
//! (`dga_suffixes.txt`) holds the Public Suffix List's ICANN rules of two and
//! three labels plus dynamic-DNS and blog/shop hosts whose sub-labels are chosen
//! by a user (`*.ddns.net`, `*.blogspot.com`); CDN and cloud names whose
//! sub-labels are machine-made (`d1x2y3.cloudfront.net`) are deliberately *not*
//! suffixes, so their random host ids are not what gets scored.
//!
//! The model (`dga_model.bin`, made by `models/dga/train.py`, see
//! `models/dga/README.md`) has two stages: a logistic regression over hashed
//! character 1..5-grams, the suffix, dictionary words found in the label and two
//! length/suffix shape tokens, then gradient-boosted trees over 93 features:
//! hand-made ones (length, digit and vowel ratios, entropy, runs, letter
//! histogram, dictionary coverage, ...), the stage-1 outputs, a Viterbi word
//! segmentation of the label (73k-word English list with per-word costs and
//! DGA/benign training counts) and two character-trigram Markov models (benign,
//! DGA). All costs, counts and log-probabilities are stored values (integers or
//! f64 tables) so this file reproduces `train.py`'s feature code bit for bit; the
//! test `tests/dga.rs` checks the scores against Python's on stored vectors.
//!
//! Nothing here allocates per call (fixed buffers sized for the 63-byte label
//! limit), and no input (empty, huge, non-ASCII, uppercase, trailing dot,
//! punycode) panics.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

/// Score above which [`is_dga`] says yes. Picked by `train.py` on out-of-fold
/// scores of the training part (three quarters of the corpus), at the rate that
/// gave 0.9 % false positives on inner held-out halves of that part (mean of
/// four splits); must equal the threshold stored in `dga_model.bin` (checked by
/// a test).
pub const THRESHOLD: f32 = 0.8101;

/// Probability-like score in `0.0..=1.0` that `domain` is DGA-generated.
/// Accepts any string: case, surrounding whitespace and trailing dots are ignored.
pub fn score(domain: &str) -> f32 {
    let m = &*MODEL;
    let p = Parsed::new(domain.as_bytes(), &SUFFIXES);
    m.score(&p) as f32
}

/// `score(domain) > THRESHOLD`.
pub fn is_dga(domain: &str) -> bool {
    score(domain) > THRESHOLD
}

/// The registrable part of `domain`: the label left of the public suffix plus
/// the suffix (`a.b.example.co.uk` -> `example.co.uk`, `x.ddns.net` ->
/// `x.ddns.net`), with surrounding whitespace and trailing dots removed and the
/// case kept. A name that is itself a suffix (`co.uk`) is returned whole.
pub fn registrable(domain: &str) -> &str {
    let b = domain.as_bytes();
    let (s, e) = trim(b);
    let sp = locate(&b[s..e], &SUFFIXES);
    domain.get(s + sp.label_start..e).unwrap_or("")
}

/// Deterministic key that puts a domain in one of `train.py`'s four quarters
/// (`key & 3`; quarter 3 is held out from the shipped model's training):
/// splitmix64(FNV-1a-64(canonical scored label)).
pub fn split_key(domain: &str) -> u64 {
    let p = Parsed::new(domain.as_bytes(), &SUFFIXES);
    mix64(fnv1a64(&p.label[..p.label_len]))
}

/// The threshold stored in the embedded model (for the consistency test).
pub fn model_threshold() -> f32 {
    MODEL.threshold as f32
}

// ------------------------------------------------------------------ constants

const MODEL_BYTES: &[u8] = include_bytes!("dga_model.bin");
const SUFFIX_TEXT: &str = include_str!("dga_suffixes.txt");
const MAGIC: &[u8; 8] = b"NGDGA\x02\x00\x00";
const MAX_LABEL: usize = 63;
const MAX_SUFFIX: usize = 63;
const NMAX: usize = 5;
const WORD_MIN: usize = 3;
const WORD_MAX: usize = 16;
const MAX_SPANS: usize = MAX_LABEL * (WORD_MAX - WORD_MIN + 1);
const N_FEATURES: usize = 93;
/// Stage-2 column layout: 58 hand-made, 10 stage-1 outputs, then segmentation, Markov.
const F_SEG: usize = 68;
const F_MK: usize = 85;
const N_WORDF: usize = 17;
const N_MK: usize = 8;
// word segmentation (see train.py): integer costs in 1/16 units
const SEG_MAXW: usize = 20;
const SEG_UNK: i64 = 12 * 16;
const SEG_SHORT_PENALTY: u16 = 6 * 16;
const SEG_DEFAULT_BASE: u8 = 10 * 16;
// character trigram Markov models: 0 = '^', 1..=39 = MK_SYMS, 40 = '$'
const MK_SYMS: &[u8; 39] = b"abcdefghijklmnopqrstuvwxyz0123456789-_*";
const MK_A: usize = 41;
const MK_Q: f64 = 8.0;
const LETTER_ORDER: &[u8; 37] = b"abcdefghijklmnopqrstuvwxyz0123456789-";

// ------------------------------------------------------------------ hashing

const FNV64_INIT: u64 = 0xcbf2_9ce4_8422_2325;

#[inline]
fn fnv64_step(h: u64, c: u8) -> u64 {
    (h ^ c as u64).wrapping_mul(0x0000_0100_0000_01b3)
}

fn fnv1a64(b: &[u8]) -> u64 {
    b.iter().fold(FNV64_INIT, |h, &c| fnv64_step(h, c))
}

const FNV32_INIT: u32 = 0x811c_9dc5;

#[inline]
fn fnv32_step(h: u32, c: u8) -> u32 {
    (h ^ c as u32).wrapping_mul(0x0100_0193)
}

fn fnv32_from(mut h: u32, b: &[u8]) -> u32 {
    for &c in b {
        h = fnv32_step(h, c);
    }
    h
}

fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a hasher for the word and suffix sets (short byte strings).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &c in bytes {
            h = (h ^ c as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvSet<T> = HashSet<T, BuildHasherDefault<Fnv>>;

// ------------------------------------------------------------------ suffixes

struct Suffixes {
    exact: FnvSet<&'static [u8]>,
    wild: FnvSet<&'static [u8]>,
}

static SUFFIXES: LazyLock<Suffixes> = LazyLock::new(|| {
    let mut exact = FnvSet::default();
    let mut wild = FnvSet::default();
    for line in SUFFIX_TEXT.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.strip_prefix("*.") {
            Some(t) => wild.insert(t.as_bytes()),
            None => exact.insert(l.as_bytes()),
        };
    }
    Suffixes { exact, wild }
});

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Strip surrounding whitespace, then trailing dots (as Python's
/// `strip(b" \t\r\n\x0b\x0c").rstrip(b".")`). Returns the byte range.
fn trim(b: &[u8]) -> (usize, usize) {
    let mut s = 0;
    let mut e = b.len();
    while s < e && is_ws(b[s]) {
        s += 1;
    }
    while e > s && is_ws(b[e - 1]) {
        e -= 1;
    }
    while e > s && b[e - 1] == b'.' {
        e -= 1;
    }
    (s, e)
}

/// Case-insensitive set lookup of `part` (short strings only).
fn in_set(set: &FnvSet<&'static [u8]>, part: &[u8]) -> bool {
    let mut buf = [0u8; 96];
    if part.len() > buf.len() {
        return false;
    }
    for (d, &c) in buf.iter_mut().zip(part) {
        *d = c.to_ascii_lowercase();
    }
    set.contains(&buf[..part.len()])
}

/// Where the scored label and the suffix sit in a trimmed domain.
struct Spans {
    label_start: usize,
    label_end: usize,
    /// Start of the suffix (after the label's dot); == len when there is none.
    suffix_start: usize,
    n_sub: usize,
}

fn locate(d: &[u8], sfx: &Suffixes) -> Spans {
    // positions of the last four dots, rightmost first, and the dot count
    let mut rd = [0usize; 4];
    let mut found = 0;
    let mut dots = 0usize;
    for (i, &c) in d.iter().enumerate().rev() {
        if c == b'.' {
            if found < 4 {
                rd[found] = i;
                found += 1;
            }
            dots += 1;
        }
    }
    let n = dots + 1;
    // the last m labels (m <= dots + 1)
    let last = |m: usize| -> &[u8] { if dots >= m { &d[rd[m - 1] + 1..] } else { d } };
    let k = if n >= 3 && in_set(&sfx.exact, last(3)) {
        3
    } else if n >= 2 && (in_set(&sfx.exact, last(2)) || in_set(&sfx.wild, last(1))) {
        2
    } else {
        1
    };
    if n > k {
        let i = n - k - 1;
        Spans {
            label_start: if dots > k { rd[k] + 1 } else { 0 },
            label_end: rd[k - 1],
            suffix_start: rd[k - 1] + 1,
            n_sub: i.min(3),
        }
    } else if dots >= 1 {
        // the whole name is a suffix: score its first label
        let first_dot = rd[dots - 1];
        Spans {
            label_start: 0,
            label_end: first_dot,
            suffix_start: first_dot + 1,
            n_sub: 0,
        }
    } else {
        Spans {
            label_start: 0,
            label_end: d.len(),
            suffix_start: d.len(),
            n_sub: 0,
        }
    }
}

#[inline]
fn canon(c: u8, keep_dot: bool) -> u8 {
    let c = c.to_ascii_lowercase();
    if c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || c == b'-'
        || c == b'_'
        || (keep_dot && c == b'.')
    {
        c
    } else {
        b'*'
    }
}

/// Canonical label (lowercase, `[a-z0-9_-]` or `*`, at most 63 bytes) and suffix.
struct Parsed {
    label: [u8; MAX_LABEL],
    label_len: usize,
    suffix: [u8; MAX_SUFFIX],
    suffix_len: usize,
    n_sub: usize,
}

impl Parsed {
    fn new(raw: &[u8], sfx: &Suffixes) -> Parsed {
        let (s, e) = trim(raw);
        let d = &raw[s..e];
        let sp = locate(d, sfx);
        let mut p = Parsed {
            label: [0; MAX_LABEL],
            label_len: 0,
            suffix: [0; MAX_SUFFIX],
            suffix_len: 0,
            n_sub: sp.n_sub,
        };
        let lab = &d[sp.label_start..sp.label_end];
        p.label_len = lab.len().min(MAX_LABEL);
        for (o, &c) in p.label.iter_mut().zip(&lab[..p.label_len]) {
            *o = canon(c, false);
        }
        let suf = d.get(sp.suffix_start..).unwrap_or(&[]);
        p.suffix_len = suf.len().min(MAX_SUFFIX);
        for (o, &c) in p.suffix.iter_mut().zip(&suf[..p.suffix_len]) {
            *o = canon(c, true);
        }
        p
    }
}

// ------------------------------------------------------------------ model

struct Node {
    feature: u8,
    left: u8,
    right: u8,
    threshold: f64,
}

struct Tree {
    first_node: u32,
    first_leaf: u32,
    n_inner: u8,
}

struct Model {
    bias: f64,
    scale: f64,
    threshold: f64,
    mask: usize,
    q: &'static [u8],
    vocab: FnvSet<&'static [u8]>,
    baseline: f64,
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    trees: Vec<Tree>,
    lex: Lexicon,
    /// log((count + 0.5) / n_dga), log((count + 0.5) / n_benign), log1p(count)
    ld: Vec<f64>,
    lb: Vec<f64>,
    g: Vec<f64>,
    /// Markov log-probabilities * MK_Q: [benign, dga] trigram (A^3) and bigram (A^2)
    mk3: [Vec<i16>; 2],
    mk2: [Vec<i16>; 2],
    mk_idx: [u8; 256],
}

/// Segmentation word list: words concatenated in `bytes`, an open-addressing
/// table of word index + 1 keyed by FNV-1a-64, and per word its full cost and
/// its DGA / benign training counts.
struct Lexicon {
    bytes: Vec<u8>,
    start: Vec<u32>,
    slots: Vec<u32>,
    cost: Vec<u16>,
    cd: Vec<u32>,
    cb: Vec<u32>,
}

impl Lexicon {
    #[inline]
    fn slot_of(&self, h: u64) -> usize {
        (h ^ (h >> 29)) as usize & (self.slots.len() - 1)
    }

    fn word(&self, k: usize) -> &[u8] {
        &self.bytes[self.start[k] as usize..self.start[k + 1] as usize]
    }

    /// Index of `w` (whose FNV-1a-64 is `h`), if it is a word.
    #[inline]
    fn find(&self, h: u64, w: &[u8]) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(h);
        loop {
            let v = self.slots[i];
            if v == 0 {
                return None;
            }
            let k = (v - 1) as usize;
            if self.word(k) == w {
                return Some(k);
            }
            i = (i + 1) & mask;
        }
    }

    fn parse(n_words: usize, data: &[u8]) -> Option<Lexicon> {
        let mut bytes = Vec::with_capacity(data.len() * 2);
        let mut start = Vec::with_capacity(n_words + 1);
        let (mut cost, mut cd, mut cb) = (
            Vec::with_capacity(n_words),
            Vec::with_capacity(n_words),
            Vec::with_capacity(n_words),
        );
        let mut at = 0usize;
        let mut prev_start = 0usize;
        let leb = |at: &mut usize| -> Option<u32> {
            let mut v: u64 = 0;
            for shift in (0..35).step_by(7) {
                let b = *data.get(*at)?;
                *at += 1;
                v |= ((b & 0x7f) as u64) << shift;
                if b & 0x80 == 0 {
                    return u32::try_from(v).ok();
                }
            }
            None
        };
        start.push(0u32);
        for _ in 0..n_words {
            let flags = *data.get(at)?;
            at += 1;
            let p = (flags & 0x1f) as usize;
            let prev_len = bytes.len() - prev_start;
            if p > prev_len {
                return None;
            }
            let ws = bytes.len();
            bytes.extend_from_within(prev_start..prev_start + p);
            loop {
                let c = *data.get(at)?;
                at += 1;
                let l = c & 0x7f;
                if !l.is_ascii_lowercase() {
                    return None;
                }
                bytes.push(l);
                if c & 0x80 != 0 {
                    break;
                }
            }
            let len = bytes.len() - ws;
            if len > SEG_MAXW {
                return None;
            }
            let base = if flags & 0x20 != 0 {
                let b = *data.get(at)?;
                at += 1;
                b
            } else {
                SEG_DEFAULT_BASE
            };
            cost.push(base as u16 + if len <= 2 { SEG_SHORT_PENALTY } else { 0 });
            if flags & 0x40 != 0 {
                cd.push(leb(&mut at)?);
                cb.push(leb(&mut at)?);
            } else {
                cd.push(0);
                cb.push(0);
            }
            prev_start = ws;
            start.push(bytes.len() as u32);
        }
        if at != data.len() {
            return None;
        }
        let mut lex = Lexicon {
            bytes,
            start,
            slots: vec![0; (n_words * 2).next_power_of_two().max(16)],
            cost,
            cd,
            cb,
        };
        for k in 0..n_words {
            let h = fnv1a64(lex.word(k));
            if lex.find(h, lex.word(k)).is_some() {
                return None; // duplicate
            }
            let mask = lex.slots.len() - 1;
            let mut i = lex.slot_of(h);
            while lex.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            lex.slots[i] = k as u32 + 1;
        }
        Some(lex)
    }
}

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    Model::parse(MODEL_BYTES)
        .expect("src/detect/dga_model.bin is corrupt: rerun models/dga/train.py")
});

struct Reader {
    b: &'static [u8],
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Option<&'static [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn f32(&mut self) -> Option<f32> {
        Some(f32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    /// Sparse count table (n, counts, values) -> dense, NaN where absent.
    fn count_table(&mut self) -> Option<Vec<f64>> {
        let n = self.u32()? as usize;
        let counts: Vec<u32> = (0..n).map(|_| self.u32()).collect::<Option<_>>()?;
        let max = *counts.iter().max()? as usize;
        if max > 1 << 24 {
            return None;
        }
        let mut t = vec![f64::NAN; max + 1];
        for &c in &counts {
            t[c as usize] = self.f64()?;
        }
        Some(t)
    }
    fn neg_u8(&mut self) -> Option<i16> {
        Some(-(self.u8()? as i16))
    }
}

impl Model {
    fn parse(b: &'static [u8]) -> Option<Model> {
        let mut r = Reader { b, at: 0 };
        if r.take(8)? != MAGIC {
            return None;
        }
        let bits = r.u32()?;
        let nmax = r.u32()?;
        if !(8..=24).contains(&bits) || nmax as usize != NMAX {
            return None;
        }
        let bias = r.f64()?;
        let scale = r.f64()?;
        let threshold = r.f64()?;
        let q = r.take(1usize << bits)?;
        let wlen = r.u32()? as usize;
        let words = r.take(wlen)?;
        let vocab: FnvSet<&'static [u8]> = words
            .split(|&c| c == b'\n')
            .filter(|w| !w.is_empty())
            .collect();
        if r.u32()? as usize != N_FEATURES {
            return None;
        }
        let n_trees = r.u32()? as usize;
        let baseline = r.f64()?;
        let mut nodes = Vec::new();
        let mut leaves = Vec::new();
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            let n_inner = r.u8()?;
            let n_leaves = r.u8()?;
            if n_inner >= 0x80 || n_leaves >= 0x80 || n_leaves == 0 {
                return None;
            }
            trees.push(Tree {
                first_node: nodes.len() as u32,
                first_leaf: leaves.len() as u32,
                n_inner,
            });
            for i in 0..n_inner {
                let (feature, left, right) = (r.u8()?, r.u8()?, r.u8()?);
                let threshold = r.f64()?;
                // children are leaves or later nodes, so evaluation always ends
                let ok = |c: u8| {
                    if c >= 0x80 {
                        (c & 0x7f) < n_leaves
                    } else {
                        c > i && c < n_inner
                    }
                };
                if feature as usize >= N_FEATURES || !ok(left) || !ok(right) {
                    return None;
                }
                nodes.push(Node {
                    feature,
                    left,
                    right,
                    threshold,
                });
            }
            for _ in 0..n_leaves {
                leaves.push(r.f32()? as f64);
            }
        }
        // segmentation lexicon and its count tables
        let n_words = r.u32()? as usize;
        let lex_len = r.u32()? as usize;
        if r.u32()? as usize != N_WORDF {
            return None;
        }
        let lex_data = r.take(lex_len)?;
        let lex = Lexicon::parse(n_words, lex_data)?;
        let (ld, lb, g) = (r.count_table()?, r.count_table()?, r.count_table()?);
        let ok = |t: &[f64], c: u32| t.get(c as usize).is_some_and(|v| !v.is_nan());
        for k in 0..n_words {
            let (d, e) = (lex.cd[k], lex.cb[k]);
            if !ok(&ld, d) || !ok(&lb, e) || !ok(&g, d) || !ok(&g, e) {
                return None;
            }
        }
        // Markov tables
        if r.u32()? as usize != MK_A || r.u32()? as usize != N_MK {
            return None;
        }
        let mut mk3: [Vec<i16>; 2] = [Vec::new(), Vec::new()];
        let mut mk2: [Vec<i16>; 2] = [Vec::new(), Vec::new()];
        for cls in 0..2 {
            let q2: Vec<i16> = (0..MK_A * MK_A)
                .map(|_| r.neg_u8())
                .collect::<Option<_>>()?;
            let mut q3 = vec![0i16; MK_A * MK_A * MK_A];
            for ctx in 0..MK_A * MK_A {
                let b = ctx % MK_A;
                q3[ctx * MK_A..(ctx + 1) * MK_A].copy_from_slice(&q2[b * MK_A..(b + 1) * MK_A]);
            }
            let rows = r.u32()? as usize;
            for _ in 0..rows {
                let ctx = r.u16()? as usize;
                if ctx >= MK_A * MK_A {
                    return None;
                }
                for c in 0..MK_A {
                    q3[ctx * MK_A + c] = r.neg_u8()?;
                }
            }
            mk3[cls] = q3;
            mk2[cls] = q2;
        }
        let mut mk_idx = [(MK_SYMS.len()) as u8; 256]; // '*' is the last symbol
        for (i, &c) in MK_SYMS.iter().enumerate() {
            mk_idx[c as usize] = i as u8 + 1;
        }
        if r.at != b.len() {
            return None;
        }
        Some(Model {
            bias,
            scale,
            threshold,
            mask: (1usize << bits) - 1,
            q,
            vocab,
            baseline,
            nodes,
            leaves,
            trees,
            lex,
            ld,
            lb,
            g,
            mk3,
            mk2,
            mk_idx,
        })
    }

    #[inline]
    fn w(&self, h: u32) -> i64 {
        self.q[h as usize & self.mask] as i8 as i64
    }

    fn score(&self, p: &Parsed) -> f64 {
        let x = self.features(p);
        let mut s = self.baseline;
        for t in &self.trees {
            let nodes =
                &self.nodes[t.first_node as usize..t.first_node as usize + t.n_inner as usize];
            let mut i: u8 = if t.n_inner == 0 { 0x80 } else { 0 };
            while i < 0x80 {
                let n = &nodes[i as usize];
                i = if x[n.feature as usize] <= n.threshold {
                    n.left
                } else {
                    n.right
                };
            }
            s += self.leaves[t.first_leaf as usize + (i & 0x7f) as usize];
        }
        if s >= 0.0 {
            1.0 / (1.0 + (-s).exp())
        } else {
            s.exp() / (1.0 + s.exp())
        }
    }

    fn features(&self, p: &Parsed) -> [f64; N_FEATURES] {
        let label = &p.label[..p.label_len];
        let suffix = &p.suffix[..p.suffix_len];
        let n = label.len();

        // dictionary words inside the label: (start, end), start-major order
        let mut spans = [(0u8, 0u8); MAX_SPANS];
        let mut n_spans = 0;
        for i in 0..n {
            for j in i + 1..=(i + WORD_MAX).min(n) {
                if !label[j - 1].is_ascii_lowercase() {
                    break; // words are letters only
                }
                if j - i >= WORD_MIN && self.vocab.contains(&label[i..j]) && n_spans < MAX_SPANS {
                    spans[n_spans] = (i as u8, j as u8);
                    n_spans += 1;
                }
            }
        }
        let spans = &spans[..n_spans];

        // ---- stage 1: hashed-token logistic regression
        let mut acc: i64 = 0;
        let mut n_tok: usize = 0;
        let (mut ng_min, mut ng_max, mut ng_sum, mut ng_n) = (i64::MAX, i64::MIN, 0i64, 0i64);
        let mut s = [0u8; MAX_LABEL + 2];
        s[0] = b'^';
        s[1..=n].copy_from_slice(label);
        s[n + 1] = b'$';
        let s = &s[..n + 2];
        for i in 0..s.len() {
            let mut h = FNV32_INIT;
            for &c in &s[i..(i + NMAX).min(s.len())] {
                h = fnv32_step(h, c);
                let w = self.w(h);
                acc += w;
                ng_min = ng_min.min(w);
                ng_max = ng_max.max(w);
                ng_sum += w;
                ng_n += 1;
            }
        }
        n_tok += ng_n as usize;
        let h_suffix = fnv32_from(fnv32_from(FNV32_INIT, b"\x01T"), suffix);
        let tld = match suffix.iter().rposition(|&c| c == b'.') {
            Some(k) => &suffix[k + 1..],
            None => suffix,
        };
        let h_tld = fnv32_from(fnv32_from(FNV32_INIT, b"\x01L"), tld);
        let (w_suffix, w_tld) = (self.w(h_suffix), self.w(h_tld));
        acc += w_suffix + w_tld;
        n_tok += 2;
        let (mut wd_min, mut wd_max, mut wd_sum) = (i64::MAX, i64::MIN, 0i64);
        let prefix_w = fnv32_from(FNV32_INIT, b"\x01W");
        for &(a, b) in spans {
            let w = self.w(fnv32_from(prefix_w, &label[a as usize..b as usize]));
            acc += w;
            wd_min = wd_min.min(w);
            wd_max = wd_max.max(w);
            wd_sum += w;
        }
        n_tok += spans.len();
        // shape tokens: "\x02LT{len}|{tld}" and "\x02LTD{len}|{digit}|{hyphen}|{suffix}"
        let mut dec = [0u8; 2];
        let dec: &[u8] = if n >= 10 {
            dec = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
            &dec
        } else {
            dec[0] = b'0' + n as u8;
            &dec[..1]
        };
        let has_digit = if label.iter().any(|c| c.is_ascii_digit()) {
            b'1'
        } else {
            b'0'
        };
        let has_hyphen = if label.contains(&b'-') { b'1' } else { b'0' };
        let h_lt = fnv32_from(
            fnv32_step(fnv32_from(fnv32_from(FNV32_INIT, b"\x02LT"), dec), b'|'),
            tld,
        );
        let mut h_ltd = fnv32_step(fnv32_from(fnv32_from(FNV32_INIT, b"\x02LTD"), dec), b'|');
        h_ltd = fnv32_from(h_ltd, &[has_digit, b'|', has_hyphen, b'|']);
        h_ltd = fnv32_from(h_ltd, suffix);
        let (w_lt, w_ltd) = (self.w(h_lt), self.w(h_ltd));
        acc += w_lt + w_ltd;
        n_tok += 2;
        let lr = self.bias + self.scale * acc as f64 / (n_tok as f64).sqrt();

        // ---- hand-made features (same order and arithmetic as train.py)
        let mut f = [0f64; N_FEATURES];
        let nf = if n == 0 { 1.0 } else { n as f64 };
        let mut cnt = [0u32; 256];
        for &c in label {
            cnt[c as usize] += 1;
        }
        let mut ent = 0.0f64;
        for &c in cnt.iter() {
            if c != 0 {
                let p = c as f64 / nf;
                ent -= p * p.log2();
            }
        }
        let is_vowel = |c: u8| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
        let digits: u32 = cnt[b'0' as usize..=b'9' as usize].iter().sum();
        let vowels: u32 = b"aeiouy".iter().map(|&c| cnt[c as usize]).sum();
        let distinct = cnt.iter().filter(|&&c| c != 0).count();
        let (mut alt, mut rep) = (0u32, 0u32);
        for w in label.windows(2) {
            alt += (is_vowel(w[0]) != is_vowel(w[1])) as u32;
            rep += (w[0] == w[1]) as u32;
        }
        let pairs = n.saturating_sub(1).max(1) as f64;
        let max_run = |pred: &dyn Fn(u8) -> bool| {
            let (mut best, mut cur) = (0u32, 0u32);
            for &c in label {
                cur = if pred(c) { cur + 1 } else { 0 };
                best = best.max(cur);
            }
            best as f64
        };
        f[0] = n as f64;
        f[1] = digits as f64 / nf;
        f[2] = vowels as f64 / nf;
        f[3] = cnt[b'-' as usize] as f64;
        f[4] = ent;
        f[5] = distinct as f64 / nf;
        f[6] = distinct as f64;
        f[7] = max_run(&|c| c.is_ascii_lowercase() && !is_vowel(c));
        f[8] = max_run(&|c| is_vowel(c));
        f[9] = max_run(&|c| c.is_ascii_digit());
        f[10] = alt as f64 / pairs;
        f[11] = rep as f64 / pairs;
        f[12] = if suffix.is_empty() {
            0.0
        } else {
            (suffix.iter().filter(|&&c| c == b'.').count() + 1) as f64
        };
        f[13] = p.n_sub as f64;
        for (k, &c) in LETTER_ORDER.iter().enumerate() {
            f[14 + k] = cnt[c as usize] as f64 / nf;
        }
        let even: u32 = (b'a'..=b'z').step_by(2).map(|c| cnt[c as usize]).sum();
        let a_to_p: u32 = (b'a'..=b'p').map(|c| cnt[c as usize]).sum();
        let even_digits: u32 = b"02468".iter().map(|&c| cnt[c as usize]).sum();
        f[51] = even as f64 / nf;
        f[52] = a_to_p as f64 / nf;
        f[53] = even_digits as f64 / nf;

        // word coverage / fewest words / longest / distinct
        let mut cov = [false; MAX_LABEL];
        for &(a, b) in spans {
            cov[a as usize..b as usize].fill(true);
        }
        let letters = label.iter().filter(|c| c.is_ascii_lowercase()).count();
        let covered = (0..n)
            .filter(|&k| cov[k] && label[k].is_ascii_lowercase())
            .count();
        const INF: u32 = 1 << 30;
        let mut dp = [INF; MAX_LABEL + 1];
        dp[0] = 0;
        for b in 1..=n {
            let mut best = INF;
            if !label[b - 1].is_ascii_lowercase() {
                best = best.min(dp[b - 1]);
            }
            for &(sa, sb) in spans {
                if sb as usize == b {
                    best = best.min(dp[sa as usize] + 1);
                }
            }
            dp[b] = best;
        }
        let mut distinct_words = 0;
        for (k, &(a, b)) in spans.iter().enumerate() {
            let w = &label[a as usize..b as usize];
            if !spans[..k]
                .iter()
                .any(|&(c, d)| &label[c as usize..d as usize] == w)
            {
                distinct_words += 1;
            }
        }
        f[54] = if letters > 0 {
            covered as f64 / letters as f64
        } else {
            0.0
        };
        f[55] = if dp[n] < INF { dp[n] as f64 } else { 0.0 };
        f[56] = spans.iter().map(|&(a, b)| b - a).max().unwrap_or(0) as f64;
        f[57] = distinct_words as f64;

        // stage-1 outputs
        f[58] = lr;
        f[59] = w_tld as f64;
        f[60] = w_suffix as f64;
        f[61] = ng_min as f64;
        f[62] = ng_max as f64;
        f[63] = ng_sum as f64 / ng_n as f64;
        if spans.is_empty() {
            f[64] = 0.0;
            f[65] = 0.0;
            f[66] = 0.0;
        } else {
            f[64] = wd_min as f64;
            f[65] = wd_max as f64;
            f[66] = wd_sum as f64 / spans.len() as f64;
        }
        f[67] = (w_lt + w_ltd) as f64 / 2.0;
        self.segment_features(label, &mut f[F_SEG..F_SEG + N_WORDF]);
        self.markov_features(label, &mut f[F_MK..F_MK + N_MK]);
        f
    }

    /// Viterbi word segmentation and its features (train.py `viterbi`, `word_feats`).
    fn segment_features(&self, label: &[u8], f: &mut [f64]) {
        let n = label.len();
        let lex = &self.lex;
        // found[j][d]: word index + 1 of label[j - d..j], or 0
        let mut found = [[0u32; SEG_MAXW + 1]; MAX_LABEL + 1];
        let mut i = 0;
        while i < n {
            if label[i].is_ascii_lowercase() {
                let mut h = FNV64_INIT;
                let mut j = i;
                while j < n && j - i < SEG_MAXW && label[j].is_ascii_lowercase() {
                    h = fnv64_step(h, label[j]);
                    j += 1;
                    if let Some(k) = lex.find(h, &label[i..j]) {
                        found[j][j - i] = k as u32 + 1;
                    }
                }
            }
            i += 1;
        }
        // best[j]: cheapest cost of label[..j]; back: (start, kind 0 unknown / 1 word / 2 separator)
        let mut best = [0i64; MAX_LABEL + 1];
        let mut back = [(0u8, 0u8); MAX_LABEL + 1];
        for j in 1..=n {
            if !label[j - 1].is_ascii_lowercase() {
                best[j] = best[j - 1];
                back[j] = ((j - 1) as u8, 2);
                continue;
            }
            let mut b = best[j - 1] + SEG_UNK;
            let mut bk = ((j - 1) as u8, 0u8);
            for i in j.saturating_sub(SEG_MAXW)..j {
                let k = found[j][j - i];
                if k != 0 {
                    let c = best[i] + lex.cost[(k - 1) as usize] as i64;
                    if c < b {
                        b = c;
                        bk = (i as u8, 1);
                    }
                }
            }
            best[j] = b;
            back[j] = bk;
        }
        // backtrack (reversed), then forward: merge adjacent unknowns, drop separators
        let mut rev = [(0u8, 0u8, 0u8); MAX_LABEL];
        let mut nr = 0;
        let mut j = n;
        while j > 0 {
            let (i, kind) = back[j];
            rev[nr] = (i, j as u8, kind);
            nr += 1;
            j = i as usize;
        }
        let mut segs = [(0u8, 0u8, 0u8); MAX_LABEL];
        let mut ns = 0;
        for &(i, j, kind) in rev[..nr].iter().rev() {
            if kind == 0 && ns > 0 && segs[ns - 1].2 == 0 && segs[ns - 1].1 == i {
                segs[ns - 1].1 = j;
            } else {
                segs[ns] = (i, j, kind);
                ns += 1;
            }
        }
        let mut letters = label.iter().filter(|c| c.is_ascii_lowercase()).count();
        if letters == 0 {
            letters = 1;
        }
        let (mut unk, mut nw, mut seen_d, mut seen_b, mut only_d, mut n_d, mut sl) =
            (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
        let (mut slo, mut swl) = (0.0f64, 0.0f64);
        // Written out only when a word was found (nw > 0).
        let (mut lmin, mut lmax) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut cdmin, mut cbmax) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut lenmin, mut lenmax) = (usize::MAX, 0usize);
        let mut n_segs = 0usize;
        for &(a, b, kind) in &segs[..ns] {
            if kind == 2 {
                continue;
            }
            n_segs += 1;
            let ln = (b - a) as usize;
            if kind == 0 {
                unk += ln;
                continue;
            }
            let k = (found[b as usize][ln] - 1) as usize;
            let (d, e) = (lex.cd[k] as usize, lex.cb[k] as usize);
            let lo = self.ld[d] - self.lb[e];
            lmin = lmin.min(lo);
            lmax = lmax.max(lo);
            cdmin = cdmin.min(self.g[d]);
            cbmax = cbmax.max(self.g[e]);
            lenmin = lenmin.min(ln);
            lenmax = lenmax.max(ln);
            nw += 1;
            if d > 0 {
                seen_d += ln;
                n_d += 1;
            }
            if e > 0 {
                seen_b += ln;
            }
            if d >= 2 && e == 0 {
                only_d += ln;
            }
            slo += lo;
            swl += lo * ln as f64;
            sl += ln;
        }
        let lf = letters as f64;
        f.fill(0.0);
        f[1] = n_segs as f64;
        f[2] = unk as f64 / lf;
        f[14] = (letters as f64 - unk as f64) / lf;
        if nw > 0 {
            f[0] = nw as f64;
            f[3] = seen_d as f64 / lf;
            f[4] = seen_b as f64 / lf;
            f[5] = only_d as f64 / lf;
            f[6] = n_d as f64;
            f[7] = lmin;
            f[8] = lmax;
            f[9] = slo / nw as f64;
            f[10] = swl / sl as f64;
            f[11] = cdmin;
            f[12] = cbmax;
            f[13] = slo;
            f[15] = lenmin as f64;
            f[16] = lenmax as f64;
        }
    }

    /// Benign / DGA character trigram features (train.py `markov_feats`).
    fn markov_features(&self, label: &[u8], f: &mut [f64]) {
        let a = MK_A;
        let mut seq = [0u8; MAX_LABEL + 3];
        for (o, &c) in seq[2..].iter_mut().zip(label) {
            *o = self.mk_idx[c as usize];
        }
        seq[label.len() + 2] = (a - 1) as u8;
        let seq = &seq[..label.len() + 3];
        let (mut sb3, mut sd3, mut sb2, mut sd2) = (0i64, 0i64, 0i64, 0i64);
        let mut vals = [0i16; MAX_LABEL + 1];
        let mut n = 0;
        for i in 2..seq.len() {
            let bc = seq[i - 1] as usize * a + seq[i] as usize;
            let t = seq[i - 2] as usize * a * a + bc;
            let x = self.mk3[0][t];
            sb3 += x as i64;
            sd3 += self.mk3[1][t] as i64;
            sb2 += self.mk2[0][bc] as i64;
            sd2 += self.mk2[1][bc] as i64;
            vals[n] = x;
            n += 1;
        }
        let vals = &mut vals[..n];
        vals.sort_unstable();
        let k = (n / 4).max(1);
        let sk: i64 = vals[..k].iter().map(|&v| v as i64).sum();
        let nf = n as f64;
        f[0] = sb3 as f64 / MK_Q / nf;
        f[1] = sd3 as f64 / MK_Q / nf;
        f[2] = (sd3 - sb3) as f64 / MK_Q / nf;
        f[3] = (sd3 - sb3) as f64 / MK_Q;
        f[4] = vals[0] as f64 / MK_Q;
        f[5] = sb2 as f64 / MK_Q / nf;
        f[6] = (sd2 - sb2) as f64 / MK_Q / nf;
        f[7] = sk as f64 / MK_Q / k as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_parses_and_threshold_matches() {
        assert!(MODEL.trees.len() > 10);
        assert!(
            (model_threshold() - THRESHOLD).abs() < 1e-4,
            "THRESHOLD {} != model {}",
            THRESHOLD,
            model_threshold()
        );
    }

    #[test]
    fn registrable_parts() {
        assert_eq!(registrable("www.Example.CO.UK."), "Example.CO.UK");
        assert_eq!(registrable("a.b.example.com"), "example.com");
        assert_eq!(registrable("x.y.ddns.net"), "y.ddns.net");
        assert_eq!(registrable("co.uk"), "co.uk");
        assert_eq!(registrable("com"), "com");
        assert_eq!(registrable(""), "");
        assert_eq!(registrable(" ..."), "");
        assert_eq!(registrable("foo.bar.jm"), "foo.bar.jm");
        assert_eq!(registrable("d1234.cloudfront.net"), "cloudfront.net");
    }

    #[test]
    fn segmentation_and_markov() {
        let m = &*MODEL;
        let mut f = [0f64; N_WORDF];
        m.segment_features(b"swimmingsortstomachlook", &mut f);
        assert_eq!(f[0], 4.0, "{f:?}"); // four words
        assert_eq!(f[2], 0.0, "{f:?}"); // nothing unknown
        m.segment_features(b"xjvqkzhw", &mut f);
        assert_eq!(f[0], 0.0, "{f:?}");
        assert_eq!(f[1], 1.0, "{f:?}"); // one unknown run
        for lab in [&b""[..], b"-", b"a", &[b'z'; MAX_LABEL]] {
            m.segment_features(lab, &mut f);
            assert!(f.iter().all(|v| v.is_finite()), "{lab:?} {f:?}");
            let mut g = [0f64; N_MK];
            m.markov_features(lab, &mut g);
            assert!(g.iter().all(|v| v.is_finite()), "{lab:?} {g:?}");
        }
    }

    #[test]
    fn obvious_cases() {
        assert!(!is_dga("www.google.com"));
        assert!(!is_dga("wikipedia.org"));
        assert!(is_dga("xjvqkzhwpqlrmt.info"));
    }
}
