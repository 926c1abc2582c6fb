//! What each lowered operation adds by itself, for a simulator that replays a plan on
//! clear values and injects Gaussian noise where the encrypted backend would create it.
//!
//! [`analyze`](super::analyze) propagates variances symbolically; a simulator instead
//! carries noisy values, so it only needs the *own* term of every operation (the terms
//! inherited from operands come with the operands). Both read their numbers from here,
//! so the simulation and the report cannot drift apart.
//!
//! Unit: variance as a fraction of the torus, squared (as in [`formulas`](super::formulas)).

use super::formulas as f;
use super::params::NoiseParams;

/// The own noise of every lowered operation under one parameter set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpNoise {
    pub params: NoiseParams,
    /// Fresh GLWE encryption (model tensors, labels, the data GGSW rows).
    pub fresh_glwe: f64,
    /// Output of any bootstrap.
    pub pbs: f64,
    /// Keyswitch big → small key in front of a bootstrap.
    pub keyswitch: f64,
    /// Modulus switch to `2N` in front of a bootstrap (rounding, treated as Gaussian).
    pub modulus_switch: f64,
}

impl OpNoise {
    pub fn new(p: &NoiseParams) -> OpNoise {
        OpNoise {
            params: *p,
            fresh_glwe: p.glwe_var(),
            pbs: f::pbs(p, p.bsk),
            keyswitch: f::keyswitch(p, p.big_lwe_dim(), p.ks, p.lwe_var()),
            modulus_switch: f::pbs_modulus_switch(p),
        }
    }

    /// Added to the phase a bootstrap reads, on top of its input's own noise.
    pub fn before_pbs(&self) -> f64 {
        self.keyswitch + self.modulus_switch
    }

    /// [`OpNoise::before_pbs`] for an input that is a sum over `parts` keys: every part
    /// is keyswitched to the small key on its own (see [`key_parts`]).
    pub fn before_pbs_parts(&self, parts: u32) -> f64 {
        self.keyswitch * f64::from(parts.max(1)) + self.modulus_switch
    }

    /// One external product with a data GGSW whose polynomial has `‖μ‖² = mu_norm2`
    /// (the term the ciphertext it multiplies brings is inherited, not included).
    pub fn external_product(&self, mu_norm2: f64) -> f64 {
        let p = &self.params;
        f::external_product(p, p.ggsw, p.glwe_var(), mu_norm2)
    }

    /// Packing `count` LWE into one GLWE before an outer product: `(per_value,
    /// key_term)`. Each packed value gets its own rounding noise `per_value` (which the
    /// outer product then multiplies by the data); the key term is shared by all and
    /// reaches every output coefficient multiplied by `‖μ‖²`.
    pub fn packing(&self, count: usize) -> (f64, f64) {
        let p = &self.params;
        let dim = p.big_lwe_dim();
        (f::packing_keyswitch_rounding(p, dim, p.pks), f::packing_keyswitch_key(dim, p.pks, p.glwe_var(), count))
    }

    /// A label term encrypted at learning-rate shift `max_shift` and used at `shift`:
    /// the client encrypts the smallest value once and the server multiplies it back up
    /// by `2^(max_shift − shift)`, noise included.
    pub fn label(&self, max_shift: u32, shift: u32) -> f64 {
        self.fresh_glwe * (2.0 * f64::from(max_shift.saturating_sub(shift))).exp2()
    }

    /// A multi-digit bootstrap rescale: one fresh bootstrap output per digit.
    pub fn rescale(&self, digits: u32) -> f64 {
        f64::from(digits) * self.pbs
    }

    /// A refresh of a tensor of `coeffs` coefficients (see `plan::Refresh`): `digits`
    /// bootstrap outputs summed per coefficient, then packed back into GLWEs.
    pub fn refresh(&self, digits: u32, coeffs: usize) -> f64 {
        let (round, key) = self.packing(coeffs);
        self.rescale(digits) + round + key
    }

    /// `σ` in units of a `2^modulus_log2` torus, as the simulator adds it.
    pub fn std_units(&self, var: f64) -> f64 {
        var.max(0.0).sqrt() * f64::from(self.params.modulus_log2).exp2()
    }
}

/// Per register, how many big keys its value is a sum over on the encrypted backend:
/// data products are under the data key, bootstrap outputs under the PBS key, and
/// there is no LWE keyswitch back from the PBS key, so `logit + softplus(…)` stays a
/// sum of two parts until the next bootstrap keyswitches each (two keyswitches' noise).
/// Client-encrypted terms join whichever key they are combined with.
pub fn key_parts(plan: &crate::plan::Plan) -> Vec<u32> {
    use crate::plan::Inst;
    const DATA: u8 = 1;
    const PBS: u8 = 2;
    let mut k = vec![0u8; plan.regs.len()];
    for inst in plan.all_insts() {
        let from = |k: &[u8], rs: &[crate::plan::RegId]| rs.iter().fold(0, |m, r| m | k[r.index()]);
        let v = match inst {
            Inst::DataMatVec { .. } => DATA,
            Inst::LabelTerm { .. } => 0,
            Inst::Lut { .. } | Inst::MatVec { .. } | Inst::MatVecT { .. } | Inst::Mul { .. } => PBS,
            other => from(&k, &other.reads()),
        };
        if let Some(out) = inst.out() {
            k[out.index()] = v;
        }
    }
    k.into_iter().map(|m| (m.count_ones()).max(1)).collect()
}
