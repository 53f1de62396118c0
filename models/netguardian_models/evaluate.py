"""Detection quality of trained models on labeled captures (the scenario suite).

    python3 -m netguardian_models.evaluate --models DIR \\
        --benign benign.duckdb [--benign-since 2026-11-23T18:20:00] [--benign more.duckdb ...] \\
        --attack nmap_syn_scan=db/nmap_syn_scan.duckdb --attack ... [--json out.json]

Every database is one the service (or ``netguardian analyze``) wrote: its
``flow_features`` / ``device_features`` rows are scored here with onnxruntime (which
the trainer checks against scikit-learn, and the Rust tests check against tract).

Negatives are the benign rows (only those at or after ``--benign-since`` for the
first ``--benign`` database, so the rows a model was trained on can be left out);
positives are *all* rows of an attack capture, its background traffic included, so the
numbers are pessimistic. Per attack, kind and model it reports ROC AUC, the detection
rate at a 0.1 % false-positive rate (the threshold is the 99.9th percentile of the
benign scores) and at the model's own alert threshold, and the false-positive rate of
that threshold on the benign rows. With fewer than 1,000 negatives the 0.1 % point is
the benign maximum; the output says how many negatives there were.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import duckdb
import numpy as np
import onnx
import onnxruntime as ort
from sklearn.metrics import roc_auc_score

from . import contract

TABLE = {"flow": ("flow_features", "ts"), "device": ("device_features", "window_start")}


def rows(db: str, kind: str, since: str | None = None) -> np.ndarray:
    table, col = TABLE[kind]
    names = contract.FEATURES[kind]
    con = duckdb.connect(db, read_only=True)
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if table not in present:
            return np.zeros((0, len(names)), dtype=np.float32)
        where = "schema_version = 1"
        if since:
            where += f" AND {col} >= TIMESTAMP '{since.replace('T', ' ')}'"
        x = con.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {where}").fetchnumpy()
    finally:
        con.close()
    if not names or len(x[names[0]]) == 0:
        return np.zeros((0, len(names)), dtype=np.float32)
    return np.stack([x[n] for n in names], axis=1).astype(np.float32)


def load_models(d: str) -> dict:
    out = {}
    for kind in contract.KINDS:
        for model in contract.MODELS:
            p = os.path.join(d, f"{kind}_{model}.onnx")
            if not os.path.exists(p):
                continue
            meta = {m.key: m.value for m in onnx.load(p, load_external_data=False).metadata_props}
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            sess = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
            out[(kind, model)] = (sess, float(meta[contract.META_PREFIX + "threshold"]))
    return out


def score(sess, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    return np.concatenate(
        [sess.run(["score"], {"features": x[i : i + 4096]})[0] for i in range(0, len(x), 4096)]
    ).astype(np.float64)


def evaluate(models: dict, benign: list[tuple[str, str | None]], attacks: list[tuple[str, str]]) -> dict:
    report: dict = {"negatives": {}, "attacks": {}}
    neg_x = {
        kind: np.concatenate([rows(db, kind, since) for db, since in benign])
        for kind in contract.KINDS
    }
    neg = {}
    for (kind, model), (sess, thr) in models.items():
        s = score(sess, neg_x[kind])
        neg[(kind, model)] = s
        report["negatives"][f"{kind}_{model}"] = {
            "rows": int(len(s)),
            "threshold": thr,
            "fpr_at_threshold": float(np.mean(s > thr)) if len(s) else None,
            "score_at_fpr_0.1pct": float(np.quantile(s, 0.999)) if len(s) else None,
        }
    for name, db in attacks:
        per = {}
        for (kind, model), (sess, thr) in models.items():
            x = rows(db, kind)
            s_pos = score(sess, x)
            s_neg = neg[(kind, model)]
            if len(s_pos) == 0 or len(s_neg) == 0:
                continue
            y = np.r_[np.zeros(len(s_neg)), np.ones(len(s_pos))]
            t01 = np.quantile(s_neg, 0.999)
            per[f"{kind}_{model}"] = {
                "positives": int(len(s_pos)),
                "auc": float(roc_auc_score(y, np.r_[s_neg, s_pos])),
                "detect_at_fpr_0.1pct": float(np.mean(s_pos > t01)),
                "detect_at_threshold": float(np.mean(s_pos > thr)),
            }
        report["attacks"][name] = per
    return report


def table(report: dict) -> str:
    keys = sorted({k for a in report["attacks"].values() for k in a})
    lines = ["negatives: " + ", ".join(
        f"{k} {v['rows']} rows (FPR at its threshold {v['fpr_at_threshold']:.2%})"
        for k, v in report["negatives"].items() if v["rows"])]
    head = "| attack | " + " | ".join(f"{k}: n, AUC, det@0.1%FPR, det@thr" for k in keys) + " |"
    lines += [head, "|---" * (len(keys) + 1) + "|"]
    for name, per in report["attacks"].items():
        cells = []
        for k in keys:
            m = per.get(k)
            cells.append(
                "—" if m is None else
                f"{m['positives']}, {m['auc']:.3f}, {m['detect_at_fpr_0.1pct']:.1%}, {m['detect_at_threshold']:.1%}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m netguardian_models.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", required=True, metavar="DIR")
    p.add_argument("--benign", action="append", required=True, metavar="DB")
    p.add_argument("--benign-since", help="first row time of the first --benign database (ISO-8601, UTC)")
    p.add_argument("--attack", action="append", default=[], metavar="NAME=DB")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    a = p.parse_args(argv)
    models = load_models(a.models)
    if not models:
        print(f"error: no {{kind}}_{{model}}.onnx in {a.models}", file=sys.stderr)
        return 2
    benign = [(db, a.benign_since if i == 0 else None) for i, db in enumerate(a.benign)]
    attacks = []
    for spec in a.attack:
        name, sep, db = spec.partition("=")
        if not sep:
            print(f"error: --attack {spec!r}: expected NAME=DB", file=sys.stderr)
            return 2
        attacks.append((name, db))
    for db in [d for d, _ in benign] + [d for _, d in attacks]:
        if not os.path.exists(db):
            print(f"error: no such database: {db}", file=sys.stderr)
            return 2
    report = evaluate(models, benign, attacks)
    print(table(report))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
