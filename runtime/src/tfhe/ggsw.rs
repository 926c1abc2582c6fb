//! Client-side GGSW encryption of *polynomials* (tfhe ships only constant GGSWs).
//!
//! The data of a sample is one integer polynomial per direction and W polynomial
//! (`Layout::DataPoly`): with `stride = rows` of the tensor,
//!
//! * forward  `μ_f(X) = Σ_jj x_jj X^(−stride·jj)` (negacyclic: `X^(−m) = −X^(N−m)`), so
//!   coefficient `r` of `W ⊡ GGSW(μ_f)` is `Σ_j W[r][j]·x_j`;
//! * backward `μ_b(X) = Σ_jj x_jj X^(stride·jj)`, so `E ⊡ GGSW(μ_b)` with
//!   `E = Σ_r e_r X^r` is the gradient `e_r·x_j` in W's layout.
//!
//! Sign conventions (verified against tfhe's constant GGSW in the probe):
//! `ggsw_encryption_multiplicative_factor(level, 1)` is the recomposition summand of
//! `−1`, i.e. `−q/B^level`; rows `r < k` carry `factor·μ·S_r` (negacyclic product), the
//! last row `−factor·μ`; level matrix 0 is `DecompositionLevel(level_count)`.

use super::params::{Decomp, ParamSet};
use super::rng::{CryptoRng, EncGen};
use tfhe::core_crypto::commons::math::decomposition::DecompositionLevel;
use tfhe::core_crypto::commons::math::random::Uniform;
use tfhe::core_crypto::prelude::*;

/// Server-side GGSW in the Fourier domain (tfhe has no `Owned` alias for it).
pub type FourierGgsw = FourierGgswCiphertext<aligned_vec::ABox<[tfhe_fft::c64]>>;

/// Which data polynomial a GGSW encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// `μ_f`: used by `DataMatVec`.
    Forward,
    /// `μ_b`: used by `DataOuterAcc`.
    Backward,
}

/// The message polynomial of chunk `poly` of the features `xq` (augmented features,
/// constant feature included), for a tensor of `stride` rows and `per_poly` features
/// per polynomial.
pub fn data_polynomial(xq: &[i64], stride: usize, per_poly: usize, poly: usize, dir: Direction, n: usize) -> Vec<i64> {
    let mut mu = vec![0i64; n];
    let start = poly * per_poly;
    let chunk = xq.iter().skip(start).take(per_poly);
    for (jj, &x) in chunk.enumerate() {
        let m = stride * jj;
        match dir {
            Direction::Backward => mu[m] += x,
            Direction::Forward if m == 0 => mu[0] += x,
            Direction::Forward => mu[n - m] -= x,
        }
    }
    mu
}

/// Negacyclic product of a small integer polynomial with a torus polynomial, mod 2^64.
pub fn negacyclic_mul_small(mu: &[i64], s: &[u64]) -> Vec<u64> {
    let n = s.len();
    let mut out = vec![0u64; n];
    for (e, &m) in mu.iter().enumerate().filter(|(_, &m)| m != 0) {
        let m = m as u64;
        let (lo, hi) = out.split_at_mut(e);
        // e + i < N: out[e + i] += m·s_i.
        for (o, &si) in hi.iter_mut().zip(s) {
            *o = o.wrapping_add(m.wrapping_mul(si));
        }
        // e + i ≥ N: X^N = −1, out[e + i − N] −= m·s_i.
        for (o, &si) in lo.iter_mut().zip(&s[n - e..]) {
            *o = o.wrapping_sub(m.wrapping_mul(si));
        }
    }
    out
}

/// Plaintexts of every GGSW row, `[level matrix][row][coefficient]`.
fn row_plaintexts(
    key: &GlweSecretKeyOwned<u64>,
    mu: &[i64],
    dec: Decomp,
    cm: CiphertextModulus<u64>,
) -> Vec<Vec<Vec<u64>>> {
    let k = key.glwe_dimension().0;
    let key_polys = key.as_polynomial_list();
    let mu_s: Vec<Vec<u64>> = (0..k).map(|r| negacyclic_mul_small(mu, key_polys.get(r).as_ref())).collect();
    (0..dec.levels)
        .map(|out_idx| {
            let level = DecompositionLevel(dec.levels - out_idx);
            let factor = ggsw_encryption_multiplicative_factor(cm, level, dec.base_log(), Cleartext(1u64));
            let mut rows: Vec<Vec<u64>> =
                mu_s.iter().map(|ms| ms.iter().map(|&v| v.wrapping_mul(factor)).collect()).collect();
            let neg = factor.wrapping_neg();
            rows.push(mu.iter().map(|&v| (v as u64).wrapping_mul(neg)).collect());
            rows
        })
        .collect()
}

/// Full (non-seeded) polynomial GGSW; the seeded form is what clients upload.
pub fn encrypt_poly_ggsw(
    key: &GlweSecretKeyOwned<u64>,
    p: &ParamSet,
    mu: &[i64],
    rng: &mut CryptoRng,
) -> GgswCiphertextOwned<u64> {
    let enc = rng.encryption_generator();
    let mut ggsw =
        GgswCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.ggsw.base_log(), p.ggsw.level_count(), p.modulus);
    let pts = row_plaintexts(key, mu, p.ggsw, p.modulus);
    for (mut matrix, level_pts) in ggsw.iter_mut().zip(&pts) {
        for (mut row, pt) in matrix.as_mut_glwe_list().iter_mut().zip(level_pts) {
            row.get_mut_body().as_mut().copy_from_slice(pt);
            encrypt_glwe_ciphertext_assign(key, &mut row, p.glwe_noise, enc);
        }
    }
    ggsw
}

/// Seeded polynomial GGSW: bodies plus a seed, half the size. The generator is forked
/// exactly like tfhe's `encrypt_constant_seeded_ggsw_ciphertext`, so tfhe's
/// `decompress_into_ggsw_ciphertext` regenerates the masks.
pub fn encrypt_poly_ggsw_seeded(
    key: &GlweSecretKeyOwned<u64>,
    p: &ParamSet,
    mu: &[i64],
    rng: &mut CryptoRng,
) -> SeededGgswCiphertextOwned<u64> {
    let seeder = rng.seeder();
    let mut out = SeededGgswCiphertext::new(
        0u64,
        p.glwe_size(),
        p.poly_size,
        p.ggsw.base_log(),
        p.ggsw.level_count(),
        seeder.seed().into(),
        p.modulus,
    );
    let mut generator = EncGen::new(out.compression_seed(), seeder);
    let pts = row_plaintexts(key, mu, p.ggsw, p.modulus);
    // Forking cannot fail here: the generator is unbounded.
    let Ok(level_gens) = generator.try_fork_from_config(out.encryption_fork_config(Uniform, p.glwe_noise)) else {
        unreachable!("unbounded generator")
    };
    for ((mut matrix, mut level_gen), level_pts) in out.iter_mut().zip(level_gens).zip(&pts) {
        let Ok(row_gens) = level_gen.try_fork_from_config(matrix.encryption_fork_config(Uniform, p.glwe_noise)) else {
            unreachable!("unbounded generator")
        };
        for ((mut row, mut row_gen), pt) in matrix.as_mut_seeded_glwe_list().iter_mut().zip(row_gens).zip(level_pts) {
            row.get_mut_body().as_mut().copy_from_slice(pt);
            encrypt_seeded_glwe_ciphertext_assign_with_pre_seeded_generator(key, &mut row, p.glwe_noise, &mut row_gen);
        }
    }
    out
}

/// Standard → Fourier domain (what external products consume).
pub fn to_fourier(ggsw: &GgswCiphertextOwned<u64>, fft: FftView<'_>, buf: &mut ComputationBuffers) -> FourierGgsw {
    let mut f = FourierGgswCiphertext::new(
        ggsw.glwe_size(),
        ggsw.polynomial_size(),
        ggsw.decomposition_base_log(),
        ggsw.decomposition_level_count(),
    );
    buf.resize(convert_standard_ggsw_ciphertext_to_fourier_mem_optimized_requirement(fft).unaligned_bytes_required());
    convert_standard_ggsw_ciphertext_to_fourier_mem_optimized(ggsw, &mut f, fft, buf.stack());
    f
}
