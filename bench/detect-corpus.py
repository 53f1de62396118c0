#!/usr/bin/env python3
"""Per-rule alert report over the shared corpus's nDPI captures (issue #4's report).

Why: the scenario suite proves each rule fires on its attack; this shows what the
rules say about ~540 captures of real applications, malware and attacks that nobody
tuned them on. Every capture is analyzed alone (`netguardian analyze`, default config)
into a fresh database, and its alerts are counted per rule and severity. A rule at
medium or above on a capture is listed with the capture's name, so a reader can judge
which are true detections (tunnels, scans, malware) and which are false alarms.

Usage: bench/detect-corpus.py [--bin PATH] [--corpus DIR] [--jobs N] [--json OUT]
Needs the `duckdb` Python package (the models venv has it).
"""
import argparse
import collections
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile

import duckdb

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def analyze(binary, pcap):
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "t.duckdb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETGUARDIAN_")}
        r = subprocess.run([binary, "analyze", pcap, "--db", db, "--no-progress"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        if not os.path.exists(db):
            return pcap, None, r.stderr.decode(errors="replace")[-300:]
        con = duckdb.connect(db, read_only=True)
        rows = con.execute("SELECT rule, severity, count(*) FROM alerts GROUP BY ALL").fetchall()
        con.close()
        return pcap, rows, None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.expanduser(
        os.environ.get("CARGO_TARGET_DIR", "~/.cache/netguardian-target") + "/release/netguardian"))
    ap.add_argument("--corpus", default=os.path.join(here, "../../shared/corpus/ndpi/pcap"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.isdir(a.corpus):
        print(f"corpus not found at {a.corpus}: nothing to report", file=sys.stderr)
        return 0
    pcaps = sorted(os.path.join(a.corpus, f) for f in os.listdir(a.corpus)
                   if f.endswith((".pcap", ".pcapng", ".cap")))
    per_rule = collections.defaultdict(lambda: {"captures": 0, "loud": []})
    failed = []
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for pcap, rows, err in ex.map(lambda p: analyze(a.bin, p), pcaps):
            name = os.path.basename(pcap)
            if rows is None:
                failed.append((name, err))
                continue
            by_rule = collections.defaultdict(list)
            for rule, sev, n in rows:
                by_rule[rule].append(sev)
            for rule, sevs in by_rule.items():
                per_rule[rule]["captures"] += 1
                top = max(sevs, key=SEVERITIES.index)
                if SEVERITIES.index(top) >= 2:
                    per_rule[rule]["loud"].append(f"{name} ({top})")
    print(f"{len(pcaps)} captures, {len(failed)} without a database")
    print(f"{'rule':<24}{'captures':>9}{'>=medium':>10}  captures at medium or above")
    for rule in sorted(per_rule):
        r = per_rule[rule]
        print(f"{rule:<24}{r['captures']:>9}{len(r['loud']):>10}  {', '.join(r['loud'][:40])}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"captures": len(pcaps), "failed": failed, "rules": per_rule}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
