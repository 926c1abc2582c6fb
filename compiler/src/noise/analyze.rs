//! Noise propagation through a plan.
//!
//! Every value's variance is tracked as an affine function of the number `T` of
//! training steps already done ([`Growing`]): the weights gain noise with every update
//! (each step adds the batch's gradient noise), everything computed from them inherits
//! that growth, and a bootstrap output starts fresh. One pass over the sample program with
//! fresh tensors gives the gradient noise per sample; one pass over the step program turns
//! it into the growth per step of every stored tensor; a second pass over the sample
//! program gives every register as `base + per_step·T`.
//!
//! Linearisation: the gradient noise is evaluated at `T = 0`. That is exact when the
//! gradient does not read a growing value (the linear heads: the error comes out of a
//! bootstrap) and first order otherwise.
//!
//! Data products need the size of the client's quantized features: per input, the mean
//! of `xq²` (given in [`AnalyzeOptions::feature_ms`], or that of `xq` uniform over
//! `[qmin, qmax]`, pessimistic for real embeddings).

use super::formulas::{self as f, log2_std_u64};
use super::params::NoiseParams;
use super::sim::OpNoise;
use super::tail::{cell_errors, max_sigma_over_w, CellErrors};
use crate::plan::{Inst, Layout, LutId, Plan, RegId, StepInst, TensorRole};
use serde::{Deserialize, Serialize};

/// A variance after `T` training steps: `base + per_step·T`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Growing {
    pub base: f64,
    pub per_step: f64,
}

impl Growing {
    pub fn fixed(v: f64) -> Growing {
        Growing { base: v, per_step: 0.0 }
    }
    pub fn at(self, steps: f64) -> f64 {
        self.base + self.per_step * steps
    }
    fn plus(self, o: Growing) -> Growing {
        Growing { base: self.base + o.base, per_step: self.per_step + o.per_step }
    }
    fn scaled(self, c: f64) -> Growing {
        Growing { base: self.base * c, per_step: self.per_step * c }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzeOptions {
    /// Failure budget *per bootstrap*: the probability of reading a cell two or more
    /// cells away (worst position in the cell). Divide a global budget by the number of
    /// bootstraps of the run to get this.
    pub p_fail: f64,
    /// Training steps done, for the `log2 σ` columns (`0`: a freshly encrypted model).
    pub steps: u64,
    /// Per `plan.inputs` entry: mean of `xq²` over the features, if known.
    pub feature_ms: Vec<Option<f64>>,
    /// Per `plan.inputs` entry: the mean of `xq_j²` of every (augmented) feature `j`, if
    /// known. Only the weights' budget reads it (`noise::refresh`): a weight
    /// coefficient gains noise in proportion to its feature's size, and embeddings have
    /// a few large features, so the worst coefficients are bounded with their own.
    pub feature_ms_each: Vec<Option<Vec<f64>>>,
}

impl AnalyzeOptions {
    pub fn new(p_fail: f64) -> AnalyzeOptions {
        AnalyzeOptions { p_fail, steps: 0, feature_ms: Vec::new(), feature_ms_each: Vec::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseReport {
    pub params: NoiseParams,
    /// The `T` the `log2_std` fields are evaluated at.
    pub steps: u64,
    /// Fresh encryption under the small key / a GLWE key.
    pub fresh_lwe: f64,
    pub fresh_glwe: f64,
    /// Output of a bootstrap (any LUT).
    pub pbs: f64,
    /// Keyswitch big → small in front of every bootstrap.
    pub keyswitch: f64,
    /// Modulus switch to `2N` in front of every bootstrap.
    pub modulus_switch: f64,
    /// Per `plan.regs`; `None` for registers computed by operations the model does not
    /// cover yet (see `unsupported`).
    pub regs: Vec<RegNoise>,
    /// Per `plan.tensors`: per-coefficient variance.
    pub tensors: Vec<TensorNoise>,
    /// One per `Lut` instruction of the sample program.
    pub luts: Vec<LutNoise>,
    /// One per data product (`DataMatVec`, `DataOuterAcc`) of the sample program.
    pub products: Vec<DataProductNoise>,
    /// Instructions whose noise is not modelled (server × server products).
    pub unsupported: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegNoise {
    pub name: String,
    pub var: Option<Growing>,
    /// `log2` of σ in u64 units at `NoiseReport::steps`.
    pub log2_std: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorNoise {
    pub name: String,
    pub var: Growing,
    pub log2_std: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataProductNoise {
    /// Index in `plan.sample` (then the loss program: `Plan::inst`).
    pub inst: usize,
    /// `‖μ‖²` of one data polynomial (the largest).
    pub mu_norm2: f64,
    /// Added by one external product with a data GGSW.
    pub external_product: f64,
    /// `DataOuterAcc` only: one coefficient of the packed error (key term of all
    /// `count` keyswitches + the rounding of its own).
    pub packing_keyswitch: Option<f64>,
    /// Added to each coefficient of the target (register element or gradient).
    pub added: Growing,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LutNoise {
    /// Index in `plan.sample` (then the loss program: `Plan::inst`).
    pub inst: usize,
    pub lut: LutId,
    pub input: RegId,
    /// Phase noise at the blind rotation: input register + keyswitch + modulus switch.
    pub pbs_input: Growing,
    /// `log2 σ` of `pbs_input` at `NoiseReport::steps`, u64 units.
    pub log2_std: f64,
    /// `log2` of half a cell, u64 units.
    pub log2_half_cell: f64,
    /// `log2(half cell / σ)`: how many bits σ may still grow before it is half a cell.
    pub margin_bits: f64,
    /// Cell errors at `NoiseReport::steps`.
    pub errors: CellErrors,
    /// Largest σ (u64 units, `log2`) with `far_worst ≤ p_fail`.
    pub log2_std_budget: f64,
    /// Steps after which `pbs_input` exceeds the budget (`None`: it does not grow).
    pub steps_to_budget: Option<f64>,
}

/// Analyze `plan` under `p`.
pub fn analyze(plan: &Plan, p: &NoiseParams, opts: &AnalyzeOptions) -> NoiseReport {
    let cx = Cx::new(plan, p, opts);
    // Pass 1: fresh tensors → gradient noise per sample.
    let fresh: Vec<Growing> = plan.tensors.iter().map(|_| Growing::fixed(p.glwe_var())).collect();
    let first = cx.run_sample(&fresh);
    // One step: how much each stored tensor gains.
    let tensors = cx.step_growth(&fresh, &first.grads);
    // Pass 2: every register as a function of T.
    let run = cx.run_sample(&tensors);
    let t = opts.steps as f64;
    let log2 = |v: f64| log2_std_u64(v, p.modulus_log2);
    NoiseReport {
        params: *p,
        steps: opts.steps,
        fresh_lwe: p.lwe_var(),
        fresh_glwe: p.glwe_var(),
        pbs: cx.op.pbs,
        keyswitch: cx.op.keyswitch,
        modulus_switch: cx.op.modulus_switch,
        regs: plan
            .regs
            .iter()
            .zip(&run.regs)
            .map(|(r, v)| RegNoise { name: r.name.clone(), var: *v, log2_std: v.map(|v| log2(v.at(t))) })
            .collect(),
        tensors: plan
            .tensors
            .iter()
            .zip(&tensors)
            .map(|(tn, v)| TensorNoise { name: tn.name.clone(), var: *v, log2_std: log2(v.at(t)) })
            .collect(),
        luts: run.luts.iter().map(|l| cx.lut_noise(l, t)).collect(),
        products: run.products,
        unsupported: run.unsupported,
    }
}

/// What one pass over the sample program produces.
struct SampleNoise {
    regs: Vec<Option<Growing>>,
    /// Per tensor: variance added per coefficient by one sample.
    grads: Vec<Growing>,
    luts: Vec<(usize, LutId, RegId, Growing)>,
    products: Vec<DataProductNoise>,
    unsupported: Vec<String>,
}

struct Cx<'a> {
    plan: &'a Plan,
    p: &'a NoiseParams,
    p_fail: f64,
    /// Mean of `xq²` per input.
    feature_ms: Vec<f64>,
    op: OpNoise,
    /// Keys every register is a sum over (`sim::key_parts`).
    key_parts: Vec<u32>,
}

impl<'a> Cx<'a> {
    fn new(plan: &'a Plan, p: &'a NoiseParams, opts: &AnalyzeOptions) -> Cx<'a> {
        let feature_ms = plan
            .inputs
            .iter()
            .enumerate()
            .map(|(i, inp)| opts.feature_ms.get(i).copied().flatten().unwrap_or_else(|| uniform_ms(inp.qmin, inp.qmax)))
            .collect();
        let op = OpNoise::new(p);
        Cx { plan, p, p_fail: opts.p_fail, feature_ms, op, key_parts: super::sim::key_parts(plan) }
    }

    /// `‖μ‖²` of each data polynomial of a `DataPoly` tensor for `input`: the features
    /// it holds times their mean square, the constant feature with its exact value.
    fn poly_norms(&self, input: usize, layout: Layout) -> Vec<f64> {
        let Some(inp) = self.plan.inputs.get(input) else { return Vec::new() };
        let ms = self.feature_ms.get(input).copied().unwrap_or(0.0);
        let (per_poly, polys) = match layout {
            Layout::DataPoly { per_poly, polys, .. } => (per_poly.max(1), polys.max(1)),
            Layout::Lwe | Layout::PbsPoly { .. } => (inp.augmented_len().max(1), 1),
        };
        let total = inp.augmented_len();
        (0..polys)
            .map(|k| {
                let start = k * per_poly;
                let count = total.saturating_sub(start).min(per_poly);
                // The constant feature is the last one: in the last non-empty polynomial.
                let holds_one = inp.one.is_some() && start < total && total <= start + per_poly;
                let one = inp.one.map_or(0.0, |o| (o * o) as f64);
                if holds_one {
                    (count - 1) as f64 * ms + one
                } else {
                    count as f64 * ms
                }
            })
            .collect()
    }

    fn run_sample(&self, tensors: &[Growing]) -> SampleNoise {
        let plan = self.plan;
        let mut out = SampleNoise {
            regs: vec![None; plan.regs.len()],
            grads: vec![Growing::default(); plan.tensors.len()],
            luts: Vec::new(),
            products: Vec::new(),
            unsupported: Vec::new(),
        };
        let max_shift = plan.train.max_lr_shift();
        // The loss program (`Plan::loss`) too: its bootstraps read the same registers.
        for (i, inst) in plan.all_insts().enumerate() {
            let get = |r: RegId, regs: &[Option<Growing>]| regs.get(r.index()).copied().flatten();
            let value = match *inst {
                Inst::DataMatVec { tensor, input, .. } => {
                    let t = &plan.tensors[tensor.index()];
                    let norms = self.poly_norms(input.index(), t.layout);
                    let ep: f64 = norms.iter().map(|&m| self.op.external_product(m)).sum();
                    // Coefficient r of Σ_p W_p·μ_p reads W[r][j] once per feature j.
                    let w = tensors[tensor.index()].scaled(norms.iter().sum());
                    let added = Growing::fixed(ep);
                    out.products.push(DataProductNoise {
                        inst: i,
                        mu_norm2: norms.iter().copied().fold(0.0, f64::max),
                        external_product: ep / norms.len().max(1) as f64,
                        packing_keyswitch: None,
                        added,
                    });
                    Some(w.plus(added))
                }
                Inst::DataOuterAcc { grad, e, input } => {
                    let Some(ve) = get(e, &out.regs) else {
                        out.unsupported
                            .push(format!("gradient of `{}` from an unmodelled error", plan.regs[e.index()].name));
                        continue;
                    };
                    let t = &plan.tensors[grad.index()];
                    let count = plan.regs[e.index()].len;
                    let norm = self.poly_norms(input.index(), t.layout).into_iter().fold(0.0, f64::max);
                    let ms = self.feature_ms.get(input.index()).copied().unwrap_or(0.0);
                    let (pks_round, pks_key) = self.op.packing(count);
                    let ep = self.op.external_product(norm);
                    // Coefficient (r, j) of E·μ_b: e_r (with its own rounding) times x_j,
                    // plus the key noise of every coefficient of E times ‖μ‖².
                    let added = ve.plus(Growing::fixed(pks_round)).scaled(ms).plus(Growing::fixed(pks_key * norm + ep));
                    out.grads[grad.index()] = out.grads[grad.index()].plus(added);
                    out.products.push(DataProductNoise {
                        inst: i,
                        mu_norm2: norm,
                        external_product: ep,
                        packing_keyswitch: Some(pks_key + pks_round),
                        added,
                    });
                    None
                }
                Inst::Lut { lut, input, .. } => {
                    match get(input, &out.regs) {
                        Some(v) => out.luts.push((i, lut, input, v)),
                        None => out.unsupported.push(format!("input of LUT `{}`", plan.luts[lut.index()].name)),
                    }
                    Some(Growing::fixed(self.op.pbs))
                }
                Inst::Add { a, b, .. } | Inst::Sub { a, b, .. } => {
                    get(a, &out.regs).zip(get(b, &out.regs)).map(|(a, b)| a.plus(b))
                }
                Inst::AddConst { a, .. } | Inst::Dither { a, .. } | Inst::Elem { a, .. } | Inst::Bcast { a, .. } => {
                    get(a, &out.regs)
                }
                // Per-register noise is one figure: the noisiest part bounds the vector.
                Inst::Concat { ref parts, .. } => {
                    parts.iter().map(|&p| get(p, &out.regs)).try_fold(Growing::fixed(0.0), |m, g| {
                        g.map(|g| Growing { base: m.base.max(g.base), per_step: m.per_step.max(g.per_step) })
                    })
                }
                Inst::MulInt { a, c, .. } => get(a, &out.regs).map(|v| v.scaled(f::mul_int(1.0, c))),
                Inst::LabelTerm { lr_scaled, .. } => {
                    // Encrypted at the largest shift, multiplied back by 2^(max − shift):
                    // the worst epoch (shift 0) scales the noise by 4^max.
                    let max = if lr_scaled { max_shift } else { 0 };
                    Some(Growing::fixed(self.op.label(max, 0)))
                }
                Inst::MatVec { tensor, v, .. } | Inst::MatVecT { tensor, v, .. } => {
                    let one = match *inst {
                        Inst::MatVec { one, .. } => one,
                        _ => None,
                    };
                    // Coefficient r reads every W[r][j] times int(v_j), plus the
                    // converted GGSW's own noise (its values are exact: they are
                    // bootstrapped from the operand's table input or bits).
                    let Some(strategy) = plan.products.get(&i).map(|p| p.strategy) else {
                        out.unsupported.push(format!("instruction {i}: product without a lowering"));
                        continue;
                    };
                    let (count, ms) = int_operand(plan, v, one);
                    let bits = plan.regs[v.index()].fmt.bits();
                    let own = self.op.converted_product(strategy, count, bits, count as f64 * ms);
                    Some(tensors[tensor.index()].scaled(count as f64 * ms).plus(Growing::fixed(own)))
                }
                Inst::OuterAcc { grad, e, v, one } => {
                    let (Some(ve), Some(strategy)) = (get(e, &out.regs), plan.products.get(&i).map(|p| p.strategy))
                    else {
                        out.unsupported.push(format!("instruction {i}: product of an unmodelled error"));
                        continue;
                    };
                    // As `DataOuterAcc`, with the converted GGSW of int(v) for the data's.
                    let (count, ms) = int_operand(plan, v, one);
                    let bits = plan.regs[v.index()].fmt.bits();
                    let (pks_round, pks_key) = self.op.packing(plan.regs[e.index()].len);
                    let mu2 = count as f64 * ms;
                    let own = self.op.converted_product(strategy, count, bits, mu2);
                    let added = ve.plus(Growing::fixed(pks_round)).scaled(ms).plus(Growing::fixed(pks_key * mu2 + own));
                    out.grads[grad.index()] = out.grads[grad.index()].plus(added);
                    None
                }
                Inst::Mul { a, b, .. } => {
                    let (Some(vb), Some(strategy)) = (get(b, &out.regs), plan.products.get(&i).map(|p| p.strategy))
                    else {
                        out.unsupported.push(format!("instruction {i}: product of an unmodelled value"));
                        continue;
                    };
                    // Per element: b packed (rounding and key noise), times GGSW(int(a)).
                    let (_, ms) = int_operand(plan, a, None);
                    let (round, key) = self.op.packing(1);
                    let own = self.op.converted_product(strategy, 1, plan.regs[a.index()].fmt.bits(), ms);
                    Some(vb.plus(Growing::fixed(round + key)).scaled(ms).plus(Growing::fixed(own)))
                }
            };
            if let Some(o) = inst.out() {
                out.regs[o.index()] = value;
            }
        }
        out
    }

    /// Growth per step of every stored tensor: run the step program once on variances
    /// (the gradient accumulators hold a batch of per-sample contributions) and take the
    /// difference. Accumulators and scratch tensors are reset every step: no growth.
    fn step_growth(&self, fresh: &[Growing], per_sample: &[Growing]) -> Vec<Growing> {
        let batch = self.plan.train.batch as f64;
        // Accumulators start each step at zero (the step program ends with `Zero`).
        let before: Vec<f64> = (self.plan.tensors.iter().zip(fresh).zip(per_sample))
            .map(|((t, f), g)| match t.role {
                TensorRole::Param | TensorRole::State(_) => f.base,
                TensorRole::Grad(_) | TensorRole::Temp => batch * g.base,
            })
            .collect();
        let mut v = before.clone();
        for s in &self.plan.step {
            match *s {
                StepInst::SubAssign { dst, src } | StepInst::AddAssign { dst, src } => v[dst.index()] += v[src.index()],
                // A rescale is a multi-digit bootstrap: the rounding drops the input's
                // noise when it is under half a grid step (else it is carried, scaled:
                // first order), and one weighted output per bit and the sign enters.
                StepInst::Rescale { dst, src, factor, .. } => {
                    let t = &self.plan.tensors[src.index()];
                    let (lsb, top) = t.fmt.bit_span();
                    v[dst.index()] = factor * factor * v[src.index()] + self.op.refresh(top - lsb + 1, t.rows * t.cols);
                }
                StepInst::Zero { dst } => v[dst.index()] = 0.0,
            }
        }
        self.plan
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| match t.role {
                TensorRole::Param | TensorRole::State(_) => {
                    Growing { base: fresh[i].base, per_step: (v[i] - before[i]).max(0.0) }
                }
                TensorRole::Grad(_) | TensorRole::Temp => Growing::fixed(v[i].min(before[i])),
            })
            .collect()
    }

    fn lut_noise(&self, &(inst, lut, input, v): &(usize, LutId, RegId, Growing), t: f64) -> LutNoise {
        let q = self.p.modulus_log2;
        let parts = self.key_parts.get(input.index()).copied().unwrap_or(1);
        let pbs_input = v.plus(Growing::fixed(self.op.before_pbs_parts(parts)));
        let cells = self.plan.luts.get(lut.index()).map_or(1, |l| l.table.len().max(1));
        // A table covers half the torus: a cell is 1/(2·cells) of it.
        let width = 1.0 / (2.0 * cells as f64);
        let sigma = pbs_input.at(t).sqrt();
        let max_sigma = max_sigma_over_w(self.p_fail) * width;
        let steps_to_budget = (pbs_input.per_step > 0.0)
            .then(|| ((max_sigma * max_sigma - pbs_input.base) / pbs_input.per_step).max(0.0));
        LutNoise {
            inst,
            lut,
            input,
            pbs_input,
            log2_std: sigma.log2() + f64::from(q),
            log2_half_cell: (width / 2.0).log2() + f64::from(q),
            margin_bits: (width / 2.0 / sigma).log2(),
            errors: cell_errors(sigma / width),
            log2_std_budget: max_sigma.log2() + f64::from(q),
            steps_to_budget,
        }
    }
}

/// The integer operand of a server × server product: how many values its GGSW sums
/// (a bias column's constant included) and their mean square, from the register's
/// format (uniform over its integer range: the report's bound, not a measurement).
fn int_operand(plan: &Plan, v: RegId, one: Option<i64>) -> (usize, f64) {
    let r = &plan.regs[v.index()];
    let top = r.fmt.range.0.abs().max(r.fmt.range.1.abs()) * f64::from(r.fmt.frac()).exp2();
    let ms = top * top / 3.0;
    let count = r.len + usize::from(one.is_some());
    let one_sq = one.map_or(0.0, |o| (o as f64) * (o as f64));
    (count, (r.len as f64 * ms + one_sq) / count.max(1) as f64)
}

/// Mean of `x²` for `x` uniform over the integers `lo..=hi`.
fn uniform_ms(lo: i64, hi: i64) -> f64 {
    let (lo, hi) = (lo.min(hi) as f64, lo.max(hi) as f64);
    let n = hi - lo + 1.0;
    // Σ x² over lo..=hi via Σ_{x ≤ m} x² = m(m+1)(2m+1)/6, valid for negative m too
    // when written as the difference of two cubic polynomials.
    let s = |m: f64| m * (m + 1.0) * (2.0 * m + 1.0) / 6.0;
    (s(hi) - s(lo - 1.0)) / n
}

#[cfg(test)]
mod tests {
    use super::uniform_ms;

    #[test]
    fn uniform_mean_square() {
        assert_eq!(uniform_ms(-1, 1), 2.0 / 3.0);
        assert_eq!(uniform_ms(0, 2), 5.0 / 3.0);
        let brute: f64 = (-128..=127).map(|x: i64| (x * x) as f64).sum::<f64>() / 256.0;
        assert!((uniform_ms(-128, 127) - brute).abs() < 1e-9);
    }
}
