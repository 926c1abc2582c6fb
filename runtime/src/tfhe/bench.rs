//! Timing references measured in the running process (the host CPU varies between
//! runs, so speed is reported as ratios to these).

use super::cipher::LweVec;
use super::exec::Server;
use super::keys::{KeyKind, ServerKeys};
use crate::rng::SplitMix;
use blindtuner_compiler::plan::{LutId, Plan};
use std::time::Instant;
use tfhe::core_crypto::prelude::*;

/// Single-thread time of one KS-PBS with tfhe's stock `PARAM_MESSAGE_2_CARRY_2_KS_PBS`
/// through `shortint` (key generation excluded, one warm-up, mean of `reps`).
///
/// Call it from a thread that is not inside a busy rayon pool. It uses tfhe's FFT for
/// N = 2048, so the plan is pinned first (see [`super::fftplan`]).
pub fn reference_pbs_seconds(reps: usize) -> f64 {
    use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS;
    super::fftplan::pin_all();
    let (ck, sk) = tfhe::shortint::gen_keys(PARAM_MESSAGE_2_CARRY_2_KS_PBS);
    let ct = ck.encrypt(1);
    let lut = sk.generate_lookup_table(|x| (x + 1) % 4);
    let _ = sk.apply_lookup_table(&ct, &lut); // warm-up
    let reps = reps.max(1);
    let t = Instant::now();
    for _ in 0..reps {
        let _ = std::hint::black_box(sk.apply_lookup_table(&ct, &lut));
    }
    t.elapsed().as_secs_f64() / reps as f64
}

/// Single-thread time of one bootstrap (blind rotation + extraction, keyswitch
/// excluded) of `keys`' parameter set on LUT 0 of `plan`; `None` if the plan has no LUT
/// or is not executable. Runs on a server of its own (the caller's PBS counters are
/// untouched) on a pseudo-random LWE: its phase is meaningless, but the cost of a
/// bootstrap does not depend on it. (Not a trivial one: blind rotation skips the
/// zero mask coefficients a trivial ciphertext keyswitches to, and would be ~100× cheaper.)
pub fn pbs_seconds(keys: &ServerKeys, plan: &Plan, reps: usize) -> Option<f64> {
    if plan.luts.is_empty() {
        return None;
    }
    let server = Server::new(keys, plan).ok()?;
    let p = keys.params();
    let mut rng = SplitMix::new(0x5eed);
    let mut ct = LweCiphertext::new(0u64, p.big_lwe_dim().to_lwe_size(), p.modulus);
    ct.as_mut().iter_mut().for_each(|v| *v = rng.next_u64());
    let x = LweVec { key: KeyKind::Data, cts: vec![ct] };
    server.lut(LutId(0), &x).ok()?; // warm-up
    let before = server.stats();
    for _ in 0..reps.max(1) {
        server.lut(LutId(0), &x).ok()?;
    }
    let after = server.stats();
    let count = (after.pbs - before.pbs).max(1);
    Some((after.pbs_time - before.pbs_time).as_secs_f64() / count as f64)
}
