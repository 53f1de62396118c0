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
//! character 1..5-grams, the suffix and dictionary words found in the label,
//! then gradient-boosted trees over ~60 hand-made features (length, digit and
//! vowel ratios, entropy, runs, letter histogram, dictionary coverage, ...) and
//! the stage-1 outputs. This file mirrors `train.py`'s feature code exactly; the
//! test `tests/dga.rs` checks the scores against Python's on stored vectors.
//!
//! Nothing here allocates per call except a small scratch buffer, and no input
//! (empty, huge, non-ASCII, uppercase, trailing dot, punycode) panics.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

/// Score above which [`is_dga`] says yes. Picked by `train.py` at 0.9 % false
/// positives on out-of-fold scores of the training half; must equal the
/// threshold stored in `dga_model.bin` (checked by a test).
pub const THRESHOLD: f32 = 0.8910;

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

/// Deterministic key that puts a domain in `train.py`'s training half (even)
/// or held-out half (odd): splitmix64(FNV-1a-64(canonical scored label)).
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
const MAGIC: &[u8; 8] = b"NGDGA\x01\x00\x00";
const MAX_LABEL: usize = 63;
const MAX_SUFFIX: usize = 63;
const NMAX: usize = 5;
const WORD_MIN: usize = 3;
const WORD_MAX: usize = 16;
const MAX_SPANS: usize = MAX_LABEL * (WORD_MAX - WORD_MIN + 1);
const N_FEATURES: usize = 67;
const LETTER_ORDER: &[u8; 37] = b"abcdefghijklmnopqrstuvwxyz0123456789-";

// ------------------------------------------------------------------ hashing

fn fnv1a64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h = (h ^ c as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
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
        f
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
    fn obvious_cases() {
        assert!(!is_dga("www.google.com"));
        assert!(!is_dga("wikipedia.org"));
        assert!(is_dga("xjvqkzhwpqlrmt.info"));
    }
}
