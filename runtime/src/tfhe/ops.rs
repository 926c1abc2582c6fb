//! Ciphertext primitives used by the interpreter, with their scratch buffers.

use super::cipher::{Glwe, Lwe, LweVec};
use super::error::{invalid, TfheError};
use super::ggsw::FourierGgsw;
use super::keys::ServerKeys;
use super::keyswitch::keyswitch_batched;
use super::params::ParamSet;
use blindtuner_compiler::plan::{torus_shift, Lut};
use tfhe::core_crypto::prelude::*;

/// Per-thread scratch space.
pub(crate) struct Scratch {
    buf: ComputationBuffers,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { buf: ComputationBuffers::new() }
    }
}

pub(crate) fn zero_glwe(p: &ParamSet) -> Glwe {
    GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus)
}

/// `acc += glwe ⊡ ggsw`.
pub(crate) fn external_product_add(
    p: &ParamSet,
    acc: &mut Glwe,
    ggsw: &FourierGgsw,
    glwe: &Glwe,
    fft: FftView<'_>,
    s: &mut Scratch,
) {
    s.buf.resize(
        add_external_product_assign_mem_optimized_requirement::<u64>(p.glwe_size(), p.poly_size, fft)
            .unaligned_bytes_required(),
    );
    add_external_product_assign_mem_optimized(acc, ggsw, glwe, fft, s.buf.stack());
}

/// LWEs of coefficients `0..count` of `glwe`.
pub(crate) fn extract(p: &ParamSet, glwe: &Glwe, count: usize) -> Vec<Lwe> {
    extract_at(p, glwe, 0..count)
}

/// LWEs of the coefficients `degrees` of `glwe`, in that order.
pub(crate) fn extract_at(p: &ParamSet, glwe: &Glwe, degrees: impl Iterator<Item = usize>) -> Vec<Lwe> {
    degrees
        .map(|c| {
            let mut l = LweCiphertext::new(0u64, p.big_lwe_dim().to_lwe_size(), p.modulus);
            extract_lwe_sample_from_glwe_ciphertext(glwe, &mut l, MonomialDegree(c));
            l
        })
        .collect()
}

/// Keyswitch to the small key and add `offset` to the bodies (the LUT's cell centring).
pub(crate) fn keyswitch_offset(ksk: &LweKeyswitchKeyOwned<u64>, cts: &[Lwe], offset: u64) -> Vec<Lwe> {
    let mut out = keyswitch_batched(ksk, cts);
    out.iter_mut().for_each(|ct| lwe_ciphertext_plaintext_add_assign(ct, Plaintext(offset)));
    out
}

/// Every part of a register's value (one LWE vector per big key) keyswitched to the
/// small key, where the parts add up; `offset` (a LUT's cell centring) is added once.
pub(crate) fn keyswitch_parts(keys: &ServerKeys, parts: &[LweVec], offset: u64) -> Result<Vec<Lwe>, TfheError> {
    let mut small: Vec<Lwe> = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let ksk = keys.ksk_from(part.key).ok_or_else(|| invalid("bootstrap input already under the small key"))?;
        let ks = keyswitch_offset(ksk, &part.cts, if j == 0 { offset } else { 0 });
        if j == 0 {
            small = ks;
        } else {
            small.iter_mut().zip(&ks).for_each(|(a, b)| lwe_ciphertext_add_assign(a, b));
        }
    }
    Ok(small)
}

/// The blind-rotation accumulator of a plan LUT: coefficient `i` holds
/// `table[i / per_cell] << out_shift` (shifted right by `lr_shift` for a learning-rate
/// scaled LUT, see [`Lut::eval_at`]). Rotating by the modulus-switched index `idx`
/// and reading coefficient 0 gives that value for `idx < N` and its negation for
/// `idx ≥ N` (`X^N = −1`): exactly [`Lut::at_index`]. The negation commutes with the
/// shift because the compiler keeps the low `lr_shift` bits zero (checked in analysis).
pub(crate) fn accumulator(p: &ParamSet, lut: &Lut, lr_shift: u32) -> Glwe {
    let n = p.n();
    let per_cell = n / lut.table.len();
    let shift = if lut.lr_scaled { lr_shift } else { 0 };
    let body: Vec<u64> =
        (0..n).map(|i| torus_shift((lut.table[i / per_cell] as u64).wrapping_shl(lut.out_shift), shift)).collect();
    allocate_and_trivially_encrypt_new_glwe_ciphertext(p.glwe_size(), &PlaintextList::from_container(body), p.modulus)
}

/// One batch PBS over `inputs` (small key) with the same accumulator; outputs are
/// under the PBS key. Batching reuses each bootstrap-key GGSW for all inputs (the key
/// is memory-bound at 170–230 MiB).
pub(crate) fn batch_pbs(
    p: &ParamSet,
    bsk: &FourierLweBootstrapKeyOwned,
    acc: &Glwe,
    inputs: &[Lwe],
    fft: FftView<'_>,
    s: &mut Scratch,
) -> Vec<Lwe> {
    let count = inputs.len();
    if count == 0 {
        return Vec::new();
    }
    let mut in_list = LweCiphertextList::new(0u64, p.lwe_dim.to_lwe_size(), LweCiphertextCount(count), p.modulus);
    for (mut dst, src) in in_list.iter_mut().zip(inputs) {
        dst.as_mut().copy_from_slice(src.as_ref());
    }
    let out_size = p.big_lwe_dim().to_lwe_size();
    let mut out_list = LweCiphertextList::new(0u64, out_size, LweCiphertextCount(count), p.modulus);
    let mut accs = GlweCiphertextList::new(0u64, p.glwe_size(), p.poly_size, GlweCiphertextCount(count), p.modulus);
    for mut a in accs.iter_mut() {
        a.as_mut().copy_from_slice(acc.as_ref());
    }
    s.buf.resize(
        batch_programmable_bootstrap_lwe_ciphertext_mem_optimized_requirement::<u64>(
            p.glwe_size(),
            p.poly_size,
            CiphertextCount(count),
            fft,
        )
        .unaligned_bytes_required(),
    );
    batch_programmable_bootstrap_lwe_ciphertext_mem_optimized(&in_list, &mut out_list, &accs, bsk, fft, s.buf.stack());
    out_list.iter().map(|c| LweCiphertext::from_container(c.as_ref().to_vec(), p.modulus)).collect()
}
