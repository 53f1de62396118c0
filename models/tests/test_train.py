"""End-to-end: the trainer on a synthetic DuckDB file with the contract tables."""

import json
import os
import subprocess
import sys
import time

import duckdb
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import run_train
import synth
from netguardian_models import contract
from netguardian_models.data import Source, load
from netguardian_models.onnx_export import get_metadata

KINDS = ("flow", "device")
MODELS = ("iforest", "autoencoder")


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def report(out, kind):
    with open(os.path.join(out, f"{kind}_report.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("kind", KINDS)
def test_training_writes_all_files(trained, kind):
    for name in (
        f"{kind}_iforest.onnx",
        f"{kind}_autoencoder.onnx",
        f"{kind}_iforest.vectors.json",
        f"{kind}_autoencoder.vectors.json",
        f"{kind}_report.json",
    ):
        assert os.path.getsize(os.path.join(trained, name)) > 0, name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_onnx_matches_sklearn_vectors(trained, kind, model):
    """onnxruntime on the saved file reproduces the scikit-learn values in vectors.json."""
    with open(os.path.join(trained, f"{kind}_{model}.vectors.json")) as f:
        doc = json.load(f)
    X = np.array(doc["inputs"], dtype=np.float32)
    assert X.shape == (32, len(contract.FEATURES[kind]))
    # inputs are exact float32 values
    assert all(float(np.float32(v)) == v for row in doc["inputs"] for v in row)
    sess = session(os.path.join(trained, f"{kind}_{model}.onnx"))
    outs = {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, {"features": X}))}
    want = np.array(doc["expected_score"])
    assert outs["score"].shape == (32,)
    if model == "iforest":
        assert set(outs) == {"score"}
        np.testing.assert_allclose(outs["score"], want, rtol=0, atol=1e-5)
        assert ((want > 0) & (want <= 1)).all()
    else:
        assert set(outs) == {"score", "feature_error"}
        fe = np.array(doc["expected_feature_error"])
        np.testing.assert_allclose(outs["feature_error"], fe, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(outs["score"], want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fe.mean(axis=1), want, rtol=1e-9)
    r = report(trained, kind)["models"][model]
    assert r["onnxruntime_vs_sklearn"]["score_max_abs_diff"] < 1e-4
    assert r["onnxruntime_vs_sklearn"]["rows_checked"] > 500


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_metadata_complete(trained, kind, model):
    m = onnx.load(os.path.join(trained, f"{kind}_{model}.onnx"))
    meta = get_metadata(m)
    assert set(meta) == set(contract.META_KEYS)
    assert meta["kind"] == kind and meta["model"] == model
    assert meta["schema_version"] == str(contract.SCHEMA_VERSION)
    assert json.loads(meta["feature_names"]) == list(contract.FEATURES[kind])
    F = len(contract.FEATURES[kind])
    assert len(json.loads(meta["scaler_mean"])) == F
    scale = json.loads(meta["scaler_scale"])
    assert len(scale) == F and min(scale) > 0
    window = json.loads(meta["training_window"])
    assert window["from"].startswith("2025-03-01T00:0") and window["to"].startswith("2025-03-01T03:")
    rep = report(trained, kind)
    assert int(meta["rows"]) == rep["data"]["rows_baseline"]
    assert float(meta["threshold"]) == pytest.approx(rep["models"][model]["threshold"], rel=1e-6)
    assert float(meta["contamination"]) == 0.001
    assert len(meta["data_sha256"]) == 64 and meta["data_sha256"] == rep["data"]["data_sha256"]
    versions = json.loads(meta["library_versions"])
    for lib in ("scikit-learn", "onnx", "onnxruntime", "numpy", "duckdb", "python"):
        assert versions[lib]
    assert meta["trained_at"].endswith("Z")
    # standard ops tract knows, plus for the forest the one ONNX-ML op netguardian
    # registers with tract (src/detect/ml/tree_ensemble.rs)
    ops = {(n.domain, n.op_type) for n in m.graph.node}
    if model == "iforest":
        assert [(o.domain, o.version) for o in m.opset_import] == [("", 13), ("ai.onnx.ml", 3)]
        assert ("ai.onnx.ml", "TreeEnsembleRegressor") in ops
        assert {d for d, _ in ops} == {"", "ai.onnx.ml"} and len([op for op in ops if op[0]]) == 1
    else:
        assert [(o.domain, o.version) for o in m.opset_import] == [("", 13)]
        assert {d for d, _ in ops} == {""}
    assert [i.name for i in m.graph.input] == ["features"]
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_thresholds_sensible(trained, kind, model):
    r = report(trained, kind)
    m = r["models"][model]
    q = m["score_quantiles_all"]
    # the threshold is stored as float32, like the scores the Rust side compares it with
    assert q["p99"] * (1 - 1e-6) <= m["threshold"] <= q["max"] * (1 + 1e-6)
    # about `contamination` of the baseline lies above the threshold, fit and held out alike
    assert m["fit_exceeding_threshold"] <= 0.005
    assert m["holdout_exceeding_threshold"] <= 0.01
    if model == "iforest":
        assert 0 < m["threshold"] < 1
    else:
        assert m["threshold"] > 0
        # the autoencoder flags the anomalies injected inside the alert windows
        assert m["alert_rows_exceeding_threshold"] >= 0.8, m


@pytest.mark.parametrize("kind", KINDS)
def test_alert_windows_excluded(synth_db, kind):
    db, facts = synth_db
    ds = load(Source(db=db), kind, min_rows=100)
    if kind == "flow":
        # exactly the injected flows: the alert device's other flows were kept clear of its alert window
        assert ds.stats["rows_overlapping_alerts"] == facts["flow_anomalies"]
        assert ds.stats["rows_baseline"] == facts["flows"] - facts["flow_anomalies"]
        i = contract.FLOW_FEATURES.index("orig_bytes_log")
        assert ds.X[:, i].max() < np.log1p(1e8) <= ds.X_alert[:, i].min()
    else:
        # alert 2:10-2:14 widened by 60 s overlaps the windows starting 2:09 .. 2:14
        assert ds.stats["rows_overlapping_alerts"] == 6
        assert ds.stats["rows_baseline"] == facts["device_windows"] - 6
        i = contract.DEVICE_FEATURES.index("flows_log")
        assert ds.X[:, i].max() < np.log1p(5000)
        assert (ds.X_alert[:, i] == np.float32(np.log1p(5000))).sum() == facts["device_alert_windows"]


def test_no_alerts_means_nothing_excluded(tmp_path):
    db = str(tmp_path / "noalerts.duckdb")
    facts = synth.make_db(db, alerts=False)
    ds = load(Source(db=db), "flow", min_rows=100)
    assert ds.stats["rows_overlapping_alerts"] == 0
    assert ds.stats["rows_baseline"] == facts["flows"]


def test_parquet_input_matches_duckdb(synth_db, trained, tmp_path):
    db, _ = synth_db
    for hive in (True, False):
        pq = str(tmp_path / f"export-{hive}")
        synth.export_parquet(db, pq, hive=hive)
        if hive:
            assert len(os.listdir(os.path.join(pq, "flow_features"))) >= 4  # hour=... partitions
        out = str(tmp_path / f"out-{hive}")
        for kind in KINDS:
            r = run_train("--parquet", pq, "--kind", kind, "--out", out, "--models", "iforest")
            assert r.returncode == 0, r.stderr
            got, want = report(out, kind), report(trained, kind)
            # same rows, same order, same bytes -> same hash
            assert got["data"] == want["data"]
            assert got["models"]["iforest"]["threshold"] == want["models"]["iforest"]["threshold"]


def test_since_until_restricts_window(synth_db, tmp_path):
    db, _ = synth_db
    ds = load(Source(db=db), "device", since="2025-03-01T01:00:00Z", until="2025-03-01 02:00:00", min_rows=10)
    assert ds.ts_from == "2025-03-01T01:00:00Z" and ds.ts_to == "2025-03-01T01:59:00Z"
    assert ds.stats["rows_baseline"] == 60 * len(synth.MACS)


@pytest.mark.parametrize(
    "make,args,message",
    [
        (dict(feature_schema_version=2), [], "schema version mismatch"),
        (dict(schema_version=2), [], "schema version mismatch"),
        (dict(rename_feature=("resp_pkts_log", "resp_packets_log")), [],
         "feature #2 (position 2) is 'resp_packets_log'"),
        (dict(), ["--since", "2030-01-01"], "too few rows"),
    ],
)
def test_clear_errors(tmp_path, make, args, message):
    db = str(tmp_path / "bad.duckdb")
    synth.make_db(db, n_flows=1500, hours=1, **make)
    r = run_train("--db", db, "--kind", "flow", "--out", str(tmp_path / "out"), *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "out" / "flow_iforest.onnx")


def test_missing_table_and_files(tmp_path, synth_db):
    db = str(tmp_path / "partial.duckdb")
    synth.make_db(db, n_flows=1500, hours=1)
    con = duckdb.connect(db)
    con.execute("DROP TABLE device_features")
    con.execute("DROP TABLE alerts")
    con.close()
    r = run_train("--db", db, "--kind", "device", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "missing table 'device_features'" in r.stderr, r.stderr
    r = run_train("--db", db, "--kind", "flow", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "missing table 'alerts'" in r.stderr, r.stderr
    r = run_train("--db", db, "--kind", "flow", "--out", str(tmp_path / "o"), "--allow-missing-alerts",
                  "--models", "iforest", "--min-rows", "100")
    assert r.returncode == 0, r.stderr
    r = run_train("--db", str(tmp_path / "nope.duckdb"), "--kind", "flow", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not found" in r.stderr
    r = run_train("--parquet", str(tmp_path), "--kind", "flow", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "missing table 'feature_schema'" in r.stderr, r.stderr


def test_locked_database_suggests_parquet(synth_db, tmp_path):
    db = str(tmp_path / "locked.duckdb")
    synth.make_db(db, n_flows=1500, hours=1)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys, time; c = duckdb.connect({db!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = run_train("--db", db, "--kind", "flow", "--out", str(tmp_path / "o"))
        assert r.returncode == 2, r.stderr
        assert "locked" in r.stderr and "--parquet" in r.stderr, r.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_vectors_cover_normal_and_anomalous_rows(trained):
    with open(os.path.join(trained, "flow_autoencoder.vectors.json")) as f:
        doc = json.load(f)
    s = np.array(doc["expected_score"])
    assert (s <= doc["threshold"]).sum() >= 8
    assert (s > doc["threshold"]).sum() >= 4


def test_output_files_are_replaced_atomically(trained):
    leftovers = [n for n in os.listdir(trained) if n.startswith(".tmp-")]
    assert leftovers == []
    assert oct(os.stat(os.path.join(trained, "flow_iforest.onnx")).st_mode & 0o777) == "0o644"
