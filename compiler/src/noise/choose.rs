//! The bootstrap key: which of the runtime's parameter sets a plan should run with.
//!
//! The sets differ only in the bootstrap key's decomposition, which sets the noise a
//! bootstrap *adds to its output* (not what it reads: the failure probability of a
//! table comes from the keyswitch and modulus switch in front of it, equal for every
//! set). A finer decomposition costs time, so the question is how much output noise a
//! table can carry. The rule: **the output noise σ must stay below half the largest
//! difference between neighbouring cells of the table**, in every epoch (the learning
//! rate schedule shrinks lr-scaled tables; the last epoch is the worst). A bootstrap
//! reads its input to within a cell (one cell off is routine), so the error a table
//! already accepts is one output step; output noise below half a step leaves the
//! table's resolution, not the key, in charge of the value's precision. Among the
//! sets that satisfy every table the cheapest wins; if none does, the quietest.
//!
//! Measured on `mnist_vit_sigmoid` (16 epochs, lr halved every 3): the error table's
//! steepest step is 2^38 in the last epoch; 12x3 adds σ 2^38.5 (encrypted test accuracy
//! 0.6 points from the clear run, simulated mean gap 0.6), 10x4 adds 2^36.7 (simulated
//! mean gap 0.23).

use super::formulas::{log2_std_u64, pbs as pbs_var};
use super::params::{Decomp, NoiseParams};
use crate::plan::{LutEncoding, Plan};
use crate::report::PARAM_SETS;
use serde::Serialize;

/// The decision and what it was made from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyChoice {
    /// Index into [`PARAM_SETS`].
    pub chosen: usize,
    /// Decomposition of the chosen bootstrap key, `(base_log, levels)`.
    pub bsk: (usize, usize),
    /// One per parameter set, in [`PARAM_SETS`] order.
    pub candidates: Vec<KeyCandidate>,
    /// The table with the smallest step (the one that decides), if the plan has tables.
    pub limiting_lut: Option<String>,
    /// `log2` of half that table's largest step in its worst epoch, u64 torus units:
    /// the output σ a key may add.
    pub log2_half_step: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyCandidate {
    /// `12x3`, `10x4`.
    pub bsk: String,
    /// Nominal single-thread milliseconds of one bootstrap.
    pub pbs_ms: f64,
    /// `log2 σ` of a bootstrap's output noise, u64 torus units.
    pub out_log2_std: f64,
    /// Whether every table keeps its output noise under half a step.
    pub meets: bool,
}

impl KeyChoice {
    pub fn name(&self) -> &str {
        &self.candidates[self.chosen].bsk
    }
}

/// The noise parameters of the chosen set.
pub fn chosen_params(key: &KeyChoice) -> NoiseParams {
    NoiseParams::DEFAULT.with_bsk(Decomp::new(key.bsk.0 as u32, key.bsk.1 as u32))
}

/// Choose the bootstrap key for `plan` (at its current epoch count: a shorter run ends
/// at a larger learning rate and may afford a cheaper key).
pub fn choose_key(plan: &Plan) -> KeyChoice {
    let last_shift = plan.train.max_lr_shift();
    let limit = plan
        .luts
        .iter()
        .filter_map(|l| {
            let step = largest_step(&l.table, l.encoding);
            let shift = if l.lr_scaled { last_shift } else { 0 };
            (step > 0).then(|| (l.name.clone(), (step as f64).log2() + f64::from(l.out_shift) - f64::from(shift) - 1.0))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let candidates: Vec<KeyCandidate> = PARAM_SETS
        .iter()
        .map(|set| {
            let d = Decomp::new(set.bsk.0 as u32, set.bsk.1 as u32);
            let p = NoiseParams::DEFAULT.with_bsk(d);
            let out = log2_std_u64(pbs_var(&p, d), p.modulus_log2);
            KeyCandidate {
                bsk: format!("{}x{}", set.bsk.0, set.bsk.1),
                pbs_ms: set.pbs_ms,
                out_log2_std: out,
                meets: limit.as_ref().is_none_or(|l| out <= l.1),
            }
        })
        .collect();
    let cheapest_meeting = (0..candidates.len())
        .filter(|&i| candidates[i].meets)
        .min_by(|&a, &b| candidates[a].pbs_ms.total_cmp(&candidates[b].pbs_ms));
    let quietest =
        (0..candidates.len()).min_by(|&a, &b| candidates[a].out_log2_std.total_cmp(&candidates[b].out_log2_std));
    let chosen = cheapest_meeting.or(quietest).unwrap_or(0);
    KeyChoice {
        chosen,
        bsk: PARAM_SETS[chosen].bsk,
        candidates,
        log2_half_step: limit.as_ref().map(|l| l.1),
        limiting_lut: limit.map(|l| l.0),
    }
}

/// Largest |difference| between the values of neighbouring cells, in table units. A
/// full-torus table also has the neighbours across phase 0 (its last cell is read
/// negated just below it); a half-torus table wraps only outside its window.
fn largest_step(table: &[i64], encoding: LutEncoding) -> u64 {
    let inner = table.windows(2).map(|w| w[1].abs_diff(w[0])).max().unwrap_or(0);
    let wrap = match (encoding, table.first(), table.last()) {
        (LutEncoding::FullTorus, Some(&first), Some(&last)) => first.saturating_add(last).unsigned_abs(),
        _ => 0,
    };
    inner.max(wrap)
}

#[cfg(test)]
mod tests {
    use super::largest_step;
    use crate::plan::LutEncoding;

    #[test]
    fn steps_include_the_wrap_only_on_the_full_torus() {
        // Odd table: cell 0 at 0, last cell read negated just below phase 0.
        let t = [0, 10, 30, 40, -35, -25];
        assert_eq!(largest_step(&t, LutEncoding::HalfTorus), 75);
        assert_eq!(largest_step(&[0, 10, 30, 40], LutEncoding::HalfTorus), 20);
        assert_eq!(largest_step(&[5, 10, 12, 20], LutEncoding::FullTorus), 25);
    }
}
