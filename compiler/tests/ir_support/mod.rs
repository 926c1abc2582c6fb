//! Shared test helpers: specs built programmatically (independent of the parser),
//! a seeded RNG, and random bindings.
#![allow(dead_code)]

use blindtuner_compiler::ir::autodiff::TrainGraph;
use blindtuner_compiler::ir::build::Forward;
use blindtuner_compiler::ir::interp::{eval, Bindings, Sample, Tensor};
use blindtuner_compiler::spec::*;
use blindtuner_grammar::ast::Span;

/// SplitMix64: tiny, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn tensor(&mut self, shape: &[usize], scale: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|_| self.uniform(-scale, scale)).collect())
    }
    pub fn one_hot(&mut self, k: usize) -> Tensor {
        let mut t = Tensor::zeros(&[k]);
        t.data[self.below(k)] = 1.0;
        t
    }
}

/// Synthetic spans: each declaration and expression gets a distinct one, so span
/// propagation is observable.
pub struct Spans(usize);

impl Spans {
    pub fn next(&mut self) -> Span {
        self.0 += 10;
        Span::new(self.0, self.0 + 5)
    }
}

/// A spec under construction.
pub struct SpecBuilder {
    pub spec: Spec,
    spans: Spans,
}

pub fn e(kind: TExprKind, shape: &[usize], span: Span) -> TExpr {
    TExpr { kind, shape: shape.to_vec(), span }
}

impl SpecBuilder {
    pub fn new(name: &str, optimizer: Optimizer, batch: usize) -> SpecBuilder {
        let span = Span::new(0, 1000);
        let mut train = TrainCfg::default_for(span);
        train.optimizer = optimizer;
        train.batch = batch;
        SpecBuilder {
            spec: Spec {
                name: name.into(),
                span,
                dims: vec![],
                inputs: vec![],
                labels: vec![],
                params: vec![],
                funcs: vec![],
                lets: vec![],
                loss: LetId(0),
                train,
            },
            spans: Spans(0),
        }
    }
    pub fn span(&mut self) -> Span {
        self.spans.next()
    }
    pub fn input(&mut self, name: &str, d: usize) -> TExpr {
        let span = self.span();
        let id = InputId(self.spec.inputs.len() as u32);
        self.spec.inputs.push(InputDecl { name: name.into(), shape: vec![d], range: (-1.0, 1.0), format: None, span });
        e(TExprKind::Input(id), &[d], span)
    }
    pub fn label(&mut self, name: &str, k: usize) -> TExpr {
        let span = self.span();
        let id = LabelId(self.spec.labels.len() as u32);
        self.spec.labels.push(LabelDecl { name: name.into(), classes: k, span });
        e(TExprKind::Label(id), &[k], span)
    }
    pub fn param(&mut self, name: &str, shape: &[usize]) -> TExpr {
        let span = self.span();
        let id = ParamId(self.spec.params.len() as u32);
        self.spec.params.push(ParamDecl {
            name: name.into(),
            shape: shape.to_vec(),
            init: Init::Zeros,
            range: None,
            format: None,
            span,
        });
        e(TExprKind::Param(id), shape, span)
    }
    pub fn func(&mut self, name: &str, params: &[&str], body: FuncBody) -> FuncId {
        let span = self.span();
        let id = FuncId(self.spec.funcs.len() as u32);
        self.spec.funcs.push(FuncDecl {
            name: name.into(),
            params: params.iter().map(|p| p.to_string()).collect(),
            body,
            span,
        });
        id
    }
    /// `name = value`; returns a reference to the binding.
    pub fn let_(&mut self, name: &str, value: TExpr) -> TExpr {
        let span = self.span();
        let id = LetId(self.spec.lets.len() as u32);
        let shape = value.shape.clone();
        self.spec.lets.push(LetDecl { name: name.into(), value, range: None, format: None, span });
        e(TExprKind::Let(id), &shape, span)
    }
    pub fn loss(mut self, value: TExpr) -> Spec {
        self.let_("loss", value);
        self.spec.loss = LetId(self.spec.lets.len() as u32 - 1);
        self.spec
    }

    // ---- expression constructors (shapes computed like the checker does)
    pub fn matmul(&mut self, a: TExpr, b: TExpr) -> TExpr {
        let shape = if b.shape.len() == 1 { vec![a.shape[0]] } else { vec![a.shape[0], b.shape[1]] };
        let span = self.span();
        e(TExprKind::MatMul(Box::new(a), Box::new(b)), &shape, span)
    }
    pub fn bin(&mut self, op: ScalarBin, a: TExpr, b: TExpr) -> TExpr {
        let shape = if a.shape.is_empty() { b.shape.clone() } else { a.shape.clone() };
        let span = self.span();
        e(TExprKind::Elementwise(op, Box::new(a), Box::new(b)), &shape, span)
    }
    pub fn add(&mut self, a: TExpr, b: TExpr) -> TExpr {
        self.bin(ScalarBin::Add, a, b)
    }
    pub fn mul(&mut self, a: TExpr, b: TExpr) -> TExpr {
        self.bin(ScalarBin::Mul, a, b)
    }
    pub fn konst(&mut self, c: f64) -> TExpr {
        let span = self.span();
        e(TExprKind::Const(c), &[], span)
    }
    pub fn builtin(&mut self, f: Builtin, a: TExpr) -> TExpr {
        let shape = a.shape.clone();
        let span = self.span();
        e(TExprKind::Builtin(f, Box::new(a)), &shape, span)
    }
    pub fn call(&mut self, f: FuncId, args: Vec<TExpr>) -> TExpr {
        let shape = args.iter().map(|a| a.shape.clone()).find(|s| !s.is_empty()).unwrap_or_default();
        let span = self.span();
        e(TExprKind::Call(f, args), &shape, span)
    }
    pub fn sum(&mut self, a: TExpr) -> TExpr {
        let span = self.span();
        e(TExprKind::Sum(Box::new(a)), &[], span)
    }
    pub fn neg(&mut self, a: TExpr) -> TExpr {
        let shape = a.shape.clone();
        let span = self.span();
        e(TExprKind::Neg(Box::new(a)), &shape, span)
    }
    pub fn loss_fn(&mut self, kind: LossKind, z: TExpr, y: TExpr) -> TExpr {
        let span = self.span();
        e(TExprKind::Loss(kind, Box::new(z), Box::new(y)), &[], span)
    }
}

/// `z = W @ x (+ b); loss = kind(z, y)`.
pub fn linear(kind: LossKind, optimizer: Optimizer, d: usize, k: usize, bias: bool) -> Spec {
    let mut s = SpecBuilder::new("linear", optimizer, 4);
    let x = s.input("x", d);
    let y = s.label("y", k);
    let w = s.param("W", &[k, d]);
    let mut z = s.matmul(w, x);
    if bias {
        let b = s.param("b", &[k]);
        z = s.add(z, b);
    }
    let z = s.let_("z", z);
    let l = s.loss_fn(kind, z, y);
    s.loss(l)
}

/// `pre = W1 @ x + b1; h = relu(pre); z = W2 @ h + b2; loss = softmax_ce(z, y)`.
pub fn mlp(optimizer: Optimizer, d: usize, hidden: usize, k: usize) -> Spec {
    let mut s = SpecBuilder::new("mlp", optimizer, 3);
    let x = s.input("x", d);
    let y = s.label("y", k);
    let w1 = s.param("W1", &[hidden, d]);
    let b1 = s.param("b1", &[hidden]);
    let w2 = s.param("W2", &[k, hidden]);
    let b2 = s.param("b2", &[k]);
    let pre = s.matmul(w1, x);
    let pre = s.add(pre, b1);
    let pre = s.let_("pre", pre);
    let h = s.builtin(Builtin::Relu, pre);
    let h = s.let_("h", h);
    let z = s.matmul(w2, h);
    let z = s.add(z, b2);
    let z = s.let_("z", z);
    let l = s.loss_fn(LossKind::SoftmaxCrossEntropy, z, y);
    s.loss(l)
}

/// Smooth units of every kind: a factored weight `M = A @ B`, sigmoid, tanh, exp,
/// a two-argument user fn (nesting a builtin and a division), a table fn, scalar
/// broadcasts through `sum`, subtraction, division, negation, and an L2 term that
/// uses `W2` a second time (so the loss is not the root of the gradient).
pub fn smooth(optimizer: Optimizer, d: usize, hidden: usize, k: usize) -> Spec {
    use ScalarExpr as S;
    let mut s = SpecBuilder::new("smooth", optimizer, 2);
    let x = s.input("x", d);
    let y = s.label("y", k);
    let a = s.param("A", &[hidden, 2]);
    let bm = s.param("B", &[2, d]);
    let b1 = s.param("b1", &[hidden]);
    let w2 = s.param("W2", &[k, hidden]);
    let b2 = s.param("b2", &[k]);
    let p = |i| Box::new(S::Param(i));
    // f(a, b) = a * b + exp(a) / (1 + b * b)
    let f = s.func(
        "f",
        &["a", "b"],
        FuncBody::Expr(S::Bin(
            ScalarBin::Add,
            Box::new(S::Bin(ScalarBin::Mul, p(0), p(1))),
            Box::new(S::Bin(
                ScalarBin::Div,
                Box::new(S::Builtin(Builtin::Exp, p(0))),
                Box::new(S::Bin(ScalarBin::Add, Box::new(S::Const(1.0)), Box::new(S::Bin(ScalarBin::Mul, p(1), p(1))))),
            )),
        )),
    );
    // g(v) = f(v, v) - v (a call of a user fn from a user fn)
    let g = s.func(
        "g",
        &["v"],
        FuncBody::Expr(S::Bin(ScalarBin::Sub, Box::new(S::Call(f, vec![S::Param(0), S::Param(0)])), p(0))),
    );
    let table =
        s.func("wobble", &["t"], FuncBody::Table { values: vec![0.0, 0.5, -0.25, 1.0, 0.75], lo: -2.0, hi: 2.0 });

    let m = s.matmul(a, bm);
    let m = s.let_("M", m);
    let pre = s.matmul(m, x);
    let pre = s.add(pre, b1);
    let pre = s.let_("pre", pre);
    let sg = s.builtin(Builtin::Sigmoid, pre.clone());
    let sg = s.let_("s", sg);
    let th = s.builtin(Builtin::Tanh, pre.clone());
    let th = s.let_("t", th);
    let quarter = s.konst(0.25);
    let scaled = s.mul(quarter, pre.clone());
    let ex = s.builtin(Builtin::Exp, scaled);
    let ex = s.let_("e", ex);
    let u = s.call(f, vec![sg.clone(), th.clone()]);
    let u = s.let_("u", u);
    let w = s.call(table, vec![pre.clone()]);
    let gv = s.call(g, vec![th.clone()]);
    let st = s.mul(sg, th.clone());
    let ue = s.bin(ScalarBin::Div, u, ex);
    let tsum = s.sum(th);
    let c = s.konst(0.1);
    let shift = s.mul(tsum, c);
    let hid = s.add(st, ue);
    let hid = s.bin(ScalarBin::Sub, hid, shift);
    let hid = s.add(hid, w);
    let ngv = s.neg(gv);
    let hid = s.add(hid, ngv);
    let hid = s.let_("hid", hid);
    let z = s.matmul(w2.clone(), hid);
    let z = s.add(z, b2);
    let z = s.let_("z", z);
    let l = s.loss_fn(LossKind::SigmoidCrossEntropy, z, y);
    let sq = s.mul(w2.clone(), w2);
    let reg = s.sum(sq);
    let lam = s.konst(0.01);
    let reg = s.mul(lam, reg);
    let total = s.add(l, reg);
    s.loss(total)
}

/// Random values for every param of `spec`.
pub fn random_params(rng: &mut Rng, spec: &Spec, scale: f64) -> Vec<Tensor> {
    spec.params.iter().map(|p| rng.tensor(&p.shape, scale)).collect()
}

pub fn random_sample(rng: &mut Rng, spec: &Spec) -> Sample {
    Sample {
        inputs: spec.inputs.iter().map(|i| rng.tensor(&i.shape, 1.0)).collect(),
        labels: spec.labels.iter().map(|l| rng.one_hot(l.classes)).collect(),
    }
}

// ---- finite differences

pub const TOL: f64 = 1e-6;

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * 1f64.max(a.abs()).max(b.abs())
}

pub fn loss_at(fwd: &Forward, params: &[Tensor], s: &Sample) -> f64 {
    let b = Bindings { inputs: &s.inputs, labels: &s.labels, params, states: &[] };
    let vals = eval(&fwd.graph, &b).expect("forward evaluates");
    vals.get(fwd.loss).expect("loss computed").data[0]
}

/// Central finite-difference gradient of the per-sample loss w.r.t. every param.
pub fn fd_grads(fwd: &Forward, params: &[Tensor], s: &Sample) -> Vec<Tensor> {
    let mut out = Vec::new();
    for p in 0..params.len() {
        let mut g = Tensor::zeros(&params[p].shape);
        for k in 0..params[p].data.len() {
            let h = 1e-6 * 1f64.max(params[p].data[k].abs());
            let mut plus = params.to_vec();
            plus[p].data[k] += h;
            let mut minus = params.to_vec();
            minus[p].data[k] -= h;
            g.data[k] = (loss_at(fwd, &plus, s) - loss_at(fwd, &minus, s)) / (2.0 * h);
        }
        out.push(g);
    }
    out
}

/// Per-sample gradients from the training graph (zero for untrained params).
pub fn ad_grads(tg: &TrainGraph, params: &[Tensor], states: &[Tensor], s: &Sample) -> Vec<Tensor> {
    let b = Bindings { inputs: &s.inputs, labels: &s.labels, params, states };
    let vals = eval(&tg.graph, &b).expect("training graph evaluates");
    let mut out: Vec<Tensor> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    for &(p, g) in &tg.grads {
        out[p.index()] = vals.get(g).expect("gradient computed").clone();
    }
    out
}

pub fn assert_close(what: &str, ad: &[Tensor], fd: &[Tensor]) {
    for (p, (a, f)) in ad.iter().zip(fd).enumerate() {
        assert_eq!(a.shape, f.shape, "{what}: param {p} shape");
        for (k, (&x, &y)) in a.data.iter().zip(&f.data).enumerate() {
            assert!(close(x, y), "{what}: param {p}[{k}]: autodiff {x} vs finite differences {y}");
        }
    }
}
