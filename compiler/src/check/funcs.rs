//! User functions: `fn f(t) = expr` becomes a [`ScalarExpr`] over the parameters,
//! `fn f(t) = table [...] over [lo, hi]` a sampled table. Both are scalar and apply
//! elementwise; later passes lower them to lookup tables.

use super::codes;
use super::consteval::{self, ConstEnv};
use super::names::{self, Entity, Scope};
use super::shapes::arg_count;
use crate::diag::Diagnostic;
use crate::spec::{Builtin, FuncBody, FuncDecl, LossKind, ScalarBin, ScalarExpr};
use blindtuner_grammar::ast::{self, BinOp, Expr, ExprKind, UnOp};

/// Check one definition against the names visible to it (dims and earlier
/// functions). The caller defines the function's name afterwards.
pub fn check_func(def: &ast::FuncDef, scope: &Scope, diags: &mut Vec<Diagnostic>) -> Option<FuncDecl> {
    let mut ok = true;
    for (i, p) in def.params.iter().enumerate() {
        if let Some(first) = def.params[..i].iter().find(|q| q.name == p.name) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("parameter `{}` is listed twice", p.name))
                    .at(p.span, "repeated here")
                    .also(first.span, "first here"),
            );
            ok = false;
        }
    }
    let body = match &def.body {
        ast::FuncBody::Expr(e) => FuncLowering { def, scope, diags }.lower(e).map(FuncBody::Expr),
        ast::FuncBody::Table { values, over } => table(def, values, over, scope, diags),
    };
    let body = body.filter(|_| ok)?;
    Some(FuncDecl {
        name: def.name.name.clone(),
        params: def.params.iter().map(|p| p.name.clone()).collect(),
        body,
        span: def.span,
    })
}

fn table(
    def: &ast::FuncDef,
    values: &[Expr],
    over: &ast::Range,
    env: &dyn ConstEnv,
    diags: &mut Vec<Diagnostic>,
) -> Option<FuncBody> {
    let mut ok = true;
    if def.params.len() != 1 {
        diags.push(
            Diagnostic::error(
                codes::ARG_COUNT,
                format!("a table function takes 1 parameter, found {}", def.params.len()),
            )
            .at(def.name.span, "table with several inputs")
            .hint("tables are sampled on one axis; combine inputs with an expression instead"),
        );
        ok = false;
    }
    if values.len() < 2 {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, format!("a table needs at least 2 values, found {}", values.len()))
                .at(def.span, "too few samples"),
        );
        ok = false;
    }
    let vals: Vec<Option<f64>> = values.iter().map(|v| consteval::eval(v, env, diags)).collect();
    let range = consteval::eval_range(over, env, diags);
    let vals: Option<Vec<f64>> = vals.into_iter().collect();
    let (values, (lo, hi)) = (vals?, range?);
    ok.then_some(FuncBody::Table { values, lo, hi })
}

struct FuncLowering<'a, 'd> {
    def: &'a ast::FuncDef,
    scope: &'a Scope,
    diags: &'d mut Vec<Diagnostic>,
}

impl FuncLowering<'_, '_> {
    fn lower(&mut self, e: &Expr) -> Option<ScalarExpr> {
        match &e.kind {
            ExprKind::Number { text, value } => {
                consteval::literal(text, *value, e.span, self.diags).map(ScalarExpr::Const)
            }
            ExprKind::Name(n) => self.name(n, e.span),
            ExprKind::Unary { op: UnOp::Neg, operand } => Some(match self.lower(operand)? {
                ScalarExpr::Const(v) => ScalarExpr::Const(-v),
                s => ScalarExpr::Neg(Box::new(s)),
            }),
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.lower(lhs), self.lower(rhs));
                let (a, b) = (a?, b?);
                let bin = match op {
                    BinOp::Add => ScalarBin::Add,
                    BinOp::Sub => ScalarBin::Sub,
                    BinOp::Mul => ScalarBin::Mul,
                    BinOp::Div => ScalarBin::Div,
                    BinOp::Pow => return self.pow(a, b, e.span),
                    BinOp::MatMul => {
                        self.diags.push(
                            Diagnostic::error(codes::NOT_ALLOWED_HERE, "`@` is not allowed in a function body")
                                .at(e.span, "functions are scalar")
                                .note("user functions apply elementwise; do matrix products in the model"),
                        );
                        return None;
                    }
                };
                Some(ScalarExpr::Bin(bin, Box::new(a), Box::new(b)))
            }
            ExprKind::Call { func, args } => self.call(func, args, e.span),
            ExprKind::List(_) => {
                self.diags.push(
                    Diagnostic::error(codes::NOT_ALLOWED_HERE, "a list is not a scalar")
                        .at(e.span, "list not allowed here")
                        .hint("for a sampled function write `fn f(t) = table [...] over [lo, hi]`"),
                );
                None
            }
            ExprKind::Error => None,
        }
    }

    fn name(&mut self, n: &str, span: ast::Span) -> Option<ScalarExpr> {
        if let Some(i) = self.def.params.iter().position(|p| p.name == n) {
            return Some(ScalarExpr::Param(i));
        }
        match self.scope.get(n) {
            Some(Entity::Dim(v)) => Some(ScalarExpr::Const(v as f64)),
            Some(other) => {
                self.diags.push(
                    Diagnostic::error(
                        codes::NOT_ALLOWED_HERE,
                        format!("function `{}` cannot use {} `{n}`", self.def.name.name, other.describe()),
                    )
                    .at(span, "not a parameter of the function")
                    .hint(format!("pass it as a parameter: `fn {}(..., {n})`", self.def.name.name)),
                );
                None
            }
            None => {
                let params = self.def.params.iter().map(|p| p.name.as_str());
                self.diags.push(names::undefined("name", n, span, names::suggest(n, params)));
                None
            }
        }
    }

    fn pow(&mut self, a: ScalarExpr, b: ScalarExpr, span: ast::Span) -> Option<ScalarExpr> {
        if let (ScalarExpr::Const(x), ScalarExpr::Const(y)) = (&a, &b) {
            let v = x.powf(*y);
            if v.is_finite() {
                return Some(ScalarExpr::Const(v));
            }
        }
        self.diags.push(
            Diagnostic::error(codes::NOT_CONSTANT, "`^` only works on constants")
                .at(span, "non-constant power")
                .hint("write powers as products, e.g. `t * t`"),
        );
        None
    }

    fn call(&mut self, func: &ast::Ident, args: &[ast::Arg], span: ast::Span) -> Option<ScalarExpr> {
        let name = func.name.as_str();
        let lowered: Vec<Option<ScalarExpr>> = args.iter().map(|a| self.lower(&a.value)).collect();
        if name == self.def.name.name {
            self.diags.push(
                Diagnostic::error(codes::RECURSIVE_FUNCTION, format!("function `{name}` calls itself"))
                    .at(span, "recursive call")
                    .note("functions are lowered to lookup tables and cannot recurse"),
            );
            return None;
        }
        let (target, arity) = if let Some(b) = Builtin::from_name(name) {
            (Some(b), 1)
        } else if let Some(Entity::Func(id, n)) = self.scope.get(name) {
            if args.len() != n {
                self.diags.push(arg_count(func, n, args.len(), span));
                return None;
            }
            let args: Vec<ScalarExpr> = lowered.into_iter().collect::<Option<_>>()?;
            return Some(ScalarExpr::Call(id, args));
        } else {
            let d = if LossKind::from_name(name).is_some() || name == "sum" {
                Diagnostic::error(codes::NOT_ALLOWED_HERE, format!("`{name}` cannot be used in a function body"))
                    .at(func.span, "not elementwise")
            } else {
                let d = Diagnostic::error(codes::UNKNOWN_FUNCTION, format!("unknown function `{name}`"))
                    .at(func.span, "not defined");
                let builtins = ["relu", "sigmoid", "exp", "log", "tanh", "softplus"];
                match names::suggest(name, builtins) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint("functions must be defined before they are used"),
                }
            };
            self.diags.push(d);
            return None;
        };
        if args.len() != arity || args.iter().any(|a| a.name.is_some()) {
            self.diags.push(arg_count(func, arity, args.len(), span));
            return None;
        }
        let arg = lowered.into_iter().next().flatten()?;
        Some(ScalarExpr::Builtin(target?, Box::new(arg)))
    }
}
