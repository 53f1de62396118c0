//! PLACEHOLDER — to be replaced by the trained DGA classifier (another helper is
//! writing the real `dga.rs` and its weights file). Only the API is fixed:
//!
//! - [`score`]: how generated a domain looks, 0 (a word) to 1 (random);
//! - [`is_dga`]: the classifier's decision;
//! - [`registrable`]: the registrable part of a name (eTLD+1).
//!
//! This stand-in scores the first label of the registrable domain with a small
//! hand-written heuristic (length, character entropy, vowels, consonant runs, digits)
//! and knows only a few two-level public suffixes. It is deliberately conservative:
//! the `dga` rule also needs several such names and failed lookups before it reports.

/// Second-level public suffixes under country codes that this placeholder knows.
const TWO_LEVEL: &[&str] = &[
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "net.uk", "com.au", "net.au", "org.au",
    "edu.au", "co.nz", "org.nz", "co.jp", "ne.jp", "or.jp", "ac.jp", "com.br", "net.br", "org.br",
    "com.cn", "net.cn", "org.cn", "com.tw", "com.hk", "co.in", "co.kr", "co.za", "com.mx",
    "com.ar", "com.tr", "com.sg", "co.il", "com.ua", "com.pl", "co.id", "com.my",
];

/// The registrable domain of `domain` (lowercase expected, trailing dot ignored):
/// `www.bbc.co.uk` → `bbc.co.uk`, `a.b.example.com` → `example.com`. Names with fewer
/// labels are returned whole.
pub fn registrable(domain: &str) -> &str {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    let dots: Vec<usize> = d.match_indices('.').map(|(i, _)| i).collect();
    let n = dots.len();
    if n < 2 {
        return d;
    }
    let last_two = &d[dots[n - 2] + 1..];
    let keep = if TWO_LEVEL.contains(&last_two) { 3 } else { 2 };
    if n < keep {
        return d;
    }
    &d[dots[n - keep] + 1..]
}

/// Shannon entropy of the characters of `s`, in bits.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// How generated `domain` looks, from 0 (a word) to 1 (random).
pub fn score(domain: &str) -> f32 {
    let reg = registrable(domain);
    let label = reg.split('.').next().unwrap_or_default().as_bytes();
    if label.len() < 8 {
        return 0.0;
    }
    let letters = label
        .iter()
        .filter(|b| b.is_ascii_alphabetic())
        .count()
        .max(1) as f64;
    let vowels = label.iter().filter(|b| b"aeiouy".contains(b)).count() as f64;
    let digits = label.iter().filter(|b| b.is_ascii_digit()).count() as f64;
    let mut run = 0;
    let mut max_run = 0;
    for b in label {
        if b.is_ascii_alphabetic() && !b"aeiouy".contains(b) {
            run += 1;
            max_run = max_run.max(run);
        } else {
            run = 0;
        }
    }
    let len = label.len() as f64;
    let mut s: f64 = 0.0;
    if entropy(label) > 3.2 {
        s += 0.3;
    }
    if len >= 12.0 {
        s += 0.15;
    }
    if vowels / letters < 0.22 {
        s += 0.25;
    }
    if max_run >= 5 {
        s += 0.25;
    }
    let dr = digits / len;
    if dr > 0.15 && dr < 0.85 {
        s += 0.2;
    }
    s.min(1.0) as f32
}

/// The classifier's decision.
pub fn is_dga(domain: &str) -> bool {
    score(domain) >= 0.7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_parts() {
        assert_eq!(registrable("www.bbc.co.uk"), "bbc.co.uk");
        assert_eq!(registrable("a.b.example.com."), "example.com");
        assert_eq!(registrable("example.com"), "example.com");
        assert_eq!(registrable("localhost"), "localhost");
        assert_eq!(registrable("x.pirate.sea"), "pirate.sea");
    }

    #[test]
    fn words_score_low_random_high() {
        for d in [
            "google.com",
            "wikipedia.org",
            "netflix.com",
            "raspberrypi.com",
        ] {
            assert!(!is_dga(d), "{d} {}", score(d));
        }
        for d in [
            "xkqzvtrwplmn.com",
            "q3x9zk7w2vbn8t.net",
            "bcdfghjklmnpqr.info",
        ] {
            assert!(is_dga(d), "{d} {}", score(d));
        }
    }
}
