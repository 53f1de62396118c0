"""The service's unit sets MemoryDenyWriteExecute=yes and retraining runs the trainer as
its child, which inherits that: scikit-learn, onnx, onnxruntime and duckdb must all work
without writable-and-executable memory (Linux PR_SET_MDWE, what systemd enforces)."""

import subprocess
import sys

import pytest

from conftest import MODELS_DIR

RUN = r"""
import ctypes, mmap, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit(78)  # the restriction did not take
except OSError:
    pass
sys.argv = ["train"] + sys.argv[1:]
runpy.run_module("netguardian_models.train", run_name="__main__")
"""


def test_trainer_runs_under_memory_deny_write_execute(synth_db, tmp_path):
    db, _ = synth_db
    r = subprocess.run(
        [sys.executable, "-c", RUN, "--db", db, "--kind", "device", "--out", str(tmp_path)],
        cwd=MODELS_DIR, capture_output=True, text=True, timeout=600,
    )
    if r.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert r.returncode != 78, "a W+X mapping was allowed: MDWE not in force"
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "device_iforest.onnx").exists() and (tmp_path / "device_autoencoder.onnx").exists()
