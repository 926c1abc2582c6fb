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

use super::analyze::{analyze, AnalyzeOptions, Growing};
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
    /// Bootstraps per training step the refreshes add, amortized.
    pub fn pbs_per_step(&self) -> f64 {
        self.every().map_or(0.0, |r| self.pbs_per_refresh as f64 / r as f64)
    }
}

/// The budget of every parameter tensor that gains noise.
pub fn budgets(plan: &Plan, p: &NoiseParams, opts: &AnalyzeOptions) -> Vec<TensorBudget> {
    let noise = analyze(plan, p, opts);
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
            let digits = top - lsb + 1;
            // Half an LSB as a fraction of the torus.
            let half = (f64::from(lsb) - 1.0 - q).exp2();
            let refreshed = Growing { base: op.refresh(digits, coeffs as usize), per_step: n.var.per_step };
            let fail = |v: Growing, steps: f64| coeffs as f64 * erfc(half / (2.0 * v.at(steps)).sqrt());
            let steps_at = |v: Growing, prob: f64| {
                let z = z_two_sided(prob / coeffs as f64);
                ((half / z).powi(2) - v.base) / v.per_step
            };
            let steps_to_budget = steps_at(n.var, p_w).max(0.0);
            let median_break = steps_at(n.var, std::f64::consts::LN_2).max(0.0);
            let supported = matches!(t.layout, Layout::DataPoly { .. });
            let decision = if !supported {
                Decision::Unsupported
            } else if steps_to_budget >= HORIZON_STEPS as f64 {
                Decision::NotNeeded
            } else {
                // Longest R with fail(R) ≤ p_w·R/horizon: fail grows much faster than R.
                let ok = |r: u64| fail(refreshed, r as f64) <= p_w * r as f64 / HORIZON_STEPS as f64;
                if !ok(1) {
                    Decision::Infeasible
                } else {
                    match (2..=HORIZON_STEPS).find(|&r| !ok(r)) {
                        Some(r) => Decision::Every { steps: r - 1 },
                        None => Decision::NotNeeded,
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
                refreshed_log2_std: log2_std_u64(refreshed.base, p.modulus_log2),
                steps_to_budget,
                median_break,
                decision,
                digits,
                pbs_per_refresh: coeffs * u64::from(digits),
            }
        })
        .collect()
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

/// [`place`] with the data's mean `xq²` per input when known (without it the model
/// takes `xq` uniform over its range: pessimistic for real embeddings, so it refreshes
/// more often than needed).
pub fn place_with(plan: &mut Plan, feature_ms: Vec<Option<f64>>) {
    let p = super::choose::chosen_params(&super::choose::choose_key(plan));
    let opts = AnalyzeOptions { feature_ms, ..AnalyzeOptions::new(plan.train.p_fail) };
    plan.train.refresh = schedule(plan, &p, &opts);
}

/// `z` with `P(|N(0,1)| ≥ z) = p` (bisection on `erfc(z/√2) = p`).
fn z_two_sided(p: f64) -> f64 {
    if p >= 1.0 {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if erfc(mid / std::f64::consts::SQRT_2) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::z_two_sided;

    #[test]
    fn two_sided_quantiles() {
        assert!((z_two_sided(0.05) - 1.959_96).abs() < 1e-4);
        assert!((z_two_sided(1e-6) - 4.891_64).abs() < 1e-3);
    }
}
