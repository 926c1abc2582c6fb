//! Instruction selection, first half: recognise the shapes the lowering has
//! instructions for.
//!
//! The forward graph must be a chain of dense layers ending in a loss:
//! `z₁ = W₁ @ x (+ b₁)`, `zₗ = Wₗ @ f(zₗ₋₁) (+ bₗ)`, `loss = L(z, y)` with `x` a client
//! input, `y` a client label and `f` a builtin activation. Each pattern maps to one
//! instruction group (see `emit`): a data layer to `DataMatVec`/`DataOuterAcc`
//! (external products), a hidden layer to `MatVec`/`OuterAcc`/`MatVecT` (server
//! products), an activation to a `Lut` (and its derivative to a `Lut` + `Mul`), the
//! loss gradient with `lr/B` folded in to one error LUT group. The backward half of the
//! graph is autodiff's canonical form of exactly these patterns, so it is implied by
//! the forward structure; the optimizer's constants come from the spec.

use super::E_UNSUPPORTED;
use crate::diag::Diagnostic;
use crate::ir::autodiff::TrainGraph;
use crate::ir::{NodeId, Op};
use crate::spec::{Builtin, InputId, LabelId, LossKind, Optimizer, ParamId, Spec};

/// The recognised network.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub input: InputId,
    pub label: LabelId,
    /// Forward order.
    pub layers: Vec<Layer>,
    pub loss: LossKind,
    pub loss_node: NodeId,
    /// `lr/B`, folded into the error lookup table (the update is a plain subtraction).
    pub fold: f64,
    /// Nesterov momentum μ, if any.
    pub momentum: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub w: ParamId,
    pub b: Option<ParamId>,
    pub input: LayerInput,
    /// The pre-activation `W @ v (+ b)`.
    pub z: NodeId,
    /// Output rows and input length of `W`.
    pub rows: usize,
    pub cols: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerInput {
    Data(InputId),
    /// `f(z)` of the previous layer; `node` is the `Unary(f)` node.
    Act {
        f: Builtin,
        node: NodeId,
    },
}

pub fn unsupported(tg: &TrainGraph, n: NodeId, what: impl Into<String>) -> Diagnostic {
    let node = tg.graph.node(n);
    Diagnostic::error(E_UNSUPPORTED, format!("not supported by the lowering yet: {}", what.into()))
        .at(node.span, format!("`{}` here", node.op.mnemonic()))
        .note("supported: dense layers `W @ v + b` on one client input, builtin activations, and a loss of the logits")
}

pub fn recognize(spec: &Spec, tg: &TrainGraph) -> Result<Net, Vec<Diagnostic>> {
    let g = &tg.graph;
    let Op::Loss(loss) = g.node(tg.loss).op else {
        return Err(vec![unsupported(tg, tg.loss, "a loss that is not directly a loss function of the logits")]);
    };
    let ops = g.operands(tg.loss);
    let (z, y) = (ops[0], ops[1]);
    let Op::Label(label) = g.node(y).op else {
        return Err(vec![unsupported(tg, y, "a loss target that is not a client label")]);
    };
    let mut layers = Vec::new();
    let mut cur = z;
    let input = loop {
        let (layer, next) = dense(tg, cur).map_err(|d| vec![d])?;
        let data = match layer.input {
            LayerInput::Data(i) => Some(i),
            LayerInput::Act { .. } => None,
        };
        layers.push(layer);
        match (data, next) {
            (Some(i), _) => break i,
            (None, Some(n)) => cur = n,
            (None, None) => unreachable!("a hidden layer input always has a predecessor"),
        }
    };
    layers.reverse();
    for &(p, gp) in &tg.grads {
        if !layers.iter().any(|l| l.w == p || l.b == Some(p)) {
            return Err(vec![unsupported(
                tg,
                gp,
                format!("training param `{}` outside a dense layer", spec.params[p.index()].name),
            )]);
        }
    }
    let b = tg.batch.max(1) as f64;
    let (fold, momentum) = match spec.train.optimizer {
        Optimizer::Sgd { lr } => (lr / b, None),
        Optimizer::Nesterov { lr, momentum } => (lr / b, Some(momentum)),
    };
    Ok(Net { input, label, layers, loss, loss_node: tg.loss, fold, momentum })
}

/// `z = W @ v (+ b)`: the layer and, for a hidden input, the previous pre-activation.
fn dense(tg: &TrainGraph, z: NodeId) -> Result<(Layer, Option<NodeId>), Diagnostic> {
    let g = &tg.graph;
    let param = |n: NodeId| match g.node(n).op {
        Op::Param(p) => Some(p),
        _ => None,
    };
    let (mm, b) = match g.node(z).op {
        Op::MatMul => (z, None),
        Op::Add => {
            let o = g.operands(z);
            match (&g.node(o[0]).op, &g.node(o[1]).op) {
                (Op::MatMul, Op::Param(p)) => (o[0], Some(*p)),
                (Op::Param(p), Op::MatMul) => (o[1], Some(*p)),
                _ => return Err(unsupported(tg, z, "an addition that is not `W @ v + b`")),
            }
        }
        _ => return Err(unsupported(tg, z, "this operation as logits or pre-activation (expected `W @ v + b`)")),
    };
    let o = g.operands(mm);
    let w = param(o[0]).ok_or_else(|| unsupported(tg, mm, "a product whose left operand is not a param"))?;
    let shape = g.node(o[0]).shape.clone();
    if shape.len() != 2 || g.node(o[1]).shape.len() != 1 {
        return Err(unsupported(tg, mm, "a matrix product other than matrix @ vector"));
    }
    if let Some(b) = b {
        let bs = &g.node(tg.params[b.index()]).shape;
        if bs != &vec![shape[0]] {
            return Err(unsupported(tg, z, "a bias that is not a vector of the layer's rows"));
        }
    }
    let v = o[1];
    let (input, next) = match g.node(v).op {
        Op::Input(i) => (LayerInput::Data(i), None),
        Op::Unary(f) => (LayerInput::Act { f, node: v }, Some(g.operands(v)[0])),
        _ => return Err(unsupported(tg, v, "a layer input that is neither a client input nor an activation")),
    };
    Ok((Layer { w, b, input, z, rows: shape[0], cols: shape[1] }, next))
}
