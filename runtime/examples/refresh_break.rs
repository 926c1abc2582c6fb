//! Where the weights' noise budget breaks, on real ciphertexts, with and without the
//! compiler's refresh schedule.
//!
//! The weights' budget is half an LSB of their format (`noise::refresh`). The plan is
//! run twice on the same encrypted samples, each time in lock-step with the clear
//! backend forced to the cells the encrypted bootstraps selected
//! (`tfhe::lockstep`), so the decrypted-minus-clear difference of the weights is the
//! levelled noise alone:
//!
//! 1. refreshes disabled: the first step at which some coefficient's noise reaches
//!    half an LSB (the break) is set beside the model's expected breaking point (where
//!    P(some coefficient ≥ half an LSB) = ½, with this data's per-feature sizes);
//! 2. the plan's schedule: every refresh rounds the weights back to the grid, and the
//!    difference must stay under half an LSB for as many steps.
//!
//! A benchmark, not a test (minutes to an hour). `REFRESH_SCHEDULE_ONLY=1` skips the
//! first run and runs the schedule for `max steps`; `REFRESH_PREDICT_ONLY=1` only
//! prints the prediction. A spec whose weights can be kept on a
//! grid: `tests/corpus/grid_head.bt` (its format pins make the LSB coarse enough).
//!
//! ```text
//! blindtuner compile tests/corpus/grid_head.bt --emit plan -o grid.json
//! cargo run --release -p blindtuner-runtime --example refresh_break -- \
//!     grid.json data/mnist-vit16 [max steps] [train limit] [12x3|10x4]
//! ```

use blindtuner_compiler::noise::analyze::AnalyzeOptions;
use blindtuner_compiler::noise::refresh::{budgets, place_with};
use blindtuner_compiler::plan::Plan;
use blindtuner_runtime::clear::{self, Counters, QSample};
use blindtuner_runtime::data::{load_csv, Expect};
use blindtuner_runtime::order;
use blindtuner_runtime::tfhe::driver::trivial_model;
use blindtuner_runtime::tfhe::lockstep::LockStep;
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::{keygen, BskChoice, ClientKey, CryptoRng, EncSample, ParamSet, Server, ServerKeys};
use blindtuner_runtime::train;
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

struct Outcome {
    /// First step with some coefficient at or past half an LSB.
    broke_at: Option<u64>,
    /// Largest max|ΔW| / half an LSB over the run.
    worst: f64,
    steps: u64,
    refreshes: u64,
    pbs: u64,
    seconds: f64,
    accuracy: f64,
}

fn run() -> Result<(), String> {
    let usage = "usage: refresh_break PLAN.json DATA_PREFIX [max steps] [train limit] [12x3|10x4]";
    let plan_path = arg(1).ok_or(usage)?;
    let prefix = arg(2).ok_or(usage)?;
    let text = std::fs::read_to_string(&plan_path).map_err(|e| format!("{plan_path}: {e}"))?;
    let mut plan: Plan = serde_json::from_str(&text).map_err(|e| format!("{plan_path}: not a plan ({e})"))?;
    let max_steps: u64 = arg(3).and_then(|a| a.parse().ok()).unwrap_or(400);
    let params = match arg(5).as_deref() {
        Some("10x4") => ParamSet::new(BskChoice::Bsk10x4),
        Some("12x3") | None => ParamSet::default_set(),
        Some(other) => return Err(format!("unknown bootstrap key `{other}` (12x3 or 10x4)")),
    };
    let expect = Expect { features: Some(plan.inputs[0].len), classes: None };
    let load = |split: &str| load_csv(Path::new(&format!("{prefix}.{split}.csv")), expect).map_err(|e| e.to_string());
    let mut train_ds = load("train")?;
    let test_ds = load("test")?;
    if let Some(n) = arg(4).and_then(|a| a.parse().ok()) {
        train_ds = train_ds.subset(n, plan.train.seed);
    }
    let mut counters = Counters::new(&plan);
    let qs: Vec<QSample> =
        train_ds.x.iter().zip(&train_ds.y).map(|(x, &y)| clear::quantize(&plan, &[x], &[y], &mut counters)).collect();

    // The model's prediction with this data: per feature j, the mean of xq_j².
    let ms_j = clear::feature_mean_squares(&qs, 0);
    let ms = ms_j.iter().sum::<f64>() / ms_j.len().max(1) as f64;
    let np = noise_params(&params);
    // The compiler's schedule for this data (the plan's own assumes uniform features):
    // every coefficient bounded with its own feature's size.
    place_with(&mut plan, vec![Some(ms_j.clone())]);
    let opts = AnalyzeOptions {
        feature_ms: vec![Some(ms)],
        feature_ms_each: vec![Some(ms_j.clone())],
        ..AnalyzeOptions::new(plan.train.p_fail)
    };
    let b = budgets(&plan, &np, &opts);
    let b = b.first().ok_or("the plan has no parameter tensor that gains noise")?;
    let t = &plan.tensors[b.tensor.index()];
    let half = 2f64.powi(b.lsb as i32 - 1);
    let predicted = b.median_break;
    let quartiles = [0.25, 0.75].map(|p| b.steps_at(p));
    println!(
        "{} `{}`: LSB 2^{}, σ added per step 2^{:.2} (this data: mean xq² {ms:.1}, largest {:.1}); \
         expected break (P = ½) after {predicted:.0} steps (quartiles {:.0}–{:.0}); budget at p_fail/2: {:.0} steps",
        plan.model,
        t.name,
        b.lsb,
        b.per_step_log2_std,
        ms_j.iter().copied().fold(0.0, f64::max),
        quartiles[0],
        quartiles[1],
        b.steps_to_budget
    );
    match plan.train.refresh.iter().find(|r| r.tensor == b.tensor) {
        Some(r) => println!(
            "compiler's schedule: refresh every {} steps, {} bootstraps each ({} coefficients × {} digits)",
            r.every,
            b.coeffs * u64::from(r.digits()),
            b.coeffs,
            r.digits()
        ),
        None => println!("compiler's schedule: no refresh of `{}`", t.name),
    }
    if std::env::var_os("REFRESH_PREDICT_ONLY").is_some() {
        return Ok(());
    }

    let start = Instant::now();
    let (ck, sk) = keygen(&params, &mut CryptoRng::from_os());
    let probe = Server::new(&sk, &plan).map_err(|e| e.to_string())?;
    let info = probe.info().clone();
    let mut rng = CryptoRng::from_os();
    let enc: Vec<EncSample> = qs
        .iter()
        .map(|q| ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut rng))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    println!(
        "{} samples, batch {}, {}; keys and encryption {:.0} s",
        qs.len(),
        plan.train.batch,
        params.id(),
        start.elapsed().as_secs_f64()
    );

    // `REFRESH_SCHEDULE_ONLY=1`: only the run with the schedule, for `max steps`.
    let schedule_only = std::env::var_os("REFRESH_SCHEDULE_ONLY").is_some();
    let a = if schedule_only {
        None
    } else {
        let mut off = plan.clone();
        off.train.refresh.clear();
        let a = run_plan(&off, &ck, &sk, &qs, &enc, max_steps, half, true, &test_ds)?;
        report("refreshes disabled", &a, predicted);
        Some(a)
    };
    // Run the schedule twice as long as it took the unrefreshed run to break.
    let steps_b = a.as_ref().and_then(|a| a.broke_at).map_or(max_steps, |s| 2 * s);
    let bres = run_plan(&plan, &ck, &sk, &qs, &enc, steps_b, half, false, &test_ds)?;
    report("compiler's schedule", &bres, predicted);
    if let Some(s) = a.and_then(|a| a.broke_at) {
        println!(
            "observed / expected break: {:.2} (bar: within a factor of 2); with the schedule: {} over {} steps",
            s as f64 / predicted,
            if bres.broke_at.is_none() { "no break" } else { "BROKE" },
            bres.steps
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_plan(
    plan: &Plan,
    ck: &ClientKey,
    sk: &ServerKeys,
    qs: &[QSample],
    enc: &[EncSample],
    max_steps: u64,
    half: f64,
    stop_at_break: bool,
    test_ds: &blindtuner_runtime::data::Dataset,
) -> Result<Outcome, String> {
    let mut server = Server::new(sk, plan).map_err(|e| e.to_string())?;
    let init = clear::init_tensors(plan);
    let mut model = trivial_model(plan, sk.params(), &init).map_err(|e| e.to_string())?;
    let mut ls = LockStep::new(plan, init);
    let n = qs.len();
    let start = Instant::now();
    let mut out = Outcome { broke_at: None, worst: 0.0, steps: 0, refreshes: 0, pbs: 0, seconds: 0.0, accuracy: 0.0 };
    'epochs: for epoch in 0.. {
        server.set_epoch(epoch.min(plan.train.epochs.saturating_sub(1)));
        ls.set_epoch(epoch.min(plan.train.epochs.saturating_sub(1)));
        let ord = order::epoch_order(plan.train.seed, epoch, n);
        for range in order::batches(n, plan.train.batch.max(1)) {
            if out.steps >= max_steps {
                break 'epochs;
            }
            let batch_q: Vec<QSample> = ord[range.clone()].iter().map(|&i| qs[i].clone()).collect();
            let batch_e: Vec<EncSample> = ord[range].iter().map(|&i| enc[i].clone()).collect();
            let traces = server.train_batch(&mut model, &batch_e).map_err(|e| e.to_string())?;
            out.steps += 1;
            let ran = server.refresh(&mut model, out.steps).map_err(|e| e.to_string())?;
            out.refreshes += ran as u64;
            let c = ls.step(ck, &batch_q, &traces, &model).map_err(|e| e.to_string())?;
            let ratio = c.max_abs as f64 / half;
            out.worst = out.worst.max(ratio);
            if ran > 0 || out.steps.is_multiple_of(25) {
                println!(
                    "  step {:>5}: max|ΔW| = {ratio:.3} half-LSB{}  ({:.0} s)",
                    out.steps,
                    if ran > 0 { " right after a refresh" } else { "" },
                    start.elapsed().as_secs_f64()
                );
            }
            if ratio >= 1.0 && out.broke_at.is_none() {
                out.broke_at = Some(out.steps);
                println!("  step {:>5}: max|ΔW| = {ratio:.3} half-LSB — over budget", out.steps);
                if stop_at_break {
                    break 'epochs;
                }
            }
        }
    }
    out.pbs = server.stats().pbs;
    out.seconds = start.elapsed().as_secs_f64();
    let dec = ck.decrypt_model(plan, &model).map_err(|e| e.to_string())?;
    out.accuracy = train::accuracy(plan, &dec, test_ds);
    Ok(out)
}

fn report(what: &str, o: &Outcome, predicted: f64) {
    println!(
        "{what}: {} steps, {} refreshes, {} bootstraps counted, {:.0} s; break {}; worst max|ΔW| {:.3} half-LSB; \
         test accuracy of the decrypted weights {:.4}",
        o.steps,
        o.refreshes,
        o.pbs,
        o.seconds,
        o.broke_at.map_or("none".into(), |s| format!("at step {s} (expected {predicted:.0})")),
        o.worst,
        o.accuracy
    );
}
