//! Refresh placement: which stored tensors to bootstrap, and every how many steps.
//!
//! A stored tensor's format promises values on a `2^lsb` grid. The levelled updates
//! add noise every step (a random walk: [`analyze`](super::analyze), and the lock-step
//! runs measure it at 0.8–1.2 × the predicted σ); a *refresh* is a multi-digit
//! bootstrap of every coefficient (one bootstrap per bit from `lsb` to the top of the
//! tensor's range, plus the sign, see [`Refresh`]) that rounds the value back onto the
//! grid. That removes the noise exactly when it is under half a grid step, so the
//! noise budget of a tensor is **half its LSB**: a refresh fails when any coefficient's
//! noise has crossed it.
//!
//! The schedule is the longest interval `R` whose refreshes stay within the weights'
//! share of the spec's failure budget (half of `p_fail`; the other half is the
//! bootstraps'), over a horizon of [`HORIZON_STEPS`] steps (the plan does not know
//! the dataset size): `coeffs · P(|N(0, σ_R²)| ≥ lsb/2) ≤ p_w · R / horizon`. Fewer
//! refreshes cost fewer PBS, so the longest feasible `R` is the cheapest. Three
//! outcomes:
//!
//! * **not needed**: the noise stays under budget for the whole horizon;
//! * **every R steps**;
//! * **infeasible**: one step already adds more noise than the budget (the format's
//!   last bits are noise after the first update, and no refresh can restore them).
//!   The linear heads on real embeddings are here: their per-step noise is the error
//!   table's bootstrap noise times `‖xq‖`, comparable to the update itself, so the
//!   weights train with it (SGD absorbs it; `simulate` measures the accuracy).
//!   A spec gets a refreshable grid by pinning a coarser `format` for the param.

use super::analyze::{analyze, AnalyzeOptions, NoiseReport};
use super::formulas::log2_std_u64;
use super::params::NoiseParams;
use super::sim::OpNoise;
use super::tail::erfc;
use crate::plan::{Layout, Plan, Refresh, TensorId, TensorRole};
use serde::Serialize;

/// Steps the failure budget is spread over when the run length is not known.
pub const HORIZON_STEPS: u64 = 1 << 20;

/// The noise budget of one stored tensor and the refresh decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorBudget {
    pub tensor: TensorId,
    pub name: String,
    /// Grid of the format (`2^lsb` torus units) and the assumed top of the range.
    pub lsb: u32,
    pub top: u32,
    pub coeffs: u64,
    /// `log2 σ` in u64 torus units: fresh, added per step, right after a refresh.
    pub fresh_log2_std: f64,
    pub per_step_log2_std: f64,
    pub refreshed_log2_std: f64,
    /// Steps without refresh until a coefficient's noise crosses half an LSB with
    /// probability `p_w` (the budget), and with probability ½ (the expected breaking
    /// point, what a run observes).
    pub steps_to_budget: f64,
    pub median_break: f64,
    pub decision: Decision,
    /// Bootstraps per coefficient and per refresh of the whole tensor.
    pub digits: u32,
    pub pbs_per_refresh: u64,
    /// What the probabilities are computed from: half an LSB (torus fraction), the
    /// fresh variance and the growth per step of the mean feature's coefficient, and
    /// every column's feature size relative to the mean one.
    #[serde(skip)]
    model: ExceedModel,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct ExceedModel {
    half: f64,
    fresh: f64,
    per_step: f64,
    rows: usize,
    rel: Vec<f64>,
}

impl ExceedModel {
    /// P(some coefficient ≥ half an LSB) `steps` after a state of variance `base`:
    /// coefficient (r, j) gains `per_step · rel_j` per step.
    fn p_any(&self, base: f64, steps: f64) -> f64 {
        let log_survive: f64 = self
            .rel
            .iter()
            .map(|r| {
                let pc = erfc(self.half / (2.0 * (base + steps * self.per_step * r)).sqrt()).min(1.0);
                -(-pc).ln_1p()
            })
            .sum::<f64>()
            * self.rows as f64;
        -(-log_survive).exp_m1()
    }
    /// The step at which [`ExceedModel::p_any`] from `base` reaches `prob`.
    fn steps_at(&self, base: f64, prob: f64) -> f64 {
        bisect(|s| self.p_any(base, s) < prob, 0.0, 1e15)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    NotNeeded,
    Every {
        steps: u64,
    },
    Infeasible,
    /// Not a polynomial parameter tensor (the runtime refreshes those only).
    Unsupported,
}

impl TensorBudget {
    pub fn every(&self) -> Option<u64> {
        match self.decision {
            Decision::Every { steps } => Some(steps),
            _ => None,
        }
    }
    /// Without refreshes: P(some coefficient has reached half an LSB) after `steps`.
    pub fn p_exceed(&self, steps: f64) -> f64 {
        self.model.p_any(self.model.fresh, steps)
    }
    /// Without refreshes: the step at which [`TensorBudget::p_exceed`] reaches `prob`.
    pub fn steps_at(&self, prob: f64) -> f64 {
        self.model.steps_at(self.model.fresh, prob)
    }
    /// Bootstraps per training step the refreshes add, amortized.
    pub fn pbs_per_step(&self) -> f64 {
        self.every().map_or(0.0, |r| self.pbs_per_refresh as f64 / r as f64)
    }
}

/// The budget of every parameter tensor that gains noise.
pub fn budgets(plan: &Plan, p: &NoiseParams, opts: &AnalyzeOptions) -> Vec<TensorBudget> {
    budgets_of(plan, &analyze(plan, p, opts), opts)
}

/// [`budgets`] from an analysis already made with `opts` (the report has one).
pub fn budgets_of(plan: &Plan, noise: &NoiseReport, opts: &AnalyzeOptions) -> Vec<TensorBudget> {
    let p = &noise.params;
    let op = OpNoise::new(p);
    let p_w = plan.train.p_fail / 2.0;
    plan.tensors
        .iter()
        .enumerate()
        .zip(&noise.tensors)
        .filter(|((_, t), n)| t.role == TensorRole::Param && n.var.per_step > 0.0)
        .map(|((i, t), n)| {
            let q = f64::from(p.modulus_log2);
            let (lsb, top) = t.fmt.bit_span();
            let coeffs = (t.rows * t.cols) as u64;
            let digits = crate::plan::rescale_pbs(lsb, top, 1.0);
            // Half an LSB as a fraction of the torus.
            let half = (f64::from(lsb) - 1.0 - q).exp2();
            // Variance right after a refresh: its bootstrap outputs and the packing.
            let refreshed = op.refresh(digits, coeffs as usize);
            let model = ExceedModel {
                half,
                fresh: n.var.base,
                per_step: n.var.per_step,
                rows: t.rows,
                rel: relative_sizes(plan, t, opts),
            };
            let steps_to_budget = model.steps_at(n.var.base, p_w);
            let median_break = model.steps_at(n.var.base, 0.5);
            let supported = matches!(t.layout, Layout::DataPoly { .. });
            let decision = if !supported {
                Decision::Unsupported
            } else if steps_to_budget >= HORIZON_STEPS as f64 {
                Decision::NotNeeded
            } else {
                // Longest R whose refreshes keep p_w over the horizon: p_any(R) ≤ p_w·R/horizon
                // (the left side grows much faster than R, so the set of good R is 1..=R*).
                let ok = |r: f64| model.p_any(refreshed, r) <= p_w * r / HORIZON_STEPS as f64;
                if !ok(1.0) {
                    Decision::Infeasible
                } else {
                    let r = bisect(ok, 1.0, HORIZON_STEPS as f64).floor() as u64;
                    if r >= HORIZON_STEPS {
                        Decision::NotNeeded
                    } else {
                        Decision::Every { steps: r.max(1) }
                    }
                }
            };
            TensorBudget {
                tensor: TensorId(i as u32),
                name: t.name.clone(),
                lsb,
                top,
                coeffs,
                fresh_log2_std: log2_std_u64(n.var.base, p.modulus_log2),
                per_step_log2_std: log2_std_u64(n.var.per_step, p.modulus_log2),
                refreshed_log2_std: log2_std_u64(refreshed, p.modulus_log2),
                steps_to_budget,
                median_break,
                decision,
                digits,
                pbs_per_refresh: coeffs * u64::from(digits),
                model,
            }
        })
        .collect()
}

/// Per column of a parameter tensor: its feature's mean `xq²` over the mean one (the
/// model's per-coefficient variance is for the mean feature), or 1 when unknown.
fn relative_sizes(plan: &Plan, t: &crate::plan::PlanTensor, opts: &AnalyzeOptions) -> Vec<f64> {
    let Layout::DataPoly { input, .. } = t.layout else { return vec![1.0; t.cols] };
    let Some(pos) = plan.inputs.iter().position(|i| i.id == input) else { return vec![1.0; t.cols] };
    match opts.feature_ms_each.get(pos).and_then(Option::as_ref) {
        Some(each) if each.len() == t.cols && !each.is_empty() => {
            let mean = opts
                .feature_ms
                .get(pos)
                .copied()
                .flatten()
                .unwrap_or_else(|| each.iter().sum::<f64>() / each.len() as f64);
            each.iter().map(|m| m / mean.max(f64::MIN_POSITIVE)).collect()
        }
        _ => vec![1.0; t.cols],
    }
}

/// The largest `x` in `[lo, hi]` with `good(x)`, for a `good` that holds up to some
/// point and not after (`lo` when even `lo` fails; `hi` when all hold).
fn bisect(good: impl Fn(f64) -> bool, lo: f64, hi: f64) -> f64 {
    if !good(lo) {
        return lo;
    }
    if good(hi) {
        return hi;
    }
    let (mut lo, mut hi) = (lo, hi);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if good(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The refreshes the plan should run with under `p` (the chosen key's parameters).
pub fn schedule(plan: &Plan, p: &NoiseParams, opts: &AnalyzeOptions) -> Vec<Refresh> {
    budgets(plan, p, opts)
        .iter()
        .filter_map(|b| b.every().map(|every| Refresh { tensor: b.tensor, every, lsb: b.lsb, top: b.top }))
        .collect()
}

/// Fill `plan.train.refresh` for the key the compiler chooses for it. Call again after
/// changing anything the choice depends on (the epochs: the key follows the last
/// epoch's learning rate).
pub fn place(plan: &mut Plan) {
    place_with(plan, Vec::new());
}

/// [`place`] with the data's feature sizes when known: per input, the mean `xq_j²` of
/// every augmented feature (without them the model takes `xq` uniform over its range,
/// pessimistic for real embeddings on average, so it refreshes more often than needed).
pub fn place_with(plan: &mut Plan, feature_ms_each: Vec<Option<Vec<f64>>>) {
    let p = super::choose::chosen_params(&super::choose::choose_key(plan));
    let feature_ms =
        feature_ms_each.iter().map(|e| e.as_ref().map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)).collect();
    let opts = AnalyzeOptions { feature_ms, feature_ms_each, ..AnalyzeOptions::new(plan.train.p_fail) };
    plan.train.refresh = schedule(plan, &p, &opts);
}

#[cfg(test)]
mod tests {
    use super::bisect;

    #[test]
    fn bisect_finds_the_last_good_point() {
        assert!((bisect(|x| x * x <= 2.0, 0.0, 10.0) - 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(bisect(|_| false, 1.0, 5.0), 1.0);
        assert_eq!(bisect(|_| true, 1.0, 5.0), 5.0);
    }
}
