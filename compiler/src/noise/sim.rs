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
use crate::plan::ProductStrategy;

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

    /// One output coefficient of a product of two server values lowered by `strategy`
    /// (`lower::products`), as its own noise: `count` integer operands summed into one
    /// polynomial GGSW (`‖μ‖² = mu_norm2`; `bits` of each for the bitwise conversion)
    /// times the other operand's GLWE. The converted rows carry a bootstrap's noise
    /// (`formulas::converted_ggsw_row`), and the external product multiplies it by
    /// `(k+1)·levels·N` digits: absolute noise, whatever the operands' sizes.
    /// * `table-ggsw`: one GGSW per value, `convert` gadget;
    /// * `ggsw` (bitwise): one GGSW per bit, each multiplying the other operand scaled by
    ///   `2^bit` (levelled), so the bits' key terms add (`‖bit‖² ≤ ½` each);
    /// * PBS products: a bootstrap's output per scalar product (two for the square trick).
    pub fn converted_product(&self, strategy: ProductStrategy, count: usize, bits: u32, mu_norm2: f64) -> f64 {
        self.converted_product_split(strategy, count, bits, mu_norm2, mu_norm2).iter().sum()
    }

    /// [`Self::converted_product`] of a polynomial GGSW with `(Σμ)² = mu_sum2`, as
    /// `[own, common]`: the noise of each output coefficient on its own, and the part
    /// one draw of which is shared by all the product's outputs (the rounding errors
    /// meeting the mean of `S·μ`: `formulas::external_product_mean`). For the table
    /// conversion only; the others have no shared part.
    pub fn converted_product_split(
        &self,
        strategy: ProductStrategy,
        count: usize,
        bits: u32,
        mu_norm2: f64,
        mu_sum2: f64,
    ) -> [f64; 2] {
        let p = &self.params;
        let count = count.max(1) as f64;
        let row = f::converted_ggsw_row(p, p.convert_bsk, p.pks) * count;
        match strategy {
            ProductStrategy::TableGgsw => [
                f::external_product_poly(p, p.convert, row, mu_norm2, 0.0),
                f::external_product_mean(p, p.convert, mu_sum2),
            ],
            ProductStrategy::GgswConversion => {
                [f64::from(bits) * f::external_product(p, p.ggsw, row, 0.5 * count), 0.0]
            }
            ProductStrategy::BivariateLut => [count * self.pbs, 0.0],
            ProductStrategy::SquareTrick => [2.0 * count * self.pbs, 0.0],
        }
    }

    /// `σ` in units of a `2^modulus_log2` torus, as the simulator adds it.
    pub fn std_units(&self, var: f64) -> f64 {
        var.max(0.0).sqrt() * f64::from(self.params.modulus_log2).exp2()
    }
}

/// The big keys a register's value is a sum over on the encrypted backend (one LWE
/// vector per key: `runtime::tfhe::value`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    pub data: bool,
    pub pbs: bool,
}

impl KeySet {
    pub const DATA: KeySet = KeySet { data: true, pbs: false };
    pub const PBS: KeySet = KeySet { data: false, pbs: true };
    pub fn known(self) -> bool {
        self.data || self.pbs
    }
    pub fn mixed(self) -> bool {
        self.data && self.pbs
    }
    fn union(self, o: KeySet) -> KeySet {
        KeySet { data: self.data || o.data, pbs: self.pbs || o.pbs }
    }
    /// The one key a client-encrypted term combined with `self` is encrypted under.
    fn one(self) -> KeySet {
        if self.pbs {
            KeySet::PBS
        } else {
            self
        }
    }
}

/// Keys of every register of the sample and loss programs: data products under the
/// data key, bootstrap outputs (and server × server products, which end in
/// bootstraps) under the PBS key, levelled ops the union of their operands'. There is
/// no LWE keyswitch back from the PBS key, so `logit + softplus(…)` stays a sum of two
/// parts until the next bootstrap keyswitches each. A label term has no key of its
/// own: it takes one from the register it is combined with (iterated to a fixpoint;
/// label terms never combined get the PBS key). Every register index of the plan must
/// be in range (the runtime checks plans it loads first).
pub fn key_sets(plan: &crate::plan::Plan) -> Vec<KeySet> {
    use crate::plan::Inst;
    let mut keys = vec![KeySet::default(); plan.regs.len()];
    let labels: Vec<usize> = plan
        .all_insts()
        .filter_map(|i| match *i {
            Inst::LabelTerm { out, .. } => Some(out.index()),
            _ => None,
        })
        .collect();
    for _ in 0..plan.all_insts().count() + 1 {
        let before = keys.clone();
        for inst in plan.all_insts() {
            match *inst {
                Inst::DataMatVec { out, .. } => keys[out.index()] = KeySet::DATA,
                Inst::Lut { out, .. }
                | Inst::MatVec { out, .. }
                | Inst::MatVecT { out, .. }
                | Inst::Mul { out, .. } => keys[out.index()] = KeySet::PBS,
                Inst::Add { a, b, out } | Inst::Sub { a, b, out } => {
                    let (a, b, out) = (a.index(), b.index(), out.index());
                    for (l, other) in [(a, b), (b, a)] {
                        if labels.contains(&l) && !keys[l].known() && keys[other].known() {
                            keys[l] = keys[other].one();
                        }
                    }
                    keys[out] = keys[out].union(keys[a]).union(keys[b]);
                }
                Inst::AddConst { a, out, .. }
                | Inst::Dither { a, out, .. }
                | Inst::MulInt { a, out, .. }
                | Inst::Elem { a, out, .. }
                | Inst::Bcast { a, out } => keys[out.index()] = keys[out.index()].union(keys[a.index()]),
                Inst::Concat { ref parts, out } => {
                    for &p in parts {
                        keys[out.index()] = keys[out.index()].union(keys[p.index()]);
                    }
                }
                Inst::LabelTerm { .. } | Inst::DataOuterAcc { .. } | Inst::OuterAcc { .. } => {}
            }
        }
        if keys == before {
            break;
        }
    }
    for &l in &labels {
        if !keys[l].known() {
            keys[l] = KeySet::PBS;
        }
    }
    keys
}

/// Per register, how many big keys its value is a sum over ([`key_sets`]): each is
/// keyswitched on its own before a bootstrap (that many keyswitches' noise).
pub fn key_parts(plan: &crate::plan::Plan) -> Vec<u32> {
    key_sets(plan).into_iter().map(|k| u32::from(k.data) + u32::from(k.pbs)).map(|n| n.max(1)).collect()
}
