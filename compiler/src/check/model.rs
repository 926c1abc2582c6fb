//! Checking one `model` block: declarations, then bindings in order, then the
//! whole-model rules (loss, input ranges, unused names).
//!
//! Expression typing lives in `shapes.rs` and train settings in `train.rs`; both
//! extend [`ModelChecker`], which owns the tables being built.

use super::codes;
use super::consteval::{self, ConstEnv, MAX_ELEMENTS};
use super::funcs;
use super::names::{Entity, Scope};
use super::types::{self, Kind};
use crate::diag::Diagnostic;
use crate::spec::*;
use blindtuner_grammar::ast::{self, Ident, Stmt};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Top-level functions, checked once and shared by every model.
#[derive(Clone, Debug, Default)]
pub struct Globals {
    pub scope: Scope,
    pub funcs: Vec<FuncDecl>,
}

pub struct ModelChecker<'d> {
    pub diags: &'d mut Vec<Diagnostic>,
    pub scope: Scope,
    pub dims: Vec<DimDecl>,
    pub inputs: Vec<InputDecl>,
    /// Whether each input got a range (in the model or the train block).
    pub input_has_range: Vec<bool>,
    pub labels: Vec<LabelDecl>,
    pub params: Vec<ParamDecl>,
    pub funcs: Vec<FuncDecl>,
    pub lets: Vec<LetDecl>,
    /// Entities referenced by some expression (for unused warnings).
    pub used: HashSet<Entity>,
    /// Names whose declaration failed: uses are not reported again as undefined.
    pub poisoned: HashSet<String>,
    /// Bindings defined further down, for "defined later" hints.
    pub later_lets: HashMap<String, ast::Span>,
    /// The body had no error: usage is known for sure, unused warnings are valid
    /// (after an error they would mostly be follow-ups).
    pub body_clean: bool,
}

impl ConstEnv for Scope {
    fn dim(&self, name: &str) -> Option<usize> {
        match self.get(name) {
            Some(Entity::Dim(v)) => Some(v),
            _ => None,
        }
    }
}

impl<'d> ModelChecker<'d> {
    pub fn new(globals: &Globals, diags: &'d mut Vec<Diagnostic>) -> ModelChecker<'d> {
        ModelChecker {
            diags,
            scope: globals.scope.clone(),
            dims: Vec::new(),
            inputs: Vec::new(),
            input_has_range: Vec::new(),
            labels: Vec::new(),
            params: Vec::new(),
            funcs: globals.funcs.clone(),
            lets: Vec::new(),
            used: HashSet::new(),
            poisoned: HashSet::new(),
            later_lets: HashMap::new(),
            body_clean: false,
        }
    }

    /// Declarations and bindings of the model body.
    pub fn body(&mut self, model: &ast::Model, overrides: &BTreeMap<String, usize>) {
        let start = self.diags.len();
        // Dims first so that shapes may use any of them, wherever declared.
        for stmt in &model.stmts {
            if let Stmt::Dim { name, value, span } = stmt {
                self.dim(name, value, *span, overrides);
            }
        }
        for stmt in &model.stmts {
            match stmt {
                Stmt::Func(def) => self.func(def),
                Stmt::Input { name, ty, range, span } => self.input(name, ty, range.as_ref(), *span),
                Stmt::Label { name, ty, span } => self.label(name, ty, *span),
                Stmt::Param { name, ty, init, range, span } => {
                    self.param(name, ty, init.as_ref(), range.as_ref(), *span)
                }
                Stmt::Let { name, .. } => {
                    self.later_lets.entry(name.name.clone()).or_insert(name.span);
                }
                Stmt::Dim { .. } | Stmt::Error(_) => {}
            }
        }
        for stmt in &model.stmts {
            if let Stmt::Let { name, ty, value, range, span } = stmt {
                self.let_binding(name, ty.as_ref(), value, range.as_ref(), *span);
            }
        }
        let has_syntax_errors = model.stmts.iter().any(|s| matches!(s, Stmt::Error(_)));
        self.body_clean =
            !has_syntax_errors && self.poisoned.is_empty() && !self.diags[start..].iter().any(Diagnostic::is_error);
    }

    fn define(&mut self, name: &Ident, entity: Option<Entity>) {
        match entity {
            Some(e) => {
                self.scope.define(name, e, self.diags);
            }
            None => {
                self.poisoned.insert(name.name.clone());
            }
        }
    }

    fn dim(&mut self, name: &Ident, value: &ast::Expr, span: ast::Span, overrides: &BTreeMap<String, usize>) {
        let declared = consteval::eval_dim(value, &self.scope, self.diags);
        let value = match overrides.get(&name.name) {
            Some(&v) if v == 0 || v > MAX_ELEMENTS => {
                self.diags.push(
                    Diagnostic::error(codes::BAD_VALUE, format!("override `{}={v}` is out of range", name.name))
                        .at(name.span, format!("dimension set from the command line to {v}"))
                        .hint(format!("dimensions must be from 1 to {MAX_ELEMENTS}")),
                );
                None
            }
            Some(&v) => declared.map(|_| v),
            None => declared,
        };
        if let Some(v) = value {
            self.dims.push(DimDecl { name: name.name.clone(), value: v, span });
        }
        self.define(name, value.map(Entity::Dim));
    }

    fn func(&mut self, def: &ast::FuncDef) {
        let id = FuncId(self.funcs.len() as u32);
        let decl = funcs::check_func(def, &self.scope, self.diags);
        let entity = decl.as_ref().map(|d| Entity::Func(id, d.params.len()));
        if let Some(d) = decl {
            self.funcs.push(d);
        }
        self.define(&def.name, entity);
    }

    fn input(&mut self, name: &Ident, ty: &ast::TensorType, range: Option<&ast::Range>, span: ast::Span) {
        let t = types::tensor_type(ty, Kind::Fixed, "an input", &self.scope, self.diags);
        let r = range.map(|r| consteval::eval_range(r, &self.scope, self.diags));
        let entity = match (t, r) {
            (Some((shape, format)), None | Some(Some(_))) => {
                let id = InputId(self.inputs.len() as u32);
                let range = r.flatten();
                self.inputs.push(InputDecl {
                    name: name.name.clone(),
                    shape,
                    range: range.unwrap_or((0.0, 0.0)),
                    format,
                    span,
                });
                self.input_has_range.push(range.is_some());
                Some(Entity::Input(id))
            }
            _ => None,
        };
        self.define(name, entity);
    }

    fn label(&mut self, name: &Ident, ty: &ast::TensorType, span: ast::Span) {
        let t = types::tensor_type(ty, Kind::OneHot, "a label", &self.scope, self.diags);
        let entity = t.and_then(|(shape, _)| {
            let classes = *shape.first()?;
            if classes < 2 {
                self.diags.push(
                    Diagnostic::error(codes::BAD_VALUE, "a label needs at least 2 classes")
                        .at(ty.span, format!("{classes} class")),
                );
                return None;
            }
            let id = LabelId(self.labels.len() as u32);
            self.labels.push(LabelDecl { name: name.name.clone(), classes, span });
            Some(Entity::Label(id))
        });
        self.define(name, entity);
    }

    fn param(
        &mut self,
        name: &Ident,
        ty: &ast::TensorType,
        init: Option<&ast::Expr>,
        range: Option<&ast::Range>,
        span: ast::Span,
    ) {
        let t = types::tensor_type(ty, Kind::Fixed, "a parameter", &self.scope, self.diags);
        let init = match init {
            Some(e) => self.init(e),
            None => Some(Init::Zeros),
        };
        let range = range.map(|r| consteval::eval_range(r, &self.scope, self.diags));
        let entity = match (t, init, range) {
            (Some((shape, format)), Some(init), None | Some(Some(_))) => {
                let id = ParamId(self.params.len() as u32);
                self.params.push(ParamDecl {
                    name: name.name.clone(),
                    shape,
                    init,
                    range: range.flatten(),
                    format,
                    span,
                });
                Some(Entity::Param(id))
            }
            _ => None,
        };
        self.define(name, entity);
    }

    /// `zeros`, a constant, `uniform(lo, hi)`, `normal(std)`, `xavier`.
    fn init(&mut self, e: &ast::Expr) -> Option<Init> {
        use ast::ExprKind;
        let bad = |e: &ast::Expr, msg: String| {
            Diagnostic::error(codes::BAD_INIT, msg)
                .at(e.span, "unknown initialiser")
                .hint("use `zeros`, a number, `uniform(lo, hi)`, `normal(std)` or `xavier`")
        };
        match &e.kind {
            ExprKind::Name(n) if n == "zeros" => Some(Init::Zeros),
            ExprKind::Name(n) if n == "xavier" => Some(Init::Xavier),
            ExprKind::Name(n) if self.scope.dim(n).is_none() => {
                self.diags.push(bad(e, format!("unknown initialiser `{n}`")));
                None
            }
            ExprKind::Call { func, args } => {
                let want = match func.name.as_str() {
                    "uniform" => 2,
                    "normal" => 1,
                    other => {
                        let known = ["uniform", "normal", "zeros", "xavier"];
                        let d = bad(e, format!("unknown initialiser `{other}`"));
                        self.diags.push(match super::names::suggest(other, known) {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d,
                        });
                        return None;
                    }
                };
                if args.len() != want || args.iter().any(|a| a.name.is_some()) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::ARG_COUNT,
                            format!("`{}` takes {want} positional argument(s), found {}", func.name, args.len()),
                        )
                        .at(e.span, "wrong arguments"),
                    );
                    return None;
                }
                let vals: Vec<Option<f64>> =
                    args.iter().map(|a| consteval::eval(&a.value, &self.scope, self.diags)).collect();
                let vals: Option<Vec<f64>> = vals.into_iter().collect();
                match vals?.as_slice() {
                    [lo, hi] if lo >= hi => {
                        self.diags.push(
                            Diagnostic::error(codes::EMPTY_RANGE, format!("empty range uniform({lo}, {hi})"))
                                .at(e.span, "the low end must be below the high end"),
                        );
                        None
                    }
                    &[lo, hi] => Some(Init::Uniform(lo, hi)),
                    &[std] if std <= 0.0 => {
                        self.diags.push(
                            Diagnostic::error(codes::BAD_VALUE, "the standard deviation must be positive")
                                .at(args[0].value.span, format!("this is {std}")),
                        );
                        None
                    }
                    &[std] => Some(Init::Normal(std)),
                    _ => None,
                }
            }
            _ => consteval::eval(e, &self.scope, self.diags).map(Init::Const),
        }
    }

    fn let_binding(
        &mut self,
        name: &Ident,
        ty: Option<&ast::TensorType>,
        value: &ast::Expr,
        range: Option<&ast::Range>,
        span: ast::Span,
    ) {
        self.later_lets.remove(&name.name);
        let v = self.texpr(value);
        let pinned = ty.map(|t| types::tensor_type(t, Kind::Fixed, "a binding", &self.scope, self.diags));
        let range = range.map(|r| consteval::eval_range(r, &self.scope, self.diags));
        let mut ok = v.is_some() && !matches!(pinned, Some(None)) && !matches!(range, Some(None));
        let mut format = None;
        if let (Some(v), Some(Some((shape, pin))), Some(t)) = (&v, &pinned, ty) {
            // A declared type with no dims pins only the format; with dims it must
            // agree with the inferred shape.
            if !t.dims.is_empty() && *shape != v.shape {
                self.diags.push(
                    Diagnostic::error(
                        codes::SHAPE_MISMATCH,
                        format!(
                            "`{}` is declared `{}` but its value is `{}`",
                            name.name,
                            types::show(shape),
                            types::show(&v.shape)
                        ),
                    )
                    .at(value.span, format!("this is `{}`", types::show(&v.shape)))
                    .also(t.span, "declared here"),
                );
                ok = false;
            }
            format = *pin;
        }
        let entity = match v {
            Some(value) if ok => {
                let id = LetId(self.lets.len() as u32);
                self.lets.push(LetDecl { name: name.name.clone(), value, range: range.flatten(), format, span });
                Some(Entity::Let(id))
            }
            _ => None,
        };
        self.define(name, entity);
    }

    /// Whole-model rules, after the train block was applied. Returns the loss id.
    pub fn finish(&mut self, model: &ast::Model) -> Option<LetId> {
        for (i, input) in self.inputs.iter().enumerate() {
            if !self.input_has_range[i] {
                self.diags.push(
                    Diagnostic::error(codes::INPUT_WITHOUT_RANGE, format!("input `{}` has no range", input.name))
                        .at(input.span, "declare its range with `in [lo, hi]`")
                        .note("the range fixes how inputs are quantized before encryption")
                        .hint(format!("e.g. `input {} : {} in [-4, 4]`", input.name, types::show(&input.shape))),
                );
            }
        }
        let loss = self.loss(model);
        if self.body_clean {
            self.unused_warnings();
        }
        loss
    }

    fn loss(&mut self, model: &ast::Model) -> Option<LetId> {
        match self.scope.get("loss") {
            Some(Entity::Let(id)) => {
                let decl = &self.lets[id.index()];
                if !decl.value.shape.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            codes::LOSS_NOT_SCALAR,
                            format!("the loss must be a scalar, found `{}`", types::show(&decl.value.shape)),
                        )
                        .at(decl.value.span, format!("this is `{}`", types::show(&decl.value.shape)))
                        .hint("reduce it with a loss function or `sum(...)`"),
                    );
                    return None;
                }
                Some(id)
            }
            Some(other) => {
                self.diags.push(
                    Diagnostic::error(codes::MISSING_LOSS, format!("`loss` is a {}, not a binding", other.describe()))
                        .at(model.name.span, "in this model")
                        .hint("rename it and bind `loss = ...`"),
                );
                None
            }
            None if self.poisoned.contains("loss") => None,
            None => {
                self.diags.push(
                    Diagnostic::error(codes::MISSING_LOSS, format!("model `{}` has no loss", model.name.name))
                        .at(model.name.span, "no `loss = ...` binding in this model")
                        .hint("add e.g. `loss = softmax_cross_entropy(z, y)`"),
                );
                None
            }
        }
    }

    fn unused_warnings(&mut self) {
        let mut warns = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if !self.used.contains(&Entity::Param(ParamId(i as u32))) {
                warns.push(
                    Diagnostic::warning(codes::UNUSED_PARAM, format!("parameter `{}` is never used", p.name))
                        .at(p.span, "never used")
                        .note("it would never change during training"),
                );
            }
        }
        for (i, x) in self.inputs.iter().enumerate() {
            if !self.used.contains(&Entity::Input(InputId(i as u32))) {
                warns.push(
                    Diagnostic::warning(codes::UNUSED_INPUT, format!("input `{}` is never used", x.name))
                        .at(x.span, "never used"),
                );
            }
        }
        for (i, l) in self.lets.iter().enumerate() {
            let silent = l.name == "loss" || l.name.starts_with('_');
            if !silent && !self.used.contains(&Entity::Let(LetId(i as u32))) {
                warns.push(
                    Diagnostic::warning(codes::UNUSED_LET, format!("binding `{}` is never used", l.name))
                        .at(l.span, "never used")
                        .hint(format!("remove it, or prefix it with an underscore: `_{}`", l.name)),
                );
            }
        }
        self.diags.extend(warns);
    }
}
