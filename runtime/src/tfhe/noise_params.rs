//! The runtime's parameter sets as the compiler's noise model sees them
//! ([`NoiseParams`]), and the one key accessor the noise measurements need.

use super::keys::ServerKeys;
use super::params::{Decomp, ParamSet};
use blindtuner_compiler::noise::{self, NoiseDist, NoiseParams};
use tfhe::core_crypto::prelude::*;

fn decomp(d: Decomp) -> noise::Decomp {
    noise::Decomp::new(d.base_log as u32, d.levels as u32)
}

fn dist(d: DynamicDistribution<u64>) -> NoiseDist {
    match d {
        DynamicDistribution::TUniform(t) => NoiseDist::TUniform { bound_log2: t.bound_log2() },
        DynamicDistribution::Gaussian(g) => NoiseDist::Gaussian { std: g.std },
    }
}

/// The numbers of `p` the noise model reads. The FFT is tfhe's f64 FFT (53-bit mantissa).
pub fn noise_params(p: &ParamSet) -> NoiseParams {
    let modulus_log2 = if p.modulus.is_native_modulus() {
        64
    } else {
        // Non-native moduli are powers of two in every set we build.
        p.modulus.get_custom_modulus().trailing_zeros()
    };
    NoiseParams {
        modulus_log2,
        lwe_dim: p.lwe_dim.0,
        glwe_dim: p.glwe_dim.0,
        poly_size: p.poly_size.0,
        lwe_noise: dist(p.lwe_noise),
        glwe_noise: dist(p.glwe_noise),
        ks: decomp(p.ks),
        bsk: decomp(p.bsk),
        pks: decomp(p.pks),
        ggsw: decomp(p.ggsw),
        convert: decomp(p.convert),
        convert_bsk: decomp(p.convert_bsk),
        fft_mantissa: 53,
    }
}

impl ServerKeys {
    /// The packing keyswitch key (PBS key → data GLWE key), for measurements of its noise.
    pub fn packing_keyswitch_key(&self) -> &LwePackingKeyswitchKeyOwned<u64> {
        &self.pksk
    }
}
