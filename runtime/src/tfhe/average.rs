//! Tail averaging under encryption (`average = N`): the trained model is the mean of
//! the parameters after every step of the last `N` epochs.
//!
//! Server side it costs no bootstrap: after each averaged step the parameters'
//! ciphertexts are added into running sums ([`EncMean`]), levelled additions whose
//! noise is the sum of the iterates' noises (divided by the step count again at the
//! end, so the mean is no noisier than one iterate). The sums live on the torus and
//! wrap; the data owner recovers the exact integer sum by unwrapping it around
//! `steps · W_T` (the last iterate, decrypted from the same model): exact as long as
//! `|Σ (W_t − W_T)| < 2^63` torus units, i.e. the averaged iterates stay within
//! `2^63 / steps` of the last one — for weights at scale 2^54 and 500 steps that is
//! one real unit, against movements of a few hundredths in the last epochs.
//! The division rounds exactly as the clear backend does ([`round_mean`]), so both
//! backends define the same model.

use super::cipher::{EncMean, EncModel, EncTensor};
use super::error::{bad_ct, TfheError};
use blindtuner_compiler::plan::{round_mean, Plan, TensorRole};
use tfhe::core_crypto::prelude::*;

/// Add the current parameters into the model's running sums (starting them at the
/// first averaged step).
pub fn accumulate(plan: &Plan, model: &mut EncModel) -> Result<(), TfheError> {
    let Some(mean) = &mut model.mean else {
        let sums = plan
            .tensors
            .iter()
            .zip(&model.tensors)
            .map(|(t, enc)| (t.role == TensorRole::Param).then(|| enc.clone()))
            .collect();
        model.mean = Some(EncMean { steps: 1, sums });
        return Ok(());
    };
    check(plan, &model.tensors, mean)?;
    for (sum, enc) in mean.sums.iter_mut().zip(&model.tensors) {
        match (sum, enc) {
            (None, _) => {}
            (Some(EncTensor::Poly(s)), EncTensor::Poly(w)) => {
                s.iter_mut().zip(w).for_each(|(s, w)| glwe_ciphertext_add_assign(s, w))
            }
            (Some(EncTensor::Lwe(s)), EncTensor::Lwe(w)) => {
                s.cts.iter_mut().zip(&w.cts).for_each(|(s, w)| lwe_ciphertext_add_assign(s, w))
            }
            _ => return Err(bad_ct("averaged sum and parameter differ in layout")),
        }
    }
    mean.steps += 1;
    Ok(())
}

/// The sums must be those of the plan's parameters, shaped like them.
pub fn check(plan: &Plan, tensors: &[EncTensor], mean: &EncMean) -> Result<(), TfheError> {
    if mean.sums.len() != plan.tensors.len() || mean.steps == 0 {
        return Err(bad_ct("the model's averaged sums do not match the plan"));
    }
    for ((t, sum), enc) in plan.tensors.iter().zip(&mean.sums).zip(tensors) {
        let ok = match (sum, enc) {
            (None, _) => t.role != TensorRole::Param,
            (Some(EncTensor::Poly(s)), EncTensor::Poly(w)) => {
                s.len() == w.len()
                    && s.iter()
                        .zip(w)
                        .all(|(s, w)| s.polynomial_size() == w.polynomial_size() && s.glwe_size() == w.glwe_size())
            }
            (Some(EncTensor::Lwe(s)), EncTensor::Lwe(w)) => {
                s.key == w.key
                    && s.cts.len() == w.cts.len()
                    && s.cts.iter().zip(&w.cts).all(|(s, w)| s.lwe_size() == w.lwe_size())
            }
            _ => false,
        };
        if !ok {
            return Err(bad_ct(format!("the averaged sum of tensor `{}` does not match the plan", t.name)));
        }
    }
    Ok(())
}

/// Client side: the mean of `steps` iterates from the decrypted torus sum and the
/// decrypted last iterate.
pub fn unwrap_mean(steps: u64, sum: u64, last: u64) -> u64 {
    let around = i128::from(last as i64) * i128::from(steps);
    let offset = i128::from(sum.wrapping_sub(last.wrapping_mul(steps)) as i64);
    round_mean(around + offset, i128::from(steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapping_recovers_sums_that_wrapped() {
        // Iterates near the top of the positive half: their sum wraps many times.
        let its: Vec<i64> = (0..1000).map(|i| (1i64 << 62) + i * 12345 - 777).collect();
        let exact: i128 = its.iter().map(|&v| i128::from(v)).sum();
        let wrapped = its.iter().fold(0u64, |a, &v| a.wrapping_add(v as u64));
        let last = *its.last().unwrap() as u64;
        assert_eq!(unwrap_mean(1000, wrapped, last), round_mean(exact, 1000));
        // Negative weights, rounding half away from zero.
        let its = [-3i64, -4];
        let wrapped = its.iter().fold(0u64, |a, &v| a.wrapping_add(v as u64));
        assert_eq!(unwrap_mean(2, wrapped, (-4i64) as u64) as i64, -4);
    }
}
