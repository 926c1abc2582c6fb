//! `--backend simulate`: the clear backend plus the modelled noise.
//!
//! The clear machine carries exact torus values; an [`Injector`] attached to it adds,
//! at every lowered operation, a Gaussian sample with the variance the noise model
//! predicts for what that operation adds by itself (`blindtuner_compiler::noise::sim`).
//! Noise then flows through the integer arithmetic like it does through ciphertexts:
//! weights accumulate it step after step, and a bootstrap whose input phase drifts into
//! a neighbouring cell reads that cell. This is a fast predictor of the encrypted run's
//! accuracy, not a bit-exact one (a different random stream).

use crate::rng::SplitMix;
use blindtuner_compiler::noise::OpNoise;
use blindtuner_compiler::plan::{Layout, Lut};

/// Where an injected bootstrap landed, relative to the noise-free cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellTally {
    pub pbs: u64,
    /// Landed in an adjacent cell (numeric error).
    pub one_off: u64,
    /// Landed two or more cells away in a table where that is a failure.
    pub far: u64,
    /// Landed two or more cells away in a `graded` table (an activation, its derivative,
    /// a gate): a larger rounding error, not a failure.
    pub graded_far: u64,
}

impl CellTally {
    /// Count one bootstrap of `lut` that should have read cell `clean` and read `used`
    /// (cells numbered `0..2·cells` around the torus).
    pub fn record(&mut self, lut: &Lut, clean: usize, used: usize) {
        self.pbs += 1;
        match cell_distance(lut.table.len(), clean, used) {
            0 => {}
            1 => self.one_off += 1,
            _ if lut.graded => self.graded_far += 1,
            _ => self.far += 1,
        }
    }
    pub fn plus(self, o: &CellTally) -> CellTally {
        CellTally {
            pbs: self.pbs + o.pbs,
            one_off: self.one_off + o.one_off,
            far: self.far + o.far,
            graded_far: self.graded_far + o.graded_far,
        }
    }
    pub fn minus(self, o: &CellTally) -> CellTally {
        CellTally {
            pbs: self.pbs - o.pbs,
            one_off: self.one_off - o.one_off,
            far: self.far - o.far,
            graded_far: self.graded_far - o.graded_far,
        }
    }
    pub fn one_off_rate(&self) -> f64 {
        self.one_off as f64 / self.pbs.max(1) as f64
    }
}

#[derive(Clone, Debug)]
pub struct Injector {
    pub op: OpNoise,
    rng: SplitMix,
    /// Learning-rate shift of the last epoch: labels are encrypted at it.
    pub max_shift: u32,
    pub cells: CellTally,
}

impl Injector {
    pub fn new(op: OpNoise, seed: u64, max_shift: u32) -> Injector {
        Injector { op, rng: SplitMix::derive(seed, "simulate"), max_shift, cells: CellTally::default() }
    }

    /// One Gaussian sample of variance `var` (torus fraction²), as a wrapping torus value.
    pub fn sample(&mut self, var: f64) -> u64 {
        if var <= 0.0 {
            return 0;
        }
        let x = self.op.std_units(var) * self.rng.normal();
        // |x| ≪ 2^63 for any variance the model produces; `as` saturates beyond.
        (x.round() as i64) as u64
    }

    pub fn add(&mut self, vals: &mut [u64], var: f64) {
        for v in vals {
            *v = v.wrapping_add(self.sample(var));
        }
    }

    /// Tally where a bootstrap of `lut` landed (see [`CellTally::record`]).
    pub fn tally(&mut self, lut: &Lut, clean: usize, used: usize) {
        self.cells.record(lut, clean, used);
    }
}

/// How many cells apart `a` and `b` are on a table of `cells` cells, numbered
/// `0..2·cells` around the torus (the second half negacyclic, as `Lut::eval` numbers them).
pub fn cell_distance(cells: usize, a: usize, b: usize) -> usize {
    let n = 2 * cells.max(1);
    let d = a.abs_diff(b) % n;
    d.min(n - d)
}

/// `‖μ‖²` of each data polynomial a sample's features `x` fill under `layout`.
pub fn poly_norms(layout: Layout, x: &[i64]) -> Vec<f64> {
    let sq = |s: &[i64]| s.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
    match layout {
        Layout::DataPoly { per_poly, .. } if per_poly > 0 => x.chunks(per_poly).map(sq).collect(),
        _ => vec![sq(x)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindtuner_compiler::noise::NoiseParams;

    #[test]
    fn samples_have_the_requested_spread() {
        let mut inj = Injector::new(OpNoise::new(&NoiseParams::DEFAULT), 7, 0);
        let var = (-40.0f64).exp2(); // σ = 2^-20 of the torus = 2^44 units
        let n = 20_000;
        let ms: f64 = (0..n).map(|_| (inj.sample(var) as i64 as f64).powi(2)).sum::<f64>() / n as f64;
        let ratio = ms / 2f64.powi(88);
        assert!((0.95..1.05).contains(&ratio), "measured/predicted variance {ratio}");
    }

    #[test]
    fn cell_distance_wraps_around_the_torus() {
        let mut inj = Injector::new(OpNoise::new(&NoiseParams::DEFAULT), 0, 0);
        let lut = |graded| Lut {
            name: "t".into(),
            func: "t".into(),
            encoding: blindtuner_compiler::plan::LutEncoding::HalfTorus,
            offset: 0,
            table: vec![0; 64],
            out_shift: 0,
            in_fmt: blindtuner_compiler::plan::Format { scale: 58, lsb: 58, range: (-1.0, 1.0), proven: true },
            assumed: (-1.0, 1.0),
            window: (-2.0, 2.0),
            lr_scaled: false,
            graded,
        };
        inj.tally(&lut(false), 0, 127);
        inj.tally(&lut(false), 3, 3);
        inj.tally(&lut(false), 10, 12);
        inj.tally(&lut(true), 10, 12);
        assert_eq!(inj.cells, CellTally { pbs: 4, one_off: 1, far: 1, graded_far: 1 });
    }

    #[test]
    fn norms_follow_the_polynomial_split() {
        let x = [1, 2, 3, 4, 5];
        assert_eq!(poly_norms(Layout::Lwe, &x), vec![55.0]);
        let l = Layout::DataPoly { input: blindtuner_compiler::spec::InputId(0), per_poly: 2, polys: 3 };
        assert_eq!(poly_norms(l, &x), vec![5.0, 25.0, 25.0]);
    }
}
