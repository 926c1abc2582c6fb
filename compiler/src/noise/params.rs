//! The numbers of a parameter set that the noise model needs, as plain data.
//!
//! The compiler must not depend on tfhe, so the runtime's `ParamSet` is mirrored
//! here; a runtime test (`runtime/tests/noise_formulas.rs`) asserts that the
//! constants below equal what the runtime really uses, so the two cannot drift.

use serde::{Deserialize, Serialize};

/// A gadget decomposition: `levels` digits of `base_log` bits each (base `B = 2^base_log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decomp {
    pub base_log: u32,
    pub levels: u32,
}

impl Decomp {
    pub const fn new(base_log: u32, levels: u32) -> Decomp {
        Decomp { base_log, levels }
    }
    /// The base `B` as a float.
    pub fn base(self) -> f64 {
        f64::from(self.base_log).exp2()
    }
    /// Bits of the input the decomposition keeps (`base_log · levels`).
    pub fn kept_bits(self) -> u32 {
        self.base_log * self.levels
    }
}

/// An encryption noise distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum NoiseDist {
    /// tfhe's `TUniform(b)`: integers in `[−2^b, 2^b]`, the two ends with half the
    /// probability of the others. Variance `(2^(2b+1) + 1) / 6` integer units².
    TUniform { bound_log2: u32 },
    /// Rounded Gaussian with standard deviation `std` as a fraction of the torus.
    Gaussian { std: f64 },
}

impl NoiseDist {
    /// Variance on the torus (as a fraction of it, squared) for a modulus `2^modulus_log2`.
    pub fn variance(self, modulus_log2: u32) -> f64 {
        match self {
            NoiseDist::TUniform { bound_log2 } => {
                let int_var = ((2 * bound_log2 + 1) as f64).exp2() + 1.0;
                int_var / 6.0 / (2.0 * f64::from(modulus_log2)).exp2()
            }
            NoiseDist::Gaussian { std } => std * std,
        }
    }
}

/// Everything the noise formulas read from a parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseParams {
    /// Ciphertext modulus `q = 2^modulus_log2` (64: native u64 torus).
    pub modulus_log2: u32,
    /// Small LWE dimension `n` (bootstrap input).
    pub lwe_dim: usize,
    /// GLWE dimension `k`.
    pub glwe_dim: usize,
    /// Polynomial size `N`.
    pub poly_size: usize,
    /// Noise of encryptions under the small key (the keyswitch keys).
    pub lwe_noise: NoiseDist,
    /// Noise of encryptions under GLWE keys (bootstrap key, packing key, data GGSWs,
    /// labels, the model).
    pub glwe_noise: NoiseDist,
    /// Keyswitch big (`k·N`) → small (`n`).
    pub ks: Decomp,
    /// Bootstrap key.
    pub bsk: Decomp,
    /// Packing keyswitch key (bootstrap outputs → one GLWE under the data key).
    pub pks: Decomp,
    /// The client's data GGSWs.
    pub ggsw: Decomp,
    /// GGSWs the server converts a table's output into (`ProductStrategy::TableGgsw`):
    /// their rows are as noisy as a bootstrap's output, so a small base with more levels.
    pub convert: Decomp,
    /// The bootstrap key of those conversions: deeper than `bsk`, because the external
    /// product multiplies the rows' noise by `(k+1)·levels·N` digits and the products
    /// accumulate into weights (`mnist_vit_mlp` in `simulate`: 18 % with `bsk`'s 12x3,
    /// 78 % with 10x4, 83.8 % with 8x6, clear 84.4 %).
    pub convert_bsk: Decomp,
    /// Mantissa bits of the FFT's floating point (f64: 53); enters the FFT error term.
    pub fft_mantissa: u32,
}

impl NoiseParams {
    /// The runtime's default set (`bt128-n918-N2048-bsk12x3-pks9x4-ggsw10x4`): tfhe's
    /// `PARAM_MESSAGE_2_CARRY_2_KS_PBS` dimensions and noise, decompositions changed.
    pub const DEFAULT: NoiseParams = NoiseParams {
        modulus_log2: 64,
        lwe_dim: 918,
        glwe_dim: 1,
        poly_size: 2048,
        lwe_noise: NoiseDist::TUniform { bound_log2: 45 },
        glwe_noise: NoiseDist::TUniform { bound_log2: 17 },
        ks: Decomp::new(4, 4),
        bsk: Decomp::new(12, 3),
        pks: Decomp::new(9, 4),
        ggsw: Decomp::new(10, 4),
        convert: Decomp::new(3, 10),
        convert_bsk: Decomp::new(8, 6),
        fft_mantissa: 53,
    };

    /// The default set with another bootstrap-key decomposition (the runtime also has 10/4).
    pub const fn with_bsk(self, bsk: Decomp) -> NoiseParams {
        NoiseParams { bsk, ..self }
    }

    /// `q` as a float.
    pub fn modulus(&self) -> f64 {
        f64::from(self.modulus_log2).exp2()
    }
    /// Dimension of an LWE extracted from a GLWE (`k·N`).
    pub fn big_lwe_dim(&self) -> usize {
        self.glwe_dim * self.poly_size
    }
    /// Variance of a fresh encryption under the small key.
    pub fn lwe_var(&self) -> f64 {
        self.lwe_noise.variance(self.modulus_log2)
    }
    /// Variance of a fresh encryption under a GLWE key (per coefficient).
    pub fn glwe_var(&self) -> f64 {
        self.glwe_noise.variance(self.modulus_log2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuniform_variance_by_hand() {
        // b = 0: values −1, 0, 1 with probabilities 1/4, 1/2, 1/4 → variance 1/2.
        let v = NoiseDist::TUniform { bound_log2: 0 }.variance(0);
        assert!((v - 0.5).abs() < 1e-15);
        // b = 1: −2..2 with 1/8, 1/4, 1/4, 1/4, 1/8 → 2·(4/8 + 1/4) = 1.5 = (8 + 1)/6.
        let v = NoiseDist::TUniform { bound_log2: 1 }.variance(0);
        assert!((v - 1.5).abs() < 1e-15);
        // On the 64-bit torus: 2^17 → std ≈ 2^16.2 integer units.
        let v = NoiseParams::DEFAULT.glwe_var();
        let log2_std_u64 = 0.5 * v.log2() + 64.0;
        assert!((log2_std_u64 - 16.21).abs() < 0.01, "{log2_std_u64}");
    }
}
