//! Semantic checking: AST → [`Spec`].
//!
//! One pass per concern, each in its own module:
//! - `consteval`: constant expressions (dims, ranges, settings);
//! - `names`: scopes, duplicates, "did you mean" suggestions;
//! - `types`: tensor types and fixed-point format pins;
//! - `funcs`: user functions → scalar expressions or tables;
//! - `model`: one model body (declarations, bindings, loss, unused names);
//! - `shapes`: typing of tensor expressions;
//! - `train`: the train block.
//!
//! Checking never stops at the first problem: every independent error of the file
//! is reported, and a failed declaration is "poisoned" so its uses do not produce
//! follow-up errors. A [`Spec`] is returned only if no error was found.

pub mod codes;
mod consteval;
mod funcs;
mod model;
mod names;
mod shapes;
mod train;
mod types;

pub use consteval::MAX_ELEMENTS;

use crate::diag::{has_errors, Diagnostic};
use crate::spec::Spec;
use blindtuner_grammar::ast::{self, Item, Span};
use blindtuner_grammar::{ParseError, ParseErrorKind};
use model::{Globals, ModelChecker};
use names::Entity;
use std::collections::{BTreeMap, BTreeSet};

/// Parse and check a source file.
pub fn check_source(src: &str, overrides: &BTreeMap<String, usize>) -> (Option<Spec>, Vec<Diagnostic>) {
    let (file, parse_errors) = blindtuner_grammar::parse(src);
    let mut diags: Vec<Diagnostic> = parse_errors.iter().map(parse_diagnostic).collect();
    let (spec, more) = check(&file, src.len(), overrides);
    diags.extend(more);
    sort(&mut diags);
    let spec = spec.filter(|_| !has_errors(&diags));
    (spec, diags)
}

/// The diagnostic for a syntax problem.
pub fn parse_diagnostic(e: &ParseError) -> Diagnostic {
    let (code, label) = match e.kind {
        ParseErrorKind::Syntax => (codes::SYNTAX, "unexpected here"),
        ParseErrorKind::UnexpectedChar => (codes::UNEXPECTED_CHAR, "not part of the language"),
        ParseErrorKind::Unclosed => (codes::UNCLOSED_DELIMITER, "never closed"),
        ParseErrorKind::Unmatched => (codes::UNMATCHED_DELIMITER, "no matching opener"),
        ParseErrorKind::TooDeep => (codes::TOO_COMPLEX, "limit exceeded here"),
    };
    let d = Diagnostic::error(code, e.message.clone()).at(e.span, label);
    match e.kind {
        ParseErrorKind::Unclosed if !e.expected.is_empty() => {
            d.hint(format!("add the missing {}", e.expected.join(" or ")))
        }
        ParseErrorKind::Unmatched => d.hint("remove it, or add the opening delimiter it closes"),
        ParseErrorKind::UnexpectedChar => d.hint("comments start with `#` or `//`"),
        ParseErrorKind::TooDeep => d.note("split the expression into several bindings"),
        _ => d,
    }
}

/// Check a parsed file. The spec is that of the model with a train block (the first
/// one if several), else of the first model; every model is checked.
pub fn check(
    file: &ast::File,
    source_len: usize,
    overrides: &BTreeMap<String, usize>,
) -> (Option<Spec>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let globals = globals(file, &mut diags);
    let models: Vec<&ast::Model> =
        file.items.iter().filter_map(|i| if let Item::Model(m) = i { Some(m) } else { None }).collect();
    let trains = train_blocks(file, &models, &mut diags);

    if models.is_empty() {
        // A file that failed to parse already has errors; "no model" would be noise.
        if !file.items.iter().any(|i| matches!(i, Item::Error(_))) {
            diags.push(
                Diagnostic::error(codes::NO_MODEL, "no model in file")
                    .at(Span::new(0, 0), "expected a `model` block")
                    .hint("define one: `model name { input x : fixed[4] in [-1, 1] ... }`"),
            );
        }
        sort(&mut diags);
        return (None, diags);
    }
    check_overrides(&models, overrides, &mut diags);

    let chosen = models.iter().position(|m| trains.contains_key(m.name.name.as_str())).unwrap_or(0);
    if models.len() > 1 {
        diags.push(
            Diagnostic::warning(codes::SEVERAL_MODELS, format!("{} models in one file", models.len()))
                .at(models[chosen].name.span, "this one is compiled")
                .note("the model with a train block is compiled (the first if several); the others are only checked"),
        );
    }

    let mut spec = None;
    for (i, m) in models.iter().enumerate() {
        let s = check_model(m, trains.get(m.name.name.as_str()).copied(), &globals, overrides, &mut diags);
        if i == chosen {
            spec = s;
        }
    }
    sort(&mut diags);
    clamp_spans(&mut diags, source_len);
    let spec = spec.filter(|_| !has_errors(&diags));
    (spec, diags)
}

/// Safety net for the renderer and for tools reading spans: every label lies
/// within the source, even if an AST was built from different text.
fn clamp_spans(diags: &mut [Diagnostic], source_len: usize) {
    for label in diags.iter_mut().flat_map(|d| d.labels.iter_mut()) {
        label.span.end = label.span.end.min(source_len);
        label.span.start = label.span.start.min(label.span.end);
    }
}

/// Top-level functions, checked once for all models.
fn globals(file: &ast::File, diags: &mut Vec<Diagnostic>) -> Globals {
    let mut g = Globals::default();
    for item in &file.items {
        if let Item::Func(def) = item {
            let id = crate::spec::FuncId(g.funcs.len() as u32);
            if let Some(decl) = funcs::check_func(def, &g.scope, diags) {
                let arity = decl.params.len();
                if g.scope.define(&def.name, Entity::Func(id, arity), diags) {
                    g.funcs.push(decl);
                }
            }
        }
    }
    g
}

/// Train blocks by model name; reports blocks for unknown models and duplicates.
fn train_blocks<'f>(
    file: &'f ast::File,
    models: &[&ast::Model],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<&'f str, &'f ast::Train> {
    let mut by_model: BTreeMap<&str, &ast::Train> = BTreeMap::new();
    for item in &file.items {
        let Item::Train(t) = item else { continue };
        let name = t.model.name.as_str();
        if !models.iter().any(|m| m.name.name == name) {
            let d = Diagnostic::error(codes::TRAIN_UNKNOWN_MODEL, format!("train block for unknown model `{name}`"))
                .at(t.model.span, "no model with this name");
            let d = match names::suggest(name, models.iter().map(|m| m.name.name.as_str())) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d,
            };
            diags.push(d);
            continue;
        }
        if let Some(first) = by_model.get(name) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("model `{name}` has two train blocks"))
                    .at(t.model.span, "second train block")
                    .also(first.model.span, "first train block"),
            );
            continue;
        }
        by_model.insert(name, t);
    }
    // Duplicate model names.
    for (i, m) in models.iter().enumerate() {
        if let Some(first) = models[..i].iter().find(|p| p.name.name == m.name.name) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("model `{}` is defined more than once", m.name.name))
                    .at(m.name.span, "redefined here")
                    .also(first.name.span, "first defined here"),
            );
        }
    }
    by_model
}

/// Every `--set name=value` must name a dim of some model.
fn check_overrides(models: &[&ast::Model], overrides: &BTreeMap<String, usize>, diags: &mut Vec<Diagnostic>) {
    let dims: BTreeSet<&str> = models
        .iter()
        .flat_map(|m| m.stmts.iter())
        .filter_map(|s| if let ast::Stmt::Dim { name, .. } = s { Some(name.name.as_str()) } else { None })
        .collect();
    for name in overrides.keys() {
        if dims.contains(name.as_str()) {
            continue;
        }
        let listed = if dims.is_empty() {
            "the model declares no dims".to_string()
        } else {
            format!("declared dims: {}", dims.iter().copied().collect::<Vec<_>>().join(", "))
        };
        let hint = match names::suggest(name, dims.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? {listed}"),
            None => listed,
        };
        diags.push(
            Diagnostic::error(codes::UNKNOWN_OVERRIDE, format!("`--set {name}`: no dim named `{name}`")).hint(hint),
        );
    }
}

fn check_model(
    m: &ast::Model,
    train: Option<&ast::Train>,
    globals: &Globals,
    overrides: &BTreeMap<String, usize>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spec> {
    let mut mc = ModelChecker::new(globals, diags);
    mc.body(m, overrides);
    let train = mc.train(m, train);
    let loss = mc.finish(m)?;
    Some(Spec {
        name: m.name.name.clone(),
        span: m.span,
        dims: mc.dims,
        inputs: mc.inputs,
        labels: mc.labels,
        params: mc.params,
        funcs: mc.funcs,
        lets: mc.lets,
        loss,
        train,
    })
}

/// Diagnostics in source order (stable, so equal positions keep discovery order).
fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| d.primary_span().start);
}
