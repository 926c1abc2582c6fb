//! The computation graph: real-valued tensor operations on a petgraph DAG.
//!
//! A [`Graph`] is built from a [`Spec`](crate::spec::Spec) (forward graph), then
//! extended by autodiff into the training-step graph (forward + loss gradient +
//! backward + optimizer update). Its semantics are real arithmetic (f64, see
//! `interp`); fixed-point formats and lowering are attached by later passes in
//! side tables keyed by [`NodeId`], never by mutating the meaning of a node.
//!
//! Invariants (checked by `verify` after every pass):
//! * acyclic; every node has exactly `op.arity()` operands, operand edges carry
//!   their position `0..arity` once each;
//! * `node.shape` equals the shape `Op::infer_shape` computes from the operands;
//! * per-sample nodes (`Phase::Sample`) never consume per-step values except
//!   parameters/state (read at the start of the step); `BatchSum` is the only
//!   edge from `Sample` to `Step`;
//! * every `Update` targets a distinct param or state.

use crate::spec::{Builtin, FuncDecl, FuncId, InputId, LabelId, LossKind, ParamId, Shape};
use blindtuner_grammar::ast::Span;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use serde::Serialize;

pub mod autodiff;
pub mod build;
pub mod dot;
pub mod interp;
pub mod print;
pub mod simplify;
pub mod verify;

/// Typed handle to a node of a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
    fn ix(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
}

/// Optimizer state tensor (e.g. Nesterov momentum buffer), one per param.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StateId(pub u32);

impl StateId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a value lives in the training loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Phase {
    /// Computed once per training sample (forward, backward).
    Sample,
    /// Computed once per step (after summing over the batch): the update.
    Step,
    /// Parameters, optimizer state and constants: read by both.
    Global,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Op {
    // ---- leaves
    Input(InputId),
    Label(LabelId),
    Param(ParamId),
    State(StateId),
    /// Scalar constant.
    Const(f64),
    // ---- tensor algebra
    /// `[m,n] @ [n] -> [m]` and `[m,n] @ [n,p] -> [m,p]`.
    MatMul,
    /// `[m,n] -> [n,m]`.
    Transpose,
    /// `[m], [n] -> [m,n]`: `a bᵀ`.
    Outer,
    /// Elementwise; a scalar operand broadcasts.
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    /// Multiply by a compile-time constant.
    Scale(f64),
    /// Elementwise builtin function.
    Unary(Builtin),
    /// Elementwise derivative of a builtin (`relu'`, `sigmoid'`, ...).
    UnaryDeriv(Builtin),
    /// Elementwise user function (arity = the function's parameter count).
    Call(FuncId),
    /// Partial derivative of a user function w.r.t. parameter `.1`.
    CallDeriv(FuncId, usize),
    /// Sum of all elements -> scalar.
    Sum,
    /// Scalar -> tensor of `shape` (used by autodiff for the gradient of `Sum`).
    Broadcast(Shape),
    // ---- losses: (logits, label) -> scalar, and their gradient w.r.t. the logits
    Loss(LossKind),
    /// `d loss / d logits`, same shape as the logits.
    LossGrad(LossKind),
    // ---- training loop
    /// Sum over the samples of a batch (the Sample -> Step boundary).
    BatchSum,
    /// Sink: the value of param/state for the next step.
    Update(UpdateTarget),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum UpdateTarget {
    Param(ParamId),
    State(StateId),
}

impl Op {
    /// Number of operands; `None` for user calls (their arity is the function's).
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Input(_) | Op::Label(_) | Op::Param(_) | Op::State(_) | Op::Const(_) => 0,
            Op::Transpose | Op::Neg | Op::Scale(_) | Op::Unary(_) | Op::UnaryDeriv(_) | Op::Sum => 1,
            Op::Broadcast(_) | Op::BatchSum | Op::Update(_) => 1,
            Op::MatMul | Op::Outer | Op::Add | Op::Sub | Op::Mul | Op::Div => 2,
            Op::Loss(_) | Op::LossGrad(_) => 2,
            Op::Call(_) | Op::CallDeriv(..) => return None,
        })
    }

    /// Short name for printing.
    pub fn mnemonic(&self) -> String {
        match self {
            Op::Input(i) => format!("input#{}", i.0),
            Op::Label(l) => format!("label#{}", l.0),
            Op::Param(p) => format!("param#{}", p.0),
            Op::State(s) => format!("state#{}", s.0),
            Op::Const(c) => format!("const {c}"),
            Op::MatMul => "matmul".into(),
            Op::Transpose => "transpose".into(),
            Op::Outer => "outer".into(),
            Op::Add => "add".into(),
            Op::Sub => "sub".into(),
            Op::Mul => "mul".into(),
            Op::Div => "div".into(),
            Op::Neg => "neg".into(),
            Op::Scale(c) => format!("scale {c}"),
            Op::Unary(b) => b.name().into(),
            Op::UnaryDeriv(b) => format!("{}'", b.name()),
            Op::Call(f) => format!("call fn#{}", f.0),
            Op::CallDeriv(f, i) => format!("call fn#{}'[{i}]", f.0),
            Op::Sum => "sum".into(),
            Op::Broadcast(s) => format!("broadcast {s:?}"),
            Op::Loss(l) => l.name().into(),
            Op::LossGrad(l) => format!("{}_grad", l.name()),
            Op::BatchSum => "batch_sum".into(),
            Op::Update(UpdateTarget::Param(p)) => format!("update param#{}", p.0),
            Op::Update(UpdateTarget::State(s)) => format!("update state#{}", s.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    pub op: Op,
    pub shape: Shape,
    pub phase: Phase,
    /// Source location this node came from (autodiff nodes inherit the span of the
    /// forward node they differentiate).
    pub span: Span,
    /// The `let` name, param name, or a derived name like `dW`.
    pub name: Option<String>,
}

impl Node {
    /// An unnamed node.
    pub fn new(op: Op, shape: Shape, phase: Phase, span: Span) -> Node {
        Node { op, shape, phase, span, name: None }
    }
    pub fn named(mut self, name: impl Into<String>) -> Node {
        self.name = Some(name.into());
        self
    }
}

impl Phase {
    /// Phase of a computed node from the phases of its operands: anything that
    /// touches a sample is per-sample, anything that touches a per-step value is
    /// per-step, the rest is global (hoistable). `Sample` with `Step` is invalid
    /// (`verify` reports it); it joins to `Sample`.
    pub fn join(phases: impl IntoIterator<Item = Phase>) -> Phase {
        let mut out = Phase::Global;
        for p in phases {
            match (out, p) {
                (Phase::Sample, _) | (_, Phase::Sample) => out = Phase::Sample,
                (_, Phase::Step) => out = Phase::Step,
                _ => {}
            }
        }
        out
    }
}

/// Operand position on an edge (`0` = first operand).
pub type Operand = u8;

#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, Operand>,
    /// Optimizer state tensors (shape, the param they belong to, a name).
    pub states: Vec<StateDecl>,
    /// The user functions `Call`/`CallDeriv` refer to, indexed by `FuncId` (a copy of
    /// `Spec::funcs`, so the graph can be evaluated and verified on its own).
    pub funcs: Vec<FuncDecl>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateDecl {
    pub name: String,
    pub shape: Shape,
    pub param: ParamId,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Add a node with its operands in order.
    pub fn add(&mut self, node: Node, operands: &[NodeId]) -> NodeId {
        let ix = self.g.add_node(node);
        for (pos, &o) in operands.iter().enumerate() {
            self.g.add_edge(o.ix(), ix, pos as Operand);
        }
        NodeId(ix.index() as u32)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.ix()]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.ix()]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.ix())
    }

    /// Operands of `id` in position order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<(Operand, NodeId)> = self
            .g
            .edges_directed(id.ix(), petgraph::Direction::Incoming)
            .map(|e| {
                use petgraph::visit::EdgeRef;
                (*e.weight(), NodeId(e.source().index() as u32))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes that use `id` (with repetition if used twice).
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .g
            .neighbors_directed(id.ix(), petgraph::Direction::Outgoing)
            .map(|n| NodeId(n.index() as u32))
            .collect();
        v.sort();
        v
    }

    /// Replace every use of `old` by `new` (for rewriting passes).
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        use petgraph::visit::EdgeRef;
        let uses: Vec<(NodeIndex, Operand, petgraph::stable_graph::EdgeIndex)> = self
            .g
            .edges_directed(old.ix(), petgraph::Direction::Outgoing)
            .map(|e| (e.target(), *e.weight(), e.id()))
            .collect();
        for (tgt, pos, eid) in uses {
            self.g.remove_edge(eid);
            self.g.add_edge(new.ix(), tgt, pos);
        }
    }

    /// Replace the operands of `id` (for in-place rewrites that keep the node id).
    pub fn set_operands(&mut self, id: NodeId, operands: &[NodeId]) {
        let old: Vec<_> = self
            .g
            .edges_directed(id.ix(), petgraph::Direction::Incoming)
            .map(|e| petgraph::visit::EdgeRef::id(&e))
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (pos, &o) in operands.iter().enumerate() {
            self.g.add_edge(o.ix(), id.ix(), pos as Operand);
        }
    }

    /// Shape of a node.
    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.node(id).shape
    }

    pub fn remove(&mut self, id: NodeId) {
        self.g.remove_node(id.ix());
    }

    /// All live node ids in ascending order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.g.node_indices().map(|i| NodeId(i.index() as u32)).collect()
    }

    /// Topological order (operands before users). The graph is acyclic by
    /// construction; `verify` reports a cycle if a pass ever made one.
    pub fn topo(&self) -> Result<Vec<NodeId>, NodeId> {
        petgraph::algo::toposort(&self.g, None)
            .map(|v| v.into_iter().map(|i| NodeId(i.index() as u32)).collect())
            .map_err(|c| NodeId(c.node_id().index() as u32))
    }

    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    pub fn petgraph(&self) -> &StableDiGraph<Node, Operand> {
        &self.g
    }
}
