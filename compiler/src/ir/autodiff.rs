//! Reverse-mode differentiation: forward graph → training-step graph.
//!
//! The result is ONE graph holding the forward pass, the loss gradient, the backward
//! pass and the optimizer update. The lowering pattern-matches its canonical forms,
//! so they are part of the contract (see the project brief and `TrainGraph`):
//!
//! * `d Loss(k)(z, y) / dz` is `LossGrad(k)(z, y)` (times the upstream gradient when
//!   the loss is not the root);
//! * `MatMul(W, v)`: `dW = Outer(g, v)`, `dv = MatMul(Transpose(W), g)`;
//! * `Unary(f)(z)`: `Mul(g, UnaryDeriv(f)(z))`; `Call(f)(a..)`: `Mul(g, CallDeriv(f, i)(a..))`;
//! * per param `P` with per-sample gradient `gP`, `BatchSum(gP)` and then
//!   - sgd: `Update(P)(Sub(P, Scale(lr/B)(BatchSum(gP))))`,
//!   - nesterov: `g = Scale(1/B)(BatchSum(gP))`, `b' = Add(Scale(μ)(S), g)`,
//!     `Update(S)(b')`, `Update(P)(Sub(P, Scale(lr)(Add(g, Scale(μ)(b')))))`.
//!
//! Only nodes needed by an update or by the loss survive.

use super::build::Forward;
use super::{Graph, Node, NodeId, Op, Phase, StateDecl, StateId, UpdateTarget};
use crate::diag::Diagnostic;
use crate::spec::{Optimizer, ParamId, Shape, Spec};
use blindtuner_grammar::ast::Span;
use std::collections::HashSet;

/// Diagnostic code: the loss does not apply a loss function.
pub const E_NO_LOSS_FN: &str = "E0601";

/// The training-step graph and where things are in it.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    pub graph: Graph,
    /// Leaves, indexed by `ParamId` / `InputId` / `LabelId` / `StateId` (always kept).
    pub params: Vec<NodeId>,
    pub inputs: Vec<NodeId>,
    pub labels: Vec<NodeId>,
    pub states: Vec<NodeId>,
    /// Node of each `let`, `None` when the training step does not need it.
    pub lets: Vec<Option<NodeId>>,
    /// The per-sample training loss (scalar, `Phase::Sample`).
    pub loss: NodeId,
    /// First operand of the (first) `Loss` op: what inference computes.
    pub logits: NodeId,
    /// Per-sample gradient of each trained param (params the loss does not depend
    /// on are absent and never updated).
    pub grads: Vec<(ParamId, NodeId)>,
    /// The `Update` sinks, params first (in `ParamId` order), then states.
    pub updates: Vec<NodeId>,
    /// The batch size `B` baked into the update's `1/B`.
    pub batch: usize,
}

impl TrainGraph {
    /// Redirect every id held by this struct from `old` to `new` (rewriting passes).
    pub fn remap(&mut self, old: NodeId, new: NodeId) {
        let fix = |x: &mut NodeId| {
            if *x == old {
                *x = new
            }
        };
        self.params.iter_mut().chain(&mut self.inputs).chain(&mut self.labels).chain(&mut self.states).for_each(fix);
        self.lets.iter_mut().flatten().for_each(fix);
        fix(&mut self.loss);
        fix(&mut self.logits);
        self.grads.iter_mut().for_each(|(_, g)| fix(g));
        self.updates.iter_mut().for_each(fix);
    }

    /// Forget ids of nodes that no longer exist (only `lets` may dangle).
    pub fn prune_lets(&mut self) {
        for l in &mut self.lets {
            if l.is_some_and(|n| !self.graph.contains(n)) {
                *l = None;
            }
        }
    }
}

pub fn training_step(fwd: &Forward, spec: &Spec) -> Result<TrainGraph, Vec<Diagnostic>> {
    let b = spec.train.batch.max(1) as f64;
    let mut ad = Diff { g: fwd.graph.clone(), batch: b, adj: vec![] };
    let order = ad.g.topo().map_err(|n| vec![ice(format!("forward graph has a cycle at n{}", n.0))])?;
    let size = order.iter().map(|n| n.index() + 1).max().unwrap_or(0);

    // Nodes whose gradient we need: the params and everything computed from them.
    let mut needs = vec![false; size];
    for &n in &order {
        let node = ad.g.node(n);
        needs[n.index()] = matches!(node.op, Op::Param(_)) || ad.g.operands(n).iter().any(|o| needs[o.index()]);
    }

    let logits = find_loss_op(&ad.g, fwd.loss).ok_or_else(|| {
        let span = spec.lets[spec.loss.index()].span;
        vec![Diagnostic::error(E_NO_LOSS_FN, "the loss does not apply a loss function")
            .at(span, "defined here")
            .hint("write e.g. `loss = softmax_cross_entropy(z, y)` (or sigmoid_cross_entropy, mse)")]
    })?;

    // Reverse sweep.
    ad.adj = vec![None; size];
    ad.adj[fwd.loss.index()] = Some(Adj::One);
    for &n in order.iter().rev() {
        let Some(g) = ad.adj[n.index()] else { continue };
        if let Adj::Node(gn) = g {
            ad.name_adjoint(n, gn);
        }
        if !needs[n.index()] {
            continue;
        }
        ad.backprop(n, g, &needs)?;
    }

    let mut grads = Vec::new();
    for (i, &p) in fwd.params.iter().enumerate() {
        match ad.adj[p.index()] {
            Some(Adj::Node(g)) => grads.push((ParamId(i as u32), g)),
            // `loss = W` is not a scalar-valued model the checker accepts; nothing to do.
            Some(Adj::One) | None => {}
        }
    }

    let mut states = Vec::new();
    let mut updates = Vec::new();
    let mut state_updates = Vec::new();
    for &(p, gp) in &grads {
        let pnode = fwd.params[p.index()];
        let (span, pname) = (ad.g.node(pnode).span, spec.params[p.index()].name.clone());
        let shape = ad.g.shape(pnode).clone();
        let sum = ad.batch_sum(gp, &format!("sum d{pname}"));
        let step = |ad: &mut Diff, op: Op, operands: &[NodeId]| ad.step(op, shape.clone(), span, operands);
        let delta = match spec.train.optimizer {
            Optimizer::Sgd { lr } => step(&mut ad, Op::Scale(lr / b), &[sum]),
            Optimizer::Nesterov { lr, momentum } => {
                let s = StateId(ad.g.states.len() as u32);
                ad.g.states.push(StateDecl { name: format!("{pname}.momentum"), shape: shape.clone(), param: p });
                let sn = ad.g.add(
                    Node::new(Op::State(s), shape.clone(), Phase::Global, span).named(format!("{pname}.momentum")),
                    &[],
                );
                states.push(sn);
                let mean = step(&mut ad, Op::Scale(1.0 / b), &[sum]);
                ad.g.node_mut(mean).name = Some(format!("mean d{pname}"));
                let decayed = step(&mut ad, Op::Scale(momentum), &[sn]);
                let buf = step(&mut ad, Op::Add, &[decayed, mean]);
                let upd = step(&mut ad, Op::Update(UpdateTarget::State(s)), &[buf]);
                ad.g.node_mut(upd).name = Some(format!("{pname}.momentum"));
                state_updates.push(upd);
                let look = step(&mut ad, Op::Scale(momentum), &[buf]);
                let dir = step(&mut ad, Op::Add, &[mean, look]);
                step(&mut ad, Op::Scale(lr), &[dir])
            }
        };
        let next = step(&mut ad, Op::Sub, &[pnode, delta]);
        let upd = step(&mut ad, Op::Update(UpdateTarget::Param(p)), &[next]);
        ad.g.node_mut(upd).name = Some(pname);
        updates.push(upd);
    }
    updates.extend(state_updates);

    let mut tg = TrainGraph {
        graph: ad.g,
        params: fwd.params.clone(),
        inputs: fwd.inputs.clone(),
        labels: fwd.labels.clone(),
        states,
        lets: fwd.lets.iter().map(|&l| Some(l)).collect(),
        loss: fwd.loss,
        logits,
        grads,
        updates,
        batch: spec.train.batch,
    };
    remove_dead(&mut tg);
    Ok(tg)
}

/// The logits: first operand of the first `Loss` op the loss depends on.
fn find_loss_op(g: &Graph, loss: NodeId) -> Option<NodeId> {
    let mut seen = HashSet::new();
    let mut stack = vec![loss];
    let mut found: Option<NodeId> = None;
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if matches!(g.node(n).op, Op::Loss(_)) && found.is_none_or(|f| n < f) {
            found = Some(n);
        }
        stack.extend(g.operands(n));
    }
    g.operands(found?).first().copied()
}

/// Remove every node that neither an update nor the loss needs (leaves stay: the
/// id tables index them).
pub fn remove_dead(tg: &mut TrainGraph) {
    let mut live = HashSet::new();
    let mut stack: Vec<NodeId> = tg.updates.clone();
    stack.push(tg.loss);
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(tg.graph.operands(n));
        }
    }
    for n in tg.graph.node_ids() {
        let leaf = matches!(tg.graph.node(n).op, Op::Input(_) | Op::Label(_) | Op::Param(_) | Op::State(_));
        if !live.contains(&n) && !leaf {
            tg.graph.remove(n);
        }
    }
    tg.prune_lets();
}

fn ice(message: String) -> Diagnostic {
    Diagnostic::error("ICE", format!("internal compiler error in autodiff: {message}"))
}

/// An adjoint: the gradient of the loss w.r.t. a node. The root's is the scalar 1,
/// kept symbolic so `d Loss / dz` is exactly `LossGrad`.
#[derive(Clone, Copy, Debug)]
enum Adj {
    One,
    Node(NodeId),
}

struct Diff {
    g: Graph,
    batch: f64,
    adj: Vec<Option<Adj>>,
}

impl Diff {
    /// A backward node: phase from its operands, span of the node it differentiates.
    fn add(&mut self, op: Op, shape: Shape, span: Span, operands: &[NodeId]) -> NodeId {
        let phase = Phase::join(operands.iter().map(|&o| self.g.node(o).phase));
        self.g.add(Node::new(op, shape, phase, span), operands)
    }

    fn step(&mut self, op: Op, shape: Shape, span: Span, operands: &[NodeId]) -> NodeId {
        self.g.add(Node::new(op, shape, Phase::Step, span), operands)
    }

    fn batch_sum(&mut self, g: NodeId, name: &str) -> NodeId {
        let node = self.g.node(g);
        let (shape, span) = (node.shape.clone(), node.span);
        // A gradient that does not depend on the sample (pathological, e.g. a loss
        // term in the params only) sums to B times itself.
        let id = if node.phase == Phase::Sample {
            self.step(Op::BatchSum, shape, span, &[g])
        } else {
            self.step(Op::Scale(self.batch), shape, span, &[g])
        };
        self.g.node_mut(id).name = Some(name.into());
        id
    }

    /// Materialize an adjoint as a node (the symbolic 1 becomes a constant).
    fn node(&mut self, g: Adj, span: Span) -> NodeId {
        match g {
            Adj::Node(n) => n,
            Adj::One => self.g.add(Node::new(Op::Const(1.0), vec![], Phase::Global, span), &[]),
        }
    }

    /// `g * x` (`x` itself when `g` is the symbolic 1).
    fn times(&mut self, g: Adj, x: NodeId, span: Span) -> NodeId {
        match g {
            Adj::One => x,
            Adj::Node(gn) => {
                let shape = broadcast_shape(self.g.shape(gn), self.g.shape(x));
                self.add(Op::Mul, shape, span, &[gn, x])
            }
        }
    }

    /// Sum a gradient down to the shape of a broadcast (scalar) operand.
    fn unbroadcast(&mut self, g: NodeId, to: &Shape, span: Span) -> NodeId {
        if to.is_empty() && !self.g.shape(g).is_empty() {
            self.add(Op::Sum, vec![], span, &[g])
        } else {
            g
        }
    }

    /// Add a contribution to the adjoint of `n`.
    fn contribute(&mut self, n: NodeId, c: NodeId) {
        let c = Adj::Node(c);
        self.adj[n.index()] = Some(match self.adj[n.index()] {
            None => c,
            Some(prev) => {
                let span = self.g.node(n).span;
                let prev = self.node(prev, span);
                let Adj::Node(c) = c else { unreachable!("contributions are nodes") };
                Adj::Node(self.add(Op::Add, self.g.shape(n).clone(), span, &[prev, c]))
            }
        });
    }

    /// Name the final adjoint of `n` after it: `dW` for params, `d(z)` for lets. An
    /// adjoint shared with a later node (`z = a + b`: `d(b)` is `d(z)`) keeps the
    /// first name.
    fn name_adjoint(&mut self, n: NodeId, gn: NodeId) {
        let node = self.g.node(n);
        let Some(name) = node.name.clone() else { return };
        let name = if matches!(node.op, Op::Param(_)) { format!("d{name}") } else { format!("d({name})") };
        let adj = self.g.node_mut(gn);
        if adj.name.is_none() {
            adj.name = Some(name);
        }
    }

    /// Push the adjoint `g` of `n` to those operands of `n` that need gradients.
    fn backprop(&mut self, n: NodeId, g: Adj, needs: &[bool]) -> Result<(), Vec<Diagnostic>> {
        let node = self.g.node(n).clone();
        let ops = self.g.operands(n);
        let need = |i: usize| needs[ops[i].index()];
        let span = node.span;
        let shape_of = |d: &Diff, i: usize| d.g.shape(ops[i]).clone();
        match node.op {
            Op::Input(_) | Op::Label(_) | Op::Param(_) | Op::State(_) | Op::Const(_) => {}
            Op::Add | Op::Sub => {
                for (i, &arg) in ops.iter().enumerate() {
                    if need(i) {
                        let gn = self.node(g, span);
                        let mut c = self.unbroadcast(gn, &shape_of(self, i), span);
                        if i == 1 && node.op == Op::Sub {
                            c = self.add(Op::Neg, shape_of(self, 1), span, &[c]);
                        }
                        self.contribute(arg, c);
                    }
                }
            }
            Op::Mul => {
                for i in 0..2 {
                    if need(i) {
                        let c = self.times(g, ops[1 - i], span);
                        let c = self.unbroadcast(c, &shape_of(self, i), span);
                        self.contribute(ops[i], c);
                    }
                }
            }
            Op::Div => {
                let gn = self.node(g, span);
                if need(0) {
                    let c = self.add(Op::Div, node.shape.clone(), span, &[gn, ops[1]]);
                    let c = self.unbroadcast(c, &shape_of(self, 0), span);
                    self.contribute(ops[0], c);
                }
                if need(1) {
                    // d(a/b)/db = -(a/b)/b
                    let t = self.add(Op::Mul, node.shape.clone(), span, &[gn, n]);
                    let t = self.add(Op::Div, node.shape.clone(), span, &[t, ops[1]]);
                    let t = self.unbroadcast(t, &shape_of(self, 1), span);
                    let c = self.add(Op::Neg, shape_of(self, 1), span, &[t]);
                    self.contribute(ops[1], c);
                }
            }
            Op::Neg | Op::Scale(_) | Op::Transpose => {
                let gn = self.node(g, span);
                let c = self.add(node.op.clone(), shape_of(self, 0), span, &[gn]);
                self.contribute(ops[0], c);
            }
            Op::MatMul => {
                let gn = self.node(g, span);
                let (a, b) = (ops[0], ops[1]);
                let (sa, sb) = (shape_of(self, 0), shape_of(self, 1));
                if need(0) {
                    let c = if sb.len() == 1 {
                        self.add(Op::Outer, sa.clone(), span, &[gn, b])
                    } else {
                        let bt = self.add(Op::Transpose, vec![sb[1], sb[0]], span, &[b]);
                        self.add(Op::MatMul, sa.clone(), span, &[gn, bt])
                    };
                    self.contribute(a, c);
                }
                if need(1) {
                    let at = self.add(Op::Transpose, vec![sa[1], sa[0]], span, &[a]);
                    let c = self.add(Op::MatMul, sb, span, &[at, gn]);
                    self.contribute(b, c);
                }
            }
            Op::Outer => {
                let gn = self.node(g, span);
                if need(0) {
                    let c = self.add(Op::MatMul, shape_of(self, 0), span, &[gn, ops[1]]);
                    self.contribute(ops[0], c);
                }
                if need(1) {
                    let s = node.shape.clone();
                    let gt = self.add(Op::Transpose, vec![s[1], s[0]], span, &[gn]);
                    let c = self.add(Op::MatMul, shape_of(self, 1), span, &[gt, ops[0]]);
                    self.contribute(ops[1], c);
                }
            }
            Op::Unary(f) => {
                let d = self.add(Op::UnaryDeriv(f), node.shape.clone(), span, &[ops[0]]);
                let c = self.times(g, d, span);
                self.contribute(ops[0], c);
            }
            Op::Call(f) => {
                for i in 0..ops.len() {
                    if need(i) {
                        let d = self.add(Op::CallDeriv(f, i), node.shape.clone(), span, &ops);
                        let c = self.times(g, d, span);
                        let c = self.unbroadcast(c, &shape_of(self, i), span);
                        self.contribute(ops[i], c);
                    }
                }
            }
            Op::Sum => {
                let gn = self.node(g, span);
                let s = shape_of(self, 0);
                let c = if s.is_empty() { gn } else { self.add(Op::Broadcast(s), shape_of(self, 0), span, &[gn]) };
                self.contribute(ops[0], c);
            }
            Op::Broadcast(_) => {
                let gn = self.node(g, span);
                let c = self.add(Op::Sum, vec![], span, &[gn]);
                self.contribute(ops[0], c);
            }
            Op::Loss(kind) => {
                if need(1) {
                    return Err(vec![Diagnostic::error(
                        E_NO_LOSS_FN,
                        "the label of a loss must not depend on trained parameters",
                    )
                    .at(span, "this loss")]);
                }
                let d = self.add(Op::LossGrad(kind), shape_of(self, 0), span, &[ops[0], ops[1]]);
                let c = self.times(g, d, span);
                self.contribute(ops[0], c);
            }
            Op::UnaryDeriv(_) | Op::CallDeriv(..) | Op::LossGrad(_) | Op::BatchSum | Op::Update(_) => {
                return Err(vec![ice(format!("`{}` in a forward graph", node.op.mnemonic()))]);
            }
        }
        Ok(())
    }
}

fn broadcast_shape(a: &Shape, b: &Shape) -> Shape {
    if a.is_empty() {
        b.clone()
    } else {
        a.clone()
    }
}
