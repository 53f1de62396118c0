"""models/dga/cv.py: the held-out dumps are read and pooled as counts, not as a mean
of per-quarter rates (quarters differ in size)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dga"))
import cv  # noqa: E402


def test_pool_counts_not_rates():
    done = {0: [(1, 1), (1, 0), (0, 0), (0, 1)],             # 1/2 detected, 1/2 flagged
            1: [(1, 1)] * 6 + [(0, 0)] * 2}                  # 6/6 detected, 0/2 flagged
    rows, det, fp, nd, hd, nb, hb = cv.pool(done)
    assert (nd, hd, nb, hb) == (8, 7, 4, 1)
    assert det == 7 / 8 and fp == 1 / 4                      # a mean of rates would give 0.75
    assert [r["quarter"] for r in rows] == [0, 1]
    assert rows[0]["detection"] == 0.5 and rows[1]["false_positive_rate"] == 0.0


def test_read_dump_keeps_tabs_in_names(tmp_path):
    p = tmp_path / "q.tsv"
    p.write_text("1\t0.912345\t1\tabc.com\n0\t0.100000\t0\tweird\tname.com\n")
    assert cv.read_dump(str(p)) == [(1, 1), (0, 0)]
