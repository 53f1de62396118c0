"""onnxruntime timing of the exported models, to set next to tract's (scratch crate bench).

    python3 bench.py OUT_DIR            # the trainer's --out folder

Prints µs per row at batch 1 and 256 for every {kind}_{model}.onnx found, with
one intra-op thread (tract runs single-threaded too). Input rows are the
vectors.json inputs, cycled; for the forest the cost does not depend on the
values (every row walks every tree to full depth), for the autoencoder never.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def per_row(sess, X: np.ndarray, min_secs: float = 0.05, repeats: int = 9) -> tuple[float, float]:
    """µs per row: (median wall clock, best thread CPU time) over `repeats` runs of >= min_secs.

    The CPU time leaves out time spent waiting for a core on a busy machine
    (onnxruntime runs in the calling thread with intra_op_num_threads = 1).
    """
    feed = {"features": X}
    for _ in range(20):
        sess.run(None, feed)
    wall, cpu = [], []
    for _ in range(repeats):
        n, t0, c0 = 0, time.perf_counter(), time.thread_time()
        while time.perf_counter() - t0 < min_secs:
            sess.run(None, feed)
            n += 1
        wall.append((time.perf_counter() - t0) * 1e6 / (n * len(X)))
        cpu.append((time.thread_time() - c0) * 1e6 / (n * len(X)))
    return float(np.median(wall)), float(min(cpu))


def main(argv: list[str]) -> int:
    out = argv[1] if len(argv) > 1 else "out"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    print(f"onnxruntime {ort.__version__}, one thread; wall = median wall clock, cpu = best thread CPU time")
    print(f"{'model':<22} {'b1 wall':>12} {'b1 cpu':>12} {'b256 wall':>13} {'b256 cpu':>13}")
    found = False
    for kind in ("flow", "device"):
        for model in ("iforest", "autoencoder"):
            name = f"{kind}_{model}"
            path = os.path.join(out, name + ".onnx")
            if not os.path.exists(path):
                continue
            found = True
            with open(os.path.join(out, name + ".vectors.json")) as f:
                base = np.array(json.load(f)["inputs"], dtype=np.float32)
            X = base[np.arange(256) % len(base)]
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            (w1, c1), (w256, c256) = per_row(sess, X[:1]), per_row(sess, X)
            print(f"{name:<22} {w1:>12.2f} {c1:>12.2f} {w256:>13.3f} {c256:>13.3f}")
    if not found:
        print(f"no models in {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
