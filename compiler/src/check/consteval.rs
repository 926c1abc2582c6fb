//! Constant expressions: literals, named dims, `+ - * / ^` and unary minus.
//!
//! Used wherever the language needs a number known at compile time: dims and
//! shapes, ranges, inits, tables, train settings. Every failure is reported here, so
//! callers just propagate `None`.

use super::codes;
use crate::diag::Diagnostic;
use blindtuner_grammar::ast::{BinOp, Expr, ExprKind, Range, Span, UnOp};

/// Largest dimension and largest tensor (in elements) the compiler accepts. Keeps
/// later passes (and the clear backend) from allocating absurd amounts.
pub const MAX_ELEMENTS: usize = 1_000_000;

/// Resolves names in constant expressions (the dims in scope).
pub trait ConstEnv {
    fn dim(&self, name: &str) -> Option<usize>;
}

impl ConstEnv for () {
    fn dim(&self, _: &str) -> Option<usize> {
        None
    }
}

/// Value of a literal, reporting a malformed one.
pub fn literal(text: &str, value: Option<f64>, span: Span, diags: &mut Vec<Diagnostic>) -> Option<f64> {
    if value.is_none() {
        diags.push(
            Diagnostic::error(codes::BAD_NUMBER, format!("bad numeric literal `{text}`"))
                .at(span, "not a number")
                .hint("write numbers like `3`, `0.25` or `1e-3`"),
        );
    }
    value
}

/// Evaluate a constant expression.
pub fn eval(e: &Expr, env: &dyn ConstEnv, diags: &mut Vec<Diagnostic>) -> Option<f64> {
    let v = match &e.kind {
        ExprKind::Number { text, value } => literal(text, *value, e.span, diags)?,
        ExprKind::Name(n) => match env.dim(n) {
            Some(v) => v as f64,
            None => {
                diags.push(not_constant(e.span, format!("`{n}` is not a constant")));
                return None;
            }
        },
        ExprKind::Unary { op: UnOp::Neg, operand } => -eval(operand, env, diags)?,
        ExprKind::Binary { op, lhs, rhs } => {
            // Evaluate both sides so independent problems are all reported.
            let (a, b) = (eval(lhs, env, diags), eval(rhs, env, diags));
            let (a, b) = (a?, b?);
            match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Pow => a.powf(b),
                BinOp::MatMul => {
                    diags.push(not_constant(e.span, "`@` is not a constant operation".to_string()));
                    return None;
                }
            }
        }
        ExprKind::Call { func, .. } => {
            diags.push(not_constant(e.span, format!("call of `{}` is not a constant", func.name)));
            return None;
        }
        ExprKind::List(_) => {
            diags.push(not_constant(e.span, "a list is not a number".to_string()));
            return None;
        }
        ExprKind::Error => return None,
    };
    if !v.is_finite() {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, "constant expression is not a finite number")
                .at(e.span, format!("evaluates to {v}"))
                .hint("check for division by zero or overflow"),
        );
        return None;
    }
    Some(v)
}

fn not_constant(span: Span, message: String) -> Diagnostic {
    Diagnostic::error(codes::NOT_CONSTANT, message)
        .at(span, "expected a constant")
        .hint("only numbers, dims and `+ - * / ^` are allowed here")
}

/// A whole number in `[min, max]`; `what` names the value in messages.
pub fn eval_int(
    e: &Expr,
    env: &dyn ConstEnv,
    min: f64,
    max: f64,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<f64> {
    let v = eval(e, env, diags)?;
    if v.fract() != 0.0 || v < min || v > max {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, format!("{what} must be a whole number from {min} to {max}"))
                .at(e.span, format!("this is {v}")),
        );
        return None;
    }
    Some(v)
}

/// A dimension: a whole number in `1..=MAX_ELEMENTS`.
pub fn eval_dim(e: &Expr, env: &dyn ConstEnv, diags: &mut Vec<Diagnostic>) -> Option<usize> {
    let v = eval(e, env, diags)?;
    if v.fract() != 0.0 || v < 1.0 {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, "a dimension must be a positive whole number")
                .at(e.span, format!("this is {v}")),
        );
        return None;
    }
    if v > MAX_ELEMENTS as f64 {
        diags.push(too_large(e.span, format!("dimension {v} is larger than {MAX_ELEMENTS}")));
        return None;
    }
    Some(v as usize)
}

pub fn too_large(span: Span, message: String) -> Diagnostic {
    Diagnostic::error(codes::TOO_LARGE, message)
        .at(span, "too large")
        .hint(format!("tensors may have at most {MAX_ELEMENTS} elements; override dims with `--set name=value`"))
}

/// `[lo, hi]` with `lo < hi`.
pub fn eval_range(r: &Range, env: &dyn ConstEnv, diags: &mut Vec<Diagnostic>) -> Option<(f64, f64)> {
    let (lo, hi) = (eval(&r.lo, env, diags), eval(&r.hi, env, diags));
    let (lo, hi) = (lo?, hi?);
    if lo >= hi {
        let d = Diagnostic::error(codes::EMPTY_RANGE, format!("empty range [{lo}, {hi}]"))
            .at(r.span, "the low end must be below the high end");
        diags.push(if lo > hi { d.hint(format!("did you mean [{hi}, {lo}]?")) } else { d });
        return None;
    }
    Some((lo, hi))
}
