//! The `train` block: optimizer and run settings, plus `format`/`range` pins that
//! attach to tensors of the model.

use super::codes;
use super::consteval;
use super::model::ModelChecker;
use super::names::{self, Entity};
use super::types;
use crate::diag::Diagnostic;
use crate::spec::{FormatPin, LrSchedule, Optimizer, Precision, TrainCfg};
use blindtuner_grammar::ast::{self, Expr, ExprKind, Ident, Span, TrainItem};
use std::collections::HashMap;

const SETTINGS: [&str; 8] = ["optimizer", "batch", "epochs", "precision", "p_fail", "seed", "schedule", "average"];
const OPTIMIZERS: [(&str, &[&str]); 2] = [("sgd", &["lr"]), ("nesterov", &["lr", "momentum"])];
/// Bounds that keep run sizes sane (and casts exact).
const MAX_BATCH: f64 = 65_536.0;
const MAX_EPOCHS: f64 = 1_000_000.0;
const MAX_SEED: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact in f64

impl ModelChecker<'_> {
    /// Settings of the model's train block (defaults when there is none, with a
    /// warning), applying its `format` and `range` pins to the model's tensors.
    pub fn train(&mut self, model: &ast::Model, block: Option<&ast::Train>) -> TrainCfg {
        let Some(block) = block else {
            self.diags.push(
                Diagnostic::warning(codes::NO_TRAIN_BLOCK, format!("model `{}` has no train block", model.name.name))
                    .at(model.name.span, "default training settings are used")
                    .hint(format!("add `train {} {{ optimizer = sgd(lr = 0.5) ... }}`", model.name.name)),
            );
            return TrainCfg::default_for(model.span);
        };
        let mut cfg = TrainCfg::default_for(block.span);
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for item in &block.items {
            match item {
                TrainItem::Setting { key, value, .. } => {
                    if let Some(first) = seen.insert(&key.name, key.span) {
                        self.diags.push(
                            Diagnostic::error(codes::DUPLICATE, format!("setting `{}` is given twice", key.name))
                                .at(key.span, "set again here")
                                .also(first, "first set here"),
                        );
                        continue;
                    }
                    self.setting(&mut cfg, key, value);
                }
                TrainItem::Format { target, ty, .. } => self.format_pin(target, ty),
                TrainItem::Range { target, range, .. } => self.range_pin(target, range),
                TrainItem::Error(_) => {}
            }
        }
        cfg
    }

    fn setting(&mut self, cfg: &mut TrainCfg, key: &Ident, value: &Expr) {
        let env = &self.scope;
        let d = &mut *self.diags;
        match key.name.as_str() {
            "optimizer" => {
                if let Some(o) = optimizer(value, d) {
                    cfg.optimizer = o;
                }
            }
            "batch" => {
                if let Some(v) = consteval::eval_int(value, env, 1.0, MAX_BATCH, "`batch`", d) {
                    cfg.batch = v as usize;
                }
            }
            "epochs" => {
                if let Some(v) = consteval::eval_int(value, env, 1.0, MAX_EPOCHS, "`epochs`", d) {
                    cfg.epochs = v as usize;
                }
            }
            "seed" => {
                if let Some(v) = consteval::eval_int(value, env, 0.0, MAX_SEED, "`seed`", d) {
                    cfg.seed = v as u64;
                }
            }
            "schedule" => cfg.schedule = schedule(value, d),
            "average" => {
                if let Some(v) = consteval::eval_int(value, env, 0.0, MAX_EPOCHS, "`average` (epochs)", d) {
                    cfg.average = v as usize;
                }
            }
            "precision" => match &value.kind {
                ExprKind::Name(n) if n == "auto" => cfg.precision = Precision::Auto,
                _ => {
                    // 2^N cells over the torus: a bootstrap at N = 2048 tells 2N = 2^12
                    // positions apart, and one bit leaves one cell per half torus (a
                    // constant table).
                    if let Some(v) = consteval::eval_int(value, env, 2.0, 12.0, "`precision` (bits)", d) {
                        cfg.precision = Precision::Bits(v as u32);
                    }
                }
            },
            "p_fail" => {
                if let Some(p) = consteval::eval(value, env, d) {
                    if p > 0.0 && p < 1.0 {
                        cfg.p_fail = p;
                    } else {
                        d.push(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                "`p_fail` must be a probability strictly between 0 and 1",
                            )
                            .at(value.span, format!("this is {p}"))
                            .hint("e.g. `p_fail = 2^-40`"),
                        );
                    }
                }
            }
            other => {
                let hint = match names::suggest(other, SETTINGS) {
                    Some(s) => format!("did you mean `{s}`? valid settings: {}", SETTINGS.join(", ")),
                    None => format!("valid settings: {}", SETTINGS.join(", ")),
                };
                d.push(
                    Diagnostic::error(codes::UNKNOWN_SETTING, format!("unknown train setting `{other}`"))
                        .at(key.span, "unknown setting")
                        .hint(hint),
                );
            }
        }
    }

    /// The tensor a `format`/`range` pin names: an input, parameter or binding.
    fn pin_target(&mut self, target: &Ident, what: &str) -> Option<Entity> {
        match self.scope.get(&target.name) {
            Some(e @ (Entity::Input(_) | Entity::Param(_) | Entity::Let(_))) => Some(e),
            Some(other) => {
                self.diags.push(
                    Diagnostic::error(
                        codes::NOT_ALLOWED_HERE,
                        format!("cannot give a {what} to {} `{}`", other.describe(), target.name),
                    )
                    .at(target.span, format!("a {}", other.describe()))
                    .note("only inputs, parameters and bindings have a value range and format"),
                );
                None
            }
            None if self.poisoned.contains(&target.name) => None,
            None => {
                let s = self
                    .scope
                    .suggest(&target.name, |e| matches!(e, Entity::Input(_) | Entity::Param(_) | Entity::Let(_)));
                self.diags.push(names::undefined("tensor", &target.name, target.span, s));
                None
            }
        }
    }

    fn format_pin(&mut self, target: &Ident, ty: &ast::TensorType) {
        let entity = self.pin_target(target, "format");
        let pin = self.train_format(ty);
        let (Some(entity), Some(pin)) = (entity, pin) else { return };
        match entity {
            Entity::Input(id) => self.inputs[id.index()].format = Some(pin),
            Entity::Param(id) => self.params[id.index()].format = Some(pin),
            Entity::Let(id) => self.lets[id.index()].format = Some(pin),
            _ => {}
        }
    }

    /// `fixed<bits, frac>` with no shape.
    fn train_format(&mut self, ty: &ast::TensorType) -> Option<FormatPin> {
        let mut ok = true;
        if ty.kind.name != "fixed" {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_TYPE,
                    format!("formats are `fixed<bits, frac>`, found `{}`", ty.kind.name),
                )
                .at(ty.kind.span, "expected `fixed`"),
            );
            ok = false;
        }
        if !ty.dims.is_empty() {
            self.diags.push(
                Diagnostic::error(codes::BAD_FORMAT, "a format pin takes no shape")
                    .at(ty.span, "remove the `[...]`")
                    .note("the shape comes from the model"),
            );
            ok = false;
        }
        let pin = match &ty.format {
            Some(args) => types::format_pin(args, ty.span, &self.scope, self.diags),
            None => {
                self.diags.push(
                    Diagnostic::error(codes::BAD_FORMAT, "missing `<bits, frac>`")
                        .at(ty.span, "no format given")
                        .hint("e.g. `fixed<12, 4>`"),
                );
                None
            }
        };
        pin.filter(|_| ok)
    }

    fn range_pin(&mut self, target: &Ident, range: &ast::Range) {
        let entity = self.pin_target(target, "range");
        let r = consteval::eval_range(range, &self.scope, self.diags);
        let (Some(entity), Some(r)) = (entity, r) else { return };
        match entity {
            Entity::Input(id) => {
                self.inputs[id.index()].range = r;
                self.input_has_range[id.index()] = true;
            }
            Entity::Param(id) => self.params[id.index()].range = Some(r),
            Entity::Let(id) => self.lets[id.index()].range = Some(r),
            _ => {}
        }
    }
}

/// `sgd(lr = 0.5)`, `nesterov(0.1, 0.9)`, `nesterov(lr = 0.1, momentum = 0.9)`.
fn optimizer(value: &Expr, diags: &mut Vec<Diagnostic>) -> Option<Optimizer> {
    let (func, args): (&Ident, &[ast::Arg]) = match &value.kind {
        ExprKind::Call { func, args } => (func, args),
        ExprKind::Name(name) => {
            if OPTIMIZERS.iter().any(|(o, _)| o == name) {
                diags.push(missing_lr(name, value.span));
            } else {
                diags.push(unknown_optimizer(name, value.span));
            }
            return None;
        }
        _ => {
            diags.push(
                Diagnostic::error(codes::UNKNOWN_OPTIMIZER, "expected an optimizer")
                    .at(value.span, "not an optimizer")
                    .hint("e.g. `optimizer = sgd(lr = 0.5)` or `nesterov(lr = 0.1, momentum = 0.9)`"),
            );
            return None;
        }
    };
    let Some((_, options)) = OPTIMIZERS.iter().find(|(o, _)| *o == func.name) else {
        diags.push(unknown_optimizer(&func.name, func.span));
        return None;
    };
    let mut values: Vec<Option<f64>> = vec![None; options.len()];
    let mut ok = true;
    for (i, arg) in args.iter().enumerate() {
        let slot = match &arg.name {
            Some(n) => match options.iter().position(|o| *o == n.name) {
                Some(k) => k,
                None => {
                    diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN_OPTIMIZER_OPTION,
                            format!("optimizer `{}` has no option `{}`", func.name, n.name),
                        )
                        .at(n.span, "unknown option")
                        .hint(format!("`{}` takes: {}", func.name, options.join(", "))),
                    );
                    ok = false;
                    continue;
                }
            },
            None if i < options.len() => i,
            None => {
                diags.push(
                    Diagnostic::error(codes::ARG_COUNT, format!("too many arguments for `{}`", func.name))
                        .at(arg.span, "extra argument")
                        .hint(format!("`{}` takes: {}", func.name, options.join(", "))),
                );
                ok = false;
                continue;
            }
        };
        if values[slot].is_some() {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("option `{}` is given twice", options[slot]))
                    .at(arg.span, "given again here"),
            );
            ok = false;
            continue;
        }
        match consteval::eval(&arg.value, &(), diags) {
            Some(v) => values[slot] = Some(v),
            None => ok = false,
        }
    }
    let lr = match values[0] {
        Some(lr) if lr > 0.0 => lr,
        Some(lr) => {
            diags.push(
                Diagnostic::error(codes::BAD_VALUE, "the learning rate must be positive")
                    .at(value.span, format!("lr is {lr}")),
            );
            return None;
        }
        None if ok => {
            diags.push(missing_lr(&func.name, value.span));
            return None;
        }
        None => return None,
    };
    let opt = match func.name.as_str() {
        "sgd" => Optimizer::Sgd { lr },
        _ => {
            let momentum = values.get(1).copied().flatten().unwrap_or(0.9);
            if !(0.0..1.0).contains(&momentum) {
                diags.push(
                    Diagnostic::error(codes::BAD_VALUE, "momentum must be in [0, 1)")
                        .at(value.span, format!("momentum is {momentum}")),
                );
                return None;
            }
            Optimizer::Nesterov { lr, momentum }
        }
    };
    ok.then_some(opt)
}

/// `step(every = E, factor = F)` with `F = 2^-s`, `s` in 1..=8.
fn schedule(value: &Expr, diags: &mut Vec<Diagnostic>) -> Option<LrSchedule> {
    let usage = "e.g. `schedule = step(every = 10, factor = 0.5)`";
    let ExprKind::Call { func, args } = &value.kind else {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, "expected a learning-rate schedule")
                .at(value.span, "not a schedule")
                .hint(usage),
        );
        return None;
    };
    if func.name != "step" {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, format!("unknown schedule `{}`", func.name))
                .at(func.span, "the only schedule is `step`")
                .hint(usage),
        );
        return None;
    }
    let (mut every, mut factor) = (None, None);
    for arg in args {
        let slot = match arg.name.as_ref().map(|n| n.name.as_str()) {
            Some("every") => &mut every,
            Some("factor") => &mut factor,
            _ => {
                diags.push(
                    Diagnostic::error(codes::UNKNOWN_OPTIMIZER_OPTION, "`step` takes `every` and `factor`")
                        .at(arg.span, "unknown or unnamed option")
                        .hint(usage),
                );
                return None;
            }
        };
        *slot = Some((consteval::eval(&arg.value, &(), diags)?, arg.value.span));
    }
    let (Some((every, every_span)), Some((factor, factor_span))) = (every, factor) else {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, "`step` needs `every` and `factor`")
                .at(value.span, "incomplete")
                .hint(usage),
        );
        return None;
    };
    if every < 1.0 || every.fract() != 0.0 || every > MAX_EPOCHS {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, "`every` must be a positive whole number of epochs")
                .at(every_span, format!("this is {every}")),
        );
        return None;
    }
    let shift = -factor.log2();
    if !(factor > 0.0 && shift.fract() == 0.0 && (1.0..=8.0).contains(&shift)) {
        diags.push(
            Diagnostic::error(codes::BAD_VALUE, "the decay `factor` must be a power of two between 1/256 and 1/2")
                .at(factor_span, format!("this is {factor}"))
                .note("the learning rate is folded into lookup tables and client-encrypted label terms; dividing them by a power of two is an exact shift on the torus")
                .hint("use 0.5, 0.25, ..."),
        );
        return None;
    }
    Some(LrSchedule { every: every as usize, shift: shift as u32, span: value.span })
}

fn missing_lr(name: &str, span: Span) -> Diagnostic {
    Diagnostic::error(codes::MISSING_LR, format!("optimizer `{name}` needs a learning rate"))
        .at(span, "no `lr` given")
        .hint(format!("e.g. `optimizer = {name}(lr = 0.1)`"))
}

fn unknown_optimizer(name: &str, span: Span) -> Diagnostic {
    let known: Vec<&str> = OPTIMIZERS.iter().map(|(o, _)| *o).collect();
    let d =
        Diagnostic::error(codes::UNKNOWN_OPTIMIZER, format!("unknown optimizer `{name}`")).at(span, "not an optimizer");
    match names::suggest(name, known.iter().copied()) {
        Some(s) => d.hint(format!("did you mean `{s}`? known optimizers: {}", known.join(", "))),
        None => d.hint(format!("known optimizers: {}", known.join(", "))),
    }
}
