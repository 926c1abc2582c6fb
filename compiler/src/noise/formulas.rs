//! Closed-form noise variances of the operations a plan lowers to.
//!
//! **Unit**: every variance is on the torus *as a fraction of it*, squared (the unit of
//! tfhe's `noise_formulas`): a u64 noise of standard deviation `2^38` is
//! `2^(2·(38 − 64)) = 2^−52`. [`log2_std_u64`] converts back for display.
//!
//! Keys are binary (`E[s] = E[s²] = ½`); decompositions are tfhe's balanced signed ones,
//! whose digits have variance `B²/12 + 1/6`. The expressions follow tfhe 1.8.2's
//! generated `core_crypto::commons::noise_formulas` term by term (the `−1/(12q²)`-type
//! corrections included) but take the key's encryption variance as an argument instead
//! of assuming the minimal secure one; `runtime/tests/noise_formulas.rs` checks that they
//! agree with tfhe's for the real parameters.

use super::params::{Decomp, NoiseDist, NoiseParams};

/// `log2` of the standard deviation in u64 units (`q = 2^modulus_log2`).
pub fn log2_std_u64(var: f64, modulus_log2: u32) -> f64 {
    0.5 * var.log2() + f64::from(modulus_log2)
}

/// Variance of one signed decomposition digit: `B²/12 + 1/6`.
pub fn digit_variance(d: Decomp) -> f64 {
    d.base() * d.base() / 12.0 + 1.0 / 6.0
}

/// `B^(−2l)`: the scale of the rounding a decomposition does before decomposing.
fn rounding_scale(d: Decomp) -> f64 {
    (-2.0 * f64::from(d.kept_bits())).exp2()
}

fn inv_q2(modulus_log2: u32) -> f64 {
    (-2.0 * f64::from(modulus_log2)).exp2()
}

/// A fresh LWE or GLWE encryption (per coefficient).
pub fn fresh(dist: NoiseDist, modulus_log2: u32) -> f64 {
    dist.variance(modulus_log2)
}

/// Sum of two independent noises (levelled `Add`/`Sub`).
pub fn add(a: f64, b: f64) -> f64 {
    a + b
}

/// Levelled multiplication by the integer `c`.
pub fn mul_int(v: f64, c: i64) -> f64 {
    let c = c as f64;
    v * c * c
}

/// Sample extraction reads a coefficient: no noise added.
pub fn sample_extract(v: f64) -> f64 {
    v
}

/// Noise that an external product `GLWE ⊡ GGSW(μ)` *adds* to `μ · phase(GLWE)`
/// (the input's own noise multiplied by `μ` is not included: it is `‖μ‖²·v_in` per
/// coefficient for a message polynomial `μ`; see [`external_product_output`]).
///
/// * key term: `(k+1)·l·N` digits times the GGSW's encryption noise — independent of μ;
/// * rounding term: the input is rounded to `B^l` before decomposing; the rounding error
///   `ε` of the mask (times the key) and of the body reaches the output times `μ`:
///   `‖μ‖²·(k·N/2·(1/(12B^{2l}) + 1/(24q²)) + 1/(12B^{2l}) − 1/(12q²))`;
/// * FFT term: the f64 FFT's rounding ([`fft_error`]).
///
/// With `‖μ‖² = ½` (a GGSW of a uniformly random bit) this is exactly one CMUX of
/// tfhe's PBS formula.
pub fn external_product(p: &NoiseParams, d: Decomp, ggsw_var: f64, mu_norm2: f64) -> f64 {
    let (k, n) = (p.glwe_dim as f64, p.poly_size as f64);
    let l = f64::from(d.levels);
    let key = l * n * (k + 1.0) * ggsw_var * digit_variance(d);
    let (mask, body) = rounding_terms(p, d);
    key + mu_norm2 * (mask + body) + fft_error(p, d)
}

/// The rounding term's two factors per unit of `‖μ‖²`: the mask's rounding error times
/// the binary key (`k·N/2` products) and the body's.
fn rounding_terms(p: &NoiseParams, d: Decomp) -> (f64, f64) {
    let (k, n) = (p.glwe_dim as f64, p.poly_size as f64);
    let iq2 = inv_q2(p.modulus_log2);
    let eps = rounding_scale(d) / 12.0;
    (k * n / 2.0 * (eps + iq2 / 24.0), eps - iq2 / 12.0)
}

/// [`external_product`] for a GGSW of a *polynomial* `μ` with `Σμ_j` = `mu_sum`
/// (`mu_sum2 = mu_sum²`): the rounding error of the mask meets `S·μ`, whose
/// coefficients have mean `Σμ/2` (the binary key is ½ on average) and variance
/// `‖μ‖²/4`, so its part is `k·N·(‖μ‖²/4 + (Σμ)²/4)` times the rounding variance instead
/// of `k·N/2·‖μ‖²` (equal for a scalar `μ`; up to `H/2` times larger for `H`
/// same-sign values: a hidden layer's relu activations). The `(Σμ)²` part is one
/// random draw per product shared, up to the negacyclic sign, by the low coefficients
/// (a common shift of every logit of a product: invisible to a softmax); measured in
/// `runtime/tests/tfhe_convert.rs`.
pub fn external_product_poly(p: &NoiseParams, d: Decomp, ggsw_var: f64, mu_norm2: f64, mu_sum2: f64) -> f64 {
    let (mask, body) = rounding_terms(p, d);
    external_product(p, d, ggsw_var, 0.0) + mu_norm2 * (0.5 * mask + body) + external_product_mean(p, d, mu_sum2)
}

/// The `(Σμ)²` part of [`external_product_poly`]: `Σμ/2` (the mean of `S·μ`'s
/// coefficients) times the sum of the mask's rounding errors, one draw per product,
/// the same on every low output coefficient.
pub fn external_product_mean(p: &NoiseParams, d: Decomp, mu_sum2: f64) -> f64 {
    0.5 * mu_sum2 * rounding_terms(p, d).0
}

/// Output variance of `GLWE(v_in) ⊡ GGSW(μ)` per coefficient.
pub fn external_product_output(p: &NoiseParams, d: Decomp, ggsw_var: f64, mu_norm2: f64, v_in: f64) -> f64 {
    mu_norm2 * v_in + external_product(p, d, ggsw_var, mu_norm2)
}

/// Rounding error of the f64 FFT in one external product: tfhe's fitted model
/// `0.00705 · 2^(2·max(0, log2 q − mantissa)) · B²/q² · l^1.01827 · k^1.22003 ·
/// N^2.22003 · (k+1)^1.01827`.
pub fn fft_error(p: &NoiseParams, d: Decomp) -> f64 {
    let (k, n) = (p.glwe_dim as f64, p.poly_size as f64);
    let lost = f64::from(p.modulus_log2.saturating_sub(p.fft_mantissa));
    0.00705
        * (2.0 * lost).exp2()
        * d.base()
        * d.base()
        * inv_q2(p.modulus_log2)
        * f64::from(d.levels).powf(1.01827)
        * k.powf(1.22003)
        * n.powf(2.22003)
        * (k + 1.0).powf(1.01827)
}

/// Output noise of a programmable bootstrap with decomposition `bsk`: `n` CMUXes, each
/// an external product with a GGSW of a key bit (`‖μ‖² = ½`). Independent of the
/// input's noise (that one decides *which* value is read, see [`modulus_switch`]).
pub fn pbs(p: &NoiseParams, bsk: Decomp) -> f64 {
    p.lwe_dim as f64 * external_product(p, bsk, p.glwe_var(), 0.5)
}

/// Variance of a row of a GGSW converted from a server value (a table's output, see
/// `runtime::tfhe::convert`), as [`external_product`]'s `ggsw_var` (which multiplies
/// it by `(k+1)·N` digits per level). The bootstrap leaves one scalar noise `e` in the
/// LWE of `m·q/B^l`; the private functional packing keyswitch puts it in the last row
/// as the constant coefficient only (`≈ 0` after the product: one digit instead of
/// `N`), and in the rows `i < k` as `−S_i·e`, whose product with a digit polynomial has
/// `N/2` terms (`E[s²] = ½`). Every coefficient of every row also gets the keyswitch's
/// own noise (input `k·N`, one LWE). Measured within 25 % (`runtime/tests/tfhe_convert.rs`).
pub fn converted_ggsw_row(p: &NoiseParams, bsk: Decomp, pfks: Decomp) -> f64 {
    let k = p.glwe_dim as f64;
    k / (2.0 * (k + 1.0)) * pbs(p, bsk) + packing_keyswitch(p, p.big_lwe_dim(), pfks, p.glwe_var(), 1)
}

/// Noise added by an LWE keyswitch from dimension `input_dim` with a key encrypted at
/// `ksk_var`: `l·n_in` digits times the key noise, plus the rounding of the `n_in` mask
/// elements to `B^l` times the (binary) input key.
pub fn keyswitch(p: &NoiseParams, input_dim: usize, d: Decomp, ksk_var: f64) -> f64 {
    let n_in = input_dim as f64;
    let l = f64::from(d.levels);
    let iq2 = inv_q2(p.modulus_log2);
    // tfhe's `− 1/(12 q_in²) + 1/(12 q_out²)` cancels: input and output share the modulus.
    l * n_in * ksk_var * digit_variance(d) + n_in * (iq2 / 48.0 + rounding_scale(d) / 24.0)
}

/// Noise of one coefficient of a packing keyswitch of `count` LWEs (dimension
/// `input_dim`) into a GLWE: every coefficient gets the key noise of all `count`
/// keyswitches; the coefficient that receives LWE `c` also gets that LWE's rounding
/// term (`with_rounding`); coefficients `≥ count` do not.
pub fn packing_keyswitch(p: &NoiseParams, input_dim: usize, d: Decomp, pksk_var: f64, count: usize) -> f64 {
    packing_keyswitch_key(input_dim, d, pksk_var, count) + packing_keyswitch_rounding(p, input_dim, d)
}

/// The key-noise part of [`packing_keyswitch`] (present in all `N` coefficients).
pub fn packing_keyswitch_key(input_dim: usize, d: Decomp, pksk_var: f64, count: usize) -> f64 {
    f64::from(d.levels) * input_dim as f64 * count as f64 * pksk_var * digit_variance(d)
}

/// The rounding part of [`packing_keyswitch`] (only in the coefficients that hold an input).
pub fn packing_keyswitch_rounding(p: &NoiseParams, input_dim: usize, d: Decomp) -> f64 {
    0.5 * input_dim as f64 * (inv_q2(p.modulus_log2) / 6.0 + rounding_scale(d) / 12.0)
}

/// Noise of the modulus switch from `2^modulus_log2` to `2^new_modulus_log2` of an LWE
/// of dimension `dim` (mask and body rounded separately, as tfhe's PBS does): `dim`
/// rounded mask elements times the binary key plus the rounded body.
pub fn modulus_switch(dim: usize, modulus_log2: u32, new_modulus_log2: u32) -> f64 {
    let iq2 = inv_q2(modulus_log2);
    let inq2 = inv_q2(new_modulus_log2);
    dim as f64 * (iq2 / 48.0 + inq2 / 24.0) - iq2 / 12.0 + inq2 / 12.0
}

/// The modulus switch in front of a bootstrap with polynomial size `N` (to `2N`).
pub fn pbs_modulus_switch(p: &NoiseParams) -> f64 {
    let log2_2n = (2 * p.poly_size).trailing_zeros();
    modulus_switch(p.lwe_dim, p.modulus_log2, log2_2n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: NoiseParams = NoiseParams::DEFAULT;

    fn u64_std(v: f64) -> f64 {
        log2_std_u64(v, 64)
    }

    #[test]
    fn digit_variance_of_small_bases() {
        // B = 2: balanced digits {−1, 0} / {0, 1} → tfhe's closed form gives 1/3 + 1/6.
        assert!((digit_variance(Decomp::new(1, 1)) - 0.5).abs() < 1e-15);
        assert!((digit_variance(Decomp::new(4, 1)) - (256.0 / 12.0 + 1.0 / 6.0)).abs() < 1e-12);
    }

    #[test]
    fn pbs_is_n_cmuxes() {
        let cmux = external_product(&P, P.bsk, P.glwe_var(), 0.5);
        assert!((pbs(&P, P.bsk) / (918.0 * cmux) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_pbs_key_term() {
        // 12/3: n·l·N·(k+1)·var·(B²/12 + 1/6) with var = (2^35 + 1)/6 / 2^128.
        let var = (35f64.exp2() + 1.0) / 6.0 / 128f64.exp2();
        let key = 918.0 * 3.0 * 2048.0 * 2.0 * var * (24f64.exp2() / 12.0 + 1.0 / 6.0);
        let total = pbs(&P, P.bsk);
        // The FFT term is of the same order (2^37.9 vs 2^38.1), the rounding 2^35.6.
        let fft = 918.0 * fft_error(&P, P.bsk);
        assert!((u64_std(key) - 38.13).abs() < 0.01 && (u64_std(fft) - 37.87).abs() < 0.01);
        assert!(total > key + fft && total < 1.2 * (key + fft));
        // The probe measured 2^38.4–2^38.5 u64 units.
        assert!((u64_std(total) - 38.45).abs() < 0.5, "{}", u64_std(total));
    }

    #[test]
    fn monotone_in_levels_and_norm() {
        // More levels at the same base: less rounding, more key noise.
        let ep = |d, m| external_product(&P, d, P.glwe_var(), m);
        assert!(ep(Decomp::new(10, 4), 1e4) < ep(Decomp::new(10, 3), 1e4));
        // Larger base, same levels: more key noise.
        assert!(ep(Decomp::new(12, 4), 1.0) > ep(Decomp::new(10, 4), 1.0));
        // Rounding grows with ‖μ‖².
        assert!(ep(P.ggsw, 2e4) > ep(P.ggsw, 1e4));
        assert!(
            keyswitch(&P, 2048, Decomp::new(4, 4), P.lwe_var()) < keyswitch(&P, 2048, Decomp::new(4, 3), P.lwe_var())
        );
        assert!(pbs(&P, Decomp::new(10, 4)) < pbs(&P, Decomp::new(12, 3)));
        assert!(pbs(&P, Decomp::new(12, 3)) < pbs(&P, Decomp::new(23, 1)));
        assert!(
            packing_keyswitch(&P, 2048, P.pks, P.glwe_var(), 10) > packing_keyswitch(&P, 2048, P.pks, P.glwe_var(), 5)
        );
    }

    #[test]
    fn modulus_switch_by_hand() {
        // n/2 binary key bits times a rounding error of variance 1/(12·(2N)²), plus the body.
        let v = pbs_modulus_switch(&P);
        let by_hand = (918.0 / 24.0 + 1.0 / 12.0) / 4096f64.powi(2);
        assert!((v / by_hand - 1.0).abs() < 1e-9);
    }

    #[test]
    fn levelled_ops() {
        assert_eq!(mul_int(2.0, -3), 18.0);
        assert_eq!(add(1.0, 2.0), 3.0);
        assert_eq!(sample_extract(5.0), 5.0);
        assert_eq!(fresh(NoiseDist::Gaussian { std: 0.5 }, 64), 0.25);
    }
}
