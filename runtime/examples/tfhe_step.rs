//! Encrypted training-step benchmark of the tfhe backend on the probe's sigmoid head
//! (k = 5 classes, d = 16 and 64 features, batch 8, all rayon threads).
//!
//! `cargo run --release -p blindtuner-runtime --example tfhe_step [batches] [12x3|10x4]`
//!
//! Prints ms per sample (wall), PBS/s, where the CPU time goes, and
//! `reference_pbs_seconds`: one stock `PARAM_MESSAGE_2_CARRY_2_KS_PBS` KS-PBS on one
//! thread through `shortint`, measured in the same process (the host CPU changes
//! between runs; report ratios to this).

#[path = "../tests/tfhe_common/mod.rs"]
mod tfhe_common;

use blindtuner_compiler::plan::LutId;
use blindtuner_runtime::tfhe::{
    keygen, BskChoice, CryptoRng, EncModel, EncSample, KeyKind, ParamSet, PlanInfo, Server, StatsSnapshot,
};
use rayon::prelude::*;
use std::time::Instant;
use tfhe_common::{features, head_plan, initial_model, Rng};

fn main() {
    let batches: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let batch = 8;
    let k = 5;
    let threads = rayon::current_num_threads();
    // The reference PBS must run single-threaded: measure it before any pool is busy.
    let reference = blindtuner_runtime::tfhe::bench::reference_pbs_seconds(10);
    println!("reference_pbs_seconds = {reference:.5} (stock 2_2 KS-PBS, shortint, 1 thread)");

    let params = match std::env::args().nth(2).as_deref() {
        Some("10x4") => ParamSet::new(BskChoice::Bsk10x4),
        _ => ParamSet::default_set(),
    };
    let t = Instant::now();
    let (ck, sk) = keygen(&params, &mut CryptoRng::from_os());
    println!("params {}  keygen {:.1} s", params.id(), t.elapsed().as_secs_f64());
    let mut rng = CryptoRng::from_os();

    for d in [16usize, 64] {
        let plan = head_plan(d, k);
        let server = match Server::new(&sk, &plan) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let info: PlanInfo = server.info().clone();
        let mut r = Rng(d as u64);
        let mut model = ck.encrypt_model(&plan, &initial_model(&mut r, &plan), &mut rng).expect("model");

        // Single PBS of our bootstrap key, one thread.
        let one = ck.encrypt_lwe_vec(KeyKind::Data, &[1u64 << 58], &mut rng);
        let _ = server.lut(LutId(0), &one);
        let t = Instant::now();
        let reps = 5;
        for _ in 0..reps {
            let _ = server.lut(LutId(0), &one);
        }
        let single_pbs = t.elapsed().as_secs_f64() / reps as f64;
        // Independent single PBS on all threads: the machine's bootstrap throughput.
        let t = Instant::now();
        (0..reps * threads).into_par_iter().for_each(|_| {
            let _ = server.lut(LutId(0), &one);
        });
        let pbs_per_s_all = (reps * threads) as f64 / t.elapsed().as_secs_f64();

        let t = Instant::now();
        let make_batch = |r: &mut Rng, rng: &mut CryptoRng| -> Vec<_> {
            (0..batch)
                .map(|_| {
                    let x = features(r, d);
                    let y = r.int(0, k as i64 - 1) as usize;
                    ck.encrypt_sample(&plan, &info, &[x], &[y], rng).expect("sample")
                })
                .collect()
        };
        let data: Vec<Vec<_>> = (0..=batches).map(|_| make_batch(&mut r, &mut rng)).collect();
        let client_ms = t.elapsed().as_secs_f64() * 1e3 / ((batches + 1) * batch) as f64;

        // Warm-up batch, then one batch on one thread (component costs without
        // contention), then the rest on all threads (wall time per sample).
        server.train_batch(&mut model, &data[0]).expect("train");
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let one = pool.install(|| measure(&server, &mut model, &data[1..2]));
        let all = measure(&server, &mut model, &data[1..]);
        let per = |d: std::time::Duration, m: &Measured| d.as_secs_f64() * 1e3 / m.samples;
        println!(
            "d={d:>3} k={k}: {:.1} ms/sample wall ({threads} threads, batch {batch}) = {:.1}× reference PBS, {:.1} PBS/s | \
             1 thread: {:.1} ms/sample: PBS {:.1} ms ({} PBS/sample), packing {:.1} ms, keyswitch {:.1} ms, \
             external products {:.2} ms | single PBS {:.1} ms = {:.1}× reference, {:.1} PBS/s on {threads} threads | client encrypt {:.1} ms/sample",
            all.wall * 1e3 / all.samples,
            all.wall / all.samples / reference,
            all.pbs as f64 / all.wall,
            one.wall * 1e3 / one.samples,
            per(one.stats.pbs_time, &one),
            one.pbs as f64 / one.samples,
            per(one.stats.pack_time, &one),
            per(one.stats.keyswitch_time, &one),
            per(one.stats.external_product_time, &one),
            single_pbs * 1e3,
            single_pbs / reference,
            pbs_per_s_all,
            client_ms,
        );
    }
}

struct Measured {
    wall: f64,
    samples: f64,
    pbs: u64,
    stats: StatsSnapshot,
}

fn measure(server: &Server<'_>, model: &mut EncModel, batches: &[Vec<EncSample>]) -> Measured {
    let before = server.stats();
    let t = Instant::now();
    for b in batches {
        server.train_batch(model, b).expect("train");
    }
    let wall = t.elapsed().as_secs_f64();
    let after = server.stats();
    let stats = StatsSnapshot {
        pbs: after.pbs - before.pbs,
        pbs_time: after.pbs_time - before.pbs_time,
        keyswitch_time: after.keyswitch_time - before.keyswitch_time,
        pack_time: after.pack_time - before.pack_time,
        external_product_time: after.external_product_time - before.external_product_time,
        samples: after.samples - before.samples,
    };
    Measured { wall, samples: stats.samples as f64, pbs: stats.pbs, stats }
}
