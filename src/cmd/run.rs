//! `blindtuner run FILE --data PREFIX`: compile, train, evaluate, summarise.

use super::keygen::resolve_bsk;
use super::{load_spec, report as report_cmd, run_tfhe, Source};
use crate::cli::{Backend, RunArgs};
use crate::error::CliError;
use blindtuner_compiler::datadims::data_dims;
use blindtuner_compiler::noise::{analyze, AnalyzeOptions, NoiseReport, OpNoise};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use blindtuner_compiler::report::ReportOptions;
use blindtuner_compiler::spec::Spec;
use blindtuner_runtime::data::{load_csv, Dataset, Expect};
use blindtuner_runtime::simulate::Injector;
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::ParamSet;
use blindtuner_runtime::train::{train, TrainOptions, TrainReport};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let (train_path, test_path) = split_paths(&args.data);
    // First read without expectations to learn d and k from the data; the spec's
    // named dims follow the data unless the user pinned them with --set.
    let raw_train = load(&train_path, Expect::default())?;
    let raw_test = load(&test_path, Expect::default())?;
    let src = Source::read(&args.spec.file)?;
    let dd = data_dims(&blindtuner_grammar::parse(&src.text).0);
    let mut from_data = BTreeMap::new();
    if let Some(d) = dd.features {
        from_data.insert(d, raw_train.d);
    }
    if let Some(k) = dd.classes {
        let max = raw_train.y.iter().chain(&raw_test.y).copied().max().unwrap_or(0);
        from_data.insert(k, max + 1);
    }
    let (src, mut spec) = load_spec(&args.spec, &from_data)?;
    let expect = expect_of(&spec);
    let mut train_ds = load(&train_path, expect)?;
    let test_ds = load(&test_path, expect)?;
    if let Some(n) = args.limit {
        train_ds = train_ds.subset(n, spec.train.seed);
    }
    if args.fit_ranges {
        fit_ranges(&mut spec, &train_ds);
    }
    let loss = spec_loss(&spec);
    let ctx =
        pipeline::run_with(spec, None, args.spec.lowering.iter().cloned().collect()).map_err(|d| src.diagnostics(d))?;
    src.warn(&ctx.notes);
    let plan = ctx.plan.as_ref().ok_or_else(|| CliError::user("internal: the pipeline produced no plan"))?;
    // The epoch count is part of the plan (label terms carry the run's largest
    // learning-rate shift, which the client encrypts for and the simulator models):
    // apply the override to the plan itself.
    let mut plan = plan.clone();
    if let Some(e) = args.epochs {
        plan.train.epochs = e;
        // The key, and so the noise per step, may change with the last epoch's rate.
        blindtuner_compiler::noise::refresh::place(&mut plan);
    }
    let plan = &plan;
    let params = ParamSet::new(resolve_bsk(&args.bsk, Some(plan))?);
    let backend = match args.backend {
        Backend::Clear => "clear",
        Backend::Tfhe => "tfhe",
        Backend::Simulate => "simulate",
    };
    if !args.json {
        eprintln!(
            "training `{}` on {} ({} samples, d = {}, k = {}) with the {backend} backend ...",
            plan.model,
            train_path.display(),
            train_ds.len(),
            train_ds.d,
            plan.labels.first().map_or(0, |l| l.classes)
        );
    }
    if args.backend == Backend::Tfhe {
        let job = run_tfhe::RunTfhe {
            params: params.clone(),
            plan,
            train: &train_ds,
            test: &test_ds,
            data: &args.data,
            loss,
            json: args.json,
        };
        let clear = run_tfhe::run(&job)?;
        warn_violations(plan, &clear);
        if args.report {
            println!();
            print!("{}", report_cmd::text_of(plan, &src.text, &report_opts(args, train_ds.len())?));
        }
        return Ok(());
    }
    let np = noise_params(&params);
    let simulate = (args.backend == Backend::Simulate).then(|| {
        Injector::new(OpNoise::new(&np), args.noise_seed.unwrap_or(plan.train.seed), plan.train.max_lr_shift())
    });
    let noise = simulate.is_some().then(|| analyze(plan, &np, &AnalyzeOptions::new(plan.train.p_fail)));
    if let Some(n) = &noise {
        let unmodelled = &n.unsupported;
        if !unmodelled.is_empty() {
            eprintln!(
                "warning: simulate: {} value(s) of this plan are outside the noise model ({}); server × server \
                 products add no noise of their own in the simulation",
                unmodelled.len(),
                unmodelled.join("; ")
            );
        }
    }
    let opts = TrainOptions { loss, epochs: None, simulate };
    let rep = train(plan, &train_ds, Some(&test_ds), &opts);
    // The simulator's prediction is a distance from the clear run (same samples, same
    // order): run that too, as `--backend tfhe` does (milliseconds).
    let clear = opts.simulate.is_some().then(|| {
        let opts = TrainOptions { loss, epochs: None, simulate: None };
        train(plan, &train_ds, Some(&test_ds), &opts)
    });
    warn_violations(plan, &rep);
    if args.json {
        println!("{}", summary_json(plan, &rep, clear.as_ref(), &args.data, backend, noise.as_ref()));
    } else {
        print!("{}", summary_text(plan, &rep, clear.as_ref()));
        if args.report {
            println!();
            print!("{}", report_cmd::text_of(plan, &src.text, &report_opts(args, train_ds.len())?));
        }
    }
    Ok(())
}

fn report_opts(args: &RunArgs, samples: usize) -> Result<ReportOptions, CliError> {
    let mut o = ReportOptions { samples: Some(samples), ..Default::default() };
    if let Some(f) = &args.calibration {
        o.timing = super::calibrate_host::load_timing(f)?;
    }
    Ok(o)
}

fn split_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let p = prefix.display().to_string();
    (PathBuf::from(format!("{p}.train.csv")), PathBuf::from(format!("{p}.test.csv")))
}

fn load(path: &Path, expect: Expect) -> Result<Dataset, CliError> {
    load_csv(path, expect).map_err(|e| CliError::user(e.to_string()))
}

fn expect_of(spec: &Spec) -> Expect {
    Expect {
        features: spec.inputs.first().and_then(|i| i.shape.last().copied()),
        classes: spec.labels.first().map(|l| l.classes),
    }
}

/// Replace the declared input ranges by the observed range of the training split.
fn fit_ranges(spec: &mut Spec, data: &Dataset) {
    if let (Some(input), Some((lo, hi))) = (spec.inputs.first_mut(), data.overall_range()) {
        eprintln!(
            "--fit-ranges: input `{}` range [{}, {}] replaced by the observed [{lo}, {hi}]",
            input.name, input.range.0, input.range.1
        );
        input.range = (lo, hi);
    }
}

fn spec_loss(spec: &Spec) -> Option<blindtuner_compiler::spec::LossKind> {
    use blindtuner_compiler::spec::TExprKind;
    match &spec.lets.get(spec.loss.index())?.value.kind {
        TExprKind::Loss(kind, _, _) => Some(*kind),
        _ => None,
    }
}

fn warn_violations(plan: &Plan, rep: &TrainReport) {
    super::warn_clamped(
        plan,
        &rep.clamped,
        "training values",
        "`blindtuner calibrate-ranges` prints the observed ranges; `run --fit-ranges` uses them",
    );
    for l in &rep.luts {
        if l.saturated > 0 || l.wrapped > 0 {
            eprintln!(
                "warning: lookup table `{}`: {} of {} inputs outside the assumed range (saturated), {} wrapped",
                l.lut, l.saturated, l.evals, l.wrapped
            );
        }
    }
}

fn summary_json(
    plan: &Plan,
    rep: &TrainReport,
    clear: Option<&TrainReport>,
    data: &Path,
    backend: &str,
    noise: Option<&NoiseReport>,
) -> String {
    let c = blindtuner_compiler::lower::cost::costs(plan);
    let clamped: u64 = rep.clamped.iter().flatten().sum();
    let mut v = json!({
        "model": plan.model,
        "data": data.display().to_string(),
        "backend": backend,
        "dims": plan.dims,
        "test_accuracy": rep.test_accuracy,
        "train_accuracy": rep.train_accuracy,
        "train_seconds": rep.train_seconds,
        "epochs": rep.epochs,
        "steps": rep.steps,
        "samples": rep.samples,
        "pbs_count": rep.pbs_count,
        "pbs_per_sample": c.pbs_per_sample,
        "external_products": rep.external_products,
        "clamped_values": clamped,
        "lut_saturated": rep.luts.iter().map(|l| l.saturated).sum::<u64>(),
        "lut_wrapped": rep.luts.iter().map(|l| l.wrapped).sum::<u64>(),
        "loss_per_epoch": rep.loss_per_epoch,
        "plan_loss_per_epoch": rep.plan_loss_per_epoch,
    });
    if let Some(cells) = rep.cells {
        v["simulated_pbs"] = json!(cells.pbs);
        v["pbs_one_cell_off"] = json!(cells.one_off);
        v["pbs_further_off"] = json!(cells.far);
        v["pbs_further_off_graded"] = json!(cells.graded_far);
        v["predicted_one_cell_off_rate"] = json!(noise.and_then(predicted_one_off));
        v["one_cell_off_rate_per_epoch"] =
            json!(rep.cells_per_epoch.iter().map(|c| c.one_off_rate()).collect::<Vec<_>>());
    }
    if let Some(clear) = clear {
        v["clear_test_accuracy"] = json!(clear.test_accuracy);
        v["clear_train_accuracy"] = json!(clear.train_accuracy);
        v["max_abs_weight_diff_vs_clear"] = json!(run_tfhe::max_abs_diff(plan, &rep.tensors, &clear.tensors));
    }
    v.to_string()
}

/// The noise model's one-cell-off probability per bootstrap with fresh weights (mean
/// over the lookup tables). The per-epoch measured rates show how much the weights'
/// noise adds during training: the model's random-walk bound on that is pessimistic
/// (SGD contracts the part of the weight noise that the data sees).
fn predicted_one_off(rep: &NoiseReport) -> Option<f64> {
    let n = rep.luts.len();
    (n > 0).then(|| rep.luts.iter().map(|l| l.errors.one_off).sum::<f64>() / n as f64)
}

fn summary_text(plan: &Plan, rep: &TrainReport, clear: Option<&TrainReport>) -> String {
    let mut s = String::new();
    let pct = |x: f64| format!("{:.2} %", 100.0 * x);
    s += &format!("model            {}\n", plan.model);
    match rep.cells {
        None => s += "backend          clear (bit-exact fixed point)\n",
        Some(c) => {
            s += "backend          simulate (clear + modelled noise)\n";
            let pct_of = |n: u64| 100.0 * n as f64 / c.pbs.max(1) as f64;
            s += &format!(
                "bootstraps       {} one cell off ({:.2} %), {} further ({:.2e} %)",
                c.one_off,
                pct_of(c.one_off),
                c.far,
                pct_of(c.far)
            );
            if c.graded_far > 0 {
                s += &format!(
                    "; {} further in graded tables ({:.2} %: activations and gates, a larger rounding error)",
                    c.graded_far,
                    pct_of(c.graded_far)
                );
            }
            s += "\n";
        }
    }
    let vs_clear = |f: fn(&TrainReport) -> Option<f64>| {
        clear.and_then(f).map_or(String::new(), |c| format!(" (clear backend {})", pct(c)))
    };
    if let Some(t) = rep.test_accuracy {
        s += &format!("test accuracy    {}{}\n", pct(t), vs_clear(|r| r.test_accuracy));
    }
    s += &format!("train accuracy   {}{}\n", pct(rep.train_accuracy), vs_clear(|r| Some(r.train_accuracy)));
    if let Some(c) = clear {
        s += &format!("weights vs clear max |Δ| = {:.5}\n", run_tfhe::max_abs_diff(plan, &rep.tensors, &c.tensors));
    }
    s += &format!("epochs / steps   {} / {} ({} samples)\n", rep.epochs, rep.steps, rep.samples);
    s += &format!("train time       {:.3} s\n", rep.train_seconds);
    s += &format!("PBS (encrypted)  {} ({} per sample)\n", rep.pbs_count, rep.pbs_count / rep.samples.max(1) as u64);
    if !rep.loss_per_epoch.is_empty() {
        let l: Vec<String> = rep.loss_per_epoch.iter().map(|x| format!("{x:.4}")).collect();
        s += &format!("loss per epoch   {}\n", l.join(" "));
    }
    s
}
