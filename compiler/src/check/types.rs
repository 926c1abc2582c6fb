//! Tensor types (`fixed[h, d]`, `onehot[k]`) and fixed-point format pins
//! (`fixed<12, 4>`).

use super::codes;
use super::consteval::{self, ConstEnv, MAX_ELEMENTS};
use crate::diag::Diagnostic;
use crate::spec::{FormatPin, Shape};
use blindtuner_grammar::ast::{Expr, Span, TensorType};

/// Which element kind a declaration accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fixed,
    OneHot,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Fixed => "fixed",
            Kind::OneHot => "onehot",
        }
    }
}

/// Check a declared type against the kind the declaration needs (`what` names the
/// declaration: "input", "label", ...). Returns the shape and the pinned format.
pub fn tensor_type(
    ty: &TensorType,
    want: Kind,
    what: &str,
    env: &dyn ConstEnv,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Shape, Option<FormatPin>)> {
    let kind_ok = ty.kind.name == want.name();
    if !kind_ok {
        let d = Diagnostic::error(codes::BAD_TYPE, format!("{what} cannot have type `{}`", ty.kind.name))
            .at(ty.kind.span, format!("expected `{}`", want.name()));
        diags.push(match (ty.kind.name.as_str(), want) {
            ("onehot", _) => d.note("`onehot[k]` is only for labels"),
            ("fixed", Kind::OneHot) => d.hint("labels are one-hot class vectors: write `onehot[k]`"),
            _ => d.hint(format!("write `{}[...]`", want.name())),
        });
    }
    let mut shape = Vec::with_capacity(ty.dims.len());
    let mut ok = kind_ok;
    for d in &ty.dims {
        match consteval::eval_dim(d, env, diags) {
            Some(v) => shape.push(v),
            None => ok = false,
        }
    }
    let format = match &ty.format {
        Some(_) if want == Kind::OneHot => {
            diags.push(
                Diagnostic::error(codes::BAD_FORMAT, "labels cannot have a fixed-point format")
                    .at(ty.span, "remove the `<...>`"),
            );
            ok = false;
            None
        }
        Some(args) => {
            let pin = format_pin(args, ty.span, env, diags);
            ok &= pin.is_some();
            pin
        }
        None => None,
    };
    if want == Kind::OneHot && kind_ok && ty.dims.len() != 1 {
        diags.push(
            Diagnostic::error(codes::BAD_TYPE, format!("`onehot` takes one dimension, found {}", ty.dims.len()))
                .at(ty.span, "expected `onehot[k]`"),
        );
        ok = false;
    }
    if ok && !fits(&shape) {
        diags.push(consteval::too_large(
            ty.span,
            format!("tensor `{}` has more than {MAX_ELEMENTS} elements", show(&shape)),
        ));
        ok = false;
    }
    ok.then_some((shape, format))
}

/// Element count within the limit (no overflow on the way).
pub fn fits(shape: &[usize]) -> bool {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).is_some_and(|n| n <= MAX_ELEMENTS)
}

/// `<bits, frac>`: 1 ≤ bits ≤ 64, |frac| ≤ 64.
pub fn format_pin(args: &[Expr], span: Span, env: &dyn ConstEnv, diags: &mut Vec<Diagnostic>) -> Option<FormatPin> {
    let [bits, frac] = args else {
        diags.push(
            Diagnostic::error(codes::BAD_FORMAT, format!("a format takes 2 numbers, found {}", args.len()))
                .at(span, "expected `fixed<bits, frac>`")
                .hint("e.g. `fixed<12, 4>`: 12 bits in total, 4 of them fractional"),
        );
        return None;
    };
    let b = consteval::eval_int(bits, env, 1.0, 64.0, "the number of bits", diags);
    let f = consteval::eval_int(frac, env, -64.0, 64.0, "the number of fractional bits", diags);
    Some(FormatPin { bits: b? as u32, frac: f? as i32, span })
}

/// `fixed[5, 64]`; a scalar shows as `scalar`.
pub fn show(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".to_string();
    }
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("fixed[{}]", dims.join(", "))
}
