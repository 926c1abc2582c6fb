//! Forward graph construction: one node per expression operation of the checked
//! [`Spec`], leaves for inputs, labels, parameters and constants.
//!
//! The spec is already checked (names resolved, shapes concrete and consistent), so
//! building cannot fail; `verify` double-checks the result.

use super::{Graph, Node, NodeId, Op, Phase};
use crate::spec::{InputId, LabelId, ParamId, ScalarBin, Spec, TExpr, TExprKind};

/// The forward graph and where the spec's entities ended up in it.
#[derive(Clone, Debug)]
pub struct Forward {
    pub graph: Graph,
    /// Leaf of each parameter, indexed by `ParamId`.
    pub params: Vec<NodeId>,
    /// Leaf of each input, indexed by `InputId`.
    pub inputs: Vec<NodeId>,
    /// Leaf of each label, indexed by `LabelId`.
    pub labels: Vec<NodeId>,
    /// Node defining each `let`, indexed by `LetId`.
    pub lets: Vec<NodeId>,
    /// The per-sample loss (a scalar).
    pub loss: NodeId,
}

pub fn build_forward(spec: &Spec) -> Forward {
    let mut graph = Graph::new();
    graph.funcs = spec.funcs.clone();

    let inputs = (0..spec.inputs.len())
        .map(|i| {
            let d = &spec.inputs[i];
            let node = Node::new(Op::Input(InputId(i as u32)), d.shape.clone(), Phase::Sample, d.span);
            graph.add(node.named(&d.name), &[])
        })
        .collect();
    let labels = (0..spec.labels.len())
        .map(|i| {
            let d = &spec.labels[i];
            let node = Node::new(Op::Label(LabelId(i as u32)), vec![d.classes], Phase::Sample, d.span);
            graph.add(node.named(&d.name), &[])
        })
        .collect();
    let params = (0..spec.params.len())
        .map(|i| {
            let d = &spec.params[i];
            let node = Node::new(Op::Param(ParamId(i as u32)), d.shape.clone(), Phase::Global, d.span);
            graph.add(node.named(&d.name), &[])
        })
        .collect();

    let mut b = Builder { graph, inputs, labels, params, lets: Vec::with_capacity(spec.lets.len()) };
    for decl in &spec.lets {
        let id = b.expr(&decl.value);
        // A let that merely aliases an existing named node (`h = x`) keeps that name.
        let node = b.graph.node_mut(id);
        if node.name.is_none() {
            node.name = Some(decl.name.clone());
        }
        b.lets.push(id);
    }
    let loss = b.lets[spec.loss.index()];
    Forward { graph: b.graph, params: b.params, inputs: b.inputs, labels: b.labels, lets: b.lets, loss }
}

struct Builder {
    graph: Graph,
    inputs: Vec<NodeId>,
    labels: Vec<NodeId>,
    params: Vec<NodeId>,
    lets: Vec<NodeId>,
}

impl Builder {
    /// Add a computed node; its phase follows from its operands.
    fn op(&mut self, op: Op, e: &TExpr, operands: &[NodeId]) -> NodeId {
        let phase = Phase::join(operands.iter().map(|&o| self.graph.node(o).phase));
        self.graph.add(Node::new(op, e.shape.clone(), phase, e.span), operands)
    }

    fn constant(&mut self, c: f64, e: &TExpr) -> NodeId {
        self.graph.add(Node::new(Op::Const(c), vec![], Phase::Global, e.span), &[])
    }

    fn expr(&mut self, e: &TExpr) -> NodeId {
        match &e.kind {
            TExprKind::Input(i) => self.inputs[i.index()],
            TExprKind::Label(l) => self.labels[l.index()],
            TExprKind::Param(p) => self.params[p.index()],
            TExprKind::Let(l) => self.lets[l.index()],
            TExprKind::Const(c) => self.constant(*c, e),
            TExprKind::Neg(a) => match a.kind {
                TExprKind::Const(c) => self.constant(-c, e),
                _ => {
                    let a = self.expr(a);
                    self.op(Op::Neg, e, &[a])
                }
            },
            TExprKind::Elementwise(bin, a, b) => self.elementwise(*bin, a, b, e),
            TExprKind::MatMul(a, b) => {
                let (a, b) = (self.expr(a), self.expr(b));
                self.op(Op::MatMul, e, &[a, b])
            }
            TExprKind::Builtin(f, a) => {
                let a = self.expr(a);
                self.op(Op::Unary(*f), e, &[a])
            }
            TExprKind::Call(f, args) => {
                let args: Vec<NodeId> = args.iter().map(|a| self.expr(a)).collect();
                self.op(Op::Call(*f), e, &args)
            }
            TExprKind::Loss(kind, z, y) => {
                let (z, y) = (self.expr(z), self.expr(y));
                self.op(Op::Loss(*kind), e, &[z, y])
            }
            TExprKind::Sum(a) => {
                let a = self.expr(a);
                self.op(Op::Sum, e, &[a])
            }
        }
    }

    /// `a ∘ b`; a product with (or a quotient by) a literal constant becomes `Scale`,
    /// the form the fixed-point passes handle without a multiplier.
    fn elementwise(&mut self, bin: ScalarBin, a: &TExpr, b: &TExpr, e: &TExpr) -> NodeId {
        let konst = |t: &TExpr| match t.kind {
            TExprKind::Const(c) => Some(c),
            _ => None,
        };
        match (bin, konst(a), konst(b)) {
            (ScalarBin::Mul, Some(c), None) if b.shape == e.shape => {
                let b = self.expr(b);
                return self.op(Op::Scale(c), e, &[b]);
            }
            (ScalarBin::Mul, None, Some(c)) if a.shape == e.shape => {
                let a = self.expr(a);
                return self.op(Op::Scale(c), e, &[a]);
            }
            (ScalarBin::Div, None, Some(c)) if a.shape == e.shape && c != 0.0 => {
                let a = self.expr(a);
                return self.op(Op::Scale(1.0 / c), e, &[a]);
            }
            _ => {}
        }
        let op = match bin {
            ScalarBin::Add => Op::Add,
            ScalarBin::Sub => Op::Sub,
            ScalarBin::Mul => Op::Mul,
            ScalarBin::Div => Op::Div,
        };
        let (a, b) = (self.expr(a), self.expr(b));
        self.op(op, e, &[a, b])
    }
}
