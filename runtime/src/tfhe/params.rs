//! Parameter sets of the encrypted backend.
//!
//! Every set takes its dimensions and noise distributions from tfhe's
//! `PARAM_MESSAGE_2_CARRY_2_KS_PBS` (128-bit security) and changes only gadget
//! decompositions, which do not enter the lattice estimate. What the decompositions buy
//! (measured in the GGSW probe):
//!
//! * the bootstrap key needs ≥ 3 levels because the error LUT's output is accumulated
//!   into the weights (the stock 23/1 key makes training diverge): 12/3 is the cheapest
//!   that trains, 10/4 leaves margin for thousands of steps;
//! * data GGSWs 10/4 and the packing key 9/4 keep the gradient noise below the PBS noise.

use std::fmt;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS;

/// A gadget decomposition `(base_log, level_count)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decomp {
    pub base_log: usize,
    pub levels: usize,
}

impl Decomp {
    pub const fn new(base_log: usize, levels: usize) -> Decomp {
        Decomp { base_log, levels }
    }
    pub fn base_log(self) -> DecompositionBaseLog {
        DecompositionBaseLog(self.base_log)
    }
    pub fn level_count(self) -> DecompositionLevelCount {
        DecompositionLevelCount(self.levels)
    }
}

impl fmt::Display for Decomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.base_log, self.levels)
    }
}

/// The name of a parameter set, recorded in every file header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamSetId(pub String);

impl fmt::Display for ParamSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which bootstrap-key decomposition a parameter set uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BskChoice {
    /// 12/3: the cheapest decomposition that keeps training on track (default).
    Bsk12x3,
    /// 10/4: ~25 % slower PBS, 1.7 bits less output noise (long runs).
    Bsk10x4,
}

/// All cryptographic parameters of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSet {
    /// Small LWE dimension `n` (PBS input).
    pub lwe_dim: LweDimension,
    pub glwe_dim: GlweDimension,
    /// Polynomial size `N`; also the LUT resolution `2N` of the plan.
    pub poly_size: PolynomialSize,
    /// Noise of encryptions under the small LWE key (keyswitch key).
    pub lwe_noise: DynamicDistribution<u64>,
    /// Noise of encryptions under GLWE keys (BSK, packing key, data GGSWs, labels, model).
    pub glwe_noise: DynamicDistribution<u64>,
    pub modulus: CiphertextModulus<u64>,
    /// Keyswitch big → small (stock).
    pub ks: Decomp,
    /// Bootstrap key small → PBS GLWE key.
    pub bsk: Decomp,
    /// Packing keyswitch PBS LWE key → data GLWE key.
    pub pks: Decomp,
    /// Client data GGSWs.
    pub ggsw: Decomp,
    /// GGSWs converted from a table's output on the server (`convert.rs`); their
    /// private functional packing keyswitch uses `pks`.
    pub convert: Decomp,
    /// The bootstrap key of those conversions (deeper than `bsk`: see the compiler's
    /// `NoiseParams::convert_bsk`).
    pub convert_bsk: Decomp,
}

impl ParamSet {
    /// The default set: BSK 12/3.
    pub fn default_set() -> ParamSet {
        ParamSet::new(BskChoice::Bsk12x3)
    }

    pub fn new(bsk: BskChoice) -> ParamSet {
        let p = PARAM_MESSAGE_2_CARRY_2_KS_PBS;
        ParamSet {
            lwe_dim: p.lwe_dimension,
            glwe_dim: p.glwe_dimension,
            poly_size: p.polynomial_size,
            lwe_noise: p.lwe_noise_distribution,
            glwe_noise: p.glwe_noise_distribution,
            modulus: p.ciphertext_modulus,
            ks: Decomp::new(p.ks_base_log.0, p.ks_level.0),
            bsk: match bsk {
                BskChoice::Bsk12x3 => Decomp::new(12, 3),
                BskChoice::Bsk10x4 => Decomp::new(10, 4),
            },
            pks: Decomp::new(9, 4),
            ggsw: Decomp::new(10, 4),
            convert: Decomp::new(3, 10),
            convert_bsk: Decomp::new(8, 6),
        }
    }

    /// Every parameter set this build knows.
    pub fn all() -> Vec<ParamSet> {
        vec![ParamSet::new(BskChoice::Bsk12x3), ParamSet::new(BskChoice::Bsk10x4)]
    }

    /// Look a set up by the id recorded in a file header.
    pub fn from_id(id: &str) -> Option<ParamSet> {
        ParamSet::all().into_iter().find(|p| p.id().0 == id)
    }

    /// `bt128-n918-N2048-bsk12x3-pks9x4-ggsw10x4`: everything that changes a ciphertext.
    pub fn id(&self) -> ParamSetId {
        ParamSetId(format!(
            "bt128-n{}-N{}-bsk{}-pks{}-ggsw{}",
            self.lwe_dim.0, self.poly_size.0, self.bsk, self.pks, self.ggsw
        ))
    }

    pub fn n(&self) -> usize {
        self.poly_size.0
    }

    pub fn glwe_size(&self) -> GlweSize {
        self.glwe_dim.to_glwe_size()
    }

    /// LWE dimension of a sample extracted from a GLWE (`k·N`).
    pub fn big_lwe_dim(&self) -> LweDimension {
        LweDimension(self.glwe_dim.0 * self.poly_size.0)
    }
}

/// Serde adapter: a [`ParamSet`] is written as its id and looked up when read.
pub(crate) mod by_id {
    use super::ParamSet;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &ParamSet, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.id().0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ParamSet, D::Error> {
        let id = String::deserialize(d)?;
        ParamSet::from_id(&id).ok_or_else(|| D::Error::custom(format!("unknown parameter set `{id}`")))
    }
}
