//! The f64 reference interpreter of the IR: the real-number meaning of a graph.
//!
//! Tests compare autodiff against finite differences through it, and the fixed-point
//! passes can compare their plans against it. Tensors are row-major `Vec<f64>`.

use super::autodiff::TrainGraph;
use super::{Graph, NodeId, Op, Phase, UpdateTarget};
use crate::spec::{Builtin, FuncBody, FuncDecl, LossKind, ScalarBin, ScalarExpr, Shape};
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Vec<f64>,
}

impl Tensor {
    /// `data.len()` must be the product of `shape` (checked when bound or computed).
    pub fn new(shape: Shape, data: Vec<f64>) -> Tensor {
        Tensor { shape, data }
    }
    pub fn scalar(x: f64) -> Tensor {
        Tensor { shape: vec![], data: vec![x] }
    }
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }
    fn map(&self, f: impl Fn(f64) -> f64) -> Tensor {
        Tensor { shape: self.shape.clone(), data: self.data.iter().map(|&x| f(x)).collect() }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    pub node: Option<NodeId>,
    pub message: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(n) => write!(f, "n{}: {}", n.0, self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn fail<T>(node: NodeId, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError { node: Some(node), message: message.into() })
}

/// Values of the leaves, indexed by their ids (labels are one-hot vectors).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bindings<'a> {
    pub inputs: &'a [Tensor],
    pub labels: &'a [Tensor],
    pub params: &'a [Tensor],
    pub states: &'a [Tensor],
}

/// The value of every node, indexed by `NodeId`.
#[derive(Clone, Debug, Default)]
pub struct Values(Vec<Option<Tensor>>);

impl Values {
    pub fn get(&self, id: NodeId) -> Option<&Tensor> {
        self.0.get(id.index()).and_then(Option::as_ref)
    }
    fn set(&mut self, id: NodeId, t: Tensor) {
        if self.0.len() <= id.index() {
            self.0.resize(id.index() + 1, None);
        }
        self.0[id.index()] = Some(t);
    }
}

/// Evaluate every node for one sample; `BatchSum` over a batch of one is the identity.
/// The graph must verify (operand shapes are trusted).
pub fn eval(graph: &Graph, b: &Bindings) -> Result<Values, EvalError> {
    let mut vals = Values::default();
    for id in order(graph)? {
        let t = eval_node(graph, id, b, &vals)?;
        vals.set(id, t);
    }
    Ok(vals)
}

/// One training sample: a value per input and per label.
#[derive(Clone, Debug)]
pub struct Sample {
    pub inputs: Vec<Tensor>,
    pub labels: Vec<Tensor>,
}

#[derive(Clone, Debug)]
pub struct StepResult {
    /// Every param after the step (untrained ones unchanged), by `ParamId`.
    pub params: Vec<Tensor>,
    /// Every optimizer state after the step, by `StateId`.
    pub states: Vec<Tensor>,
    /// Mean per-sample loss over the batch, before the update.
    pub loss: f64,
}

/// One training step over `batch`: global and per-sample nodes once per sample,
/// `BatchSum` adds them up, per-step nodes once. The update's `1/B` is the spec's
/// batch size (`tg.batch`), whatever `batch.len()` is.
pub fn run_step(
    tg: &TrainGraph,
    batch: &[Sample],
    params: &[Tensor],
    states: &[Tensor],
) -> Result<StepResult, EvalError> {
    let graph = &tg.graph;
    if batch.is_empty() {
        return Err(EvalError { node: None, message: "empty batch".into() });
    }
    let order = order(graph)?;
    let phase = |id: NodeId| graph.node(id).phase;

    let leaves = Bindings { inputs: &[], labels: &[], params, states };
    let mut base = Values::default();
    for &id in order.iter().filter(|&&id| phase(id) == Phase::Global) {
        let t = eval_node(graph, id, &leaves, &base)?;
        base.set(id, t);
    }

    let sums: Vec<NodeId> = order.iter().copied().filter(|&id| graph.node(id).op == Op::BatchSum).collect();
    let mut acc: Vec<Tensor> = sums.iter().map(|&id| Tensor::zeros(graph.shape(id))).collect();
    let mut loss = 0.0;
    for s in batch {
        let b = Bindings { inputs: &s.inputs, labels: &s.labels, params, states };
        let mut vals = base.clone();
        for &id in order.iter().filter(|&&id| phase(id) == Phase::Sample) {
            let t = eval_node(graph, id, &b, &vals)?;
            vals.set(id, t);
        }
        for (a, &id) in acc.iter_mut().zip(&sums) {
            let x = value(&vals, graph.operands(id)[0])?;
            a.data.iter_mut().zip(&x.data).for_each(|(a, x)| *a += x);
        }
        loss += value(&vals, tg.loss)?.data[0];
    }

    let mut vals = base;
    for (a, &id) in acc.into_iter().zip(&sums) {
        vals.set(id, a);
    }
    for &id in order.iter().filter(|&&id| phase(id) == Phase::Step && graph.node(id).op != Op::BatchSum) {
        let t = eval_node(graph, id, &leaves, &vals)?;
        vals.set(id, t);
    }

    let mut new_params = params.to_vec();
    let mut new_states = states.to_vec();
    for &u in &tg.updates {
        let t = value(&vals, u)?.clone();
        match graph.node(u).op {
            Op::Update(UpdateTarget::Param(p)) => new_params[p.index()] = t,
            Op::Update(UpdateTarget::State(s)) => new_states[s.index()] = t,
            _ => return fail(u, "not an update"),
        }
    }
    Ok(StepResult { params: new_params, states: new_states, loss: loss / batch.len() as f64 })
}

fn order(graph: &Graph) -> Result<Vec<NodeId>, EvalError> {
    graph.topo().or_else(|n| fail(n, "cycle"))
}

fn value(vals: &Values, id: NodeId) -> Result<&Tensor, EvalError> {
    vals.get(id).map_or_else(|| fail(id, "used before it is computed"), Ok)
}

fn leaf(id: NodeId, table: &[Tensor], i: usize, shape: &Shape, what: &str) -> Result<Tensor, EvalError> {
    match table.get(i) {
        Some(t) if t.shape == *shape && t.data.len() == shape.iter().product::<usize>() => Ok(t.clone()),
        Some(t) => fail(id, format!("{what} #{i} bound with shape {:?}, expected {shape:?}", t.shape)),
        None => fail(id, format!("{what} #{i} is not bound")),
    }
}

fn eval_node(graph: &Graph, id: NodeId, b: &Bindings, vals: &Values) -> Result<Tensor, EvalError> {
    let node = graph.node(id);
    let args: Vec<&Tensor> = graph.operands(id).into_iter().map(|o| value(vals, o)).collect::<Result<_, _>>()?;
    if node.op.arity().is_some_and(|a| a != args.len()) {
        return fail(id, format!("`{}` with {} operand(s)", node.op.mnemonic(), args.len()));
    }
    let shape = node.shape.clone();
    let t = match &node.op {
        Op::Input(i) => leaf(id, b.inputs, i.index(), &shape, "input")?,
        Op::Label(l) => leaf(id, b.labels, l.index(), &shape, "label")?,
        Op::Param(p) => leaf(id, b.params, p.index(), &shape, "param")?,
        Op::State(s) => leaf(id, b.states, s.index(), &shape, "state")?,
        Op::Const(c) => Tensor::scalar(*c),
        Op::MatMul => matmul(args[0], args[1]),
        Op::Transpose => {
            let (m, n) = (args[0].shape[0], args[0].shape[1]);
            let mut out = vec![0.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    out[j * m + i] = args[0].data[i * n + j];
                }
            }
            Tensor::new(vec![n, m], out)
        }
        Op::Outer => {
            let (a, c) = (&args[0].data, &args[1].data);
            Tensor::new(shape, a.iter().flat_map(|x| c.iter().map(move |y| x * y)).collect())
        }
        Op::Add => zip(args[0], args[1], |x, y| x + y),
        Op::Sub => zip(args[0], args[1], |x, y| x - y),
        Op::Mul => zip(args[0], args[1], |x, y| x * y),
        Op::Div => zip(args[0], args[1], |x, y| x / y),
        Op::Neg => args[0].map(|x| -x),
        Op::Scale(c) => args[0].map(|x| c * x),
        Op::Unary(f) => args[0].map(|x| f.eval(x)),
        Op::UnaryDeriv(f) => args[0].map(|x| f.deriv(x)),
        Op::Call(f) | Op::CallDeriv(f, _) => {
            let wrt = match node.op {
                Op::CallDeriv(_, i) => Some(i),
                _ => None,
            };
            let n: usize = shape.iter().product();
            let mut out = Vec::with_capacity(n);
            for k in 0..n {
                let xs: Vec<f64> =
                    args.iter().map(|a| if a.shape.is_empty() { a.data[0] } else { a.data[k] }).collect();
                let r = call(&graph.funcs, f.index(), &xs, wrt, 0).or_else(|m| fail(id, m))?;
                out.push(r);
            }
            Tensor::new(shape, out)
        }
        Op::Sum => Tensor::scalar(args[0].data.iter().sum()),
        Op::Broadcast(s) => Tensor::new(s.clone(), vec![args[0].data[0]; s.iter().product()]),
        Op::Loss(kind) => Tensor::scalar(loss(*kind, &args[0].data, &args[1].data)),
        Op::LossGrad(kind) => Tensor::new(shape, loss_grad(*kind, &args[0].data, &args[1].data)),
        Op::BatchSum | Op::Update(_) => args[0].clone(),
    };
    if t.shape != node.shape || t.data.len() != node.shape.iter().product::<usize>() {
        return fail(id, format!("computed shape {:?}, node says {:?}", t.shape, node.shape));
    }
    Ok(t)
}

fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (m, n) = (a.shape[0], a.shape[1]);
    let p = if b.shape.len() == 2 { b.shape[1] } else { 1 };
    let mut out = vec![0.0; m * p];
    for i in 0..m {
        for k in 0..n {
            let aik = a.data[i * n + k];
            for j in 0..p {
                out[i * p + j] += aik * b.data[k * p + j];
            }
        }
    }
    let shape = if b.shape.len() == 2 { vec![m, p] } else { vec![m] };
    Tensor::new(shape, out)
}

/// Elementwise with scalar broadcast.
fn zip(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Tensor {
    let shape = if a.shape.is_empty() { b.shape.clone() } else { a.shape.clone() };
    let n: usize = shape.iter().product();
    let at = |t: &Tensor, k: usize| if t.shape.is_empty() { t.data[0] } else { t.data[k] };
    Tensor::new(shape, (0..n).map(|k| f(at(a, k), at(b, k))).collect())
}

fn log_sum_exp(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `softplus(x) = ln(1 + eˣ)`, stable for large |x|.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Per-sample losses:
/// * softmax CE: `Σᵢ yᵢ (lse(z) − zᵢ)`;
/// * sigmoid CE (summed over classes): `Σᵢ softplus(zᵢ) − yᵢ zᵢ`;
/// * mse (mean over classes): `(1/k) Σᵢ (zᵢ − yᵢ)²`.
pub fn loss(kind: LossKind, z: &[f64], y: &[f64]) -> f64 {
    match kind {
        LossKind::SoftmaxCrossEntropy => {
            let lse = log_sum_exp(z);
            z.iter().zip(y).map(|(z, y)| y * (lse - z)).sum()
        }
        LossKind::SigmoidCrossEntropy => z.iter().zip(y).map(|(&z, y)| softplus(z) - y * z).sum(),
        LossKind::Mse => z.iter().zip(y).map(|(z, y)| (z - y).powi(2)).sum::<f64>() / z.len().max(1) as f64,
    }
}

/// `d loss / d z` (softmax CE: `softmax(z)·Σy − y`, i.e. `softmax(z) − y` for one-hot y).
pub fn loss_grad(kind: LossKind, z: &[f64], y: &[f64]) -> Vec<f64> {
    match kind {
        LossKind::SoftmaxCrossEntropy => {
            let lse = log_sum_exp(z);
            let sy: f64 = y.iter().sum();
            z.iter().zip(y).map(|(z, y)| (z - lse).exp() * sy - y).collect()
        }
        LossKind::SigmoidCrossEntropy => z.iter().zip(y).map(|(&z, y)| Builtin::Sigmoid.eval(z) - y).collect(),
        LossKind::Mse => {
            let k = z.len().max(1) as f64;
            z.iter().zip(y).map(|(z, y)| 2.0 / k * (z - y)).collect()
        }
    }
}

/// Deep enough for any sensible nesting, small enough to stop a recursive fn.
const MAX_CALL_DEPTH: usize = 64;

/// Value of user function `f` at `xs`, or its partial derivative w.r.t. parameter `wrt`.
pub fn call(funcs: &[FuncDecl], f: usize, xs: &[f64], wrt: Option<usize>, depth: usize) -> Result<f64, String> {
    if depth > MAX_CALL_DEPTH {
        return Err("user functions nest too deeply (recursion?)".into());
    }
    let decl = funcs.get(f).ok_or_else(|| format!("unknown fn#{f}"))?;
    if xs.len() != decl.params.len() {
        return Err(format!("`{}` takes {} argument(s), got {}", decl.name, decl.params.len(), xs.len()));
    }
    match &decl.body {
        FuncBody::Expr(e) => {
            let args: Vec<Dual> =
                xs.iter().enumerate().map(|(i, &x)| Dual(x, if Some(i) == wrt { 1.0 } else { 0.0 })).collect();
            let r = scalar(funcs, e, &args, depth)?;
            Ok(if wrt.is_some() { r.1 } else { r.0 })
        }
        FuncBody::Table { values, lo, hi } => {
            let &[x] = xs else { return Err(format!("table `{}` takes one argument", decl.name)) };
            let (v, d) = table(values, *lo, *hi, x);
            Ok(if wrt.is_some() { d } else { v })
        }
    }
}

/// Piecewise-linear interpolation on a uniform grid over `[lo, hi]`, clamped outside;
/// returns the value and the slope (0 outside the grid).
fn table(values: &[f64], lo: f64, hi: f64, x: f64) -> (f64, f64) {
    match values.len() {
        0 => (0.0, 0.0),
        1 => (values[0], 0.0),
        n => {
            let step = (hi - lo) / (n - 1) as f64;
            if x <= lo {
                return (values[0], 0.0);
            }
            if x >= hi {
                return (values[n - 1], 0.0);
            }
            let pos = (x - lo) / step;
            let i = (pos.floor() as usize).min(n - 2);
            let t = pos - i as f64;
            let slope = (values[i + 1] - values[i]) / step;
            (values[i] + t * (values[i + 1] - values[i]), slope)
        }
    }
}

/// Forward-mode dual number: value and derivative.
#[derive(Clone, Copy, Debug)]
struct Dual(f64, f64);

fn scalar(funcs: &[FuncDecl], e: &ScalarExpr, args: &[Dual], depth: usize) -> Result<Dual, String> {
    Ok(match e {
        ScalarExpr::Param(i) => *args.get(*i).ok_or_else(|| format!("parameter {i} out of range"))?,
        ScalarExpr::Const(c) => Dual(*c, 0.0),
        ScalarExpr::Neg(a) => {
            let a = scalar(funcs, a, args, depth)?;
            Dual(-a.0, -a.1)
        }
        ScalarExpr::Bin(op, a, b) => {
            let (a, b) = (scalar(funcs, a, args, depth)?, scalar(funcs, b, args, depth)?);
            match op {
                ScalarBin::Add => Dual(a.0 + b.0, a.1 + b.1),
                ScalarBin::Sub => Dual(a.0 - b.0, a.1 - b.1),
                ScalarBin::Mul => Dual(a.0 * b.0, a.1 * b.0 + a.0 * b.1),
                ScalarBin::Div => Dual(a.0 / b.0, (a.1 * b.0 - a.0 * b.1) / (b.0 * b.0)),
            }
        }
        ScalarExpr::Builtin(f, a) => {
            let a = scalar(funcs, a, args, depth)?;
            Dual(f.eval(a.0), f.deriv(a.0) * a.1)
        }
        ScalarExpr::Call(g, inner) => {
            let inner: Vec<Dual> = inner.iter().map(|a| scalar(funcs, a, args, depth)).collect::<Result<_, _>>()?;
            let xs: Vec<f64> = inner.iter().map(|d| d.0).collect();
            let v = call(funcs, g.index(), &xs, None, depth + 1)?;
            let mut d = 0.0;
            for (j, a) in inner.iter().enumerate() {
                if a.1 != 0.0 {
                    d += call(funcs, g.index(), &xs, Some(j), depth + 1)? * a.1;
                }
            }
            Dual(v, d)
        }
    })
}
