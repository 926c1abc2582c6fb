//! Where bootstraps land, counted over many real bootstraps: one cell off (a numeric
//! error the model predicts and `simulate` injects) and further (a failure, which the
//! noise model says happens with p ≈ 3.3e-8 per bootstrap for the sigmoid error table
//! at 2^57-wide cells). A benchmark, not a test: 10^5 bootstraps take ~35 min on 2 cores.
//!
//! `cargo run --release -p blindtuner-runtime --example far_landing [count] [12x3|10x4]`
//!
//! The table, the logit scale and the message distribution are those of
//! `runtime/tests/noise_measured.rs` (which counts 1000 of them in the suite); the
//! bootstrap key does not enter the landing (it acts after the blind rotation has
//! chosen its index), so 12x3 is the default.

#[path = "../tests/tfhe_common/mod.rs"]
mod tfhe_common;

use blindtuner_compiler::noise::tail::cell_errors;
use blindtuner_compiler::plan::LutId;
use blindtuner_runtime::simulate::CellTally;
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::{keygen, BskChoice, CryptoRng, KeyKind, ParamSet, Server};
use rayon::prelude::*;
use std::time::Instant;
use tfhe_common::{fresh_pbs_input_sigma, head_plan, landings, Rng};

/// Bootstraps per encrypted chunk (one `Server::lut` call, one rayon task).
const CHUNK: usize = 250;

fn main() {
    let count: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let params = match std::env::args().nth(2).as_deref() {
        Some("10x4") => ParamSet::new(BskChoice::Bsk10x4),
        _ => ParamSet::default_set(),
    };
    let (ck, sk) = keygen(&params, &mut CryptoRng::from_os());
    let plan = head_plan(64, 5);
    let server = Server::new(&sk, &plan).expect("plan accepted");
    let lut = &plan.luts[0];
    let predicted = cell_errors(fresh_pbs_input_sigma(&noise_params(ck.params())) * (2 * lut.table.len()) as f64);
    println!(
        "{} bootstraps of `{}` ({} cells per half torus) with {}; predicted per bootstrap: one cell off {:.4}, further {:.1e}",
        count,
        lut.func,
        lut.table.len(),
        params.id(),
        predicted.one_off,
        predicted.far
    );

    let chunks = count.div_ceil(CHUNK);
    let start = Instant::now();
    let mut total = CellTally::default();
    // Progress in rounds of a few chunks per thread, so a long run shows where it is.
    let round = 4 * rayon::current_num_threads();
    for first in (0..chunks).step_by(round) {
        let tallies: Vec<CellTally> = (first..(first + round).min(chunks))
            .into_par_iter()
            .map(|c| {
                let len = CHUNK.min(count - c * CHUNK);
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
                let mut crng = CryptoRng::from_os();
                // Logits anywhere in z ∈ [−8, 8) (2^59 per unit), as in noise_measured.
                let msgs: Vec<u64> = (0..len).map(|_| (rng.int(-(1 << 20), (1 << 20) - 1) as u64) << 42).collect();
                let input = ck.encrypt_lwe_vec(KeyKind::Data, &msgs, &mut crng);
                let (_, small) = server.lut(LutId(0), &input).expect("bootstrap");
                landings(&ck, lut, &small, &msgs)
            })
            .collect();
        total = tallies.iter().fold(total, |a, t| a.plus(t));
        eprintln!(
            "{}/{count} bootstraps: {} one cell off ({:.4}), {} further; {:.1} PBS/s",
            total.pbs,
            total.one_off,
            total.one_off_rate(),
            total.far,
            total.pbs as f64 / start.elapsed().as_secs_f64()
        );
    }
    let (done, one, far) = (total.pbs as usize, total.one_off, total.far);
    let rate = one as f64 / done as f64;
    println!("bootstraps        {done}");
    println!("one cell off      {one} ({rate:.4}; predicted {:.4})", predicted.one_off);
    println!(
        "further off       {far} (predicted {:.1e} per bootstrap: {:.4} expected in this run)",
        predicted.far,
        predicted.far * done as f64
    );
    println!(
        "time              {:.0} s ({:.1} PBS/s)",
        start.elapsed().as_secs_f64(),
        done as f64 / start.elapsed().as_secs_f64()
    );
}
