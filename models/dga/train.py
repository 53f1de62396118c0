#!/usr/bin/env python3
"""Train netguardian's DGA (domain generation algorithm) detector.

Model (mirrored byte for byte by src/detect/dga.rs):
  1. Take the label left of the public suffix (the "registrable" label, see
     src/detect/dga_suffixes.txt made by make_suffixes.py).
  2. Stage 1: logistic regression on hashed tokens: character 1..5-grams of
     "^label$", the suffix, the TLD, and the dictionary words found inside the
     label. Weights are stored as int8 with one scale.
  3. Stage 2: gradient-boosted trees (scikit-learn HistGradientBoosting) on
     hand-made features (length, digit/vowel ratios, entropy, runs, letter
     histogram, word coverage, ...) plus the stage-1 score (out-of-fold on the
     training data so the trees don't learn to trust an overfit score).
  score = sigmoid(trees).

Honest evaluation: every domain is put in "train" or "held-out" by
split_hash(label) & 1 (a mixed 64-bit FNV-1a of the registrable label, so the
same label under two TLDs never lands on both sides). Everything, including
the word list, the folds and the threshold, is fitted on "train" only; the
numbers printed and written to dga_eval.json are on "held-out". The shipped
model is the one trained on the train half, so the Rust corpus test
(tests/dga.rs) is also a held-out measurement. `--all` trains on everything
instead (then the corpus test is no longer held out).

Usage (from the repository root):
  python3 models/dga/train.py [--corpus ../shared/corpus/dga] [--out src/detect]
"""
import argparse
import collections
import json
import math
import os
import struct
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MAX_LABEL = 63          # DNS label limit; longer input is cut
MAX_SUFFIX = 63
NMAX = 5                # character n-grams 1..NMAX
LR_BITS = 18            # 2^18 hashed buckets
LR_C = 30.0
WORD_MIN, WORD_MAX = 3, 16
WORD_MIN_DOCS = 3       # a dictionary word is kept if it occurs in >= 3 training labels
GB_PARAMS = dict(max_iter=int(os.environ.get('DGA_TREES', 400)), learning_rate=float(os.environ.get('DGA_LR', 0.08)), max_leaf_nodes=int(os.environ.get('DGA_LEAVES', 31)), min_samples_leaf=40,
                 l2_regularization=1.0, max_features=0.5, early_stopping=False, random_state=0)
TARGET_FP = 0.009       # threshold picked at this FP rate on out-of-fold training scores
MAGIC = b"NGDGA\x01\x00\x00"

# ---------------------------------------------------------------- hashing


def fnv1a64(b: bytes) -> int:
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fnv1a32(b: bytes) -> int:
    h = 0x811C9DC5
    for c in b:
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return h


def mix64(z: int) -> int:
    """splitmix64 finaliser: FNV's low bits only depend on byte parities."""
    z = (z + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def split_hash(label: bytes) -> int:
    """Deterministic split key. Held-out = split_hash(label) & 1 == 1."""
    return mix64(fnv1a64(label))


# ---------------------------------------------------------------- parsing


def load_suffixes(path):
    exact, wild = set(), set()
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            if line.startswith(b"*."):
                wild.add(line[2:])
            else:
                exact.add(line)
    return exact, wild


def canon(b: bytes, keep_dot=False) -> bytes:
    """a-z 0-9 - _ (and '.' in a suffix) stay, everything else (other ASCII,
    UTF-8 bytes) becomes '*'."""
    return bytes(c if (97 <= c <= 122 or 48 <= c <= 57 or c == 45 or c == 95 or (keep_dot and c == 46)) else 42
                 for c in b)


def trim(domain: bytes) -> bytes:
    d = domain.strip(b" \t\r\n\x0b\x0c")
    return d.rstrip(b".")


def split_domain(domain: bytes, exact, wild):
    """-> (label, suffix, n_sub): canonical lowercase label left of the public
    suffix, the suffix, and how many labels stand left of the label (<= 3)."""
    d = trim(domain).lower()
    labs = d.split(b".")
    n = len(labs)
    k = 1
    if n >= 3 and b".".join(labs[-3:]) in exact:
        k = 3
    elif n >= 2 and (b".".join(labs[-2:]) in exact or labs[-1] in wild):
        k = 2
    if n > k:
        i = n - k - 1
    else:
        i = 0
    label = canon(labs[i][:MAX_LABEL])
    suffix = canon(b".".join(labs[i + 1:])[:MAX_SUFFIX], keep_dot=True)
    return label, suffix, min(i, 3)


# ---------------------------------------------------------------- features

VOWELS = frozenset(b"aeiouy")


def is_letter(c):
    return 97 <= c <= 122


def word_spans(label, vocab):
    out = []
    n = len(label)
    for i in range(n):
        for j in range(i + WORD_MIN, min(n, i + WORD_MAX) + 1):
            if label[i:j] in vocab:
                out.append((i, j))
    return out


def word_features(label, spans):
    n = len(label)
    cov = bytearray(n)
    for a, b in spans:
        for k in range(a, b):
            cov[k] = 1
    letters = sum(1 for c in label if is_letter(c))
    covered = sum(1 for k in range(n) if cov[k] and is_letter(label[k]))
    # fewest words covering every letter; non-letters may be skipped for free
    INF = 1 << 30
    dp = [INF] * (n + 1)
    dp[0] = 0
    ends = [[] for _ in range(n + 1)]
    for a, b in spans:
        ends[b].append(a)
    for b in range(1, n + 1):
        best = INF
        if not is_letter(label[b - 1]) and dp[b - 1] < best:
            best = dp[b - 1]
        for a in ends[b]:
            if dp[a] + 1 < best:
                best = dp[a] + 1
        dp[b] = best
    nseg = dp[n] if dp[n] < INF else 0
    longest = max((b - a for a, b in spans), default=0)
    distinct = len(set(label[a:b] for a, b in spans))
    return [covered / letters if letters else 0.0, float(nseg), float(longest), float(distinct)]


def max_run(label, pred):
    best = cur = 0
    for c in label:
        cur = cur + 1 if pred(c) else 0
        if cur > best:
            best = cur
    return best


FEATURE_NAMES = (["len", "digit_ratio", "vowel_ratio", "hyphens", "entropy", "distinct_ratio", "distinct",
                  "max_consonant_run", "max_vowel_run", "max_digit_run", "cv_alternation", "repeat_ratio",
                  "suffix_labels", "n_sub"]
                 + ["freq_" + chr(c) for c in b"abcdefghijklmnopqrstuvwxyz0123456789-"]
                 + ["even_letters", "letters_a_to_p", "even_digits",
                    "word_coverage", "word_segments", "word_longest", "word_distinct",
                    "lr_score", "tld_weight", "suffix_weight", "ngram_w_min", "ngram_w_max", "ngram_w_mean",
                    "word_w_min", "word_w_max", "word_w_mean"])


def stage1(buckets, at, q, scale, bias):
    """Stage-1 columns (mirrored by dga.rs): the LR score
    bias + scale * sum(q[bucket]) / sqrt(tokens); the int8 weights of the suffix
    and TLD tokens (a learnt per-suffix prior the trees can split on); min, max
    and mean int8 weight of the n-gram tokens and of the word tokens."""
    acc = 0
    for b in buckets:
        acc += int(q[b])
    lr = bias + scale * acc / math.sqrt(len(buckets))
    ng = [int(q[b]) for b in buckets[:at]]
    wd = [int(q[b]) for b in buckets[at + 2:]]
    out = [lr, float(q[buckets[at + 1]]), float(q[buckets[at]]),
           float(min(ng)), float(max(ng)), sum(ng) / len(ng)]
    if wd:
        out += [float(min(wd)), float(max(wd)), sum(wd) / len(wd)]
    else:
        out += [0.0, 0.0, 0.0]
    return out


def dense_features(label, suffix, nsub, spans):
    n = len(label)
    nf = float(n if n else 1)
    cnt = [0] * 256
    for c in label:
        cnt[c] += 1
    ent = 0.0
    for c in range(256):
        if cnt[c]:
            p = cnt[c] / nf
            ent -= p * math.log2(p)
    digits = sum(cnt[48:58])
    vowels = sum(cnt[c] for c in VOWELS)
    distinct = sum(1 for c in range(256) if cnt[c])
    alt = 0
    rep = 0
    for a, b in zip(label, label[1:]):
        if (a in VOWELS) != (b in VOWELS):
            alt += 1
        if a == b:
            rep += 1
    pairs = float(max(1, n - 1))
    f = [float(n), digits / nf, vowels / nf, float(cnt[45]), ent, distinct / nf, float(distinct),
         float(max_run(label, lambda c: is_letter(c) and c not in VOWELS)),
         float(max_run(label, lambda c: c in VOWELS)),
         float(max_run(label, lambda c: 48 <= c <= 57)),
         alt / pairs, rep / pairs, float(suffix.count(b".") + 1 if suffix else 0), float(nsub)]
    f += [cnt[c] / nf for c in b"abcdefghijklmnopqrstuvwxyz0123456789-"]
    f += [sum(cnt[c] for c in range(97, 123, 2)) / nf,
          sum(cnt[c] for c in range(97, 113)) / nf,
          sum(cnt[c] for c in b"02468") / nf]
    f += word_features(label, spans)
    return f


def tokens(label, suffix, spans):
    s = b"^" + label + b"$"
    out = []
    for n in range(1, NMAX + 1):
        for i in range(len(s) - n + 1):
            out.append(s[i:i + n])
    at = len(out)
    out.append(b"\x01T" + suffix)
    out.append(b"\x01L" + suffix.rsplit(b".", 1)[-1])
    for a, b in spans:
        out.append(b"\x01W" + label[a:b])
    return out, at


class Featurizer:
    def __init__(self, exact, wild, vocab):
        self.exact, self.wild, self.vocab = exact, wild, vocab
        self._h = {}

    def bucket(self, tok):
        h = self._h.get(tok)
        if h is None:
            h = fnv1a32(tok) & ((1 << LR_BITS) - 1)
            self._h[tok] = h
        return h

    def one(self, domain):
        label, suffix, nsub = split_domain(domain, self.exact, self.wild)
        spans = word_spans(label, self.vocab)
        toks, at = tokens(label, suffix, spans)
        return [self.bucket(t) for t in toks], dense_features(label, suffix, nsub, spans), at

    def many(self, domains):
        """-> (token counts per bucket, tokens per row, dense features)."""
        rows, cols, dense, ntok, toks, ats = [], [], [], [], [], []
        for r, d in enumerate(domains):
            b, f, at = self.one(d)
            rows.extend([r] * len(b))
            cols.extend(b)
            ntok.append(len(b))
            dense.append(f)
            toks.append(b)
            ats.append(at)
        m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(domains), 1 << LR_BITS))
        m.sum_duplicates()
        return Data(m, np.array(ntok, dtype=np.float64), toks, np.array(ats), np.array(dense, dtype=np.float64))


# ---------------------------------------------------------------- model


def fit_lr(m, ntok, y):
    """LR on token counts / sqrt(tokens); weights quantised to int8."""
    x = sp.diags(1.0 / np.sqrt(ntok)) @ m
    lr = LogisticRegression(C=LR_C, max_iter=5000, solver="liblinear")
    lr.fit(x, y)
    w = lr.coef_[0]
    scale = float(np.abs(w).max()) / 127.0
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale, float(lr.intercept_[0])


class Model:
    """Everything needed at run time, plus the exact scorer the Rust side mirrors."""

    def __init__(self, q, scale, bias, vocab, gb, threshold):
        self.q, self.scale, self.bias, self.vocab, self.threshold = q, scale, bias, vocab, threshold
        # Each tree: internal nodes (feature, left, right, threshold f64) and
        # leaves (f32 value); a child reference >= 0x80 is leaf (child & 0x7f).
        self.trees = []
        self.baseline = float(gb._baseline_prediction.ravel()[0])
        for pred in gb._predictors:
            nodes = pred[0].nodes
            inner = [i for i in range(len(nodes)) if not nodes[i]["is_leaf"]]
            leaves = [i for i in range(len(nodes)) if nodes[i]["is_leaf"]]
            assert len(inner) < 128 and len(leaves) < 128 and not nodes["is_categorical"].any()
            ref = {n: k for k, n in enumerate(inner)}
            ref.update({n: 0x80 | k for k, n in enumerate(leaves)})
            t_inner = [(int(nodes[n]["feature_idx"]), ref[int(nodes[n]["left"])], ref[int(nodes[n]["right"])],
                        float(nodes[n]["num_threshold"])) for n in inner]
            t_leaves = [float(np.float32(nodes[n]["value"])) for n in leaves]
            self.trees.append((t_inner, t_leaves))

    def raw(self, fz, domain):
        buckets, dense, at = fz.one(domain)
        x = dense + stage1(buckets, at, self.q, self.scale, self.bias)
        s = self.baseline
        for inner, leaves in self.trees:
            i = 0 if inner else 0x80
            while i < 0x80:
                f, l, r, thr = inner[i]
                i = l if x[f] <= thr else r
            s += leaves[i & 0x7F]
        return s

    def score(self, fz, domain):
        r = self.raw(fz, domain)
        return 1.0 / (1.0 + math.exp(-r)) if r >= 0 else math.exp(r) / (1.0 + math.exp(r))

    def write(self, path):
        out = bytearray(MAGIC)
        out += struct.pack("<IIddd", LR_BITS, NMAX, self.bias, self.scale, self.threshold)
        out += self.q.tobytes()
        words = b"\n".join(sorted(self.vocab))
        out += struct.pack("<I", len(words)) + words
        out += struct.pack("<IId", len(FEATURE_NAMES), len(self.trees), self.baseline)
        for inner, leaves in self.trees:
            out += struct.pack("<BB", len(inner), len(leaves))
            for f, l, r, thr in inner:
                out += struct.pack("<BBBd", f, l, r, thr)
            for v in leaves:
                out += struct.pack("<f", v)
        with open(path, "wb") as fh:
            fh.write(out)
        return len(out)


# ---------------------------------------------------------------- training


class Data:
    def __init__(self, M, N, toks, at, D):
        self.M, self.N, self.toks, self.at, self.D = M, N, toks, at, D

    def __getitem__(self, i):
        i = np.asarray(i)
        if i.dtype == bool:
            i = np.where(i)[0]
        return Data(self.M[i], self.N[i], [self.toks[j] for j in i], self.at[i], self.D[i])


def lr_feature(d, q, scale, bias):
    """Stage-1 columns exactly as Model.raw / dga.rs: the score
    bias + scale * sum(q[bucket]) / sqrt(tokens), and the int8 weights of the
    TLD token and of the suffix token (a learnt per-TLD prior the trees can split on)."""
    return np.array([stage1(t, a, q, scale, bias) for t, a in zip(d.toks, d.at)])


def train_pipeline(d, y, folds, nfold=5):
    """Fit LR (+ out-of-fold LR columns) then trees. Returns (q, scale, bias, gb, X_oof)."""
    oof = np.zeros((len(y), 9))
    for k in range(nfold):
        a, b = folds != k, folds == k
        q, s, c = fit_lr(d.M[a], d.N[a], y[a])
        oof[b] = lr_feature(d[b], q, s, c)
    q, s, c = fit_lr(d.M, d.N, y)
    x = np.column_stack([d.D, oof])
    gb = HistGradientBoostingClassifier(**GB_PARAMS).fit(x, y)
    return q, s, c, gb, x


def threshold_at(scores_neg, fp):
    neg = np.sort(scores_neg)
    return float(neg[int(math.ceil(len(neg) * (1.0 - fp))) - 1])


def metrics(p, y, thr):
    det = float((p[y == 1] > thr).mean())
    fpr = float((p[y == 0] > thr).mean())
    return det, fpr


def load_list(path):
    with open(path, "rb") as f:
        return [l.strip() for l in f if l.strip()]


def category(label, suffix, dense):
    if suffix in HOSTED:
        return "hosted/dyn-dns"
    if dense[FEATURE_NAMES.index("word_coverage")] == 1.0 and dense[FEATURE_NAMES.index("word_segments")] >= 2:
        return "dictionary-words"
    if b"-" in label:
        return "hyphenated"
    if any(48 <= c <= 57 for c in label):
        return "with-digits"
    return "letters-only"


sys.path.insert(0, HERE)
from make_suffixes import PRIVATE_HOSTS  # noqa: E402

HOSTED = {h.encode() for h in PRIVATE_HOSTS}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus", "dga"))
    ap.add_argument("--out", default=os.path.join(ROOT, "src", "detect"))
    ap.add_argument("--words", default="/usr/share/dict/words", help="Debian package wamerican")
    ap.add_argument("--all", action="store_true", help="ship a model trained on all data (corpus test no longer held out)")
    ap.add_argument("--vectors", type=int, default=400, help="how many domains go to the Rust parity vectors")
    args = ap.parse_args()
    t0 = time.time()

    exact, wild = load_suffixes(os.path.join(args.out, "dga_suffixes.txt"))
    dga = load_list(os.path.join(args.corpus, "test_dga.csv"))
    ben = load_list(os.path.join(args.corpus, "test_non_dga.csv"))
    domains = dga + ben
    y = np.array([1] * len(dga) + [0] * len(ben))
    parts = [split_domain(d, exact, wild) for d in domains]
    keys = np.array([split_hash(p[0]) for p in parts], dtype=np.uint64)
    held = (keys & np.uint64(1)) == 1
    folds = ((keys >> np.uint64(8)) % np.uint64(5)).astype(np.int64)
    tr, te = np.where(~held)[0], np.where(held)[0]
    print(f"corpus: {len(dga)} dga + {len(ben)} benign; train {len(tr)}, held-out {len(te)}")

    # dictionary: English words (wamerican) seen in >= WORD_MIN_DOCS training labels
    words = set()
    for w in open(args.words, encoding="utf-8", errors="ignore"):
        w = w.strip()
        if w.isascii() and w.isalpha() and WORD_MIN <= len(w) <= WORD_MAX:
            words.add(w.lower().encode())
    fit_idx = np.arange(len(domains)) if args.all else tr
    docs = collections.Counter()
    for i in fit_idx:
        lab = parts[i][0]
        docs.update(set(lab[a:b] for a, b in word_spans(lab, words)))
    vocab = {w for w, c in docs.items() if c >= WORD_MIN_DOCS}
    print(f"vocabulary: {len(vocab)} words")

    fz = Featurizer(exact, wild, vocab)
    data = fz.many(domains)
    D = data.D
    print(f"features: {data.M.shape[1]} hashed + {len(FEATURE_NAMES)} dense ({time.time() - t0:.0f}s)")

    # ---- held-out evaluation: fit on train only
    q, s, c, gb, x_tr = train_pipeline(data[tr], y[tr], folds[tr])
    # threshold from out-of-fold tree scores on the training half only
    oof_gb = np.zeros(len(tr))
    for k in range(5):
        a, b = folds[tr] != k, folds[tr] == k
        g = HistGradientBoostingClassifier(**GB_PARAMS).fit(x_tr[a], y[tr][a])
        oof_gb[b] = g.decision_function(x_tr[b])
    thr_raw = threshold_at(oof_gb[y[tr] == 0], TARGET_FP)
    threshold = float(1.0 / (1.0 + math.exp(-thr_raw)))
    model = Model(q, s, c, vocab, gb, threshold)
    p_te = np.array([model.score(fz, domains[i]) for i in te])
    # cross-check the exporter/scorer against scikit-learn's own prediction
    lr_te = lr_feature(data[te], q, s, c)
    ref = gb.predict_proba(np.column_stack([D[te], lr_te]))[:, 1]
    assert np.abs(ref - p_te).max() < 1e-5, np.abs(ref - p_te).max()  # leaves are stored as f32
    yt = y[te]
    if os.environ.get("DGA_DUMP"):
        with open(os.environ["DGA_DUMP"], "w") as fh:
            for j, i in enumerate(te):
                fh.write(f"{yt[j]}\t{p_te[j]:.6f}\t{domains[i].decode(errors='replace')}\n")
    det, fpr = metrics(p_te, yt, threshold)
    auc = float(roc_auc_score(yt, p_te))
    thr1 = threshold_at(p_te[yt == 0], 0.01)
    det1, fp1 = metrics(p_te, yt, thr1)
    lr_auc = float(roc_auc_score(yt, lr_te[:, 0]))
    print(f"held-out: detection {det * 100:.2f}% at FP {fpr * 100:.2f}% (threshold {threshold:.4f}, "
          f"n={int((yt == 1).sum())} dga + {int((yt == 0).sum())} benign), ROC AUC {auc:.5f}")
    print(f"held-out: detection {det1 * 100:.2f}% at FP {fp1 * 100:.2f}% (threshold chosen on held-out, for reference); "
          f"stage-1 LR alone AUC {lr_auc:.5f}")

    cats = collections.defaultdict(lambda: [0, 0, 0, 0])
    for j, i in enumerate(te):
        lab, suf, _ = parts[i]
        cat = category(lab, suf, D[i])
        cats[cat][2 * (1 - yt[j])] += 1
        cats[cat][2 * (1 - yt[j]) + 1] += int(p_te[j] > threshold)
    breakdown = {}
    for cat, (nd, hd, nb, hb) in sorted(cats.items()):
        breakdown[cat] = {"dga": nd, "detected": hd, "benign": nb, "false_positives": hb}
        print(f"  {cat:18s} dga {hd}/{nd} = {100 * hd / max(1, nd):6.2f}%   benign FP {hb}/{nb} = {100 * hb / max(1, nb):5.2f}%")
    by_tld = collections.Counter()
    for j, i in enumerate(te):
        if yt[j] == 1:
            by_tld[(parts[i][1].rsplit(b".", 1)[-1].decode(), bool(p_te[j] > threshold))] += 1

    if args.all:
        q, s, c, gb, _ = train_pipeline(data, y, folds)
        model = Model(q, s, c, vocab, gb, threshold)
    size = model.write(os.path.join(args.out, "dga_model.bin"))
    print(f"model: {size} bytes -> {os.path.join(args.out, 'dga_model.bin')} ({len(model.trees)} trees)")

    # parity vectors for the Rust scorer: held-out domains plus awkward inputs
    rng = np.random.default_rng(7)
    pick = [domains[i] for i in rng.choice(te, size=min(args.vectors, len(te)), replace=False)]
    pick += [b"", b".", b"..", b"a", b"COM", b"co.uk", b"WWW.Google.COM.", b"xn--80ak6aa92e.com",
             b"mail.example.co.uk", b"a..b.com", b"foo.blogspot.com", b"x" * 300 + b".com",
             b"abc.ddns.net", b"  padded.org  ", b"under_score.net", b"caf\xc3\xa9.fr", b"1234567890.ru",
             b"sub.sub.sub.example.jm", b"-.-", b"a.b.c.d.e.f.g"]
    with open(os.path.join(HERE, "dga_vectors.tsv"), "wb") as fh:
        fh.write(b"# domain (hex)\tscore; written by train.py for tests/dga.rs\n")
        for d in pick:
            fh.write(d.hex().encode() + b"\t" + repr(model.score(fz, d)).encode() + b"\n")

    ev = {
        "split": "held-out = splitmix64(fnv1a64(registrable label)) & 1 == 1",
        "n_train": int(len(tr)), "n_heldout_dga": int((yt == 1).sum()), "n_heldout_benign": int((yt == 0).sum()),
        "threshold": threshold, "threshold_rule": f"{TARGET_FP:.3%} FP on out-of-fold scores of the training half",
        "detection": det, "false_positive_rate": fpr, "roc_auc": auc,
        "detection_at_1pct_fp_oracle": det1, "stage1_lr_auc": lr_auc,
        "breakdown": breakdown,
        "dga_detection_by_tld": {t: {"detected": by_tld[(t, True)], "n": by_tld[(t, True)] + by_tld[(t, False)]}
                                 for t in sorted({k[0] for k in by_tld}) if by_tld[(t, True)] + by_tld[(t, False)] >= 50},
        "shipped_model": "all data" if args.all else "training half only",
        "model_bytes": size, "trees": len(model.trees), "vocabulary": len(vocab), "lr_buckets": 1 << LR_BITS,
    }
    with open(os.path.join(HERE, "dga_eval.json"), "w") as fh:
        json.dump(ev, fh, indent=2)
    print(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
