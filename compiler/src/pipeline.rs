//! The named pass pipeline: checked spec → forward graph → training graph → … → plan.
//!
//! Each [`Pass`] transforms the [`Ctx`]. After every pass the current graph is
//! verified; a verifier failure is a compiler bug and comes back as an `ICE`
//! diagnostic naming the pass. `run(spec, Some("autodiff"))` stops after a pass so
//! tools (`--stop-after`, `--emit ir`) and tests can look at intermediate results.

use crate::diag::Diagnostic;
use crate::ir::autodiff::{training_step, TrainGraph};
use crate::ir::build::{build_forward, Forward};
use crate::ir::simplify::simplify;
use crate::ir::verify::{verify, VerifyError};
use crate::ir::Graph;
use crate::plan::Plan;
use crate::spec::Spec;

/// Diagnostic code: `stop_after` names no pass.
pub const E_UNKNOWN_PASS: &str = "E0901";
/// Warning code: a param that is used, but not by the loss (it is never trained).
pub const W_UNTRAINED_PARAM: &str = "W0601";

pub struct Pass {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> Result<(), Vec<Diagnostic>>,
}

/// Everything the passes produce. Later passes add their results (and side tables
/// keyed by `NodeId`) as further `pub` fields.
pub struct Ctx {
    pub spec: Spec,
    /// After `build`.
    pub forward: Option<Forward>,
    /// After `autodiff` (and rewritten in place by `simplify`).
    pub train: Option<TrainGraph>,
    /// Rewrites made by `simplify`.
    pub simplified: usize,
    /// After `lower`.
    pub plan: Option<Plan>,
    /// Warnings and notes collected along the way (errors end the run instead).
    pub notes: Vec<Diagnostic>,
    // ---- lowering side tables
    /// Lowering knobs (defaults: the probe's verified choices).
    pub lower_opts: crate::lower::LowerOptions,
    /// After `ranges`: the recognised network and the value ranges.
    pub net: Option<crate::lower::select::Net>,
    pub ranges: Option<crate::lower::ranges::Ranges>,
    /// After `formats`.
    pub formats: Option<crate::lower::formats::Formats>,
    /// `--lowering NODE=STRATEGY`: products whose lowering the user forces.
    pub lowering: std::collections::BTreeMap<String, crate::plan::ProductStrategy>,
}

impl Ctx {
    pub fn new(spec: Spec) -> Ctx {
        Ctx {
            spec,
            forward: None,
            train: None,
            simplified: 0,
            plan: None,
            notes: Vec::new(),
            lower_opts: crate::lower::LowerOptions::default(),
            net: None,
            ranges: None,
            formats: None,
            lowering: std::collections::BTreeMap::new(),
        }
    }

    /// The most lowered graph so far.
    pub fn graph(&self) -> Option<&Graph> {
        self.train.as_ref().map(|t| &t.graph).or(self.forward.as_ref().map(|f| &f.graph))
    }
}

pub fn passes() -> Vec<Pass> {
    vec![
        Pass { name: "build", about: "build the forward graph from the checked spec", run: build },
        Pass {
            name: "autodiff",
            about: "reverse-mode differentiation and optimizer update: the training-step graph",
            run: autodiff,
        },
        Pass {
            name: "simplify",
            about: "fold constant scales, drop scale 1, merge common subexpressions, remove dead nodes",
            run: simplify_pass,
        },
        Pass {
            name: "ranges",
            about: "recognise the layers; interval analysis, assumed ranges of weights and logits",
            run: ranges_pass,
        },
        Pass {
            name: "formats",
            about: "fixed-point format of every value (LUT windows, weight scales)",
            run: formats_pass,
        },
        Pass { name: "lower", about: "instruction selection, lookup tables and the plan", run: lower_pass },
        Pass {
            name: "products",
            about: "lowering of every product of two server values (square trick, bivariate table, GGSW conversion)",
            run: products_pass,
        },
        Pass {
            name: "refresh",
            about: "bootstrap key and refresh schedule of the weights from the noise model",
            run: refresh_pass,
        },
    ]
}

/// Run the passes in order, stopping after `stop_after` when given.
pub fn run(spec: Spec, stop_after: Option<&str>) -> Result<Ctx, Vec<Diagnostic>> {
    run_with(spec, stop_after, std::collections::BTreeMap::new())
}

/// [`run`] with products whose lowering the user forces (`--lowering NODE=STRATEGY`).
pub fn run_with(
    spec: Spec,
    stop_after: Option<&str>,
    lowering: std::collections::BTreeMap<String, crate::plan::ProductStrategy>,
) -> Result<Ctx, Vec<Diagnostic>> {
    let passes = passes();
    if let Some(stop) = stop_after {
        if !passes.iter().any(|p| p.name == stop) {
            let names: Vec<&str> = passes.iter().map(|p| p.name).collect();
            return Err(vec![Diagnostic::error(E_UNKNOWN_PASS, format!("unknown pass `{stop}`"))
                .note(format!("the passes are: {}", names.join(", ")))]);
        }
    }
    let mut ctx = Ctx::new(spec);
    ctx.lowering = lowering;
    for pass in &passes {
        (pass.run)(&mut ctx)?;
        if let Some(g) = ctx.graph() {
            verify(g).map_err(|errs| ice(pass.name, g, &errs))?;
        }
        if stop_after == Some(pass.name) {
            break;
        }
    }
    Ok(ctx)
}

/// Verifier failures as one internal-compiler-error diagnostic, pointing at the
/// source of the first offending node.
fn ice(pass: &str, graph: &Graph, errs: &[VerifyError]) -> Vec<Diagnostic> {
    let mut d = Diagnostic::error("ICE", format!("internal compiler error: invalid IR after pass `{pass}`"));
    if let Some(n) = errs.iter().find_map(|e| e.node).filter(|&n| graph.contains(n)) {
        d = d.at(graph.node(n).span, "while compiling this");
    }
    for e in errs {
        d = d.note(e.to_string());
    }
    vec![d.hint("this is a bug in blindtuner; please report it with the spec")]
}

fn build(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    ctx.forward = Some(build_forward(&ctx.spec));
    Ok(())
}

fn autodiff(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let fwd = ctx.forward.as_ref().ok_or_else(|| missing("autodiff", "build"))?;
    let tg = training_step(fwd, &ctx.spec)?;
    // A param nothing uses is the checker's warning; here: used, yet not in the loss.
    for (i, p) in ctx.spec.params.iter().enumerate() {
        let used = !fwd.graph.users(fwd.params[i]).is_empty();
        if used && !tg.grads.iter().any(|(g, _)| g.index() == i) {
            ctx.notes.push(
                Diagnostic::warning(W_UNTRAINED_PARAM, format!("param `{}` does not affect the loss", p.name))
                    .at(p.span, "never trained")
                    .hint("use it in the model or remove it"),
            );
        }
    }
    ctx.train = Some(tg);
    Ok(())
}

fn simplify_pass(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let tg = ctx.train.as_mut().ok_or_else(|| missing("simplify", "autodiff"))?;
    ctx.simplified = simplify(tg);
    Ok(())
}

fn missing(pass: &str, before: &str) -> Vec<Diagnostic> {
    vec![Diagnostic::error("ICE", format!("internal compiler error: pass `{pass}` runs before `{before}`"))]
}

fn ranges_pass(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let tg = ctx.train.as_ref().ok_or_else(|| missing("ranges", "autodiff"))?;
    let net = crate::lower::select::recognize(&ctx.spec, tg)?;
    ctx.ranges = Some(crate::lower::ranges::analyze(&ctx.spec, tg, &net, &ctx.lower_opts));
    ctx.net = Some(net);
    Ok(())
}

fn formats_pass(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let (Some(net), Some(ranges)) = (&ctx.net, &ctx.ranges) else { return Err(missing("formats", "ranges")) };
    ctx.formats = Some(crate::lower::formats::choose(&ctx.spec, net, ranges, &ctx.lower_opts)?);
    Ok(())
}

fn lower_pass(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let tg = ctx.train.as_ref().ok_or_else(|| missing("lower", "autodiff"))?;
    let (Some(net), Some(ranges), Some(fmts)) = (&ctx.net, &ctx.ranges, &ctx.formats) else {
        return Err(missing("lower", "formats"));
    };
    ctx.plan = Some(crate::lower::emit::emit(&ctx.spec, tg, net, ranges, fmts, &ctx.lower_opts)?);
    Ok(())
}

fn products_pass(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let plan = ctx.plan.as_mut().ok_or_else(|| missing("products", "lower"))?;
    crate::lower::products::choose(plan, &ctx.lowering)
}

fn refresh_pass(ctx: &mut Ctx) -> Result<(), Vec<Diagnostic>> {
    let plan = ctx.plan.as_mut().ok_or_else(|| missing("refresh", "lower"))?;
    crate::noise::refresh::place(plan);
    Ok(())
}
