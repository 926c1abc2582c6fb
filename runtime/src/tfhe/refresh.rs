//! Refresh of a stored tensor under encryption (`plan::Refresh`): a multi-digit
//! bootstrap of every coefficient that rounds it to its format's grid and so drops the
//! noise the levelled updates have accumulated (as long as it is under half a grid
//! step: the budget the compiler schedules for).
//!
//! Bit extraction, least significant first, one bootstrap per bit (tfhe's
//! `extract_bits` idea, with the tensor's own grid): to read bit `b` of the residual
//! `r` (the value minus the bits already read), multiply by `2^(63−b)` so that the bit
//! lands in the most significant position and the sub-grid part (noise, centred at
//! zero) right below it, add a quarter torus to centre it, keyswitch and bootstrap
//! with a constant table `c = 2^(b−1)`: the negacyclic rotation returns `c` for a
//! phase in the first half torus and `−c` in the second, so `c − output` is the bit
//! times `2^b`. The read for bit 0 of the grid also rounds: a sub-grid part of at least
//! half a step carries into it. The last read is the sign at `top` (the value is
//! assumed in `[−2^top, 2^top)`), which contributes `−2^top`.
//!
//! The residual is kept as two sums under different keys (the extracted coefficient
//! under the data key, the bits read so far under the bootstrap key): each is scaled
//! *before* its own keyswitch, so the keyswitch noise is not multiplied by `2^(63−b)`.
//! The bits' sum is packed back into the tensor's GLWEs with the packing keyswitch (for
//! a tensor under the PBS key, `Layout::PbsPoly`, with the conversion keys' identity
//! packing key: `convert::pack_pbs`).

use super::cipher::{EncModel, EncTensor, Lwe};
use super::convert::{self, ConvertKey};
use super::error::{bad_ct, TfheError};
use super::keys::{KeyKind, ServerKeys};
use super::keyswitch::keyswitch_batched;
use super::ops::{self, Scratch};
use super::pack::pack_batched;
use super::stats::{Stats, Work};
use blindtuner_compiler::plan::{Layout, Plan, TensorId};
use rayon::prelude::*;
use std::time::Instant;
use tfhe::core_crypto::prelude::*;

/// Run every refresh of `plan` that is due after step `steps_done`; returns how many ran.
pub(crate) fn run_due(
    (keys, convert): (&ServerKeys, Option<&ConvertKey>),
    plan: &Plan,
    model: &mut EncModel,
    steps_done: u64,
    fft: FftView<'_>,
    stats: &Stats,
) -> Result<usize, TfheError> {
    let mut ran = 0;
    for r in plan.train.refresh.iter().filter(|r| r.due(steps_done)) {
        rescale((keys, convert), plan, model, (r.tensor, r.tensor), (r.lsb, r.top), 1.0, fft, stats)?;
        ran += 1;
    }
    Ok(ran)
}

/// `dst = factor · src` as `plan::rescale_bits` computes it (a `Rescale` step, e.g. a
/// momentum): the same bit reads as a refresh, each bit also bootstrapped with a
/// table holding its weight `factor · 2^bit` (the weight goes into the table, not
/// into a multiplication of the output, so the bootstrap noise is not scaled by it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rescale(
    (keys, convert): (&ServerKeys, Option<&ConvertKey>),
    plan: &Plan,
    model: &mut EncModel,
    (src, dst): (TensorId, TensorId),
    (lsb, top): (u32, u32),
    factor: f64,
    fft: FftView<'_>,
    stats: &Stats,
) -> Result<(), TfheError> {
    let p = keys.params();
    let t = plan.tensors.get(src.index()).ok_or_else(|| bad_ct("rescale of a tensor the plan lacks"))?;
    let (per_poly, key) = match t.layout {
        Layout::DataPoly { per_poly, .. } => (per_poly, KeyKind::Data),
        Layout::PbsPoly { per_poly, .. } => (per_poly, KeyKind::Pbs),
        Layout::Lwe => return Err(bad_ct(format!("rescale of `{}`, which is not stored as polynomials", t.name))),
    };
    let packing = match (key, convert) {
        (KeyKind::Pbs, None) => {
            return Err(bad_ct(format!("rescale of `{}` (under the PBS key) without the conversion keys", t.name)))
        }
        (KeyKind::Pbs, Some(ck)) => Some(ck),
        _ => None,
    };
    let Some(EncTensor::Poly(glwes)) = model.tensors.get(src.index()) else {
        return Err(bad_ct(format!("model tensor `{}` is not polynomial", t.name)));
    };
    // Coefficients in use per polynomial: rows × the columns it holds (contiguous from 0).
    let counts: Vec<usize> =
        (0..glwes.len()).map(|k| t.rows * t.cols.saturating_sub(k * per_poly).min(per_poly)).collect();
    let coeffs: Vec<Lwe> = glwes.iter().zip(&counts).flat_map(|(g, &n)| ops::extract(p, g, n)).collect();
    let threads = rayon::current_num_threads().max(1);
    let chunk = coeffs.len().div_ceil(threads).max(1);
    let out: Vec<Lwe> = coeffs
        .par_chunks(chunk)
        .map(|c| read_bits(keys, key, (lsb, top), factor, c, fft, stats))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let Some(EncTensor::Poly(dst)) = model.tensors.get_mut(dst.index()) else {
        return Err(bad_ct("rescale into a tensor that is not polynomial"));
    };
    if dst.len() != counts.len() {
        return Err(bad_ct("rescale between tensors of different layouts"));
    }
    let t0 = Instant::now();
    let mut start = 0;
    for (g, &n) in dst.iter_mut().zip(&counts) {
        match packing {
            Some(ck) => *g = convert::pack_pbs(p, ck, &out[start..start + n]),
            None => pack_batched(&keys.pksk, &out[start..start + n], g),
        }
        start += n;
    }
    stats.record(Work::Pack, t0);
    Ok(())
}

/// `factor ·` the rounded values of `coeffs` (under `key`: the data key, or the PBS key
/// for a `PbsPoly` tensor), as sums of weighted bits (bootstrap key).
fn read_bits(
    keys: &ServerKeys,
    key: KeyKind,
    (lsb, top): (u32, u32),
    factor: f64,
    coeffs: &[Lwe],
    fft: FftView<'_>,
    stats: &Stats,
) -> Result<Vec<Lwe>, TfheError> {
    let p = keys.params();
    let ksk_coeffs = keys.ksk_from(key).ok_or_else(|| bad_ct(format!("no keyswitch key from the {key}")))?;
    let ksk_pbs = keys.ksk_from(KeyKind::Pbs).ok_or_else(|| bad_ct("no keyswitch key from the PBS key"))?;
    let mut scratch = Scratch::new();
    let zero = || LweCiphertext::new(0u64, p.big_lwe_dim().to_lwe_size(), p.modulus);
    // The bits read so far at their true weight (the residual is the input minus them),
    // and the weighted sum (the same for factor 1).
    let mut sums: Vec<Lwe> = coeffs.iter().map(|_| zero()).collect();
    let mut weighted: Vec<Lwe> = coeffs.iter().map(|_| zero()).collect();
    let plain = factor == 1.0;
    let bits = top - lsb;
    let table = |c: u64| {
        allocate_and_trivially_encrypt_new_glwe_ciphertext(
            p.glwe_size(),
            &PlaintextList::from_container(vec![c; p.n()]),
            p.modulus,
        )
    };
    // Bootstrap `small` with the constant table `c` and add the bit's contribution
    // (`c − output`, or `output − c` for the sign) to `into`.
    let mut read = |small: &[Lwe], c: u64, sign: bool, into: &mut [Lwe]| {
        let t0 = Instant::now();
        let outs = ops::batch_pbs(p, &keys.bsk, &table(c), small, fft, &mut scratch);
        stats.record_pbs(outs.len(), t0);
        for (sum, mut o) in into.iter_mut().zip(outs) {
            if !sign {
                lwe_ciphertext_opposite_assign(&mut o);
            }
            lwe_ciphertext_plaintext_add_assign(&mut o, Plaintext(if sign { c.wrapping_neg() } else { c }));
            lwe_ciphertext_add_assign(sum, &o);
        }
    };
    for digit in 0..=bits {
        let bit = lsb + digit;
        let sign = digit == bits;
        let scale = 1u64 << (63 - bit);
        let scaled = |cts: &[Lwe], negate: bool| -> Vec<Lwe> {
            cts.iter()
                .map(|c| {
                    let mut s = c.clone();
                    if negate {
                        lwe_ciphertext_opposite_assign(&mut s);
                    }
                    lwe_ciphertext_cleartext_mul_assign(&mut s, Cleartext(scale));
                    s
                })
                .collect()
        };
        let t0 = Instant::now();
        let mut small = keyswitch_batched(ksk_coeffs, &scaled(coeffs, false));
        let done = keyswitch_batched(ksk_pbs, &scaled(&sums, true));
        for (s, o) in small.iter_mut().zip(&done) {
            lwe_ciphertext_add_assign(s, o);
            lwe_ciphertext_plaintext_add_assign(s, Plaintext(1u64 << 62));
        }
        stats.record(Work::Keyswitch, t0);
        if plain || !sign {
            // The bit at its true weight: steps the residual (and is the result for a refresh).
            read(&small, 1u64 << (bit - 1), sign, &mut sums);
        }
        if !plain {
            // Weight factor·2^digit grid steps, halved: the table holds ±c, the bit adds 2c.
            let w = (factor * f64::from(digit).exp2()).round() as i64;
            read(&small, (w as u64).wrapping_shl(lsb - 1), sign, &mut weighted);
        }
    }
    Ok(if plain { sums } else { weighted })
}
