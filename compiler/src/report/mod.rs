//! The cost report of a plan: per node (instruction) its format, range, lowering,
//! PBS count and depth; totals per sample and per step; lookup tables and the
//! range assumptions the compiler made.
//!
//! Built from the plan alone (pure). `text.rs` renders it for people; the JSON form
//! is the serde serialization of [`Report`] (totals at top level, `nodes` array).

mod resources;
mod text;

use crate::lower::cost::costs;
use crate::noise::analyze::{analyze, AnalyzeOptions};
use crate::noise::choose::{choose_key, KeyChoice};
use crate::plan::{Inst, LutEncoding, Plan, ProductStrategy, RegId, StepInst, TensorRole};
use serde::Serialize;
use std::collections::BTreeMap;

pub use resources::{resources, resources_for, ParamDims, Resources, Timing, CONVERT_MS, PARAM_SETS};
pub use text::{human_bytes, render_text};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub model: String,
    pub dims: BTreeMap<String, usize>,
    pub batch: usize,
    pub epochs: usize,
    pub optimizer: String,
    pub lr: f64,
    /// `average = N`: the model is the mean of the last N epochs' iterates (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub average: usize,
    /// PBS per training sample (forward, error, backward).
    pub pbs_per_sample: u64,
    /// PBS of inference (forward program only) per sample.
    pub pbs_per_inference: u64,
    /// `batch · pbs_per_sample + step PBS`.
    pub pbs_per_step: u64,
    /// PBS of the update program alone (rescales), per step.
    pub pbs_per_update: u64,
    pub external_products_per_sample: u64,
    pub external_products_per_step: u64,
    /// Longest chain of bootstraps within one sample.
    pub pbs_depth: u32,
    /// Bootstraps the plan's refresh schedule adds per step, amortized.
    pub refresh_pbs_per_step: f64,
    /// The training loss under encryption: PBS per measured sample and the measured
    /// steps (`Plan::loss`), if the plan measures it.
    pub loss_measurement: Option<LossRow>,
    pub nodes: Vec<NodeRow>,
    pub luts: Vec<LutRow>,
    /// Every product of two server values: its lowering and the alternatives.
    pub products: Vec<crate::lower::products::ProductRow>,
    /// Input bits one bootstrap resolves (what the square trick and bivariate tables need).
    pub bootstrap_input_bits: u32,
    pub assumptions: Vec<AssumptionRow>,
    pub tensors: Vec<TensorRow>,
    /// Security and resources of an encrypted run on the default parameter set.
    pub resources: Resources,
    /// The weights' noise budget (half an LSB of their format) and the refresh
    /// schedule the compiler chose (`plan.train.refresh`).
    pub budget: Vec<crate::noise::TensorBudget>,
    /// The bootstrap key the compiler chose, with the alternatives it weighed.
    pub key: KeyChoice,
    /// How the spec's failure budget is spent.
    pub failure: Failure,
}

/// The spec's `p_fail` split in two halves: the bootstraps' (landing two or more cells
/// off, at a cell's edge, over [`HORIZON_PBS`](crate::lower::lut::HORIZON_PBS)
/// bootstraps) and the weights' (see [`crate::noise::refresh`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub p_fail: f64,
    /// Allowed per bootstrap: `p_fail / 2 / HORIZON_PBS`.
    pub per_pbs: f64,
    /// The worst table whose far landings are failures (not [`crate::plan::Lut::graded`]):
    /// its name and P(further) for a phase at a cell's edge.
    pub worst_lut: Option<(String, f64)>,
    /// With a known run length (`samples`): bootstraps of the run and P(any lands further).
    pub run: Option<(u64, f64)>,
}

/// How the plan measures the training loss under encryption.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossRow {
    pub pbs_per_sample: u64,
    /// Every `every`-th step of an epoch.
    pub every: usize,
    /// Extra bootstraps over training's, amortized (e.g. 0.09 = 9 %).
    pub extra: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRow {
    /// `s3` = instruction 3 of the sample program, `u1` = instruction 1 of the update.
    pub id: String,
    pub phase: &'static str,
    pub name: String,
    pub op: String,
    pub shape: Vec<usize>,
    pub format: Option<FormatRow>,
    pub lowering: &'static str,
    pub pbs: u64,
    pub external_products: u64,
    /// PBS depth of the value this node produces (bootstraps on its longest input chain).
    pub pbs_depth: u32,
    /// 1-based source line of the spec construct this node comes from.
    pub line: Option<usize>,
    /// `log2 σ` (u64 torus units) of the value's noise at the first step (an update:
    /// after it), under the chosen key; `None` where the model does not reach.
    pub noise_log2_std: Option<f64>,
    /// Bits between σ and half of what the value's next reader resolves: a bootstrap's
    /// cell (after its keyswitch and modulus switch) for a lookup input, else the
    /// format's LSB (what decryption reads). Negative: the low bits are noise.
    pub margin_bits: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FormatRow {
    pub bits: u32,
    pub frac: i32,
    pub signed: bool,
    /// Torus units per real unit, log2.
    pub scale: i32,
    pub range: (f64, f64),
    /// `proven` from declared ranges, or `assumed`.
    pub range_kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LutRow {
    pub name: String,
    pub func: String,
    pub cells: usize,
    pub encoding: &'static str,
    pub assumed: (f64, f64),
    pub window: (f64, f64),
    /// Width of one input cell in real units.
    pub resolution: f64,
    /// Predicted noise of the bootstrap input (register + keyswitch + modulus switch),
    /// `log2 σ` in torus units of 2^-64, at the first step.
    pub input_log2_std: f64,
    /// `log2(half cell / σ)`: bits of headroom before σ reaches half a cell.
    pub margin_bits: f64,
    /// Probability that a bootstrap lands in a neighbouring cell (benign: numeric error).
    pub p_one_cell_off: f64,
    /// Probability that it lands two or more cells off (a failure).
    pub p_far: f64,
    /// P(further) at a cell's edge with these cells and with cells half as wide: the
    /// precision choice keeps the first within the budget per bootstrap.
    pub p_far_worst: f64,
    pub p_far_worst_finer: f64,
    /// A far landing is numeric error here, not a failure ([`crate::plan::Lut::graded`]).
    pub graded: bool,
    /// `log2` of the largest |output| (u64 torus units) in the first epoch and, for
    /// tables that carry the learning rate, in the last one (the schedule shrinks the
    /// output, not the bootstrap's noise).
    pub out_log2_max: f64,
    pub out_log2_max_last: f64,
    /// `log2 σ` of the bootstrap output per allowed bootstrap key: `(key, log2 σ)`.
    pub out_log2_std: Vec<(String, f64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssumptionRow {
    pub what: String,
    pub range: (f64, f64),
    pub reason: String,
    pub line: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorRow {
    pub name: String,
    pub role: String,
    pub shape: (usize, usize),
    pub format: FormatRow,
    pub layout: String,
}

/// What the report cannot know from the plan alone.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOptions {
    /// Costs per operation for the time estimate.
    pub timing: Timing,
    /// Training samples per epoch, for per-epoch estimates.
    pub samples: Option<usize>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { timing: Timing::nominal(), samples: None }
    }
}

/// Build the report. `source` (the spec text) turns spans into line numbers.
pub fn build(plan: &Plan, source: Option<&str>) -> Report {
    build_with(plan, source, &ReportOptions::default())
}

pub fn build_with(plan: &Plan, source: Option<&str>, opts: &ReportOptions) -> Report {
    let c = costs(plan);
    let line =
        |start: usize| source.map(|s| 1 + s.as_bytes()[..start.min(s.len())].iter().filter(|&&b| b == b'\n').count());
    let depths = &c.reg_depth;
    let key = choose_key(plan);
    let np = crate::noise::choose::chosen_params(&key);
    let noise = analyze(plan, &np, &AnalyzeOptions::new(plan.train.p_fail));
    let q = f64::from(np.modulus_log2);
    let reg_noise = |r: crate::plan::RegId| -> (Option<f64>, Option<f64>) {
        let sigma = noise.regs.get(r.index()).and_then(|n| n.log2_std);
        let margin = match noise.luts.iter().find(|l| l.input == r) {
            Some(l) => Some(l.margin_bits),
            None => sigma.map(|s| f64::from(plan.regs[r.index()].fmt.lsb) - 1.0 - s),
        };
        (sigma, margin)
    };
    // A reset accumulator has no noise: no σ to show.
    let after_step = |t: usize| noise.tensors.get(t).map(|n| 0.5 * n.var.at(1.0).log2() + q).filter(|v| v.is_finite());
    let mut nodes = Vec::new();
    for (i, (inst, ic)) in plan.sample.iter().zip(&c.sample).enumerate() {
        let out = inst.out().map(|r| &plan.regs[r.index()]);
        let (name, shape, format, span) = match out {
            Some(r) => (r.name.clone(), vec![r.len], Some(fmt_row(&r.fmt)), Some(r.span)),
            None => (accumulated_name(plan, inst), tensor_shape(plan, inst), None, None),
        };
        let (noise_log2_std, margin_bits) = inst.out().map_or((None, None), reg_noise);
        nodes.push(NodeRow {
            id: format!("s{i}"),
            phase: if i < plan.forward_len { "forward" } else { "backward" },
            name,
            op: op_name(plan, inst),
            shape,
            format,
            lowering: match plan.products.get(&i).map(|p| p.strategy) {
                Some(ProductStrategy::SquareTrick) => "square trick",
                Some(ProductStrategy::BivariateLut) => "bivariate table",
                Some(ProductStrategy::GgswConversion) => "GGSW conversion",
                Some(ProductStrategy::TableGgsw) => "table → GGSW",
                None => ic.lowering.name(),
            },
            pbs: ic.pbs,
            external_products: ic.external_products,
            pbs_depth: inst.out().map_or_else(|| max_read_depth(inst, depths), |r| depths[r.index()]),
            line: span.filter(|s| s.end > 0).and_then(|s| line(s.start)),
            noise_log2_std,
            margin_bits,
        });
    }
    for (i, (inst, ic)) in plan.step.iter().zip(&c.step).enumerate() {
        let (dst, op) = step_desc(plan, inst);
        let t = &plan.tensors[dst];
        nodes.push(NodeRow {
            id: format!("u{i}"),
            phase: "update",
            name: t.name.clone(),
            op,
            shape: vec![t.rows, t.cols],
            format: Some(fmt_row(&t.fmt)),
            lowering: ic.lowering.name(),
            pbs: ic.pbs,
            external_products: 0,
            pbs_depth: u32::from(ic.pbs > 0),
            line: None,
            // The tensor after one step: fresh encryption plus one step's growth.
            noise_log2_std: after_step(dst),
            margin_bits: after_step(dst).map(|v| f64::from(t.fmt.lsb) - 1.0 - v),
        });
    }
    let luts = plan
        .luts
        .iter()
        .enumerate()
        // A table applied several times (a softmax's softplus) is reported at its
        // noisiest input.
        .map(|(i, l)| {
            let worst =
                noise.luts.iter().filter(|n| n.lut.index() == i).max_by(|a, b| a.log2_std.total_cmp(&b.log2_std));
            (l, worst)
        })
        .map(|(l, n)| LutRow {
            name: l.name.clone(),
            func: l.func.clone(),
            cells: l.table.len(),
            encoding: match l.encoding {
                LutEncoding::FullTorus => "full torus (odd)",
                LutEncoding::HalfTorus => "half torus",
            },
            assumed: l.assumed,
            window: l.window,
            resolution: cell_width(l),
            input_log2_std: n.map_or(f64::NAN, |n| n.log2_std),
            margin_bits: n.map_or(f64::NAN, |n| n.margin_bits),
            p_one_cell_off: n.map_or(f64::NAN, |n| n.errors.one_off),
            p_far: n.map_or(f64::NAN, |n| n.errors.far),
            p_far_worst: n.map_or(f64::NAN, |n| n.errors.far_worst),
            // σ/w doubles when the cell halves.
            p_far_worst_finer: n.map_or(f64::NAN, |n| {
                let sigma_over_w = (n.log2_std - n.log2_half_cell - 1.0).exp2();
                crate::noise::tail::cell_errors(2.0 * sigma_over_w).far_worst
            }),
            graded: l.graded,
            out_log2_max: out_log2_max(l, 0),
            out_log2_max_last: out_log2_max(l, if l.lr_scaled { plan.train.max_lr_shift() } else { 0 }),
            out_log2_std: key.candidates.iter().map(|c| (c.bsk.clone(), c.out_log2_std)).collect(),
        })
        .collect();
    let assumptions = plan
        .assumptions
        .iter()
        .map(|a| AssumptionRow {
            what: a.what.clone(),
            range: a.range,
            reason: a.reason.clone(),
            line: if a.span.end > 0 { line(a.span.start) } else { None },
        })
        .collect();
    let tensors = plan
        .tensors
        .iter()
        .map(|t| TensorRow {
            name: t.name.clone(),
            role: match t.role {
                TensorRole::Param => "param".into(),
                TensorRole::State(p) => format!("state of {}", plan.tensors[p.index()].name),
                TensorRole::Grad(p) => format!("gradient of {}", plan.tensors[p.index()].name),
                TensorRole::Temp => "scratch".into(),
            },
            shape: (t.rows, t.cols),
            format: fmt_row(&t.fmt),
            layout: match t.layout {
                crate::plan::Layout::DataPoly { polys, per_poly, .. } => {
                    format!("{polys} GLWE poly{} ({per_poly} cols each)", if polys == 1 { "" } else { "s" })
                }
                crate::plan::Layout::Lwe => "LWE per coefficient".into(),
                crate::plan::Layout::PbsPoly { polys, per_poly } => {
                    format!("{polys} GLWE poly under the PBS key ({per_poly} cols each)")
                }
            },
        })
        .collect();
    Report {
        model: plan.model.clone(),
        dims: plan.dims.clone(),
        batch: plan.train.batch,
        epochs: plan.train.epochs,
        optimizer: plan.train.optimizer.clone(),
        lr: plan.train.lr,
        average: plan.train.average,
        pbs_per_sample: c.pbs_per_sample,
        pbs_per_inference: c.forward_pbs,
        pbs_per_step: c.pbs_per_step,
        pbs_per_update: c.step_pbs,
        external_products_per_sample: c.external_products_per_sample,
        external_products_per_step: c.external_products_per_step,
        pbs_depth: c.pbs_depth,
        refresh_pbs_per_step: plan
            .train
            .refresh
            .iter()
            .map(|r| plan.refresh_pbs_each(r) as f64 / r.every.max(1) as f64)
            .sum(),
        loss_measurement: plan.loss.as_ref().map(|l| LossRow {
            pbs_per_sample: c.loss_pbs_per_sample,
            every: l.every,
            extra: c.loss_pbs_per_sample as f64 / (l.every.max(1) as f64 * c.pbs_per_sample.max(1) as f64),
        }),
        nodes,
        luts,
        products: crate::lower::products::rows(plan),
        bootstrap_input_bits: crate::lower::products::lut_bits(plan),
        assumptions,
        tensors,
        resources: resources_for(plan, &c, &PARAM_SETS[key.chosen], &opts.timing, opts.samples),
        budget: crate::noise::refresh::budgets_of(plan, &noise, &AnalyzeOptions::new(plan.train.p_fail)),
        failure: failure(plan, &noise, &c, opts.samples),
        key,
    }
}

fn failure(
    plan: &Plan,
    noise: &crate::noise::NoiseReport,
    c: &crate::lower::cost::Costs,
    samples: Option<usize>,
) -> Failure {
    let worst_lut = noise
        .luts
        .iter()
        .filter(|l| !plan.luts[l.lut.index()].graded)
        .map(|l| (plan.luts[l.lut.index()].name.clone(), l.errors.far_worst))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let run = samples.map(|n| {
        let steps = n.div_ceil(plan.train.batch.max(1)) as u64 * plan.train.epochs as u64;
        let pbs = c.run_pbs(plan, (n * plan.train.epochs) as u64, steps) + c.loss_pbs(plan, n, plan.train.epochs);
        let p = worst_lut.as_ref().map_or(0.0, |w| -(-w.1).ln_1p() * pbs as f64);
        (pbs, -(-p).exp_m1())
    });
    Failure {
        p_fail: plan.train.p_fail,
        per_pbs: plan.train.p_fail / 2.0 / crate::lower::lut::HORIZON_PBS,
        worst_lut,
        run,
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn fmt_row(f: &crate::plan::Format) -> FormatRow {
    FormatRow {
        bits: f.bits(),
        frac: f.frac(),
        signed: f.range.0 < 0.0,
        scale: f.scale,
        range: f.range,
        range_kind: if f.proven { "proven" } else { "assumed" },
    }
}

/// `log2` of the largest |output| of a table at learning-rate shift `shift`.
fn out_log2_max(l: &crate::plan::Lut, shift: u32) -> f64 {
    let m = l.table.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as f64;
    m.log2() + f64::from(l.out_shift) - f64::from(shift)
}

/// Width of one LUT cell in units of the input.
fn cell_width(l: &crate::plan::Lut) -> f64 {
    let cells = l.table.len().max(1) as f64;
    // The first half of the torus (2^63 phase units) holds `cells` cells.
    let half_torus_units = 2f64.powi(63) / (l.in_fmt.scale as f64).exp2();
    half_torus_units / cells
}

fn max_read_depth(inst: &Inst, depths: &[u32]) -> u32 {
    inst.reads().iter().map(|r| depths[r.index()]).max().unwrap_or(0)
}

fn op_name(plan: &Plan, inst: &Inst) -> String {
    let t = |id: crate::plan::TensorId| plan.tensors[id.index()].name.clone();
    let r = |id: RegId| plan.regs[id.index()].name.clone();
    match inst {
        Inst::DataMatVec { tensor, input, .. } => format!("{} @ {}", t(*tensor), plan.inputs[input.index()].name),
        Inst::MatVec { tensor, v, .. } => format!("{} @ {}", t(*tensor), r(*v)),
        Inst::MatVecT { tensor, v, .. } => format!("{}ᵀ @ {}", t(*tensor), r(*v)),
        Inst::Lut { lut, input, .. } => format!("lut {}({})", plan.luts[lut.index()].name, r(*input)),
        Inst::Add { a, b, .. } => format!("{} + {}", r(*a), r(*b)),
        Inst::Sub { a, b, .. } => format!("{} - {}", r(*a), r(*b)),
        Inst::AddConst { a, .. } => format!("{} + const", r(*a)),
        Inst::Dither { a, .. } => format!("{} + dither", r(*a)),
        Inst::MulInt { a, c, .. } => format!("{} * {c}", r(*a)),
        Inst::Mul { a, b, .. } => format!("{} * {}", r(*a), r(*b)),
        Inst::LabelTerm { label, .. } => format!("label term {}", plan.labels[label.index()].name),
        Inst::Elem { a, index, .. } => format!("{}[{index}]", r(*a)),
        Inst::Bcast { a, .. } => format!("broadcast {}", r(*a)),
        Inst::Concat { parts, .. } => format!("[{}]", parts.iter().map(|p| r(*p)).collect::<Vec<_>>().join(", ")),
        Inst::DataOuterAcc { grad, e, input } => {
            format!("{} += {} ⊗ {}", t(*grad), r(*e), plan.inputs[input.index()].name)
        }
        Inst::OuterAcc { grad, e, v, .. } => format!("{} += {} ⊗ {}", t(*grad), r(*e), r(*v)),
    }
}

fn accumulated_name(plan: &Plan, inst: &Inst) -> String {
    match inst {
        Inst::DataOuterAcc { grad, .. } | Inst::OuterAcc { grad, .. } => plan.tensors[grad.index()].name.clone(),
        _ => String::new(),
    }
}

fn tensor_shape(plan: &Plan, inst: &Inst) -> Vec<usize> {
    match inst {
        Inst::DataOuterAcc { grad, .. } | Inst::OuterAcc { grad, .. } => {
            let t = &plan.tensors[grad.index()];
            vec![t.rows, t.cols]
        }
        _ => vec![],
    }
}

fn step_desc(plan: &Plan, inst: &StepInst) -> (usize, String) {
    let n = |id: crate::plan::TensorId| plan.tensors[id.index()].name.clone();
    match *inst {
        StepInst::SubAssign { dst, src } => (dst.index(), format!("{} -= {}", n(dst), n(src))),
        StepInst::AddAssign { dst, src } => (dst.index(), format!("{} += {}", n(dst), n(src))),
        StepInst::Rescale { dst, src, factor, digits } => {
            (dst.index(), format!("{} = {factor} · {} ({digits}-digit rescale)", n(dst), n(src)))
        }
        StepInst::Zero { dst } => (dst.index(), format!("{} = 0", n(dst))),
    }
}
