//! Typing of tensor expressions: name resolution, shape inference and checks.
//!
//! Rules: `+ - * /` need equal shapes or a scalar side (broadcast); `@` is
//! `[m, n] @ [n] -> [m]` or `[m, n] @ [n, p] -> [m, p]`; builtins and user functions
//! apply elementwise; losses and `sum` produce scalars. `^` only folds constants.
//! Failures are reported once and yield `None`, which silences dependent errors.

use super::codes;
use super::consteval::{self, MAX_ELEMENTS};
use super::model::ModelChecker;
use super::names::{self, Entity};
use super::types::{fits, show};
use crate::diag::Diagnostic;
use crate::spec::{Builtin, LossKind, ScalarBin, Shape, TExpr, TExprKind};
use blindtuner_grammar::ast::{Arg, BinOp, Expr, ExprKind, Ident, Span, UnOp};

/// Elementwise functions besides the user's: for "did you mean" hints.
const BUILTIN_NAMES: [&str; 10] = [
    "relu",
    "sigmoid",
    "exp",
    "log",
    "tanh",
    "softplus",
    "sum",
    "softmax_cross_entropy",
    "sigmoid_cross_entropy",
    "mse",
];

fn scalar(kind: TExprKind, span: Span) -> TExpr {
    TExpr { kind, shape: Vec::new(), span }
}

impl ModelChecker<'_> {
    pub fn texpr(&mut self, e: &Expr) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Number { text, value } => {
                consteval::literal(text, *value, e.span, self.diags).map(|v| scalar(TExprKind::Const(v), e.span))
            }
            ExprKind::Name(n) => self.name(n, e.span),
            ExprKind::Unary { op: UnOp::Neg, operand } => {
                let t = self.texpr(operand)?;
                Some(match t.kind {
                    TExprKind::Const(v) => scalar(TExprKind::Const(-v), e.span),
                    _ => TExpr { shape: t.shape.clone(), kind: TExprKind::Neg(Box::new(t)), span: e.span },
                })
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.texpr(lhs), self.texpr(rhs));
                self.binary(*op, a?, b?, e.span)
            }
            ExprKind::Call { func, args } => self.call(func, args, e.span),
            ExprKind::List(_) => {
                self.diags.push(
                    Diagnostic::error(codes::NOT_ALLOWED_HERE, "a list is not a tensor expression")
                        .at(e.span, "list not allowed here")
                        .hint("lists are only used in `table [...]` functions and ranges"),
                );
                None
            }
            ExprKind::Error => None,
        }
    }

    fn name(&mut self, n: &str, span: Span) -> Option<TExpr> {
        let entity = match self.scope.get(n) {
            Some(e) => e,
            None => {
                self.undefined_name(n, span);
                return None;
            }
        };
        self.used.insert(entity);
        let (kind, shape) = match entity {
            Entity::Dim(v) => (TExprKind::Const(v as f64), Vec::new()),
            Entity::Input(id) => (TExprKind::Input(id), self.inputs[id.index()].shape.clone()),
            Entity::Param(id) => (TExprKind::Param(id), self.params[id.index()].shape.clone()),
            Entity::Let(id) => (TExprKind::Let(id), self.lets[id.index()].value.shape.clone()),
            Entity::Label(_) => {
                self.diags.push(
                    Diagnostic::error(codes::LABEL_OUTSIDE_LOSS, format!("label `{n}` used outside a loss"))
                        .at(span, "labels are only available to the loss")
                        .hint(format!(
                            "pass it as the second argument of a loss, e.g. `softmax_cross_entropy(z, {n})`"
                        )),
                );
                return None;
            }
            Entity::Func(..) => {
                self.diags.push(
                    Diagnostic::error(codes::NOT_ALLOWED_HERE, format!("`{n}` is a function, not a tensor"))
                        .at(span, "function used as a value")
                        .hint(format!("call it: `{n}(...)`")),
                );
                return None;
            }
        };
        Some(TExpr { kind, shape, span })
    }

    fn undefined_name(&mut self, n: &str, span: Span) {
        if self.poisoned.contains(n) {
            return;
        }
        // Broken declarations are still good suggestions: the name is what counts.
        let suggestion = self
            .scope
            .suggest(n, |e| !matches!(e, Entity::Func(..)))
            .or_else(|| names::suggest(n, self.poisoned.iter().map(String::as_str)));
        let d = names::undefined("name", n, span, suggestion);
        let d = match self.later_lets.get(n) {
            Some(&later) => {
                d.also(later, "defined here, later").hint("bindings can only use bindings defined above them")
            }
            None => d,
        };
        self.diags.push(d);
    }

    fn binary(&mut self, op: BinOp, a: TExpr, b: TExpr, span: Span) -> Option<TExpr> {
        let bin = match op {
            BinOp::Add => ScalarBin::Add,
            BinOp::Sub => ScalarBin::Sub,
            BinOp::Mul => ScalarBin::Mul,
            BinOp::Div => ScalarBin::Div,
            BinOp::MatMul => return self.matmul(a, b, span),
            BinOp::Pow => return self.pow(a, b, span),
        };
        if let (TExprKind::Const(x), TExprKind::Const(y)) = (&a.kind, &b.kind) {
            let v = match bin {
                ScalarBin::Add => x + y,
                ScalarBin::Sub => x - y,
                ScalarBin::Mul => x * y,
                ScalarBin::Div => x / y,
            };
            return self.finite(v, span);
        }
        if bin == ScalarBin::Div && b.kind == TExprKind::Const(0.0) {
            self.diags.push(Diagnostic::error(codes::BAD_VALUE, "division by zero").at(b.span, "this is zero"));
            return None;
        }
        let shape = if a.shape == b.shape || b.shape.is_empty() {
            a.shape.clone()
        } else if a.shape.is_empty() {
            b.shape.clone()
        } else {
            let verb = match bin {
                ScalarBin::Add => "add",
                ScalarBin::Sub => "subtract",
                ScalarBin::Mul => "multiply",
                ScalarBin::Div => "divide",
            };
            self.diags.push(
                Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!("cannot {verb} `{}` and `{}`", show(&a.shape), show(&b.shape)),
                )
                .at(b.span, format!("this is `{}`", show(&b.shape)))
                .also(a.span, format!("this is `{}`", show(&a.shape)))
                .note(format!("`{}` needs equal shapes, or a scalar on one side", op.symbol())),
            );
            return None;
        };
        Some(TExpr { kind: TExprKind::Elementwise(bin, Box::new(a), Box::new(b)), shape, span })
    }

    fn finite(&mut self, v: f64, span: Span) -> Option<TExpr> {
        if v.is_finite() {
            return Some(scalar(TExprKind::Const(v), span));
        }
        self.diags.push(
            Diagnostic::error(codes::BAD_VALUE, "constant expression is not a finite number")
                .at(span, format!("evaluates to {v}")),
        );
        None
    }

    fn pow(&mut self, a: TExpr, b: TExpr, span: Span) -> Option<TExpr> {
        match (&a.kind, &b.kind) {
            (TExprKind::Const(x), TExprKind::Const(y)) => self.finite(x.powf(*y), span),
            _ => {
                self.diags.push(
                    Diagnostic::error(codes::NOT_CONSTANT, "`^` only works on constants")
                        .at(span, "tensor operand")
                        .hint("for powers of tensors write a user function, e.g. `fn sq(t) = t * t`"),
                );
                None
            }
        }
    }

    fn matmul(&mut self, a: TExpr, b: TExpr, span: Span) -> Option<TExpr> {
        // On failure: which side to blame, and why.
        let shape: Result<Shape, (bool, String)> = match (a.shape.as_slice(), b.shape.as_slice()) {
            ([m, n], [n2]) if n == n2 => Ok(vec![*m]),
            ([m, n], [n2, p]) if n == n2 => Ok(vec![*m, *p]),
            ([_, n], [n2] | [n2, _]) => Err((false, format!("{n2} rows, but the left side has {n} columns"))),
            ([_, _], _) => Err((false, "not a vector or a matrix".to_string())),
            _ => Err((true, "not a matrix".to_string())),
        };
        match shape {
            Ok(shape) if fits(&shape) => Some(TExpr { kind: TExprKind::MatMul(Box::new(a), Box::new(b)), shape, span }),
            Ok(shape) => {
                self.diags.push(consteval::too_large(
                    span,
                    format!("the product `{}` has more than {MAX_ELEMENTS} elements", show(&shape)),
                ));
                None
            }
            Err((left, why)) => {
                let (bad, other) = if left { (&a, &b) } else { (&b, &a) };
                self.diags.push(
                    Diagnostic::error(
                        codes::MATMUL_MISMATCH,
                        format!("cannot multiply `{}` @ `{}`", show(&a.shape), show(&b.shape)),
                    )
                    .at(bad.span, format!("`{}`: {why}", show(&bad.shape)))
                    .also(other.span, format!("this is `{}`", show(&other.shape)))
                    .note("`@` is `[m, n] @ [n] -> [m]` or `[m, n] @ [n, p] -> [m, p]`"),
                );
                None
            }
        }
    }

    fn call(&mut self, func: &Ident, args: &[Arg], span: Span) -> Option<TExpr> {
        if let Some(arg) = args.iter().find(|a| a.name.is_some()) {
            self.diags.push(
                Diagnostic::error(codes::ARG_COUNT, format!("`{}` takes no named arguments", func.name))
                    .at(arg.span, "named argument")
                    .hint("named arguments are only used by optimizers in `train` blocks"),
            );
            return None;
        }
        let name = func.name.as_str();
        if let Some(kind) = LossKind::from_name(name) {
            return self.loss_call(kind, func, args, span);
        }
        let arity = match (Builtin::from_name(name), name, self.scope.get(name)) {
            (Some(_), _, _) | (None, "sum", _) => 1,
            (None, _, Some(Entity::Func(_, n))) => n,
            (None, _, other) => {
                let d = match other {
                    Some(e) => Diagnostic::error(
                        codes::UNKNOWN_FUNCTION,
                        format!("`{name}` is a {}, not a function", e.describe()),
                    )
                    .at(func.span, "not a function"),
                    None => {
                        let user = self.funcs.iter().map(|f| f.name.as_str());
                        let d = Diagnostic::error(codes::UNKNOWN_FUNCTION, format!("unknown function `{name}`"))
                            .at(func.span, "not defined");
                        match names::suggest(name, BUILTIN_NAMES.into_iter().chain(user)) {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d.hint("define it with `fn name(t) = ...`"),
                        }
                    }
                };
                self.diags.push(d);
                return None;
            }
        };
        let typed: Vec<Option<TExpr>> = args.iter().map(|a| self.texpr(&a.value)).collect();
        if args.len() != arity {
            self.diags.push(arg_count(func, arity, args.len(), span));
            return None;
        }
        let mut typed: Vec<TExpr> = typed.into_iter().collect::<Option<_>>()?;
        if let Some(b) = Builtin::from_name(name) {
            let t = typed.pop()?;
            return Some(TExpr { shape: t.shape.clone(), kind: TExprKind::Builtin(b, Box::new(t)), span });
        }
        if name == "sum" {
            let t = typed.pop()?;
            return Some(scalar(TExprKind::Sum(Box::new(t)), span));
        }
        let Some(Entity::Func(id, _)) = self.scope.get(name) else { return None };
        self.used.insert(Entity::Func(id, arity));
        // Elementwise: all tensor arguments share one shape; scalars broadcast.
        let mut shape: Option<&TExpr> = None;
        for t in typed.iter().filter(|t| !t.shape.is_empty()) {
            match shape {
                Some(s) if s.shape != t.shape => {
                    self.diags.push(
                        Diagnostic::error(
                            codes::SHAPE_MISMATCH,
                            format!("arguments of `{name}` have shapes `{}` and `{}`", show(&s.shape), show(&t.shape)),
                        )
                        .at(t.span, format!("this is `{}`", show(&t.shape)))
                        .also(s.span, format!("this is `{}`", show(&s.shape))),
                    );
                    return None;
                }
                _ => shape = Some(t),
            }
        }
        let shape = shape.map(|t| t.shape.clone()).unwrap_or_default();
        Some(TExpr { kind: TExprKind::Call(id, typed), shape, span })
    }

    /// `softmax_cross_entropy(z, y)` etc.: `z` is `[k]`, `y` a label with `k` classes.
    fn loss_call(&mut self, kind: LossKind, func: &Ident, args: &[Arg], span: Span) -> Option<TExpr> {
        let [z, y] = args else {
            for a in args {
                self.texpr(&a.value);
            }
            self.diags.push(arg_count(func, 2, args.len(), span));
            return None;
        };
        let z = self.texpr(&z.value);
        let label = match &y.value.kind {
            ExprKind::Name(n) => match self.scope.get(n) {
                Some(Entity::Label(id)) => Some(id),
                None => {
                    self.undefined_name(n, y.span);
                    return None;
                }
                Some(_) => None,
            },
            _ => None,
        };
        let Some(label_id) = label else {
            self.diags.push(
                Diagnostic::error(
                    codes::LOSS_LABEL,
                    format!("the second argument of `{}` must be a label", kind.name()),
                )
                .at(y.span, "not a label")
                .hint("declare one with `label y : onehot[k]` and pass it here"),
            );
            return None;
        };
        self.used.insert(Entity::Label(label_id));
        let z = z?;
        let label = &self.labels[label_id.index()];
        if z.shape != [label.classes] {
            self.diags.push(
                Diagnostic::error(
                    codes::LOSS_LABEL,
                    format!(
                        "`{}` needs logits `fixed[{}]` for label `{}`, found `{}`",
                        kind.name(),
                        label.classes,
                        label.name,
                        show(&z.shape)
                    ),
                )
                .at(z.span, format!("this is `{}`", show(&z.shape)))
                .also(label.span, format!("`{}` has {} classes", label.name, label.classes)),
            );
            return None;
        }
        let y = TExpr { kind: TExprKind::Label(label_id), shape: vec![label.classes], span: y.span };
        Some(scalar(TExprKind::Loss(kind, Box::new(z), Box::new(y)), span))
    }
}

pub fn arg_count(func: &Ident, want: usize, got: usize, span: Span) -> Diagnostic {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    Diagnostic::error(
        codes::ARG_COUNT,
        format!(
            "`{}` takes {want} {} but {got} {} {} given",
            func.name,
            plural(want),
            plural(got),
            if got == 1 { "was" } else { "were" }
        ),
    )
    .at(span, format!("expected {want} {}", plural(want)))
}
