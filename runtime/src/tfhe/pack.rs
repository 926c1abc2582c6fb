//! Packing keyswitch: `k` LWEs under the PBS key into one GLWE `Σ_c e_c X^c` under the
//! data key.
//!
//! Same arithmetic as tfhe's `keyswitch_lwe_ciphertext_list_and_pack_in_glwe_ciphertext`
//! (bit-identical: additions commute mod 2^64; checked in the tests), with the loops
//! swapped so that the 256 MiB key is streamed once for all `k` inputs instead of once
//! per input, and the digit loop reuses each key row `k` times. This was the second
//! largest cost of a step after the PBS.

use super::cipher::{Glwe, Lwe};
use super::kernel::Kernel;
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_monic_monomial_mul_assign;
use tfhe::core_crypto::prelude::*;

/// Pack `lwes` (at most `N`) into `out`: coefficient `c` of the result encrypts the
/// message of `lwes[c]`.
pub fn pack_batched(pksk: &LwePackingKeyswitchKeyOwned<u64>, lwes: &[Lwe], out: &mut Glwe) {
    let glwe_len = out.as_ref().len();
    let n = out.polynomial_size().0;
    let decomposer = SignedDecomposer::<u64>::new(pksk.decomposition_base_log(), pksk.decomposition_level_count());
    // acc[c] = −Σ_i Σ_t digit_t(a_c,i)·K_i,t : the keyswitched mask part of input c.
    let mut acc = vec![0u64; lwes.len() * glwe_len];
    let inputs: Vec<&Lwe> = lwes.iter().collect();
    let mut outs: Vec<&mut [u64]> = acc.chunks_exact_mut(glwe_len).collect();
    sub_keyswitched(pksk.iter(), &decomposer, &inputs, &mut outs);
    // Add the bodies, rotate input c to coefficient c, sum.
    out.as_mut().fill(0);
    for (lwe, a) in lwes.iter().zip(acc.chunks_exact_mut(glwe_len)) {
        a[glwe_len - n] = a[glwe_len - n].wrapping_add(*lwe.get_body().data);
    }
    for (c, a) in acc.chunks_exact(glwe_len).enumerate() {
        let mut g = GlweCiphertext::from_container(a.to_vec(), out.polynomial_size(), out.ciphertext_modulus());
        for mut poly in g.as_mut_polynomial_list().iter_mut() {
            polynomial_wrapping_monic_monomial_mul_assign(&mut poly, MonomialDegree(c));
        }
        for (o, v) in out.as_mut().iter_mut().zip(g.as_ref()) {
            *o = o.wrapping_add(*v);
        }
    }
}

/// Private functional keyswitch of every LWE of `lwes` into its own GLWE `outs[c]`
/// (overwritten), with one key of tfhe's circuit-bootstrap list: tfhe's
/// `private_functional_keyswitch_lwe_ciphertext_into_glwe_ciphertext` with the loops
/// swapped as in [`pack_batched`], so the key (128 MiB per function at 9x4) is streamed
/// once for all inputs. Bit-identical (checked in `convert.rs`'s tests).
pub fn private_functional_keyswitch_batched(
    key: &LwePrivateFunctionalPackingKeyswitchKey<&[u64]>,
    lwes: &[&Lwe],
    outs: &mut [&mut [u64]],
) {
    let decomposer = SignedDecomposer::<u64>::new(key.decomposition_base_log(), key.decomposition_level_count());
    outs.iter_mut().for_each(|o| o.fill(0));
    // Every input element, the body included, has a block of key GLWEs.
    sub_keyswitched(key.iter(), &decomposer, lwes, outs);
}

/// Lanes of a key row processed for every input before the next tile: the block's
/// rows' tiles (4 levels × 4 KiB) stay in L1 while every input's accumulator tile
/// streams past them.
const TILE: usize = 512;

/// `outs[c] −= Σ_i Σ_t digit_t(lwes[c][i])·block_i[t]` over the key's blocks (one per
/// input element it keyswitches): the loop both keyswitches share, with the key
/// streamed once for all inputs, each block's rows applied to an input in one fused
/// pass (`Kernel::sub_dot`), tile by tile.
fn sub_keyswitched<'k>(
    blocks: impl Iterator<Item = GlweCiphertextListView<'k, u64>>,
    decomposer: &SignedDecomposer<u64>,
    lwes: &[&Lwe],
    outs: &mut [&mut [u64]],
) {
    let levels = decomposer.level_count().0;
    let kernel = Kernel::detect();
    let mut digits = vec![0u64; lwes.len() * levels];
    for (i, block) in blocks.enumerate() {
        for (c, lwe) in lwes.iter().enumerate() {
            let a = lwe.as_ref()[i];
            for (t, term) in decomposer.decompose(decomposer.closest_representable(a)).enumerate() {
                digits[c * levels + t] = term.value();
            }
        }
        let rows: Vec<&[u64]> = block.iter().map(|r| r.into_container()).collect();
        let len = rows.first().map_or(0, |r| r.len());
        for start in (0..len).step_by(TILE) {
            let end = (start + TILE).min(len);
            let tiles: Vec<&[u64]> = rows.iter().map(|r| &r[start..end]).collect();
            for (c, out) in outs.iter_mut().enumerate() {
                let d = &digits[c * levels..(c + 1) * levels];
                if d.iter().any(|&x| x != 0) {
                    kernel.sub_dot(&mut out[start..end], &tiles, d);
                }
            }
        }
    }
}
