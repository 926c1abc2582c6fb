//! A whole encrypted training run in lock-step with the clear backend, on real data:
//! after every step the decrypted parameters are compared with a clear run that
//! applies the lookup-table cells the encrypted bootstraps selected (see
//! `blindtuner_runtime::tfhe::lockstep`), against the random-walk noise bound of
//! `noise::analyze`; at the end the encrypted model's test accuracy is set beside
//! `--backend simulate` over several noise seeds. A benchmark, not a test: the
//! 20-epoch `mnist-vit16` run is 40 000 encrypted samples (≈ 70–90 min on 2 cores).
//!
//! ```text
//! blindtuner compile models/mnist_vit_sigmoid.bt --set d=16 --emit plan -o plan16.json
//! cargo run --release -p blindtuner-runtime --example lockstep -- \
//!     plan16.json data/mnist-vit16 [epochs] [limit] [12x3|10x4] [simulate seeds]
//! ```

use blindtuner_compiler::noise::analyze::{analyze, AnalyzeOptions};
use blindtuner_compiler::noise::sim::OpNoise;
use blindtuner_compiler::plan::{Plan, TensorRole};
use blindtuner_runtime::clear::{self, Counters, QSample};
use blindtuner_runtime::data::{load_csv, Dataset, Expect};
use blindtuner_runtime::order;
use blindtuner_runtime::simulate::Injector;
use blindtuner_runtime::tfhe::driver::trivial_model;
use blindtuner_runtime::tfhe::lockstep::LockStep;
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::{keygen, BskChoice, CryptoRng, ParamSet, Server};
use blindtuner_runtime::train::{self, TrainOptions};
use std::path::Path;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn arg(i: usize) -> Option<String> {
    std::env::args().nth(i)
}

fn run() -> Result<(), String> {
    let usage = "usage: lockstep PLAN.json DATA_PREFIX [epochs] [limit] [12x3|10x4] [simulate seeds]";
    let plan_path = arg(1).ok_or(usage)?;
    let prefix = arg(2).ok_or(usage)?;
    let text = std::fs::read_to_string(&plan_path).map_err(|e| format!("{plan_path}: {e}"))?;
    let mut plan: Plan = serde_json::from_str(&text).map_err(|e| format!("{plan_path}: not a plan ({e})"))?;
    if let Some(e) = arg(3).and_then(|a| a.parse().ok()) {
        // The schedule is per epoch: more epochs only extend it (labels are encrypted
        // at the largest shift of the run).
        plan.train.epochs = e;
    }
    let params = match arg(5).as_deref() {
        Some("10x4") => ParamSet::new(BskChoice::Bsk10x4),
        Some("12x3") | None => ParamSet::default_set(),
        Some(other) => return Err(format!("unknown bootstrap key `{other}` (12x3 or 10x4)")),
    };
    let seeds: u64 = arg(6).and_then(|a| a.parse().ok()).unwrap_or(10);
    let expect = Expect { features: Some(plan.inputs[0].len), classes: None };
    let load = |split: &str| -> Result<Dataset, String> {
        let p = format!("{prefix}.{split}.csv");
        load_csv(Path::new(&p), expect).map_err(|e| e.to_string())
    };
    let mut train_ds = load("train")?;
    let test_ds = load("test")?;
    if let Some(n) = arg(4).and_then(|a| a.parse().ok()) {
        train_ds = train_ds.subset(n, plan.train.seed);
    }
    let n = train_ds.len();
    let epochs = plan.train.epochs;

    let mut counters = Counters::new(&plan);
    let qs: Vec<QSample> =
        train_ds.x.iter().zip(&train_ds.y).map(|(x, &y)| clear::quantize(&plan, &[x], &[y], &mut counters)).collect();
    // The noise model with this data's feature size (mean of xq² per input). The
    // gradient's noise in coefficient j scales with feature j's size: embeddings have a
    // few large features, so the worst coefficient is bounded with the largest
    // feature's mean square, the spread over all coefficients with the mean one.
    let ms_j = clear::feature_mean_squares(&qs, 0);
    let ms = ms_j.iter().sum::<f64>() / ms_j.len().max(1) as f64;
    let ms_max = ms_j.iter().copied().fold(0.0, f64::max);
    let np = noise_params(&params);
    let sigma_with = |ms: f64| {
        let noise = analyze(
            &plan,
            &np,
            &AnalyzeOptions { feature_ms: vec![Some(ms)], ..AnalyzeOptions::new(plan.train.p_fail) },
        );
        let vars: Vec<_> = plan
            .tensors
            .iter()
            .zip(&noise.tensors)
            .filter(|(t, _)| t.role == TensorRole::Param)
            .map(|(_, v)| v.var)
            .collect();
        // Variances are in units of the whole torus; the differences below in torus
        // units (2^64).
        let q = 2f64.powi(noise.params.modulus_log2 as i32);
        move |steps: f64| vars.iter().map(|v| v.at(steps)).fold(0.0, f64::max).sqrt() * q
    };
    let sigma_at = sigma_with(ms);
    let sigma_max_at = sigma_with(ms_max);
    let noise =
        analyze(&plan, &np, &AnalyzeOptions { feature_ms: vec![Some(ms)], ..AnalyzeOptions::new(plan.train.p_fail) });
    let steps_per_epoch = order::steps_per_epoch(n, plan.train.batch) as f64;
    println!(
        "predicted weight noise σ (log2 torus units) after 1, 5, 10, 20 epochs: mean feature (ms {ms:.0}) {}; \
         largest feature (ms {ms_max:.0}) {}",
        [1.0, 5.0, 10.0, 20.0].map(|e| format!("2^{:.2}", sigma_at(e * steps_per_epoch).log2())).join(" "),
        [1.0, 5.0, 10.0, 20.0].map(|e| format!("2^{:.2}", sigma_max_at(e * steps_per_epoch).log2())).join(" "),
    );
    if std::env::var_os("LOCKSTEP_PREDICT_ONLY").is_some() {
        return Ok(());
    }

    let start = Instant::now();
    let (ck, sk) = keygen(&params, &mut CryptoRng::from_os());
    let mut server = Server::new(&sk, &plan).map_err(|e| e.to_string())?;
    let info = server.info().clone();
    let mut rng = CryptoRng::from_os();
    let enc: Vec<_> = qs
        .iter()
        .map(|q| ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut rng))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let init = clear::init_tensors(&plan);
    let mut model = trivial_model(&plan, sk.params(), &init).map_err(|e| e.to_string())?;
    let mut ls = LockStep::new(&plan, init);
    println!(
        "{} with {}: {n} samples × {epochs} epochs, batch {}; keys and encryption {:.0} s",
        plan.model,
        params.id(),
        plan.train.batch,
        start.elapsed().as_secs_f64()
    );
    println!(
        "epoch  steps   max|ΔW| (log2)  rms|ΔW|  predicted σ  max/σ  rms/σ   one cell off  further  (vs clear run: off, further)   elapsed"
    );
    let average_from = plan.train.average_from(epochs);
    let (mut worst_ratio, mut worst_rms_ratio) = (0f64, 0f64);
    let mut worst_max_ratio = 0f64;
    let train_start = Instant::now();
    for epoch in 0..epochs {
        server.set_epoch(epoch);
        ls.set_epoch(epoch);
        let ord = order::epoch_order(plan.train.seed, epoch, n);
        let (mut max_abs, mut rms) = (0u64, 0f64);
        for range in order::batches(n, plan.train.batch.max(1)) {
            let batch_q: Vec<QSample> = ord[range.clone()].iter().map(|&i| qs[i].clone()).collect();
            let batch_e: Vec<_> = ord[range].iter().map(|&i| enc[i].clone()).collect();
            let traces = server.train_batch(&mut model, &batch_e).map_err(|e| e.to_string())?;
            if average_from.is_some_and(|e| epoch >= e) {
                blindtuner_runtime::tfhe::average::accumulate(&plan, &mut model).map_err(|e| e.to_string())?;
            }
            let c = ls.step(&ck, &batch_q, &traces, &model).map_err(|e| e.to_string())?;
            let sigma = sigma_at(ls.steps as f64);
            worst_ratio = worst_ratio.max(c.max_abs as f64 / sigma);
            worst_rms_ratio = worst_rms_ratio.max(c.mean_sq.sqrt() / sigma);
            worst_max_ratio = worst_max_ratio.max(c.max_abs as f64 / sigma_max_at(ls.steps as f64));
            max_abs = max_abs.max(c.max_abs);
            rms = c.mean_sq.sqrt();
        }
        let sigma = sigma_at(ls.steps as f64);
        println!(
            "{:>5}  {:>5}   2^{:<12.2}  2^{:<5.2}  2^{:<9.2}  {:>5.2}  {:>5.2}   {:>12}  {:>7}  ({:>8}, {:>7})            {:>6.0} s",
            epoch + 1,
            ls.steps,
            (max_abs.max(1) as f64).log2(),
            rms.max(1.0).log2(),
            sigma.log2(),
            max_abs as f64 / sigma,
            rms / sigma,
            ls.landings.one_off,
            ls.landings.far,
            ls.cells.one_off,
            ls.cells.far,
            train_start.elapsed().as_secs_f64()
        );
    }
    let dec = ck.decrypt_model(&plan, &model).map_err(|e| e.to_string())?;
    let enc_acc = train::accuracy(&plan, &dec, &test_ds);
    let clear_rep = train::train(&plan, &train_ds, Some(&test_ds), &TrainOptions::default());
    let sims: Vec<f64> = (0..seeds)
        .map(|s| {
            let inj = Injector::new(OpNoise::new(&np), plan.train.seed + s, plan.train.max_lr_shift());
            let opts = TrainOptions { simulate: Some(inj), ..Default::default() };
            train::train(&plan, &train_ds, Some(&test_ds), &opts).test_accuracy.unwrap_or(0.0)
        })
        .collect();
    let mean = sims.iter().sum::<f64>() / sims.len().max(1) as f64;
    let (lo, hi) = sims.iter().fold((1f64, 0f64), |(l, h), &a| (l.min(a), h.max(a)));
    let predicted: Vec<String> = noise
        .luts
        .iter()
        .map(|l| format!("one cell off {:.4}, further {:.1e}", l.errors.one_off, l.errors.far))
        .collect();
    println!(
        "bootstraps: {}; against the decrypted state before each step: {} one cell off = {:.4}, {} further \
         (predicted per bootstrap: {}); against the lock-stepped clear run (its weights lack the encrypted \
         weights' noise): {} one cell off, {} further",
        ls.landings.pbs,
        ls.landings.one_off,
        ls.landings.one_off_rate(),
        ls.landings.far,
        predicted.join("; "),
        ls.cells.one_off,
        ls.cells.far
    );
    // The lock-step difference is the levelled noise alone, a random walk with no
    // feedback: its spread should match σ (rms/σ ≈ 1, ≤ 1 where the model is
    // pessimistic), and no coefficient should pass 6σ of the largest feature
    // (p ≈ 2e-9 per coefficient-step).
    println!(
        "over all {} steps: worst rms|ΔW| / σ = {worst_rms_ratio:.2}; worst max|ΔW| / σ = {worst_ratio:.2}, \
         / σ(largest feature) = {worst_max_ratio:.2} ({})",
        ls.steps,
        if worst_max_ratio <= 6.0 { "within the 6σ bound" } else { "OUTSIDE the 6σ bound" }
    );
    println!(
        "test accuracy: encrypted {enc_acc:.4}; simulate over {seeds} seeds {lo:.4}–{hi:.4} (mean {mean:.4}); clear {:.4}",
        clear_rep.test_accuracy.unwrap_or(0.0)
    );
    println!("|encrypted − simulate mean| = {:.2} points", 100.0 * (enc_acc - mean).abs());
    Ok(())
}
