"""The ONNX graphs against scikit-learn on random data, independent of DuckDB."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from netguardian_models import onnx_export as ox
from netguardian_models.train import ExportMismatch, IForest, check_agreement, ort_run


def data(n, f, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    X[:, : f // 3] = np.round(X[:, : f // 3])  # discrete columns: many ties, thresholds between them
    X[:, -1] = 0.0  # a constant column
    return X.astype(np.float32), rng


@pytest.mark.parametrize(
    "n,max_samples,max_features,n_estimators",
    [(3000, 256, 1.0, 100), (3000, 100, 1.0, 50), (3000, 600, 0.5, 30), (40, 256, 1.0, 20), (5, 256, 1.0, 5),
     (2, 256, 1.0, 3), (3, 256, 1.0, 4)],
)
def test_iforest_graph_matches_score_samples(n, max_samples, max_features, n_estimators):
    X, rng = data(n, 12, n)
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(max_samples, n), max_features=max_features, random_state=3
    ).fit(X)
    test = np.vstack([X[:500], (rng.normal(size=(500, 12)) * 3).astype(np.float32)])
    # exact threshold values and their float32 neighbours exercise the <= split
    thr = forest.estimators_[0].tree_.threshold[0]
    f = forest.estimators_features_[0][forest.estimators_[0].tree_.feature[0]]
    for v in (np.float32(thr), np.nextafter(np.float32(thr), np.float32(np.inf)),
              np.nextafter(np.float32(thr), np.float32(-np.inf))):
        row = X[0].copy()
        row[f] = v
        test = np.vstack([test, row])
    want = -forest.score_samples(test)
    np.testing.assert_allclose(ox.forest_reference_scores(forest, test), want, rtol=0, atol=1e-12)
    got = ort_run(ox.iforest_graph(forest, 12), test)["score"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", ["perfect", "gather_i64", "gemm"])
def test_comparison_layouts_match_too(layout):
    X, rng = data(2000, 8, 1)
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    test = (rng.normal(size=(300, 8)) * 2).astype(np.float32)
    got = ort_run(ox.iforest_graph(forest, 8, layout=layout), test)["score"]
    np.testing.assert_allclose(got, -forest.score_samples(test), rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_autoencoder_graph_matches_sklearn(activation):
    X, rng = data(1500, 10, 2)
    X[:, 0] *= 1000.0  # very different scales
    scaler = StandardScaler().fit(X.astype(np.float64))
    z = scaler.transform(X.astype(np.float64))
    mlp = MLPRegressor(hidden_layer_sizes=(6, 3, 6), activation=activation, max_iter=50, random_state=0).fit(z, z)
    test = np.vstack([X[:200], (rng.normal(size=(100, 10)) * 5).astype(np.float32)])
    zt = scaler.transform(test.astype(np.float64))
    err = (mlp.predict(zt) - zt) ** 2
    out = ort_run(ox.autoencoder_graph(mlp, scaler.mean_, scaler.scale_), test)
    np.testing.assert_allclose(out["feature_error"], err, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["score"], err.mean(axis=1), rtol=1e-4, atol=1e-5)


def test_mismatch_is_detected():
    X, _ = data(1000, 6, 4)
    m = IForest(IsolationForest(n_estimators=10, random_state=0).fit(X))
    m.onnx = ox.iforest_graph(m.forest, 6)
    check_agreement(m, X[:100])
    (forest,) = [n for n in m.onnx.graph.node if n.op_type == "TreeEnsembleRegressor"]
    (values,) = [a for a in forest.attribute if a.name == "nodes_values"]
    values.floats[:] = [v + 0.5 for v in values.floats]  # move every split
    with pytest.raises(ExportMismatch, match="iforest"):
        check_agreement(m, X[:100])


def test_floor_f32_keeps_comparisons_exact():
    rng = np.random.default_rng(0)
    thr = rng.normal(size=10000)
    f = ox._floor_f32(thr)
    assert (f.astype(np.float64) <= thr).all()
    up = np.nextafter(f, np.float32(np.inf))
    assert (up.astype(np.float64) > thr).all()


def test_tree_ensemble_semantics_the_rust_op_copies():
    """onnxruntime's TreeEnsembleRegressor on the two trees of the Rust op's unit tests
    (src/detect/ml/tree_ensemble.rs): the numbers asserted there are these."""
    from onnx import TensorProto, helper

    # tree 0: x0 <= 0.5 ? 1 : (x1 < 2 ? 2 : 3); tree 1: x1 > 1 (NaN tracked true) ? 10 : 20
    nodes = [(0, 0, "BRANCH_LEQ", 0, 0.5, 3, 1, 0), (0, 1, "BRANCH_LT", 1, 2.0, 2, 4, 0),
             (0, 2, "LEAF", 0, 0.0, 0, 0, 0), (0, 3, "LEAF", 0, 0.0, 0, 0, 0), (0, 4, "LEAF", 0, 0.0, 0, 0, 0),
             (1, 0, "BRANCH_GT", 1, 1.0, 1, 2, 1), (1, 1, "LEAF", 0, 0.0, 0, 0, 0), (1, 2, "LEAF", 0, 0.0, 0, 0, 0)]
    names = ["nodes_treeids", "nodes_nodeids", "nodes_modes", "nodes_featureids", "nodes_values",
             "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true"]
    X = np.array([[0, 0], [1, 1.5], [1, np.nan], [np.nan, 3]], np.float32)

    def run(targets, n_targets, aggregate, base=None):
        kw = {k: [n[i] for n in nodes] for i, k in enumerate(names)}
        for i, k in enumerate(["target_treeids", "target_nodeids", "target_ids", "target_weights"]):
            kw[k] = [t[i] for t in targets]
        if base:
            kw["base_values"] = base
        node = helper.make_node("TreeEnsembleRegressor", ["features"], ["y"], domain="ai.onnx.ml",
                                n_targets=n_targets, aggregate_function=aggregate, **kw)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_targets])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)])
        m.ir_version = 7
        return ort_run(m, X)["y"].ravel().tolist()

    one = [(0, 3, 0, 1.0), (0, 2, 0, 2.0), (0, 4, 0, 3.0), (1, 1, 0, 10.0), (1, 2, 0, 20.0)]
    assert run(one, 1, "SUM") == [21, 12, 13, 13]
    assert run(one, 1, "AVERAGE", [0.5]) == [11, 6.5, 7, 7]
    assert run(one, 1, "MIN", [0.5]) == [1.5, 2.5, 3.5, 3.5]
    assert run(one, 1, "MAX", [0.5]) == [20.5, 10.5, 10.5, 10.5]
    two = one[:3] + [(1, 1, 1, 10.0), (1, 2, 1, 20.0), (0, 3, 1, 0.25), (0, 3, 1, 0.5)]
    assert run(two, 2, "SUM") == [1, 20.75, 2, 10, 3, 10, 3, 10]
    three = one + [(0, 3, 1, 0.25), (0, 3, 1, 0.5)]
    assert run(three, 2, "MAX", [100.0, 1.0]) == [120, 1.5, 110, 0, 110, 0, 110, 0]
