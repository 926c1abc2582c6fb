//! The compiler's noise model (`blindtuner_compiler::noise`) against tfhe: its
//! parameter constants equal the runtime's sets, and its closed forms equal tfhe 1.8.2's
//! `noise_formulas` where both compute the same thing (tfhe's assume the minimal secure
//! key noise for the dimension, which is what `PARAM_MESSAGE_2_CARRY_2_KS_PBS` uses).

use blindtuner_compiler::noise::formulas as f;
use blindtuner_compiler::noise::{Decomp, NoiseParams};
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::{BskChoice, ParamSet};
use tfhe::core_crypto::commons::noise_formulas::{
    lwe_keyswitch, lwe_packing_keyswitch, lwe_programmable_bootstrap, modulus_switch, secure_noise,
};
use tfhe::core_crypto::prelude::*;

const Q: f64 = 18446744073709551616.0;

fn assert_close(what: &str, ours: f64, tfhe: f64) {
    let rel = (ours / tfhe - 1.0).abs();
    assert!(rel < 1e-6, "{what}: ours {ours:e} vs tfhe {tfhe:e} (relative error {rel:e})");
}

#[test]
fn constants_equal_the_runtime_sets() {
    assert_eq!(noise_params(&ParamSet::default_set()), NoiseParams::DEFAULT);
    assert_eq!(noise_params(&ParamSet::new(BskChoice::Bsk12x3)), NoiseParams::DEFAULT);
    assert_eq!(noise_params(&ParamSet::new(BskChoice::Bsk10x4)), NoiseParams::DEFAULT.with_bsk(Decomp::new(10, 4)));
    assert_eq!(ParamSet::all().len(), 2, "a new parameter set needs its noise constants here");
}

#[test]
fn key_noise_is_tfhe_minimal_secure_noise() {
    let p = NoiseParams::DEFAULT;
    let lwe = secure_noise::minimal_lwe_variance_for_132_bits_security_tuniform(LweDimension(p.lwe_dim), Q);
    assert_close("small key noise", p.lwe_var(), lwe.0);
    let glwe = secure_noise::minimal_glwe_variance_for_132_bits_security_tuniform(
        GlweDimension(p.glwe_dim),
        PolynomialSize(p.poly_size),
        Q,
    );
    assert_close("GLWE key noise", p.glwe_var(), glwe.0);
}

#[test]
fn formulas_equal_tfhe() {
    for bsk in [Decomp::new(12, 3), Decomp::new(10, 4), Decomp::new(23, 1), Decomp::new(15, 2)] {
        let p = NoiseParams::DEFAULT.with_bsk(bsk);
        let tfhe_pbs = lwe_programmable_bootstrap::pbs_variance_132_bits_security_tuniform_fft_mul(
            LweDimension(p.lwe_dim),
            GlweDimension(p.glwe_dim),
            PolynomialSize(p.poly_size),
            DecompositionBaseLog(bsk.base_log as usize),
            DecompositionLevelCount(bsk.levels as usize),
            53.0,
            Q,
        );
        assert_close(&format!("PBS {bsk:?}"), f::pbs(&p, bsk), tfhe_pbs.0);
    }
    let p = NoiseParams::DEFAULT;
    for ks in [Decomp::new(4, 4), Decomp::new(3, 5), Decomp::new(6, 2)] {
        let tfhe_ks = lwe_keyswitch::keyswitch_additive_variance_132_bits_security_tuniform(
            LweDimension(p.big_lwe_dim()),
            LweDimension(p.lwe_dim),
            DecompositionBaseLog(ks.base_log as usize),
            DecompositionLevelCount(ks.levels as usize),
            Q,
            Q,
        );
        assert_close(&format!("keyswitch {ks:?}"), f::keyswitch(&p, p.big_lwe_dim(), ks, p.lwe_var()), tfhe_ks.0);
    }
    for (pks, count) in [(Decomp::new(9, 4), 5), (Decomp::new(9, 4), 10), (Decomp::new(12, 3), 1)] {
        let tfhe_pks = lwe_packing_keyswitch::packing_keyswitch_additive_variance_132_bits_security_tuniform(
            LweDimension(p.big_lwe_dim()),
            GlweDimension(p.glwe_dim),
            PolynomialSize(p.poly_size),
            DecompositionBaseLog(pks.base_log as usize),
            DecompositionLevelCount(pks.levels as usize),
            count as f64,
            Q,
        );
        let ours = f::packing_keyswitch(&p, p.big_lwe_dim(), pks, p.glwe_var(), count);
        assert_close(&format!("packing keyswitch {pks:?} × {count}"), ours, tfhe_pks.0);
    }
    let tfhe_ms = modulus_switch::modulus_switch_additive_variance(LweDimension(p.lwe_dim), Q, 4096.0);
    assert_close("modulus switch to 2N", f::pbs_modulus_switch(&p), tfhe_ms.0);
}
