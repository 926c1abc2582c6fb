//! `blindtuner train --plan PLAN --server-key FILE [--convert-key FILE] --data FILE --out
//! MODEL`: the server's side. Only ever loads `server.keys` (and, for a plan with
//! products of two server values, `convert.keys`): no code path here can reach a client
//! key (the types keep them apart, see `runtime::tfhe::keys`).

use super::keygen::{parse_bsk, CONVERT_KEYS};
use super::load_plan;
use super::progress::Reporter;
use crate::cli::TrainArgs;
use crate::error::CliError;
use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::noise::choose_key;
use blindtuner_compiler::plan::Plan;
use blindtuner_runtime::clear::init_tensors;
use blindtuner_runtime::order::steps_per_epoch;
use blindtuner_runtime::tfhe::convert::{self, ConvertKey};
use blindtuner_runtime::tfhe::driver::{self, DriverConfig, TrainOutcome, TrainState};
use blindtuner_runtime::tfhe::files::{self, PlanHash};
use blindtuner_runtime::tfhe::{bench, EncDataset, ParamSet, ServerKeys};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.plan)?;
    let keys = files::load_server_keys(&args.server_key, None)?;
    // The dataset header must name these keys and this plan (errors name the file).
    let data = files::load_dataset(&args.data, keys.fingerprint(), PlanHash::of(&plan))?;
    warn_key_choice(&plan, args.epochs, keys.params());
    let convert = load_convert_key(&plan, args, &keys)?;
    let job = Job {
        plan: &plan,
        keys: &keys,
        convert: convert.as_ref(),
        data: &data,
        data_path: &args.data,
        out: &args.out,
        epochs: args.epochs,
        resume: args.resume,
        checkpoint_every: Duration::from_secs(args.checkpoint_every),
    };
    let outcome = serve(&job)?;
    let n = outcome.samples.max(1) as f64;
    eprintln!(
        "wrote {} ({} steps, {} samples, {} PBS in {:.1} s here: {:.1} ms/sample, {:.0} PBS/s)",
        args.out.display(),
        outcome.steps,
        outcome.samples,
        outcome.state.pbs,
        outcome.seconds,
        outcome.seconds * 1e3 / n,
        outcome.stats.pbs as f64 / outcome.seconds.max(1e-9)
    );
    Ok(())
}

/// The conversion keys a plan with products of two server values needs: `--convert-key`,
/// else `convert.keys` beside the server keys. Plans without such products load none.
fn load_convert_key(plan: &Plan, args: &TrainArgs, keys: &ServerKeys) -> Result<Option<ConvertKey>, CliError> {
    if !convert::needed_by(plan) {
        return Ok(None);
    }
    let path = match &args.convert_key {
        Some(p) => p.clone(),
        None => args.server_key.with_file_name(CONVERT_KEYS),
    };
    if !path.exists() {
        return Err(CliError::user(format!(
            "this plan multiplies server values together ({} products: an MLP head), which needs the conversion keys; \
             no file at `{}`: `blindtuner keygen --plan PLAN` writes `{CONVERT_KEYS}` beside `{}` (pass it with --convert-key)",
            plan.products.len(),
            path.display(),
            super::keygen::SERVER_KEYS
        )));
    }
    Ok(Some(files::load_convert_key(&path, keys)?))
}

/// The keys are the data owner's choice; say so when it is not the compiler's (the
/// report explains what the other key costs in accuracy or time).
fn warn_key_choice(plan: &Plan, epochs: Option<usize>, params: &ParamSet) {
    let mut plan = plan.clone();
    if let Some(e) = epochs {
        plan.train.epochs = e;
    }
    let key = choose_key(&plan);
    if parse_bsk(key.name()).map(ParamSet::new).ok().as_ref() != Some(params) {
        eprintln!(
            "warning: these server keys are {}, the compiler chose bsk {} for this plan (`blindtuner report` says why)",
            params.id(),
            key.name()
        );
    }
}

/// One server-side training job: what `train` loads, and what `run --backend tfhe`
/// hands over after encrypting locally.
pub struct Job<'a> {
    pub plan: &'a Plan,
    pub keys: &'a ServerKeys,
    /// Conversion keys (plans with products of two server values).
    pub convert: Option<&'a ConvertKey>,
    pub data: &'a EncDataset,
    /// For messages.
    pub data_path: &'a Path,
    pub out: &'a Path,
    pub epochs: Option<usize>,
    pub resume: bool,
    pub checkpoint_every: Duration,
}

/// `<out>.ckpt`, next to the model.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".ckpt");
    out.with_file_name(name)
}

/// Train (or resume) with the server keys only, write the model atomically to `out`,
/// then drop the checkpoint.
pub fn serve(job: &Job<'_>) -> Result<TrainOutcome, CliError> {
    let (plan, keys) = (job.plan, job.keys);
    let hash = PlanHash::of(plan);
    let n = job.data.samples.len();
    if n == 0 {
        return Err(CliError::user(format!("`{}` holds no samples", job.data_path.display())));
    }
    let ckpt = checkpoint_path(job.out);
    let state = if job.resume {
        if !ckpt.exists() {
            return Err(CliError::user(format!(
                "--resume: no checkpoint `{}` (it is written during training; run without --resume to start over)",
                ckpt.display()
            )));
        }
        let mut state = driver::load_checkpoint(&ckpt, keys, hash)?;
        if let Some(e) = job.epochs.filter(|&e| e != state.epochs) {
            let was = state.epochs;
            state.set_epochs(plan, e).map_err(|err| {
                CliError::user(format!("--epochs {e}: `{}` is a run of {was} epochs: {err}", ckpt.display()))
            })?;
            eprintln!("resuming a run of {was} epochs as a run of {e}");
        }
        state
    } else {
        let model = driver::trivial_model(plan, keys.params(), &init_tensors(plan))
            .map_err(|e| CliError::user(format!("initial model: {e}")))?;
        TrainState::fresh(model, job.epochs.unwrap_or(plan.train.epochs), n)
    };
    announce(job, n, &state);
    let cfg = DriverConfig { checkpoint: Some(ckpt.clone()), checkpoint_every: job.checkpoint_every };
    let mut progress = Reporter::for_stderr();
    let result = driver::train_with_convert(plan, (keys, job.convert), job.data, state, &cfg, &mut progress);
    progress.finish();
    let outcome = result.map_err(|e| CliError::user(format!("training on `{}`: {e}", job.data_path.display())))?;
    files::save_model(job.out, keys.params().id(), keys.fingerprint(), hash, &outcome.state.model)?;
    // The model is safely written: the checkpoint has served its purpose.
    let _ = std::fs::remove_file(&ckpt);
    Ok(outcome)
}

/// What the run will cost, before it starts.
fn announce(job: &Job<'_>, n: usize, state: &TrainState) {
    let (plan, keys) = (job.plan, job.keys);
    let c = costs(plan);
    let per_epoch = steps_per_epoch(n, plan.train.batch);
    let steps = (per_epoch * state.epochs) as u64;
    let left = steps.saturating_sub(state.steps_done);
    // Training, updates, refreshes and the loss program on its measured steps.
    let pbs = c.run_pbs(plan, (n * state.epochs) as u64, steps) + c.loss_pbs(plan, n, state.epochs);
    let threads = rayon_threads();
    // Conversion bootstraps (their own key, plus keyswitches) are timed apart.
    let conversions = c.conversion_pbs_per_sample * (n * state.epochs) as u64;
    let conversion_s = match job.convert {
        Some(ck) if conversions > 0 => bench::conversion_seconds(keys, ck, plan, 1),
        _ => Some(0.0),
    };
    let estimate = bench::pbs_seconds(keys, job.convert, plan, 2)
        .zip(conversion_s)
        .map(|(t, tc)| {
            let frac = left as f64 / steps.max(1) as f64;
            let secs = t * pbs.saturating_sub(conversions) as f64 + tc * conversions as f64;
            format!(", ≈ {:.0} s of bootstraps on {threads} threads", secs * frac / threads as f64)
        })
        .unwrap_or_default();
    eprintln!(
        "training `{}` encrypted ({}): {n} samples, {} epochs, {steps} steps ({left} to go), {} PBS per sample (+ the loss's), {pbs} PBS in all{estimate}",
        plan.model,
        keys.params().id(),
        state.epochs,
        c.pbs_per_sample,
    );
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
