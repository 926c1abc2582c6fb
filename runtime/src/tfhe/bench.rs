//! Timing references measured in the running process (the host CPU varies between
//! runs, so speed is reported as ratios to these).

use super::cipher::LweVec;
use super::convert::ConvertKey;
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
/// A plan with products of two server values needs its conversion keys (`convert`).
pub fn pbs_seconds(keys: &ServerKeys, convert: Option<&ConvertKey>, plan: &Plan, reps: usize) -> Option<f64> {
    if plan.luts.is_empty() {
        return None;
    }
    let server = Server::with_convert(keys, plan, convert).ok()?;
    let x = random_lwe(keys);
    server.lut(LutId(0), &x).ok()?; // warm-up
    let before = server.stats();
    for _ in 0..reps.max(1) {
        server.lut(LutId(0), &x).ok()?;
    }
    let after = server.stats();
    let count = (after.pbs - before.pbs).max(1);
    Some((after.pbs_time - before.pbs_time).as_secs_f64() / count as f64)
}

/// Single-thread time of one conversion bootstrap (`table-ggsw`: a bootstrap with the
/// conversion key and the two packing keyswitches of its output), from converting one
/// value with LUT 0 of `plan` `reps` times; `None` without a LUT.
pub fn conversion_seconds(keys: &ServerKeys, convert: &ConvertKey, plan: &Plan, reps: usize) -> Option<f64> {
    let lut = plan.luts.first()?;
    let x = random_lwe(keys);
    let mut secs = 0.0;
    let mut count = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let (_, pbs) = super::convert::table_to_ggsw(keys, convert, lut, &lut.in_fmt, &x).ok()?;
        secs += t.elapsed().as_secs_f64();
        count += pbs;
    }
    Some(secs / count.max(1) as f64)
}

/// One LWE of pseudo-random coefficients under the data key (a bootstrap's cost does
/// not depend on its phase).
fn random_lwe(keys: &ServerKeys) -> LweVec {
    let p = keys.params();
    let mut rng = SplitMix::new(0x5eed);
    let mut ct = LweCiphertext::new(0u64, p.big_lwe_dim().to_lwe_size(), p.modulus);
    ct.as_mut().iter_mut().for_each(|v| *v = rng.next_u64());
    LweVec { key: KeyKind::Data, cts: vec![ct] }
}

/// What `blindtuner calibrate` measures on this host: the per-operation costs the
/// report's time estimate multiplies by the plan's counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// The parameter set measured.
    pub param_set: String,
    /// Single-thread milliseconds per bootstrap (blind rotation + extraction), from a
    /// training run (CPU time summed over threads / bootstraps).
    pub pbs_ms: f64,
    /// Single-thread milliseconds per keyswitch to the small key.
    pub keyswitch_ms: f64,
    /// Single-thread milliseconds per LWE of the packing keyswitch.
    pub pack_ms_per_lwe: f64,
    /// Threads the training run used (rayon's pool).
    pub threads: usize,
    /// Wall seconds per training sample of the calibration head on `threads` threads.
    pub wall_seconds_per_sample: f64,
    /// `reference_pbs_seconds` in the same process, in milliseconds.
    pub reference_pbs_ms: f64,
    /// Training samples the figures are averaged over.
    pub samples: usize,
}

/// Train `plan` on `samples` synthetic samples (features uniform over their quantized
/// range: the cost does not depend on the values) and time every kind of work.
pub fn calibrate(
    ck: &super::ClientKey,
    keys: &ServerKeys,
    plan: &Plan,
    samples: usize,
) -> Result<Calibration, super::TfheError> {
    use super::{CryptoRng, PlanInfo};
    let reference_pbs_ms = 1e3 * reference_pbs_seconds(10);
    let info = PlanInfo::analyse(plan, ck.params())?;
    let mut rng = SplitMix::new(0xca1);
    let mut crng = CryptoRng::from_os();
    let enc = (0..samples.max(1))
        .map(|_| {
            let xq: Vec<Vec<i64>> = plan
                .inputs
                .iter()
                .map(|i| (0..i.len).map(|_| i.qmin + rng.below((i.qmax - i.qmin + 1) as usize) as i64).collect())
                .collect();
            let labels: Vec<usize> = plan.labels.iter().map(|l| rng.below(l.classes.max(1))).collect();
            ck.encrypt_sample(plan, &info, &xq, &labels, &mut crng)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut model = ck.encrypt_model(plan, &crate::clear::init_tensors(plan), &mut crng)?;
    let server = Server::new(keys, plan)?;
    let batch = plan.train.batch.max(1);
    let t = Instant::now();
    for chunk in enc.chunks(batch) {
        server.train_batch(&mut model, chunk)?;
    }
    let wall = t.elapsed().as_secs_f64();
    let s = server.stats();
    let pbs = s.pbs.max(1) as f64;
    // One packed LWE per error element of every data outer product.
    let per_sample: usize = plan
        .sample
        .iter()
        .map(|i| match i {
            blindtuner_compiler::plan::Inst::DataOuterAcc { e, .. } => plan.regs[e.index()].len,
            _ => 0,
        })
        .sum();
    let packed = (enc.len() * per_sample.max(1)) as f64;
    Ok(Calibration {
        param_set: keys.params().id().to_string(),
        pbs_ms: 1e3 * s.pbs_time.as_secs_f64() / pbs,
        // One keyswitch in front of every bootstrap.
        keyswitch_ms: 1e3 * s.keyswitch_time.as_secs_f64() / pbs,
        pack_ms_per_lwe: 1e3 * s.pack_time.as_secs_f64() / packed,
        threads: rayon::current_num_threads(),
        wall_seconds_per_sample: wall / enc.len() as f64,
        reference_pbs_ms,
        samples: enc.len(),
    })
}
