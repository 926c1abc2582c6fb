//! Abstract syntax tree of a `.bt` file.
//!
//! Every node carries the byte [`Span`] of the source text it came from, so the
//! compiler can point diagnostics at it long after parsing. The tree is purely
//! syntactic: names are unresolved strings and shapes are unchecked expressions.
//! Where the parser recovered from an error it leaves an `Error` node in place, so
//! the checker can keep going and report independent problems in the same run.

use serde::{Deserialize, Serialize};

/// Half-open byte range `[start, end)` into the source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// Smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// A name with the place it was written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole file: any number of `model` and `train` blocks and top-level `fn`s.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Model(Model),
    Train(Train),
    /// A user function at top level, visible to every model of the file.
    Func(FuncDef),
    /// The parser could not make sense of this stretch of input.
    Error(Span),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Model {
    pub name: Ident,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Stmt {
    /// `dim d = 64` — a named dimension, overridable from the command line (`--set d=16`)
    /// or from the data (`run --data`).
    Dim {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `input x : fixed[d] in [-4, 4]`
    Input {
        name: Ident,
        ty: TensorType,
        range: Option<Range>,
        span: Span,
    },
    /// `label y : onehot[k]`
    Label {
        name: Ident,
        ty: TensorType,
        span: Span,
    },
    /// `param W : fixed[k, d] = zeros in [-8, 8]`
    Param {
        name: Ident,
        ty: TensorType,
        init: Option<Expr>,
        range: Option<Range>,
        span: Span,
    },
    /// `fn f(t) = expr` or `fn f(t) = table [..] over [lo, hi]`
    Func(FuncDef),
    /// `z = W @ x + b`, optionally `z : fixed<12, 4> = ...` or `z = ... in [-8, 8]`.
    Let {
        name: Ident,
        ty: Option<TensorType>,
        value: Expr,
        range: Option<Range>,
        span: Span,
    },
    Error(Span),
}

/// `fixed[5, 64]`, `onehot[k]`, `fixed<bits, frac>[d]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorType {
    /// `fixed` or `onehot` (anything else is a checker error, not a parse error).
    pub kind: Ident,
    /// Explicit fixed-point format `<bits, frac>`, if the user pinned one.
    pub format: Option<Vec<Expr>>,
    pub dims: Vec<Expr>,
    pub span: Span,
}

/// `in [lo, hi]`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Range {
    pub lo: Expr,
    pub hi: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuncDef {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: FuncBody,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum FuncBody {
    /// A scalar expression in the parameters; lowered to a lookup table.
    Expr(Expr),
    /// `table [v0, v1, ...] over [lo, hi]`: samples on a uniform grid, linearly interpolated.
    Table { values: Vec<Expr>, over: Range },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Train {
    /// The model this block trains.
    pub model: Ident,
    pub items: Vec<TrainItem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TrainItem {
    /// `optimizer = sgd(lr = 0.5)`, `batch = 32`, `p_fail = 2^-40`, `precision = auto`.
    Setting {
        key: Ident,
        value: Expr,
        span: Span,
    },
    /// `format z = fixed<12, 4>` — pin the fixed-point format of a tensor.
    Format {
        target: Ident,
        ty: TensorType,
        span: Span,
    },
    /// `range z in [-16, 16]` — state (and let the compiler assume) a value range.
    Range {
        target: Ident,
        range: Range,
        span: Span,
    },
    Error(Span),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    /// A number as written (kept as text so the checker can report bad literals
    /// with their exact spelling; `value` is `None` when it does not parse).
    Number {
        text: String,
        value: Option<f64>,
    },
    Name(String),
    Unary {
        op: UnOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `f(a, b, name = c)`
    Call {
        func: Ident,
        args: Vec<Arg>,
    },
    /// `[a, b, c]`
    List(Vec<Expr>),
    /// Placeholder where the parser recovered from an error.
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnOp {
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BinOp {
    Add,
    Sub,
    /// Elementwise (or by a scalar).
    Mul,
    Div,
    /// Matrix product `@`.
    MatMul,
    /// `^`, only in constant expressions such as `2^-40`.
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
        }
    }
}
