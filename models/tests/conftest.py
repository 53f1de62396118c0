import os

# One BLAS/OpenMP thread: the tests share a 2-core machine with cargo builds.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.dirname(HERE)
sys.path.insert(0, MODELS_DIR)
sys.path.insert(0, HERE)

import synth  # noqa: E402


def run_train(*args: str) -> subprocess.CompletedProcess:
    """Runs the trainer CLI as a user would, from models/."""
    return subprocess.run(
        [sys.executable, "-m", "netguardian_models.train", *args],
        cwd=MODELS_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def synth_db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("db") / "synthetic.duckdb")
    facts = synth.make_db(path)
    return path, facts


@pytest.fixture(scope="session")
def trained(synth_db, tmp_path_factory):
    """Both kinds trained once from the DuckDB file; returns the output folder."""
    db, _ = synth_db
    out = str(tmp_path_factory.mktemp("out"))
    for kind in ("flow", "device"):
        r = run_train("--db", db, "--kind", kind, "--out", out)
        assert r.returncode == 0, r.stderr
    return out
