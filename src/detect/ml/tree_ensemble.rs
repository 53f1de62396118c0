//! ONNX-ML `TreeEnsembleRegressor`, evaluated natively inside tract.
//!
//! This file exists because tract-onnx 0.23 has no `TreeEnsembleRegressor`, and the
//! standard-operator forms of an isolation forest it can run (per-level Gather /
//! GatherElements / compare over `[N, trees]` tensors) cost 6-25 µs per row: every
//! level is three table lookups through generic tensor code. A tree ensemble is a
//! pointer walk; done in a loop it costs a few nanoseconds per tree. So the trainer
//! exports the forest as one standard `ai.onnx.ml` node (onnxruntime runs and checks
//! the same file), and [`onnx`] registers this implementation of it with tract.
//!
//! What is implemented (the operator's full attribute set except the double-valued
//! `*_as_tensor` variants): every node mode (`BRANCH_LEQ`, `_LT`, `_GTE`, `_GT`,
//! `_EQ`, `_NEQ`, `LEAF`), `nodes_missing_value_tracks_true`, any number of targets
//! and of weights per leaf, `aggregate_function` `SUM`/`AVERAGE`/`MIN`/`MAX` and
//! `base_values`, with onnxruntime's results (the unit tests' expected values are
//! what onnxruntime 1.32 gives for the same trees, `models/tests`): a NaN input takes
//! the true branch only where `nodes_missing_value_tracks_true` says so; `AVERAGE`
//! divides by the number of trees; under `MIN`/`MAX` a target no tree voted for is 0.
//! `post_transform` must be `NONE` (onnxruntime's regressor ignores the others, so
//! no model relying on them would be checked by it). Node ids may come in any order
//! (onnxruntime wants each tree's root listed first and ids below the node count).
//!
//! A model file is data from disk: the trees are checked when the model loads (one
//! root per tree, every child present in its tree, no node reached twice, so no
//! cycle can make a walk loop forever; leaf weights only on leaves; targets in
//! range), and each error names the tree and node. Input width is checked per call.
//!
//! Layout: all trees' nodes in one array, each tree in depth-first preorder (a
//! child always follows its parent), 16 bytes a node. Evaluation runs tree by tree
//! over the whole batch, so one tree's nodes stay in cache while every row walks it.
//! For one target summed or averaged over trees no deeper than 16 (isolation forests:
//! depth 8), leaves point back at themselves and every row takes exactly the tree's
//! depth in steps, four rows in lockstep: four independent load chains the core
//! overlaps, and no branch on the data. The flow forest (100 trees) went from 2.0 µs
//! per row walking one row at a time to-the-leaf to 1.15 with the lockstep walk
//! (onnxruntime 1.32 on the same file: 1.7).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// Node modes, stored in the top bits of [`Node::meta`].
const LEAF: u32 = 0;
const LEQ: u32 = 1;
const LT: u32 = 2;
const GTE: u32 = 3;
const GT: u32 = 4;
const EQ: u32 = 5;
const NEQ: u32 = 6;
/// Marker for "the nodes use more than one mode".
const MIXED: u32 = 15;

/// Deeper trees are walked until their leaf instead: a fixed walk would cost every row
/// the deepest path.
const FIXED_WALK_MAX_DEPTH: u32 = 16;

const MODE_SHIFT: u32 = 28;
const NAN_TRUE: u32 = 1 << 27;
const FEATURE_MASK: u32 = NAN_TRUE - 1;

/// One tree node. Branch: `value` is the threshold, `meta` holds mode, NaN flag and
/// feature index, `children` = [false child, true child] (indices into
/// [`Forest::nodes`]). Leaf: `meta` = 0; `value` is the leaf's single-target weight
/// when the forest is [`Forest::single`], else `children` = the leaf's range in
/// [`Forest::weights`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    value: f32,
    meta: u32,
    children: [u32; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// A node waiting to be laid out: (attribute index, (parent, child slot) to patch, depth).
type Pending = (usize, Option<(usize, usize)>, u32);

/// A validated tree ensemble, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    nodes: Vec<Node>,
    /// Index of each tree's root in `nodes`.
    roots: Vec<u32>,
    /// Depth of each tree (edges from the root to its deepest leaf).
    depths: Vec<u32>,
    /// Single-target trees no deeper than [`FIXED_WALK_MAX_DEPTH`]: every row takes
    /// exactly `depth` steps per tree (leaves loop to themselves), with no
    /// data-dependent branch to mispredict.
    fixed_depth: bool,
    /// (target, weight) of every leaf, grouped by leaf (multi-target or MIN/MAX forests).
    weights: Vec<(u32, f32)>,
    /// One target, SUM or AVERAGE: leaf weights are folded into [`Node::value`].
    single: bool,
    /// The mode every branch uses, or [`MIXED`].
    mode: u32,
    n_targets: usize,
    /// Smallest input width the trees can index.
    n_features: usize,
    aggregate: Aggregate,
    base_values: Vec<f32>,
}

/// The operator's attributes, as plain vectors (from an ONNX node or a test).
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub nodes_treeids: Vec<i64>,
    pub nodes_nodeids: Vec<i64>,
    pub nodes_featureids: Vec<i64>,
    pub nodes_modes: Vec<String>,
    pub nodes_values: Vec<f32>,
    pub nodes_truenodeids: Vec<i64>,
    pub nodes_falsenodeids: Vec<i64>,
    /// Empty = no node tracks missing values.
    pub nodes_missing_value_tracks_true: Vec<i64>,
    pub target_treeids: Vec<i64>,
    pub target_nodeids: Vec<i64>,
    pub target_ids: Vec<i64>,
    pub target_weights: Vec<f32>,
    pub n_targets: i64,
    /// `SUM` when empty.
    pub aggregate_function: String,
    pub base_values: Vec<f32>,
    /// `NONE` when empty.
    pub post_transform: String,
}

fn mode_of(s: &str) -> TractResult<u32> {
    Ok(match s {
        "LEAF" => LEAF,
        "BRANCH_LEQ" => LEQ,
        "BRANCH_LT" => LT,
        "BRANCH_GTE" => GTE,
        "BRANCH_GT" => GT,
        "BRANCH_EQ" => EQ,
        "BRANCH_NEQ" => NEQ,
        other => bail!("unknown node mode {other:?}"),
    })
}

impl Forest {
    pub fn build(a: &Attributes) -> TractResult<Forest> {
        let n = a.nodes_nodeids.len();
        ensure!(n > 0, "the ensemble has no nodes");
        for (name, len) in [
            ("nodes_treeids", a.nodes_treeids.len()),
            ("nodes_featureids", a.nodes_featureids.len()),
            ("nodes_modes", a.nodes_modes.len()),
            ("nodes_values", a.nodes_values.len()),
            ("nodes_truenodeids", a.nodes_truenodeids.len()),
            ("nodes_falsenodeids", a.nodes_falsenodeids.len()),
        ] {
            ensure!(len == n, "{name} has {len} entries, nodes_nodeids has {n}");
        }
        let tracks = &a.nodes_missing_value_tracks_true;
        ensure!(
            tracks.is_empty() || tracks.len() == n,
            "nodes_missing_value_tracks_true has {} entries, nodes_nodeids has {n}",
            tracks.len()
        );
        let nt = a.target_ids.len();
        for (name, len) in [
            ("target_treeids", a.target_treeids.len()),
            ("target_nodeids", a.target_nodeids.len()),
            ("target_weights", a.target_weights.len()),
        ] {
            ensure!(len == nt, "{name} has {len} entries, target_ids has {nt}");
        }
        ensure!(
            a.n_targets >= 1 && a.n_targets <= 1 << 20,
            "n_targets is {}, expected 1..=1048576",
            a.n_targets
        );
        let n_targets = a.n_targets as usize;
        let aggregate = match a.aggregate_function.as_str() {
            "" | "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("aggregate_function {other:?} is not SUM, AVERAGE, MIN or MAX"),
        };
        ensure!(
            matches!(a.post_transform.as_str(), "" | "NONE"),
            "post_transform {:?} is not supported (only NONE)",
            a.post_transform
        );
        let base_values = if a.base_values.is_empty() {
            vec![0.0; n_targets]
        } else {
            ensure!(
                a.base_values.len() == n_targets,
                "base_values has {} entries, n_targets is {n_targets}",
                a.base_values.len()
            );
            a.base_values.clone()
        };

        // (tree, node id) -> attribute index; trees in ascending id order.
        let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        let mut trees: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        let mut modes = Vec::with_capacity(n);
        for i in 0..n {
            let (t, id) = (a.nodes_treeids[i], a.nodes_nodeids[i]);
            ensure!(
                index.insert((t, id), i).is_none(),
                "tree {t} has node {id} twice"
            );
            trees.entry(t).or_default().push(i);
            let mode = mode_of(&a.nodes_modes[i]).with_context(|| format!("tree {t} node {id}"))?;
            if mode != LEAF {
                let f = a.nodes_featureids[i];
                ensure!(
                    (0..FEATURE_MASK as i64).contains(&f),
                    "tree {t} node {id}: feature id {f} out of range"
                );
            }
            modes.push(mode);
        }

        // Leaf weights, per leaf attribute index.
        let mut leaf_weights: HashMap<usize, Vec<(u32, f32)>> = HashMap::new();
        for k in 0..nt {
            let (t, id) = (a.target_treeids[k], a.target_nodeids[k]);
            let Some(&i) = index.get(&(t, id)) else {
                bail!("target entry {k} names tree {t} node {id}, which does not exist");
            };
            ensure!(
                modes[i] == LEAF,
                "target entry {k} names tree {t} node {id}, which is a branch, not a leaf"
            );
            let target = a.target_ids[k];
            ensure!(
                (0..n_targets as i64).contains(&target),
                "target entry {k} (tree {t} node {id}): target id {target} not below n_targets {n_targets}"
            );
            leaf_weights
                .entry(i)
                .or_default()
                .push((target as u32, a.target_weights[k]));
        }

        let single = n_targets == 1 && matches!(aggregate, Aggregate::Sum | Aggregate::Average);
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        let mut roots = Vec::with_capacity(trees.len());
        let mut depths = Vec::with_capacity(trees.len());
        let mut weights = Vec::new();
        let mut mode_seen: Option<u32> = None;
        let mut n_features = 0usize;
        // Attribute indices of each branch's [false, true] children.
        let mut children_of = vec![[usize::MAX; 2]; n];
        for (&t, members) in &trees {
            // The root is the one node no branch of its tree points at.
            let mut is_child: HashSet<usize> = HashSet::new();
            for &i in members {
                if modes[i] == LEAF {
                    continue;
                }
                for (slot, which, id) in [
                    (0, "false", a.nodes_falsenodeids[i]),
                    (1, "true", a.nodes_truenodeids[i]),
                ] {
                    let Some(&c) = index.get(&(t, id)) else {
                        bail!(
                            "tree {t} node {}: {which} child {id} does not exist",
                            a.nodes_nodeids[i]
                        );
                    };
                    children_of[i][slot] = c;
                    is_child.insert(c);
                }
            }
            let candidates: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| !is_child.contains(i))
                .collect();
            ensure!(
                candidates.len() == 1,
                "tree {t} has {} nodes that are no node's child (a tree has exactly one root)",
                candidates.len()
            );
            let start = nodes.len();
            roots.push(u32::try_from(start).context("too many nodes")?);
            // Depth-first preorder.
            let mut stack: Vec<Pending> = vec![(candidates[0], None, 0)];
            let mut depth = 0u32;
            let mut seen: HashSet<usize> = HashSet::new();
            while let Some((i, parent, d)) = stack.pop() {
                depth = depth.max(d);
                ensure!(
                    seen.insert(i),
                    "tree {t} node {} is reached twice (a cycle or a shared child)",
                    a.nodes_nodeids[i]
                );
                let at = nodes.len();
                ensure!(at < FEATURE_MASK as usize, "too many nodes");
                if let Some((p, slot)) = parent {
                    nodes[p].children[slot] = at as u32;
                }
                let mode = modes[i];
                if mode == LEAF {
                    let ws = leaf_weights.remove(&i).unwrap_or_default();
                    let node = if single {
                        // Both children point back at the leaf: a walk of the tree's
                        // full depth ends on it, whatever the row's values.
                        Node {
                            value: ws.iter().map(|w| w.1).sum(),
                            meta: 0,
                            children: [at as u32, at as u32],
                        }
                    } else {
                        let from = weights.len() as u32;
                        weights.extend(ws);
                        Node {
                            value: 0.0,
                            meta: 0,
                            children: [from, weights.len() as u32],
                        }
                    };
                    nodes.push(node);
                    continue;
                }
                mode_seen = match mode_seen {
                    None => Some(mode),
                    Some(m) if m == mode => Some(m),
                    Some(_) => Some(MIXED),
                };
                let feature = a.nodes_featureids[i] as u32;
                n_features = n_features.max(feature as usize + 1);
                let nan_true = tracks.get(i).is_some_and(|&v| v != 0);
                nodes.push(Node {
                    value: a.nodes_values[i],
                    meta: (mode << MODE_SHIFT) | if nan_true { NAN_TRUE } else { 0 } | feature,
                    children: [0, 0],
                });
                // Visit the true child first, then the false one (order is layout only).
                let [false_child, true_child] = children_of[i];
                stack.push((false_child, Some((at, 0)), d + 1));
                stack.push((true_child, Some((at, 1)), d + 1));
            }
            ensure!(
                seen.len() == members.len(),
                "tree {t}: {} of its {} nodes cannot be reached from its root",
                members.len() - seen.len(),
                members.len()
            );
            depths.push(depth);
        }
        Ok(Forest {
            nodes,
            roots,
            fixed_depth: single && depths.iter().all(|&d| d <= FIXED_WALK_MAX_DEPTH),
            depths,
            weights,
            single,
            mode: mode_seen.unwrap_or(LEQ),
            n_targets,
            n_features,
            aggregate,
            base_values,
        })
    }

    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Scores `rows` rows of `width` features (row-major) into `[rows, n_targets]`.
    pub fn eval(&self, x: &[f32], rows: usize, width: usize) -> TractResult<Vec<f32>> {
        ensure!(
            width >= self.n_features,
            "input has {width} features per row, the trees use feature {}",
            self.n_features.saturating_sub(1)
        );
        ensure!(
            x.len() == rows * width,
            "input holds {} values, not {rows} x {width}",
            x.len()
        );
        if width == 0 {
            // Only trees without a branch accept rows of no features (checked above):
            // every row gets the same leaves. (Rows are walked as chunks of `width`.)
            return Ok(self.eval(&[0.0], 1, 1)?.repeat(rows));
        }
        let mut out = vec![0f32; rows * self.n_targets];
        if rows == 0 {
            return Ok(out);
        }
        if self.single {
            match self.mode {
                LEQ => self.sum_single::<LEQ>(x, width, &mut out),
                LT => self.sum_single::<LT>(x, width, &mut out),
                GTE => self.sum_single::<GTE>(x, width, &mut out),
                GT => self.sum_single::<GT>(x, width, &mut out),
                _ => self.sum_single::<MIXED>(x, width, &mut out),
            }
            self.finish(&mut out, None);
        } else {
            let voted = self.aggregate_general(x, width, &mut out);
            self.finish(&mut out, Some(&voted));
        }
        Ok(out)
    }

    /// Index of the leaf `row` reaches in the tree rooted at `root`.
    #[inline(always)]
    fn leaf<const M: u32>(&self, root: u32, row: &[f32]) -> usize {
        let mut i = root as usize;
        loop {
            let node = &self.nodes[i];
            if node.meta == 0 {
                return i;
            }
            i = Self::step::<M>(node, row);
        }
    }

    /// One step from branch `node` (a leaf of a single-target forest steps to itself).
    #[inline(always)]
    fn step<const M: u32>(node: &Node, row: &[f32]) -> usize {
        let x = row[(node.meta & FEATURE_MASK) as usize];
        let mode = if M == MIXED {
            node.meta >> MODE_SHIFT
        } else {
            M
        };
        let v = node.value;
        let go_true = match mode {
            LEQ => x <= v,
            LT => x < v,
            GTE => x >= v,
            GT => x > v,
            EQ => x == v,
            _ => x != v,
        } || (node.meta & NAN_TRUE != 0 && x.is_nan());
        node.children[go_true as usize] as usize
    }

    fn sum_single<const M: u32>(&self, x: &[f32], width: usize, out: &mut [f32]) {
        const LANES: usize = 4;
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            // Rows the lockstep walk leaves over (or all of them, for deep trees)
            // walk to their leaf one at a time: the same leaf either way.
            let mut done = 0;
            if self.fixed_depth {
                // LANES rows walk the tree together: independent load chains the
                // core overlaps.
                let blocks = x.chunks_exact(width * LANES);
                for (block, acc) in blocks.zip(out.chunks_exact_mut(LANES)) {
                    let mut i = [root as usize; LANES];
                    for _ in 0..depth {
                        for (l, i) in i.iter_mut().enumerate() {
                            *i = Self::step::<M>(
                                &self.nodes[*i],
                                &block[l * width..(l + 1) * width],
                            );
                        }
                    }
                    for (a, i) in acc.iter_mut().zip(i) {
                        *a += self.nodes[i].value;
                    }
                    done += LANES;
                }
            }
            let rest = x[done * width..].chunks_exact(width);
            for (row, acc) in rest.zip(&mut out[done..]) {
                *acc += self.nodes[self.leaf::<M>(root, row)].value;
            }
        }
    }

    /// Returns which (row, target) got at least one weight.
    fn aggregate_general(&self, x: &[f32], width: usize, out: &mut [f32]) -> Vec<bool> {
        let k = self.n_targets;
        let mut has = vec![false; out.len()];
        for &root in &self.roots {
            for (r, row) in x.chunks_exact(width).enumerate() {
                let leaf = self.nodes[self.leaf::<MIXED>(root, row)];
                let [from, to] = leaf.children;
                for &(target, w) in &self.weights[from as usize..to as usize] {
                    let j = r * k + target as usize;
                    let acc = &mut out[j];
                    *acc = match self.aggregate {
                        Aggregate::Sum | Aggregate::Average => *acc + w,
                        Aggregate::Min if has[j] => acc.min(w),
                        Aggregate::Max if has[j] => acc.max(w),
                        Aggregate::Min | Aggregate::Max => w,
                    };
                    has[j] = true;
                }
            }
        }
        has
    }

    /// Averaging and base values, as onnxruntime applies them.
    fn finish(&self, out: &mut [f32], voted: Option<&[bool]>) {
        let k = self.n_targets;
        let trees = self.roots.len() as f32;
        let min_max = matches!(self.aggregate, Aggregate::Min | Aggregate::Max);
        for (j, v) in out.iter_mut().enumerate() {
            if min_max && voted.is_some_and(|voted| !voted[j]) {
                *v = 0.0;
                continue;
            }
            if self.aggregate == Aggregate::Average {
                *v /= trees;
            }
            *v += self.base_values[j % k];
        }
    }
}

/// Reads the operator's attributes from an ONNX node.
pub fn attributes(node: &NodeProto) -> TractResult<Attributes> {
    for unsupported in [
        "nodes_values_as_tensor",
        "target_weights_as_tensor",
        "base_values_as_tensor",
        "nodes_hitrates",
        "nodes_hitrates_as_tensor",
    ] {
        ensure!(
            node.attribute.iter().all(|a| a.name != unsupported),
            "attribute {unsupported} is not supported (export float thresholds and weights)"
        );
    }
    let ints = |name: &str| -> TractResult<Vec<i64>> {
        Ok(node
            .get_attr_opt_slice::<i64>(name)?
            .unwrap_or(&[])
            .to_vec())
    };
    let floats = |name: &str| -> TractResult<Vec<f32>> {
        Ok(node
            .get_attr_opt_slice::<f32>(name)?
            .unwrap_or(&[])
            .to_vec())
    };
    Ok(Attributes {
        nodes_treeids: ints("nodes_treeids")?,
        nodes_nodeids: ints("nodes_nodeids")?,
        nodes_featureids: ints("nodes_featureids")?,
        nodes_modes: node
            .get_attr_opt_vec::<String>("nodes_modes")?
            .unwrap_or_default(),
        nodes_values: floats("nodes_values")?,
        nodes_truenodeids: ints("nodes_truenodeids")?,
        nodes_falsenodeids: ints("nodes_falsenodeids")?,
        nodes_missing_value_tracks_true: ints("nodes_missing_value_tracks_true")?,
        target_treeids: ints("target_treeids")?,
        target_nodeids: ints("target_nodeids")?,
        target_ids: ints("target_ids")?,
        target_weights: floats("target_weights")?,
        n_targets: node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1),
        aggregate_function: node
            .get_attr_opt::<String>("aggregate_function")?
            .unwrap_or_default(),
        base_values: floats("base_values")?,
        post_transform: node
            .get_attr_opt::<String>("post_transform")?
            .unwrap_or_default(),
    })
}

/// `tract_onnx::onnx()` with [`TreeEnsembleRegressor`] registered.
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    register(&mut onnx.op_register);
    onnx
}

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleRegressor", parse);
}

fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let forest = attributes(node)
        .and_then(|a| Forest::build(&a))
        .with_context(|| format!("TreeEnsembleRegressor node {:?}", node.name))?;
    Ok((
        expand(TreeEnsembleRegressor {
            forest: Arc::new(forest),
        }),
        vec![],
    ))
}

/// The inference-time (hir) form: checks shapes, casts the input to f32.
#[derive(Debug, Clone)]
pub struct TreeEnsembleRegressor {
    forest: Arc<Forest>,
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.forest.n_targets().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_onnx::tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        model.wire_node(
            prefix,
            ForestOp {
                forest: self.forest.clone(),
            },
            &[x],
        )
    }
}

/// The typed, runnable op.
#[derive(Debug, Clone)]
pub struct ForestOp {
    forest: Arc<Forest>,
}

impl PartialEq for ForestOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest) || self.forest == other.forest
    }
}

impl Eq for ForestOp {}

impl Op for ForestOp {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} nodes, {} targets",
            self.forest.n_trees(),
            self.forest.nodes.len(),
            self.forest.n_targets
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for ForestOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let view = input.to_plain_array_view::<f32>()?;
        ensure!(
            view.ndim() == 2,
            "input has shape {:?}, not [N, F]",
            view.shape()
        );
        let (rows, width) = (view.shape()[0], view.shape()[1]);
        let scores = match view.as_slice() {
            Some(x) => self.forest.eval(x, rows, width)?,
            None => {
                let x: Vec<f32> = view.iter().copied().collect();
                self.forest.eval(&x, rows, width)?
            }
        };
        let out = tract_onnx::tract_hir::tract_ndarray::Array2::from_shape_vec(
            (rows, self.forest.n_targets),
            scores,
        )?;
        Ok(tvec!(out.into_dyn().into_tvalue()))
    }
}

impl TypedOp for ForestOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = &inputs[0].shape[0];
        Ok(tvec!(f32::fact(&[
            n.clone(),
            self.forest.n_targets.to_dim()
        ])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::{
        AttributeProto, GraphProto, ModelProto, OperatorSetIdProto, TypeProto, ValueInfoProto,
        type_proto,
    };

    /// A node of a test tree: (tree, id, mode, feature, value, true id, false id, NaN tracks true).
    type N = (i64, i64, &'static str, i64, f32, i64, i64, bool);

    fn attrs(nodes: &[N], targets: &[(i64, i64, i64, f32)], n_targets: i64) -> Attributes {
        let mut a = Attributes {
            n_targets,
            ..Default::default()
        };
        for &(t, id, mode, f, v, tr, fa, nan) in nodes {
            a.nodes_treeids.push(t);
            a.nodes_nodeids.push(id);
            a.nodes_modes.push(mode.into());
            a.nodes_featureids.push(f);
            a.nodes_values.push(v);
            a.nodes_truenodeids.push(tr);
            a.nodes_falsenodeids.push(fa);
            a.nodes_missing_value_tracks_true.push(nan as i64);
        }
        for &(t, id, target, w) in targets {
            a.target_treeids.push(t);
            a.target_nodeids.push(id);
            a.target_ids.push(target);
            a.target_weights.push(w);
        }
        a
    }

    /// Tree 0 (node ids out of order, not from 0): x0 <= 0.5 ? 1 : (x1 < 2 ? 2 : 3).
    /// Tree 1: x1 > 1 (NaN counts as true) ? 10 : 20.
    fn two_trees() -> Attributes {
        attrs(
            &[
                (0, 9, "BRANCH_LT", 1, 2.0, 4, 6, false),
                (0, 4, "LEAF", 0, 0.0, 0, 0, false),
                (0, 5, "BRANCH_LEQ", 0, 0.5, 7, 9, false),
                (0, 7, "LEAF", 0, 0.0, 0, 0, false),
                (0, 6, "LEAF", 0, 0.0, 0, 0, false),
                (1, 0, "BRANCH_GT", 1, 1.0, 1, 2, true),
                (1, 1, "LEAF", 0, 0.0, 0, 0, false),
                (1, 2, "LEAF", 0, 0.0, 0, 0, false),
            ],
            &[
                (0, 7, 0, 1.0),
                (0, 4, 0, 2.0),
                (0, 6, 0, 3.0),
                (1, 1, 0, 10.0),
                (1, 2, 0, 20.0),
            ],
            1,
        )
    }

    const ROWS: [[f32; 2]; 4] = [[0.0, 0.0], [1.0, 1.5], [1.0, f32::NAN], [f32::NAN, 3.0]];

    fn run(a: &Attributes, rows: &[[f32; 2]]) -> Vec<f32> {
        let x: Vec<f32> = rows.iter().flatten().copied().collect();
        Forest::build(a).unwrap().eval(&x, rows.len(), 2).unwrap()
    }

    #[test]
    fn walks_every_mode_with_onnxruntime_nan_rules_and_aggregates() {
        // Row by row: tree 0 gives 1, 2, 3 (NaN < 2 is false, untracked), 3
        // (NaN <= 0.5 false, then 3 < 2 false); tree 1 gives 20, 10, 10 (NaN tracked), 10.
        let mut a = two_trees();
        assert_eq!(run(&a, &ROWS), [21.0, 12.0, 13.0, 13.0]);
        a.aggregate_function = "AVERAGE".into();
        a.base_values = vec![0.5];
        assert_eq!(run(&a, &ROWS), [11.0, 6.5, 7.0, 7.0]);
        a.aggregate_function = "MIN".into();
        assert_eq!(run(&a, &ROWS), [1.5, 2.5, 3.5, 3.5]);
        a.aggregate_function = "MAX".into();
        assert_eq!(run(&a, &ROWS), [20.5, 10.5, 10.5, 10.5]);
    }

    #[test]
    fn several_targets_and_weights_per_leaf() {
        let mut a = two_trees();
        a.n_targets = 2;
        // Tree 0's first leaf also votes for target 1, twice; tree 1's leaves vote for target 1.
        a.target_ids = vec![0, 0, 0, 1, 1];
        a.target_treeids.extend([0, 0]);
        a.target_nodeids.extend([7, 7]);
        a.target_ids.extend([1, 1]);
        a.target_weights.extend([0.25, 0.5]);
        assert_eq!(
            run(&a, &ROWS),
            [1.0, 20.75, 2.0, 10.0, 3.0, 10.0, 3.0, 10.0]
        );
        // MAX with base values: target 1 only gets weights from tree 0's first
        // leaf (max 0.5, plus base 1); rows that miss it get 0 for target 1, base
        // value included, as onnxruntime does.
        a.aggregate_function = "MAX".into();
        a.base_values = vec![100.0, 1.0];
        a.target_ids = vec![0, 0, 0, 0, 0, 1, 1];
        assert_eq!(
            run(&a, &ROWS),
            [120.0, 1.5, 110.0, 0.0, 110.0, 0.0, 110.0, 0.0]
        );
    }

    /// Random trees, evaluated by the fast single-target path and by a direct reading
    /// of the attributes: the two must agree on every row. Trees up to depth 9 take
    /// the fixed-depth walk (4 rows at a time, 303 rows leave a remainder of 3); a
    /// spine of depth 20 in tree 0 makes the forest take the walk-to-the-leaf path.
    #[test]
    fn fast_path_agrees_with_a_plain_reading_of_the_attributes() {
        for spine in [false, true] {
            random_forest_agrees(spine);
        }
    }

    fn random_forest_agrees(spine: bool) {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (width, trees) = (7usize, 25i64);
        let mut nodes: Vec<N> = Vec::new();
        let mut targets = Vec::new();
        for t in 0..trees {
            // Grow node by node: every open slot becomes a leaf or a branch.
            let mut next = 1i64;
            let mut open = vec![(0i64, 0u32, spine && t == 0)];
            while let Some((id, depth, on_spine)) = open.pop() {
                let spine_goes_on = on_spine && depth < 20;
                if !spine_goes_on && (depth >= 9 || (depth > 1 && rnd() % 4 == 0)) {
                    nodes.push((t, id, "LEAF", 0, 0.0, 0, 0, false));
                    targets.push((t, id, 0, (rnd() % 1000) as f32 / 128.0));
                    continue;
                }
                let (l, r) = (next, next + 1);
                next += 2;
                let thr = (rnd() % 200) as f32 / 100.0 - 1.0;
                nodes.push((
                    t,
                    id,
                    "BRANCH_LEQ",
                    (rnd() % width as u64) as i64,
                    thr,
                    l,
                    r,
                    true,
                ));
                open.push((l, depth + 1, spine_goes_on));
                open.push((r, depth + 1, false));
            }
        }
        let a = attrs(&nodes, &targets, 1);
        let forest = Forest::build(&a).unwrap();
        assert!(forest.single && forest.mode == LEQ);
        assert_eq!(forest.fixed_depth, !spine);
        let rows = 303;
        let x: Vec<f32> = (0..rows * width)
            .map(|i| match rnd() % 50 {
                0 => f32::NAN,
                // exact thresholds exercise the <= side
                1..=10 => (rnd() % 200) as f32 / 100.0 - 1.0,
                _ => (rnd() % 10_000) as f32 / 4000.0 - 1.25 + (i % 3) as f32 * 1e-3,
            })
            .collect();
        let got = forest.eval(&x, rows, width).unwrap();
        let find = |t: i64, id: i64| nodes.iter().find(|n| n.0 == t && n.1 == id).unwrap();
        for (r, row) in x.chunks(width).enumerate() {
            let mut want = 0f32;
            for t in 0..trees {
                let mut n = find(t, 0);
                while n.2 != "LEAF" {
                    let v = row[n.3 as usize];
                    let go = v <= n.4 || (n.7 && v.is_nan());
                    n = find(t, if go { n.5 } else { n.6 });
                }
                want += targets.iter().find(|w| w.0 == t && w.1 == n.1).unwrap().3;
            }
            assert!(
                (got[r] - want).abs() <= 1e-4,
                "row {r}: {} vs {want}",
                got[r]
            );
        }
    }

    /// Turns tree 0's leaf 4 into a branch to `t` and `f`.
    fn leaf_to_branch(a: &mut Attributes, t: i64, f: i64) {
        a.nodes_modes[1] = "BRANCH_LEQ".into();
        a.nodes_truenodeids[1] = t;
        a.nodes_falsenodeids[1] = f;
        a.target_nodeids.remove(1);
        a.target_treeids.remove(1);
        a.target_ids.remove(1);
        a.target_weights.remove(1);
    }

    type Breaker = Box<dyn Fn(&mut Attributes)>;

    fn build_err(a: &Attributes) -> String {
        format!("{:#}", Forest::build(a).unwrap_err())
    }

    #[test]
    fn malformed_ensembles_are_refused_naming_tree_and_node() {
        let cases: Vec<(Breaker, &str)> = vec![
            (
                Box::new(|a| a.nodes_truenodeids[0] = 42),
                "tree 0 node 9: true child 42 does not exist",
            ),
            (
                Box::new(|a| a.nodes_truenodeids[0] = 6),
                "tree 0 has 2 nodes that are no node's child",
            ),
            // Leaf 4 becomes a branch back to the root 5: every node has a parent.
            (
                Box::new(|a| leaf_to_branch(a, 5, 5)),
                "tree 0 has 0 nodes that are no node's child",
            ),
            // Leaf 4 becomes a branch to 6 and 7, which have parents already.
            (
                Box::new(|a| leaf_to_branch(a, 6, 7)),
                "tree 0 node 7 is reached twice",
            ),
            (
                Box::new(|a| a.nodes_modes[3] = "BRANCH_FOO".into()),
                "tree 0 node 7: unknown node mode \"BRANCH_FOO\"",
            ),
            (
                Box::new(|a| a.target_nodeids[0] = 5),
                "names tree 0 node 5, which is a branch",
            ),
            (
                Box::new(|a| a.target_ids[1] = 1),
                "target id 1 not below n_targets 1",
            ),
            (
                Box::new(|a| a.target_nodeids[1] = 99),
                "names tree 0 node 99, which does not exist",
            ),
            (
                Box::new(|a| {
                    a.nodes_values.pop();
                }),
                "nodes_values has 7 entries, nodes_nodeids has 8",
            ),
            (
                Box::new(|a| a.nodes_nodeids[1] = 9),
                "tree 0 has node 9 twice",
            ),
            (
                Box::new(|a| a.nodes_featureids[0] = -1),
                "feature id -1 out of range",
            ),
            (
                Box::new(|a| a.aggregate_function = "MEDIAN".into()),
                "aggregate_function \"MEDIAN\"",
            ),
            (
                Box::new(|a| a.post_transform = "LOGISTIC".into()),
                "post_transform \"LOGISTIC\" is not supported",
            ),
            (
                Box::new(|a| a.base_values = vec![1.0, 2.0]),
                "base_values has 2 entries, n_targets is 1",
            ),
            (Box::new(|a| a.n_targets = 0), "n_targets is 0"),
        ];
        for (break_it, want) in cases {
            let mut a = two_trees();
            break_it(&mut a);
            let got = build_err(&a);
            assert!(got.contains(want), "{got:?} does not say {want:?}");
        }
        // A cycle off to the side of a good tree: every node has a parent except the
        // root, yet two nodes cannot be reached from it.
        let mut a = two_trees();
        for (id, other) in [(20, 21), (21, 20)] {
            a.nodes_treeids.push(1);
            a.nodes_nodeids.push(id);
            a.nodes_modes.push("BRANCH_LEQ".into());
            a.nodes_featureids.push(0);
            a.nodes_values.push(0.0);
            a.nodes_truenodeids.push(other);
            a.nodes_falsenodeids.push(other);
            a.nodes_missing_value_tracks_true.push(0);
        }
        assert!(build_err(&a).contains("tree 1: 2 of its 5 nodes cannot be reached from its root"));

        let forest = Forest::build(&two_trees()).unwrap();
        let err = forest.eval(&[0.0; 3], 3, 1).unwrap_err().to_string();
        assert_eq!(err, "input has 1 features per row, the trees use feature 1");
        let err = forest.eval(&[], 3, 0).unwrap_err().to_string();
        assert_eq!(err, "input has 0 features per row, the trees use feature 1");
        let err = forest.eval(&[0.0; 5], 3, 2).unwrap_err().to_string();
        assert_eq!(err, "input holds 5 values, not 3 x 2");
    }

    /// Trees that are a single leaf each need no features: rows of width 0 get the
    /// leaves' sum (and do not reach a zero-sized chunking of the input).
    #[test]
    fn leaf_only_trees_score_rows_of_no_features() {
        let a = attrs(
            &[
                (0, 0, "LEAF", 0, 0.0, 0, 0, false),
                (1, 0, "LEAF", 0, 0.0, 0, 0, false),
            ],
            &[(0, 0, 0, 1.5), (1, 0, 0, 2.0)],
            1,
        );
        let forest = Forest::build(&a).unwrap();
        assert_eq!(forest.eval(&[], 3, 0).unwrap(), [3.5, 3.5, 3.5]);
        assert_eq!(forest.eval(&[], 0, 0).unwrap(), Vec::<f32>::new());
        assert_eq!(forest.eval(&[7.0, 8.0], 2, 1).unwrap(), [3.5, 3.5]);
    }

    fn attr(name: &str, ty: AttributeType, f: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
        let mut a = AttributeProto {
            name: name.into(),
            r#type: ty as i32,
            ..Default::default()
        };
        f(&mut a);
        a
    }

    fn onnx_model(a: &Attributes) -> ModelProto {
        let ints = |name: &str, v: &[i64]| attr(name, AttributeType::Ints, |x| x.ints = v.to_vec());
        let floats =
            |name: &str, v: &[f32]| attr(name, AttributeType::Floats, |x| x.floats = v.to_vec());
        let node = NodeProto {
            op_type: "TreeEnsembleRegressor".into(),
            domain: "ai.onnx.ml".into(),
            name: "forest".into(),
            input: vec!["features".into()],
            output: vec!["y".into()],
            attribute: vec![
                ints("nodes_treeids", &a.nodes_treeids),
                ints("nodes_nodeids", &a.nodes_nodeids),
                ints("nodes_featureids", &a.nodes_featureids),
                attr("nodes_modes", AttributeType::Strings, |x| {
                    x.strings = a
                        .nodes_modes
                        .iter()
                        .map(|s| s.as_bytes().to_vec())
                        .collect()
                }),
                floats("nodes_values", &a.nodes_values),
                ints("nodes_truenodeids", &a.nodes_truenodeids),
                ints("nodes_falsenodeids", &a.nodes_falsenodeids),
                ints(
                    "nodes_missing_value_tracks_true",
                    &a.nodes_missing_value_tracks_true,
                ),
                ints("target_treeids", &a.target_treeids),
                ints("target_nodeids", &a.target_nodeids),
                ints("target_ids", &a.target_ids),
                floats("target_weights", &a.target_weights),
                attr("n_targets", AttributeType::Int, |x| x.i = a.n_targets),
                attr("aggregate_function", AttributeType::String, |x| {
                    x.s = b"AVERAGE".to_vec()
                }),
            ],
            ..Default::default()
        };
        let float = TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1, // FLOAT
                shape: None,
            })),
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node],
            input: vec![ValueInfoProto {
                name: "features".into(),
                r#type: Some(float),
                ..Default::default()
            }],
            output: vec![ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        ModelProto {
            ir_version: 7,
            opset_import: vec![
                OperatorSetIdProto {
                    domain: String::new(),
                    version: 13,
                },
                OperatorSetIdProto {
                    domain: "ai.onnx.ml".into(),
                    version: 3,
                },
            ],
            graph: Some(graph),
            ..Default::default()
        }
    }

    #[test]
    fn tract_loads_and_runs_the_node_and_reports_a_broken_one() {
        let model = onnx()
            .model_for_proto_model(&onnx_model(&two_trees()))
            .unwrap()
            .with_input_fact(0, f32::fact([4, 2]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let x = tract_onnx::tract_hir::tract_ndarray::arr2(&ROWS).into_tensor();
        let y = model.run(tvec!(x.into())).unwrap();
        let y = y[0].to_plain_array_view::<f32>().unwrap();
        assert_eq!(y.shape(), &[4, 1]);
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), [10.5, 6.0, 6.5, 6.5]);

        let mut broken = two_trees();
        broken.nodes_truenodeids[0] = 6;
        let err = onnx()
            .model_for_proto_model(&onnx_model(&broken))
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("TreeEnsembleRegressor node \"forest\"")
                && err.contains("tree 0 has 2 nodes that are no node's child"),
            "{err}"
        );
    }
}
