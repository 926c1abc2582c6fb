//! The checked model: what `check` produces from the AST and IR building consumes.
//!
//! Invariants (established by `check`, relied on downstream without re-checking):
//! every name is resolved to a typed id; every dimension is a concrete `usize`
//! (named dims substituted, overrides applied); every expression has a shape and the
//! shapes of operands agree; the loss is a scalar; constants are finite.

use blindtuner_grammar::ast::Span;
use serde::{Deserialize, Serialize};

entity!(
    /// An `input` (client features).
    InputId,
    /// A `label` (client one-hot labels).
    LabelId,
    /// A trainable `param`.
    ParamId,
    /// A user `fn`.
    FuncId,
    /// A `let` binding.
    LetId,
);

/// Tensor shape; `[]` is a scalar.
pub type Shape = Vec<usize>;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spec {
    pub name: String,
    pub span: Span,
    pub dims: Vec<DimDecl>,
    pub inputs: Vec<InputDecl>,
    pub labels: Vec<LabelDecl>,
    pub params: Vec<ParamDecl>,
    pub funcs: Vec<FuncDecl>,
    /// In definition order (each refers only to earlier ones).
    pub lets: Vec<LetDecl>,
    /// The `let` named `loss`; a scalar.
    pub loss: LetId,
    pub train: TrainCfg,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DimDecl {
    pub name: String,
    pub value: usize,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputDecl {
    pub name: String,
    pub shape: Shape,
    /// Declared range: also the quantization range (values outside are clamped).
    pub range: (f64, f64),
    pub format: Option<FormatPin>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelDecl {
    pub name: String,
    pub classes: usize,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamDecl {
    pub name: String,
    pub shape: Shape,
    pub init: Init,
    /// Declared bound (an assumption the compiler states in the report).
    pub range: Option<(f64, f64)>,
    pub format: Option<FormatPin>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    Zeros,
    Const(f64),
    /// Uniform in `[lo, hi]`, from the training seed.
    Uniform(f64, f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// Glorot/Xavier uniform from the shape.
    Xavier,
}

/// A pinned fixed-point format: `bits` total (two's complement), `frac` fractional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FormatPin {
    pub bits: u32,
    pub frac: i32,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuncDecl {
    pub name: String,
    pub params: Vec<String>,
    pub body: FuncBody,
    pub span: Span,
}

/// A scalar function of its parameters (elementwise when applied to tensors).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum FuncBody {
    Expr(ScalarExpr),
    /// Samples on a uniform grid over `[lo, hi]`, linearly interpolated, clamped outside.
    Table {
        values: Vec<f64>,
        lo: f64,
        hi: f64,
    },
}

/// Body of a user function: scalar arithmetic over its parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ScalarExpr {
    Param(usize),
    Const(f64),
    Neg(Box<ScalarExpr>),
    Bin(ScalarBin, Box<ScalarExpr>, Box<ScalarExpr>),
    Builtin(Builtin, Box<ScalarExpr>),
    Call(FuncId, Vec<ScalarExpr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ScalarBin {
    Add,
    Sub,
    Mul,
    Div,
}

/// Built-in elementwise functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Builtin {
    Relu,
    Sigmoid,
    Exp,
    Log,
    Tanh,
    Softplus,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Relu => "relu",
            Builtin::Sigmoid => "sigmoid",
            Builtin::Exp => "exp",
            Builtin::Log => "log",
            Builtin::Tanh => "tanh",
            Builtin::Softplus => "softplus",
        }
    }
    pub fn from_name(s: &str) -> Option<Builtin> {
        Some(match s {
            "relu" => Builtin::Relu,
            "sigmoid" => Builtin::Sigmoid,
            "exp" => Builtin::Exp,
            "log" => Builtin::Log,
            "tanh" => Builtin::Tanh,
            "softplus" => Builtin::Softplus,
            _ => return None,
        })
    }
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Builtin::Relu => x.max(0.0),
            Builtin::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Builtin::Exp => x.exp(),
            Builtin::Log => x.ln(),
            Builtin::Tanh => x.tanh(),
            Builtin::Softplus => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }
    /// Derivative (relu' at 0 is taken as 0).
    pub fn deriv(self, x: f64) -> f64 {
        match self {
            Builtin::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Builtin::Sigmoid => {
                let s = Builtin::Sigmoid.eval(x);
                s * (1.0 - s)
            }
            Builtin::Exp => x.exp(),
            Builtin::Log => 1.0 / x,
            Builtin::Tanh => 1.0 - x.tanh().powi(2),
            Builtin::Softplus => Builtin::Sigmoid.eval(x),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum LossKind {
    SoftmaxCrossEntropy,
    SigmoidCrossEntropy,
    Mse,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::SoftmaxCrossEntropy => "softmax_cross_entropy",
            LossKind::SigmoidCrossEntropy => "sigmoid_cross_entropy",
            LossKind::Mse => "mse",
        }
    }
    pub fn from_name(s: &str) -> Option<LossKind> {
        Some(match s {
            "softmax_cross_entropy" => LossKind::SoftmaxCrossEntropy,
            "sigmoid_cross_entropy" => LossKind::SigmoidCrossEntropy,
            "mse" => LossKind::Mse,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LetDecl {
    pub name: String,
    pub value: TExpr,
    pub range: Option<(f64, f64)>,
    pub format: Option<FormatPin>,
    pub span: Span,
}

/// A typed, resolved tensor expression.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TExpr {
    pub kind: TExprKind,
    pub shape: Shape,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TExprKind {
    Input(InputId),
    Label(LabelId),
    Param(ParamId),
    Let(LetId),
    /// A scalar constant (broadcast where used).
    Const(f64),
    Neg(Box<TExpr>),
    /// Elementwise `+ - * /` (one side may be a scalar, broadcast) .
    Elementwise(ScalarBin, Box<TExpr>, Box<TExpr>),
    /// `a @ b`: `[m,n] @ [n] -> [m]`, `[m,n] @ [n,p] -> [m,p]`.
    MatMul(Box<TExpr>, Box<TExpr>),
    Builtin(Builtin, Box<TExpr>),
    /// User function applied elementwise (all args the same shape or scalar).
    Call(FuncId, Vec<TExpr>),
    /// `loss(z, y)`: scalar.
    Loss(LossKind, Box<TExpr>, Box<TExpr>),
    /// `sum(t)`: scalar.
    Sum(Box<TExpr>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainCfg {
    pub optimizer: Optimizer,
    pub batch: usize,
    pub epochs: usize,
    pub precision: Precision,
    /// Global failure budget (probability that any PBS of the run lands "far").
    pub p_fail: f64,
    pub seed: u64,
    /// Step decay of the learning rate, if any.
    pub schedule: Option<LrSchedule>,
    /// `average = N`: the trained model is the mean of the weights after every step of
    /// the last `N` epochs (0: the last iterate).
    pub average: usize,
    /// Span of the `train` block (or of the model when there is none).
    pub span: Span,
}

impl TrainCfg {
    pub fn default_for(span: Span) -> TrainCfg {
        TrainCfg {
            optimizer: Optimizer::Sgd { lr: 0.5 },
            batch: 8,
            epochs: 5,
            precision: Precision::Auto,
            p_fail: 2f64.powi(-40),
            seed: 0,
            schedule: None,
            average: 0,
            span,
        }
    }
}

/// `schedule = step(every = 10, factor = 0.5)`: the learning rate is multiplied by
/// `factor = 2^-shift` every `every` epochs. Only power-of-two factors: the rate is
/// folded into lookup tables and client label terms, where a power of two is an exact
/// shift of the torus value (no extra bootstrap, no rounding).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LrSchedule {
    pub every: usize,
    pub shift: u32,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Optimizer {
    Sgd {
        lr: f64,
    },
    /// PyTorch-style Nesterov: `b = μ b + g; w -= lr (g + μ b)`.
    Nesterov {
        lr: f64,
        momentum: f64,
    },
}

impl Optimizer {
    pub fn lr(&self) -> f64 {
        match *self {
            Optimizer::Sgd { lr } | Optimizer::Nesterov { lr, .. } => lr,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Precision {
    Auto,
    /// Bits of the lookup-table inputs (the PBS message precision).
    Bits(u32),
}
