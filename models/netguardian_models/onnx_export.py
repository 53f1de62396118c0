"""ONNX graphs for the isolation forest and the autoencoder.

The autoencoder uses only ai.onnx operators that tract-onnx 0.23 implements (Sub,
Div, MatMul, Add, Tanh/Relu, Mul, ReduceMean).

Isolation forest, layout "ml" (the default): one ai.onnx.ml TreeEnsembleRegressor
(sklearn's trees as they are, BRANCH_LEQ splits, one leaf weight per tree, SUM)
followed by Exp; see ml_tree_attributes. onnxruntime runs it; tract-onnx 0.23 has no
TreeEnsembleRegressor, so netguardian registers a native one with tract
(src/detect/ml/tree_ensemble.rs): ~1.2 us per row at batch 256 against ~6 for
the best standard-operator layout below.

Isolation forest layout "perfect" (standard operators only, for a runtime without
the ML operator; it was the default before the tract op): every tree is padded to a
complete binary tree of depth D (= the deepest tree, at most
ceil(log2(max_samples)) = 8). For each level d there is one table of node
features and one of thresholds holding the 2^d nodes of every tree, tree-major,
so the node of tree t at position p of level d sits at g = t * 2^d + p and its
children at 2g + {0, 1}. All trees advance one level per step over an [N, T]
tensor of node indices:

    levels 0, 1 (1 and 2 nodes per tree), dense, no index needed:
        x_0 = Gather(features, feat_0, axis=1); b_0 = x_0 > thr_0
        x_1 = Where(b_0, Gather(features, feat_1r), Gather(features, feat_1l)), same for thr
        g_2 = 4t + 2 b_0 + b_1
    levels d = 2 .. D-1:
        f   = GatherElements(feat_d[1, M], g as int32 [1, N*T])   -> [N, T]
        x   = GatherElements(features, f, axis=1)                  # the row's value
        th  = GatherElements(thr_d[1, M], g)
        g   = 2 g + Cast(x > th)           # sklearn goes left when x <= thr
    score = Exp(ReduceSum(GatherElements(leaf[1, T*2^D], g), axis=1))

Leaves hold -ln 2 * (depth + c(n_samples)) / (T * c(max_samples)) (padding
leaves copy the real leaf above them), so the sum and one Exp give
2^(-mean path length / c(max_samples)) = -IsolationForest.score_samples.

Why this shape, measured in tract-onnx 0.23 (see models/README.md):
- node indices are float32 (exact below 2^24) and cast to int32 only to index:
  tract-onnx turns every ONNX Cast *to int64* into a cast to its symbolic
  dimension type TDim, and int64 index arithmetic then runs on TDim values
  (~250 us/row); int32/int64 element-wise ops use generic code while float32
  ones use SIMD kernels;
- table lookups are GatherElements over [1, M] tables: tract's Gather on a
  [N, T] index tensor costs ~3x its GatherElements per element;
- the node feature tables are int32, not int64: the feature ids they give
  index the input row directly, and GatherElements over 8-byte data cost
  ~2.5x more per element (the whole forest: 7.5-8.4 -> 5.9-6.6 us per row);
- the two top levels need no lookups at all.

The forest is fitted on the float32 *unscaled* feature values: isolation trees
are invariant to per-feature affine scaling, and comparing the graph's float32
input directly with float32 thresholds (rounded down from sklearn's float64
ones, which keeps x <= thr exact) makes the graph agree with sklearn exactly
rather than "almost" (a scaler in front would round differently in float32
and flip the odd split). The scaler still travels in the metadata.

Two more layouts are kept for comparison only: "gather_i64" (the plain
level-wise version with Gather and int64 indices) and "gemm" (Hummingbird's
GEMM strategy, whose cost grows with nodes x leaves per tree: hopeless for
depth-8 trees).
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import contract

OPSET = 13
ML_OPSET = 3
IR_VERSION = 7
EULER_GAMMA = 0.5772156649015329


def average_path_length(n) -> np.ndarray:
    """c(n) of Liu et al., as sklearn.ensemble._iforest._average_path_length."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    m2 = n == 2
    big = n > 2
    out[m2] = 1.0
    nb = n[big]
    out[big] = 2.0 * (np.log(nb - 1.0) + EULER_GAMMA) - 2.0 * (nb - 1.0) / nb
    return out


def _floor_f32(x: np.ndarray) -> np.ndarray:
    """Largest float32 <= x (float64), so that f32 <= result  <=>  f32 <= x."""
    x = np.asarray(x, dtype=np.float64)
    y = x.astype(np.float32)
    over = y.astype(np.float64) > x
    y[over] = np.nextafter(y[over], np.float32(-np.inf))
    return y


def forest_tables(forest, n_features: int):
    """Complete-tree tables of a fitted sklearn IsolationForest.

    Returns (feat, thr, leaf, depth): feat[d] int64 and thr[d] float32 of shape
    [T * 2^d] for d < depth, leaf float64 [T * 2^depth] holding the path length
    contribution depth + c(n_node_samples) of the leaf reached.
    """
    trees = forest.estimators_
    feats_sub = forest.estimators_features_
    T = len(trees)
    D = max(1, max(int(e.tree_.max_depth) for e in trees))
    feat = [np.zeros(T << d, dtype=np.int64) for d in range(D)]
    thr = [np.zeros(T << d, dtype=np.float64) for d in range(D)]
    leaf = np.full(T << D, np.nan, dtype=np.float64)
    for t, (est, fsub) in enumerate(zip(trees, feats_sub)):
        tr = est.tree_
        left, right = tr.children_left, tr.children_right
        fsub = np.asarray(fsub)
        cn = average_path_length(tr.n_node_samples)
        stack = [(0, 0, 0)]  # node, level, position in level
        while stack:
            node, d, p = stack.pop()
            if left[node] == -1:  # leaf
                span = 1 << (D - d)
                base = (t << D) + p * span
                leaf[base : base + span] = d + cn[node]
                continue
            if d >= D:  # cannot happen: D is the deepest tree
                raise AssertionError("tree deeper than its max_depth")
            f = int(tr.feature[node])
            feat[d][(t << d) + p] = int(fsub[f])
            thr[d][(t << d) + p] = tr.threshold[node]
            stack.append((int(left[node]), d + 1, 2 * p))
            stack.append((int(right[node]), d + 1, 2 * p + 1))
    assert not np.isnan(leaf).any()
    assert all(int(f.max(initial=0)) < n_features for f in feat)
    return feat, [_floor_f32(t_) for t_ in thr], leaf, D


def forest_reference_scores(forest, X: np.ndarray) -> np.ndarray:
    """Numpy evaluation of the complete-tree tables (float64), for self-checks."""
    feat, thr, leaf, D = forest_tables(forest, X.shape[1])
    T = len(forest.estimators_)
    X = np.asarray(X, dtype=np.float32)
    rows = np.arange(X.shape[0])[:, None]
    g = np.broadcast_to(np.arange(T), (X.shape[0], T)).copy()
    for d in range(D):
        f = feat[d][g]
        g = 2 * g + (X[rows, f] > thr[d][g])
    c = average_path_length([forest._max_samples])[0]
    return 2.0 ** (-leaf[g].sum(axis=1) / (T * c))


def _const(name: str, arr) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def iforest_graph(forest, n_features: int, layout: str = "ml") -> onnx.ModelProto:
    if layout == "ml":
        return _iforest_ml(forest, n_features)
    if layout == "perfect":
        return _iforest_perfect(forest, n_features)
    if layout == "gather_i64":
        return _iforest_gather_i64(forest, n_features)
    if layout == "gemm":
        return _iforest_gemm(forest, n_features)
    raise ValueError(f"unknown layout {layout!r}")


def _io(n_features: int, with_error: bool):
    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n_features])
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])]
    if with_error:
        outs.append(
            helper.make_tensor_value_info("feature_error", TensorProto.FLOAT, ["N", n_features])
        )
    return inp, outs


def _model(graph: onnx.GraphProto, ml: bool = False) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", OPSET)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    m = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="netguardian_models",
        producer_version=__import__("netguardian_models").__version__,
    )
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def ml_tree_attributes(forest) -> dict[str, list]:
    """TreeEnsembleRegressor attributes of a fitted sklearn IsolationForest.

    One target whose leaf weights are -ln 2 * (depth + c(n_samples)) / (T *
    c(max_samples)), summed over the trees: Exp of the sum is
    2^(-mean path length / c(max_samples)) = -IsolationForest.score_samples.
    Node ids are sklearn's; true = left (x <= threshold). Thresholds are rounded
    down to float32 (x <= thr is then exact for float32 inputs), and a NaN input
    takes the true (left) branch, as in the "perfect" layout.
    """
    T = len(forest.estimators_)
    c = float(average_path_length([forest._max_samples])[0])
    a: dict[str, list] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    for t, (est, fsub) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        tr = est.tree_
        left, right = tr.children_left, tr.children_right
        cn = average_path_length(tr.n_node_samples)
        thr = _floor_f32(tr.threshold)
        depth = np.zeros(tr.node_count, dtype=np.int64)
        for node in range(tr.node_count):  # sklearn numbers children after parents
            if left[node] != -1:
                depth[left[node]] = depth[right[node]] = depth[node] + 1
        for node in range(tr.node_count):
            leaf = left[node] == -1
            a["nodes_treeids"].append(t)
            a["nodes_nodeids"].append(node)
            a["nodes_featureids"].append(0 if leaf else int(fsub[tr.feature[node]]))
            a["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            a["nodes_values"].append(0.0 if leaf else float(thr[node]))
            a["nodes_truenodeids"].append(0 if leaf else int(left[node]))
            a["nodes_falsenodeids"].append(0 if leaf else int(right[node]))
            a["nodes_missing_value_tracks_true"].append(0 if leaf else 1)
            if leaf:
                a["target_treeids"].append(t)
                a["target_nodeids"].append(node)
                a["target_ids"].append(0)
                a["target_weights"].append(-math.log(2.0) * (depth[node] + cn[node]) / (T * c))
    return a


def ml_forest_model(attrs: dict[str, list], n_features: int) -> onnx.ModelProto:
    """features -> TreeEnsembleRegressor (sum of leaf weights) -> Exp -> score [N]."""
    inits = [_const("flat", np.array([-1], dtype=np.int64))]
    nodes = [
        helper.make_node(
            "TreeEnsembleRegressor", ["features"], ["log2_score_2d"], name="forest",
            domain="ai.onnx.ml", n_targets=1, aggregate_function="SUM", post_transform="NONE",
            **attrs,
        ),
        helper.make_node("Reshape", ["log2_score_2d", "flat"], ["log2_score"], name="log2_score"),
        helper.make_node("Exp", ["log2_score"], ["score"], name="score"),
    ]
    inp, outs = _io(n_features, False)
    g = helper.make_graph(nodes, "netguardian_iforest", [inp], outs, initializer=inits)
    return _model(g, ml=True)


def _iforest_ml(forest, n_features: int) -> onnx.ModelProto:
    """The default layout: one ONNX-ML TreeEnsembleRegressor (netguardian registers
    a native implementation of it with tract, src/detect/ml/tree_ensemble.rs)."""
    return ml_forest_model(ml_tree_attributes(forest), n_features)


def _iforest_perfect(forest, n_features: int) -> onnx.ModelProto:
    """The fast layout (see the module docstring and models/README.md)."""
    feat, thr, leaf, D = forest_tables(forest, n_features)
    T = len(forest.estimators_)
    c = float(average_path_length([forest._max_samples])[0])
    leafv = (-math.log(2.0) * leaf / (T * c)).astype(np.float32)
    assert (T << D) < 2**24  # node indices are exact in float32
    inits = [
        _const("flat", np.array([1, -1], dtype=np.int64)),
        _const("rows", np.array([-1, T], dtype=np.int64)),
        _const("two", np.array(2.0, dtype=np.float32)),
        _const("leaf_value", leafv[None, :]),
        _const("sum_axes", np.array([1], dtype=np.int64)),
        _const("feat_0", feat[0]),
        _const("thr_0", thr[0][None, :]),
    ]
    # Level 0 (one root per tree) and level 1 (two nodes per tree) are evaluated
    # densely: Gather of constant feature columns, compare, select.
    nodes = [
        helper.make_node("Gather", ["features", "feat_0"], ["x_0"], axis=1, name="x_0"),
        helper.make_node("Greater", ["x_0", "thr_0"], ["gt_0"], name="gt_0"),
        helper.make_node("Cast", ["gt_0"], ["b_0"], to=TensorProto.FLOAT, name="b_0"),
    ]
    if D == 1:
        inits.append(_const("base_1", (2 * np.arange(T, dtype=np.float32))[None, :]))
        nodes.append(helper.make_node("Add", ["base_1", "b_0"], ["g_1"], name="g_1"))
    else:
        inits += [
            _const("feat_1l", feat[1][0::2]),
            _const("feat_1r", feat[1][1::2]),
            _const("thr_1l", thr[1][0::2][None, :]),
            _const("thr_1r", thr[1][1::2][None, :]),
            _const("base_2", (4 * np.arange(T, dtype=np.float32))[None, :]),
        ]
        nodes += [
            helper.make_node("Gather", ["features", "feat_1l"], ["x_1l"], axis=1, name="x_1l"),
            helper.make_node("Gather", ["features", "feat_1r"], ["x_1r"], axis=1, name="x_1r"),
            helper.make_node("Where", ["gt_0", "x_1r", "x_1l"], ["x_1"], name="x_1"),
            helper.make_node("Where", ["gt_0", "thr_1r", "thr_1l"], ["th_1"], name="th_1"),
            helper.make_node("Greater", ["x_1", "th_1"], ["gt_1"], name="gt_1"),
            helper.make_node("Cast", ["gt_1"], ["b_1"], to=TensorProto.FLOAT, name="b_1"),
            helper.make_node("Mul", ["b_0", "two"], ["b_0x2"], name="b_0x2"),
            helper.make_node("Add", ["base_2", "b_0x2"], ["g_2a"], name="g_2a"),
            helper.make_node("Add", ["g_2a", "b_1"], ["g_2"], name="g_2"),
        ]
    # Levels 2 .. D-1: every (row, tree) looks up its node. Node indices are
    # float32 (tract runs float arithmetic through SIMD kernels, int arithmetic
    # through slow generic code, and turns ONNX casts *to int64* into casts to
    # its symbolic TDim type) and become int32 only to index. Table lookups are
    # GatherElements over [1, M] tables with [1, N*T] indices: tract's Gather
    # costs ~3x its GatherElements per element.
    for d in range(min(2, D), D):
        # int32 feature tables: the gathered feature ids index the input directly,
        # and tract's GatherElements over 4-byte data is ~2.5x faster per element
        # than over int64 (measured: ff_d 0.77 -> 0.29 µs per row and level).
        inits += [
            _const(f"feat_{d}", feat[d].astype(np.int32)[None, :]),
            _const(f"thr_{d}", thr[d][None, :]),
        ]
        nodes += [
            helper.make_node("Cast", [f"g_{d}"], [f"gi_{d}"], to=TensorProto.INT32, name=f"gi_{d}"),
            helper.make_node("Reshape", [f"gi_{d}", "flat"], [f"gf_{d}"], name=f"gf_{d}"),
            helper.make_node("GatherElements", [f"feat_{d}", f"gf_{d}"], [f"ff_{d}"], axis=1, name=f"ff_{d}"),
            helper.make_node("Reshape", [f"ff_{d}", "rows"], [f"f_{d}"], name=f"f_{d}"),
            helper.make_node("GatherElements", ["features", f"f_{d}"], [f"x_{d}"], axis=1, name=f"x_{d}"),
            helper.make_node("GatherElements", [f"thr_{d}", f"gf_{d}"], [f"thf_{d}"], axis=1, name=f"thf_{d}"),
            helper.make_node("Reshape", [f"thf_{d}", "rows"], [f"th_{d}"], name=f"th_{d}"),
            helper.make_node("Greater", [f"x_{d}", f"th_{d}"], [f"gt_{d}"], name=f"gt_{d}"),
            helper.make_node("Cast", [f"gt_{d}"], [f"b_{d}"], to=TensorProto.FLOAT, name=f"b_{d}"),
            helper.make_node("Mul", [f"g_{d}", "two"], [f"g2_{d}"], name=f"g2_{d}"),
            helper.make_node("Add", [f"g2_{d}", f"b_{d}"], [f"g_{d + 1}"], name=f"g_{d + 1}"),
        ]
    nodes += [
        helper.make_node("Cast", [f"g_{D}"], ["gi_leaf"], to=TensorProto.INT32, name="gi_leaf"),
        helper.make_node("Reshape", ["gi_leaf", "flat"], ["gf_leaf"], name="gf_leaf"),
        helper.make_node("GatherElements", ["leaf_value", "gf_leaf"], ["leaf_flat"], axis=1, name="leaf_flat"),
        helper.make_node("Reshape", ["leaf_flat", "rows"], ["leaf"], name="leaf"),
        helper.make_node("ReduceSum", ["leaf", "sum_axes"], ["log2_score"], keepdims=0, name="sum"),
        helper.make_node("Exp", ["log2_score"], ["score"], name="score"),
    ]
    inp, outs = _io(n_features, False)
    g = helper.make_graph(nodes, "netguardian_iforest", [inp], outs, initializer=inits)
    return _model(g)


def _iforest_gather_i64(forest, n_features: int) -> onnx.ModelProto:
    """The straightforward level-wise layout (benchmark only): Gather from [T * 2^d]
    tables with int64 node indices. Same results, ~3x slower in tract."""
    feat, thr, leaf, D = forest_tables(forest, n_features)
    T = len(forest.estimators_)
    c = float(average_path_length([forest._max_samples])[0])
    leafv = (-math.log(2.0) * leaf / (T * c)).astype(np.float32)
    inits = [
        _const("feat_0", feat[0]),
        _const("thr_0", thr[0]),
        _const("tree_base_1", (2 * np.arange(T)).astype(np.int64)),
        _const("two", np.array(2, dtype=np.int64)),
        _const("leaf_value", leafv),
        _const("sum_axes", np.array([1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("Gather", ["features", "feat_0"], ["x_0"], axis=1),
        helper.make_node("Greater", ["x_0", "thr_0"], ["gt_0"]),
        helper.make_node("Cast", ["gt_0"], ["b_0"], to=TensorProto.INT64),
        helper.make_node("Add", ["b_0", "tree_base_1"], ["g_1"]),
    ]
    for d in range(1, D):
        inits += [_const(f"feat_{d}", feat[d]), _const(f"thr_{d}", thr[d])]
        nodes += [
            helper.make_node("Gather", [f"feat_{d}", f"g_{d}"], [f"f_{d}"], axis=0),
            helper.make_node("GatherElements", ["features", f"f_{d}"], [f"x_{d}"], axis=1),
            helper.make_node("Gather", [f"thr_{d}", f"g_{d}"], [f"th_{d}"], axis=0),
            helper.make_node("Greater", [f"x_{d}", f"th_{d}"], [f"gt_{d}"]),
            helper.make_node("Cast", [f"gt_{d}"], [f"b_{d}"], to=TensorProto.INT64),
            helper.make_node("Mul", [f"g_{d}", "two"], [f"g2_{d}"]),
            helper.make_node("Add", [f"g2_{d}", f"b_{d}"], [f"g_{d + 1}"]),
        ]
    nodes += [
        helper.make_node("Gather", ["leaf_value", f"g_{D}"], ["leaf"], axis=0),
        helper.make_node("ReduceSum", ["leaf", "sum_axes"], ["log2_score"], keepdims=0),
        helper.make_node("Exp", ["log2_score"], ["score"]),
    ]
    inp, outs = _io(n_features, False)
    g = helper.make_graph(nodes, "netguardian_iforest_gather_i64", [inp], outs, initializer=inits)
    return _model(g)


def _iforest_gemm(forest, n_features: int) -> onnx.ModelProto:
    """Hummingbird's GEMM strategy, batched over trees (benchmark only)."""
    trees = forest.estimators_
    T = len(trees)
    I = max(int((e.tree_.children_left != -1).sum()) for e in trees)
    L = max(int((e.tree_.children_left == -1).sum()) for e in trees)
    A = np.zeros((T, n_features, I), np.float32)
    B = np.zeros((T, I, L), np.float32)
    thr = np.full((T, 1, I), np.float32(np.inf))  # padding nodes: x <= inf, counts as "left"
    target = np.full((T, 1, L), -1.0, np.float32)  # padding leaves never match
    val = np.zeros((T, L, 1), np.float32)
    c = float(average_path_length([forest._max_samples])[0])
    for t, (est, fsub) in enumerate(zip(trees, forest.estimators_features_)):
        tr = est.tree_
        cn = average_path_length(tr.n_node_samples)
        internal = {n: i for i, n in enumerate(np.flatnonzero(tr.children_left != -1))}
        leaves = {n: i for i, n in enumerate(np.flatnonzero(tr.children_left == -1))}
        for n, i in internal.items():
            A[t, fsub[tr.feature[n]], i] = 1.0
            thr[t, 0, i] = _floor_f32(tr.threshold[n])
        stack = [(0, 0, [])]
        while stack:
            n, d, path = stack.pop()
            if tr.children_left[n] == -1:
                li = leaves[n]
                lefts = 0
                for (i, went_left) in path:
                    B[t, i, li] = 1.0 if went_left else -1.0
                    lefts += went_left
                target[t, 0, li] = lefts
                val[t, li, 0] = -math.log(2.0) * (d + cn[n]) / (T * c)
                continue
            i = internal[n]
            stack.append((tr.children_left[n], d + 1, path + [(i, True)]))
            stack.append((tr.children_right[n], d + 1, path + [(i, False)]))
    inits = [
        _const("A", A), _const("thr", thr), _const("B", B), _const("target", target),
        _const("val", val), _const("axes0", np.array([0, 2], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("MatMul", ["features", "A"], ["xa"]),  # [T, N, I]
        helper.make_node("Greater", ["xa", "thr"], ["right"]),
        helper.make_node("Not", ["right"], ["left"]),
        helper.make_node("Cast", ["left"], ["leftf"], to=TensorProto.FLOAT),
        # B[i, l] = +1 if leaf l is under the left child of i, -1 under the
        # right child: leftf @ B = (left turns taken on l's left edges) - (left
        # turns taken on l's right edges), which equals the number of left
        # edges of l's path (target) exactly for the leaf the row reaches.
        helper.make_node("MatMul", ["leftf", "B"], ["p"]),  # [T, N, L]
        helper.make_node("Equal", ["p", "target"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["hitf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["hitf", "val"], ["tv"]),  # [T, N, 1]
        helper.make_node("ReduceSum", ["tv", "axes0"], ["s"], keepdims=0),
        helper.make_node("Exp", ["s"], ["score"]),
    ]
    inp, outs = _io(n_features, False)
    g = helper.make_graph(nodes, "netguardian_iforest_gemm", [inp], outs, initializer=inits)
    return _model(g)


def mlp_layers(mlp):
    return [(np.asarray(W, np.float32), np.asarray(b, np.float32)) for W, b in zip(mlp.coefs_, mlp.intercepts_)]


def autoencoder_graph(mlp, mean: np.ndarray, scale: np.ndarray) -> onnx.ModelProto:
    n_features = len(mean)
    act = {"tanh": "Tanh", "relu": "Relu", "logistic": "Sigmoid", "identity": None}[mlp.activation]
    if mlp.out_activation_ != "identity":
        raise ValueError("autoencoder output activation must be identity")
    inits = [
        _const("scaler_mean", np.asarray(mean, np.float32)),
        _const("scaler_scale", np.asarray(scale, np.float32)),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "scaler_mean"], ["centered"], name="center"),
        helper.make_node("Div", ["centered", "scaler_scale"], ["z"], name="scale"),
    ]
    h = "z"
    layers = mlp_layers(mlp)
    for i, (W, b) in enumerate(layers):
        inits += [_const(f"W_{i}", W), _const(f"b_{i}", b)]
        nodes += [
            helper.make_node("MatMul", [h, f"W_{i}"], [f"mm_{i}"], name=f"mm_{i}"),
            helper.make_node("Add", [f"mm_{i}", f"b_{i}"], [f"lin_{i}"], name=f"lin_{i}"),
        ]
        h = f"lin_{i}"
        if i < len(layers) - 1 and act is not None:
            nodes.append(helper.make_node(act, [h], [f"h_{i}"], name=f"act_{i}"))
            h = f"h_{i}"
    nodes += [
        helper.make_node("Sub", [h, "z"], ["diff"], name="diff"),
        helper.make_node("Mul", ["diff", "diff"], ["feature_error"], name="feature_error"),
        helper.make_node("ReduceMean", ["feature_error"], ["score"], axes=[1], keepdims=0, name="score"),
    ]
    inp, outs = _io(n_features, True)
    g = helper.make_graph(nodes, "netguardian_autoencoder", [inp], outs, initializer=inits)
    return _model(g)


def set_metadata(model: onnx.ModelProto, meta: dict[str, object]) -> None:
    """Adds ``netguardian.*`` metadata_props; non-string values are JSON-encoded."""
    missing = [k for k in contract.META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"metadata incomplete: {missing}")
    del model.metadata_props[:]
    for k in contract.META_KEYS:
        v = meta[k]
        s = v if isinstance(v, str) else json.dumps(v)
        model.metadata_props.append(
            onnx.StringStringEntryProto(key=contract.META_PREFIX + k, value=s)
        )


def get_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {
        p.key[len(contract.META_PREFIX) :]: p.value
        for p in model.metadata_props
        if p.key.startswith(contract.META_PREFIX)
    }
