"""Train the flow or device anomaly models and export them to ONNX.

    python3 -m netguardian_models.train --db netguardian.duckdb --kind flow --out out/
    python3 -m netguardian_models.train --parquet export/ --kind device --out out/ \\
        --since 2025-01-01 --until 2025-02-01 --contamination 0.001

Writes, into --out:
    {kind}_iforest.onnx, {kind}_autoencoder.onnx        the models (metadata inside)
    {kind}_iforest.vectors.json, {kind}_autoencoder.vectors.json
                                                      ~32 rows + expected outputs for Rust tests
    {kind}_report.json                                metrics for the model card
Exit status: 0 ok, 2 bad input (missing table, schema mismatch, too few rows ...),
3 the exported ONNX graph disagrees with scikit-learn.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np

from . import contract
from .data import Dataset, Source, TrainError, load
from . import onnx_export as ox

# Agreement required between sklearn (float64 reference) and onnxruntime.
IFOREST_ATOL = 1e-5
AE_RTOL = 1e-4
AE_ATOL = 1e-5


class ExportMismatch(Exception):
    pass


def library_versions() -> dict[str, str]:
    import duckdb
    import onnx
    import onnxruntime
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "duckdb": duckdb.__version__,
        "netguardian_models": __import__("netguardian_models").__version__,
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m netguardian_models.train",
        description="Train netguardian's isolation forest and autoencoder on the feature tables "
        "and export them to ONNX for tract.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", metavar="FILE", help="DuckDB database (opened read-only)")
    src.add_argument(
        "--parquet",
        metavar="DIR",
        help="folder with feature_schema.parquet, alerts.parquet, flow_features/ and "
        "device_features/ (*.parquet, hive partitioning allowed)",
    )
    p.add_argument("--kind", required=True, choices=contract.KINDS)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--contamination", type=float, default=0.001,
                   help="expected share of baseline rows above the alert threshold (default 0.001)")
    p.add_argument("--since", help="first timestamp to use (inclusive, ISO-8601, UTC)")
    p.add_argument("--until", help="end of the training window (exclusive)")
    p.add_argument("--models", default="iforest,autoencoder",
                   help="comma-separated subset of iforest,autoencoder")
    p.add_argument("--window-secs", type=int, default=contract.WINDOW_SECS,
                   help="device window length; alert intervals are widened by it (default 60)")
    p.add_argument("--min-rows", type=int, default=1000)
    p.add_argument("--max-rows", type=int, default=300_000,
                   help="deterministic sample of at most this many baseline rows")
    p.add_argument("--holdout", type=float, default=0.2, help="share of rows held out of fitting")
    p.add_argument("--n-estimators", type=int, default=100)
    p.add_argument("--max-samples", type=int, default=256)
    p.add_argument("--ae-hidden", default="auto",
                   help="hidden layer sizes, e.g. 18,6,18 (auto: F/2, F/6, F/2)")
    p.add_argument("--ae-activation", default="tanh", choices=("tanh", "relu"))
    p.add_argument("--ae-max-iter", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-missing-alerts", action="store_true",
                   help="train even if there is no alerts table (no alert-window exclusion)")
    p.add_argument("--vectors", type=int, default=32, help="rows in the *.vectors.json files")
    a = p.parse_args(argv)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in a.models:
        if m not in contract.MODELS:
            p.error(f"--models: unknown model {m!r}")
    if not 0.0 < a.contamination < 0.5:
        p.error("--contamination must be in (0, 0.5)")
    if not 0.0 < a.holdout < 0.9:
        p.error("--holdout must be in (0, 0.9)")
    return a


def ae_hidden(spec: str, n_features: int) -> tuple[int, ...]:
    if spec == "auto":
        return (max(6, n_features // 2), max(3, n_features // 6), max(6, n_features // 2))
    try:
        sizes = tuple(int(s) for s in spec.split(","))
    except ValueError:
        raise TrainError(f"--ae-hidden: not a list of integers: {spec!r}") from None
    if not sizes or min(sizes) < 1:
        raise TrainError(f"--ae-hidden: bad sizes {spec!r}")
    return sizes


def quantiles(s: np.ndarray) -> dict[str, float]:
    qs = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99.9": 0.999}
    out = {k: float(np.quantile(s, q)) for k, q in qs.items()}
    out["max"] = float(s.max())
    return out


def threshold_for(scores: np.ndarray, contamination: float) -> float:
    """Alert threshold: the (1 - contamination) quantile of the baseline scores."""
    return float(np.quantile(scores, 1.0 - contamination, method="higher"))


class Fitted:
    """A fitted model with its sklearn reference and its ONNX export."""

    def __init__(self, name: str):
        self.name = name
        self.onnx = None
        self.report: dict = {}

    def reference(self, X: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


class IForest(Fitted):
    def __init__(self, forest):
        super().__init__("iforest")
        self.forest = forest

    def reference(self, X):
        return {"score": -self.forest.score_samples(X.astype(np.float32))}


class Autoencoder(Fitted):
    def __init__(self, scaler, mlp):
        super().__init__("autoencoder")
        self.scaler, self.mlp = scaler, mlp

    def reference(self, X):
        z = self.scaler.transform(X.astype(np.float64))
        err = (self.mlp.predict(z) - z) ** 2
        return {"score": err.mean(axis=1), "feature_error": err}


def fit_iforest(Xfit: np.ndarray, a: argparse.Namespace) -> IForest:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(
        n_estimators=a.n_estimators,
        max_samples=min(a.max_samples, len(Xfit)),
        contamination="auto",
        random_state=a.seed,
        n_jobs=1,
    ).fit(Xfit)
    m = IForest(forest)
    m.onnx = ox.iforest_graph(forest, Xfit.shape[1])
    return m


def fit_autoencoder(Xfit: np.ndarray, scaler, a: argparse.Namespace) -> Autoencoder:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    z = scaler.transform(Xfit.astype(np.float64))
    mlp = MLPRegressor(
        hidden_layer_sizes=ae_hidden(a.ae_hidden, Xfit.shape[1]),
        activation=a.ae_activation,
        solver="adam",
        alpha=1e-4,
        batch_size=min(256, len(z)),
        learning_rate_init=1e-3,
        max_iter=a.ae_max_iter,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-5,
        random_state=a.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(z, z)
    m = Autoencoder(scaler, mlp)
    m.onnx = ox.autoencoder_graph(mlp, scaler.mean_, scaler.scale_)
    m.report["epochs"] = int(mlp.n_iter_)
    m.report["hidden_layer_sizes"] = list(mlp.hidden_layer_sizes)
    m.report["activation"] = mlp.activation
    return m


def ort_session(model):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_run(model, X: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort_session(model)
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {"features": np.ascontiguousarray(X, dtype=np.float32)})
    return dict(zip(names, outs))


def check_agreement(m: Fitted, X: np.ndarray) -> dict[str, float]:
    """Compares onnxruntime against sklearn on X; raises ExportMismatch when off."""
    ref = m.reference(X)
    got = ort_run(m.onnx, X)
    out = {}
    for k, r in ref.items():
        g = got[k].astype(np.float64)
        if g.shape != r.shape:
            raise ExportMismatch(f"{m.name}: ONNX output {k} has shape {g.shape}, expected {r.shape}")
        diff = np.abs(g - r)
        out[f"{k}_max_abs_diff"] = float(diff.max()) if diff.size else 0.0
        if m.name == "iforest":
            bad = diff > IFOREST_ATOL
        else:
            bad = diff > AE_ATOL + AE_RTOL * np.abs(r)
        if bad.any():
            i = np.argwhere(bad)[0]
            raise ExportMismatch(
                f"{m.name}: ONNX output {k!r} disagrees with scikit-learn at {tuple(int(v) for v in i)}: "
                f"onnxruntime {g[tuple(i)]!r} vs sklearn {r[tuple(i)]!r} ({int(bad.sum())} of {bad.size} values off)"
            )
    return out


def synthetic_extremes(X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows far from the baseline: copies of baseline rows with a few features pushed out."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.maximum(hi - lo, 1.0)
    rows = X[rng.integers(0, len(X), n)].astype(np.float64)
    for r in rows:
        k = rng.integers(1, 4)
        idx = rng.choice(X.shape[1], k, replace=False)
        r[idx] = np.where(rng.random(k) < 0.5, lo[idx] - span[idx], hi[idx] + span[idx])
    return rows.astype(np.float32)


def pick_vector_rows(X_hold, scores_all, X_all, n, rng):
    n_top = n // 4
    n_ext = n // 4
    n_rand = n - n_top - n_ext
    rand = X_hold[rng.choice(len(X_hold), min(n_rand, len(X_hold)), replace=False)]
    top = X_all[np.argsort(scores_all)[-n_top:]] if n_top else X_all[:0]
    ext = synthetic_extremes(X_all, n_ext, rng) if n_ext else X_all[:0]
    return np.vstack([rand, top, ext]).astype(np.float32)


def write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def vectors_doc(m: Fitted, kind: str, names, X: np.ndarray, threshold: float) -> dict:
    ref = m.reference(X)
    ortv = ort_run(m.onnx, X)
    doc = {
        "kind": kind,
        "model": m.name,
        "schema_version": contract.SCHEMA_VERSION,
        "feature_names": list(names),
        "threshold": threshold,
        "tolerance": 1e-4,
        "note": "expected_* are scikit-learn (float64) values; inputs are exact float32 values",
        "inputs": [[float(v) for v in row] for row in X],
        "expected_score": [float(v) for v in ref["score"]],
        "onnxruntime_score": [float(v) for v in ortv["score"]],
    }
    if "feature_error" in ref:
        doc["expected_feature_error"] = [[float(v) for v in row] for row in ref["feature_error"]]
    return doc


def train(a: argparse.Namespace) -> dict:
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    src = Source(db=a.db, parquet=a.parquet)
    ds: Dataset = load(
        src, a.kind, since=a.since, until=a.until, window_secs=a.window_secs,
        min_rows=a.min_rows, max_rows=a.max_rows, seed=a.seed,
        allow_missing_alerts=a.allow_missing_alerts,
    )
    X = ds.X
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(len(X))
    n_hold = max(1, int(round(a.holdout * len(X))))
    hold_idx, fit_idx = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    Xfit, Xhold = X[fit_idx], X[hold_idx]
    scaler = StandardScaler().fit(Xfit.astype(np.float64))
    versions = library_versions()
    trained_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    os.makedirs(a.out, exist_ok=True)
    Xext = synthetic_extremes(X, min(512, len(X)), rng)
    check_rows = np.vstack([Xhold[:4096], ds.X_alert[:1024], Xext])

    report = {
        "kind": a.kind,
        "schema_version": contract.SCHEMA_VERSION,
        "source": os.path.abspath(a.db or a.parquet),
        "training_window": {"from": ds.ts_from, "to": ds.ts_to, "since": a.since, "until": a.until},
        "data": {**ds.stats, "rows_fit": int(len(Xfit)), "rows_holdout": int(len(Xhold)),
                 "data_sha256": ds.sha256},
        "contamination": a.contamination,
        "trained_at": trained_at,
        "library_versions": versions,
        "models": {},
    }
    for name in a.models:
        t1 = time.perf_counter()
        m = fit_iforest(Xfit, a) if name == "iforest" else fit_autoencoder(Xfit, scaler, a)
        fit_secs = time.perf_counter() - t1
        s_all = m.reference(X)["score"]
        s_hold = m.reference(Xhold)["score"]
        s_fit = m.reference(Xfit)["score"]
        thr = threshold_for(s_all, a.contamination)
        agreement = check_agreement(m, check_rows)
        meta = {
            "kind": a.kind,
            "model": name,
            "schema_version": str(contract.SCHEMA_VERSION),
            "feature_names": list(ds.feature_names),
            "threshold": repr(float(np.float32(thr))),
            "scaler_mean": [float(v) for v in scaler.mean_],
            "scaler_scale": [float(v) for v in scaler.scale_],
            "training_window": {"from": ds.ts_from, "to": ds.ts_to},
            "rows": str(len(X)),
            "library_versions": versions,
            "data_sha256": ds.sha256,
            "contamination": repr(a.contamination),
            "trained_at": trained_at,
        }
        ox.set_metadata(m.onnx, meta)
        path = os.path.join(a.out, f"{a.kind}_{name}.onnx")
        write_atomic(path, m.onnx.SerializeToString())
        vx = pick_vector_rows(Xhold, s_all, X, a.vectors, rng)
        vdoc = vectors_doc(m, a.kind, ds.feature_names, vx, float(np.float32(thr)))
        write_atomic(os.path.join(a.out, f"{a.kind}_{name}.vectors.json"),
                     json.dumps(vdoc, indent=1).encode())
        mr = {
            **m.report,
            "file": os.path.basename(path),
            "onnx_bytes": os.path.getsize(path),
            "fit_seconds": round(fit_secs, 2),
            "threshold": float(np.float32(thr)),
            "score_quantiles_all": quantiles(s_all),
            "fit_exceeding_threshold": float((s_fit > thr).mean()),
            "holdout_exceeding_threshold": float((s_hold > thr).mean()),
            "onnxruntime_vs_sklearn": {**agreement, "rows_checked": int(len(check_rows))},
        }
        if name == "autoencoder":
            mr["mse_fit"] = float(s_fit.mean())
            mr["mse_holdout"] = float(s_hold.mean())
            fe = m.reference(Xhold)["feature_error"].mean(axis=0)
            mr["holdout_feature_error_mean"] = dict(zip(ds.feature_names, (float(v) for v in fe)))
        if name == "iforest":
            mr["n_estimators"] = a.n_estimators
            mr["max_samples"] = int(m.forest._max_samples)
            mr["depth"] = int(max(e.tree_.max_depth for e in m.forest.estimators_))
        if len(ds.X_alert):
            mr["alert_rows_exceeding_threshold"] = float((m.reference(ds.X_alert)["score"] > thr).mean())
        mr["synthetic_extremes_exceeding_threshold"] = float((m.reference(Xext)["score"] > thr).mean())
        report["models"][name] = mr
    report["seconds"] = round(time.perf_counter() - t0, 2)
    write_atomic(os.path.join(a.out, f"{a.kind}_report.json"), json.dumps(report, indent=1).encode())
    return report


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        report = train(a)
    except TrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExportMismatch as e:
        print(f"error: exported ONNX disagrees with scikit-learn: {e}", file=sys.stderr)
        return 3
    d = report["data"]
    print(f"{a.kind}: {d['rows_baseline']} baseline rows ({d['rows_overlapping_alerts']} overlapping "
          f"alerts excluded, {d['rows_nonfinite_dropped']} non-finite dropped), "
          f"window {report['training_window']['from']} .. {report['training_window']['to']}")
    for name, mr in report["models"].items():
        agr = mr["onnxruntime_vs_sklearn"]
        print(f"  {name:<12} threshold {mr['threshold']:.6g}  holdout above {mr['holdout_exceeding_threshold']:.4%}  "
              f"onnx max|diff| {agr['score_max_abs_diff']:.2e}  -> {os.path.join(a.out, mr['file'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
