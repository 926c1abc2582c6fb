//! `run --backend tfhe`: the whole encrypted flow in one process. The client generates
//! keys and encrypts the training split; the server trains through the same
//! server-key-only path as `train` ([`super::train::serve`]); the client decrypts and
//! evaluates. The clear backend trains on the same samples in the same order, for
//! `max_abs_weight_diff_vs_clear`.

use super::train::{serve, Job};
use crate::error::CliError;
use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::plan::Plan;
use blindtuner_compiler::spec::LossKind;
use blindtuner_runtime::clear::{decode_weights, quantize, Counters, QSample};
use blindtuner_runtime::data::Dataset;
use blindtuner_runtime::tfhe::files::{self, PlanHash};
use blindtuner_runtime::tfhe::{bench, keygen, CryptoRng, EncDataset, ParamSet, PlanInfo};
use blindtuner_runtime::train::{accuracy, train, TrainOptions, TrainReport};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct RunTfhe<'a> {
    pub params: ParamSet,
    /// The plan with the run's epoch count.
    pub plan: &'a Plan,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub data: &'a Path,
    pub loss: Option<LossKind>,
    pub json: bool,
}

/// Measurements of one encrypted run.
struct Measured {
    reference_pbs: f64,
    pbs_seconds: Option<f64>,
    keygen_seconds: f64,
    encrypt_seconds: f64,
    train_seconds: f64,
    steps: u64,
    samples: u64,
    pbs: u64,
    test_accuracy: f64,
    train_accuracy: f64,
    max_diff: f64,
    threads: usize,
    /// Mean loss per epoch measured under encryption (`Plan::loss`), decrypted.
    loss: Vec<f64>,
}

pub fn run(r: &RunTfhe<'_>) -> Result<TrainReport, CliError> {
    let plan = r.plan;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Single-threaded reference first, while no pool is busy.
    let reference_pbs = bench::reference_pbs_seconds(10);
    let params = r.params.clone();
    if !r.json {
        eprintln!("generating keys ({}) ...", params.id());
    }
    let t = Instant::now();
    let (ck, sk) = keygen(&params, &mut CryptoRng::from_os());
    // Products of two server values convert one operand to GGSW on the server.
    let convert = ck.convert_key_for(plan, &mut CryptoRng::from_os());
    let keygen_seconds = t.elapsed().as_secs_f64();

    // Client: quantize and encrypt the training split.
    let info = PlanInfo::analyse(plan, ck.params()).map_err(|e| CliError::user(e.to_string()))?;
    let mut counters = Counters::new(plan);
    let q: Vec<QSample> =
        r.train.x.iter().zip(&r.train.y).map(|(x, &y)| quantize(plan, &[x], &[y], &mut counters)).collect();
    let t = Instant::now();
    let data = EncDataset { samples: super::encrypt::encrypt_all(&ck, plan, &info, &q)? };
    let encrypt_seconds = t.elapsed().as_secs_f64();

    // Server: the `train` path, with the server keys only.
    let dir = TempDir::new()?;
    let model_path = dir.0.join("model.bt-enc");
    let job = Job {
        plan,
        keys: &sk,
        convert: convert.as_ref(),
        data: &data,
        data_path: r.data,
        out: &model_path,
        epochs: None,
        resume: false,
        checkpoint_every: Duration::from_secs(120),
    };
    let outcome = serve(&job)?;
    let pbs_seconds = bench::pbs_seconds(&sk, convert.as_ref(), plan, 10);
    drop(sk);

    // Client: decrypt and evaluate.
    let model = files::load_model(&model_path, ck.fingerprint(), PlanHash::of(plan))?;
    let tensors = ck.decrypt_model(plan, &model).map_err(|e| CliError::user(e.to_string()))?;
    let loss = ck.decrypt_loss(plan, &model).map_err(|e| CliError::user(e.to_string()))?;
    let clear = train(plan, r.train, Some(r.test), &TrainOptions { loss: r.loss, ..Default::default() });
    let m = Measured {
        reference_pbs,
        pbs_seconds,
        keygen_seconds,
        encrypt_seconds,
        train_seconds: outcome.seconds,
        steps: outcome.steps,
        samples: outcome.samples,
        pbs: outcome.state.pbs,
        test_accuracy: accuracy(plan, &tensors, r.test),
        train_accuracy: accuracy(plan, &tensors, r.train),
        max_diff: max_abs_diff(plan, &tensors, &clear.tensors),
        threads,
        loss: loss.iter().map(|l| l.1).collect(),
    };
    if r.json {
        println!("{}", summary_json(plan, r, &clear, &m));
    } else {
        print!("{}", summary_text(plan, r, &clear, &m));
    }
    Ok(clear)
}

/// Largest |decrypted − clear| over every parameter coefficient, in real units.
pub fn max_abs_diff(plan: &Plan, enc: &[Vec<u64>], clear: &[Vec<u64>]) -> f64 {
    let (e, c) = (decode_weights(plan, enc), decode_weights(plan, clear));
    e.iter()
        .filter_map(|(name, (_, ev))| c.get(name).map(|(_, cv)| (ev, cv)))
        .flat_map(|(ev, cv)| ev.iter().zip(cv).map(|(a, b)| (a - b).abs()))
        .fold(0.0, f64::max)
}

fn summary_json(plan: &Plan, r: &RunTfhe<'_>, clear: &TrainReport, m: &Measured) -> String {
    let c = costs(plan);
    let samples = m.samples.max(1) as f64;
    let secs = m.train_seconds.max(1e-9);
    let seconds_per_sample = m.train_seconds / samples;
    let v = json!({
        "model": plan.model,
        "data": r.data.display().to_string(),
        "backend": "tfhe",
        "dims": plan.dims,
        "test_accuracy": m.test_accuracy,
        "train_accuracy": m.train_accuracy,
        "train_seconds": m.train_seconds,
        "epochs": plan.train.epochs,
        "steps": m.steps,
        "samples": m.samples,
        "pbs_count": m.pbs,
        "pbs_per_sample": m.pbs as f64 / samples,
        "external_products": c.external_products_per_sample * m.samples,
        "clamped_values": clear.clamped.iter().flatten().sum::<u64>(),
        "lut_saturated": clear.luts.iter().map(|l| l.saturated).sum::<u64>(),
        "lut_wrapped": clear.luts.iter().map(|l| l.wrapped).sum::<u64>(),
        "loss_per_epoch": if plan.loss.is_some() { json!(m.loss) } else { serde_json::Value::Null },
        "clear_loss_per_epoch": clear.plan_loss_per_epoch,
        "pbs_per_second": m.pbs as f64 / secs,
        "peak_pbs_per_second": m.pbs_seconds.map(|t| m.threads as f64 / t),
        "pbs_seconds": m.pbs_seconds,
        "threads": m.threads,
        "seconds_per_sample": seconds_per_sample,
        "seconds_per_sample_over_reference_pbs": seconds_per_sample / m.reference_pbs,
        "max_abs_weight_diff_vs_clear": m.max_diff,
        "reference_pbs_seconds": m.reference_pbs,
        "param_set": r.params.id().0,
        "clear_test_accuracy": clear.test_accuracy,
        "clear_train_accuracy": clear.train_accuracy,
        "keygen_seconds": m.keygen_seconds,
        "encrypt_seconds_per_sample": m.encrypt_seconds / samples,
    });
    v.to_string()
}

fn summary_text(plan: &Plan, r: &RunTfhe<'_>, clear: &TrainReport, m: &Measured) -> String {
    let pct = |x: f64| format!("{:.2} %", 100.0 * x);
    let samples = m.samples.max(1) as f64;
    let spp = m.train_seconds / samples;
    let mut s = String::new();
    s += &format!("model            {}\n", plan.model);
    s += &format!("backend          tfhe ({})\n", r.params.id());
    s += &format!(
        "test accuracy    {} (clear backend {})\n",
        pct(m.test_accuracy),
        clear.test_accuracy.map_or("-".into(), pct)
    );
    s += &format!("train accuracy   {} (clear backend {})\n", pct(m.train_accuracy), pct(clear.train_accuracy));
    s += &format!("epochs / steps   {} / {} ({} samples)\n", plan.train.epochs, m.steps, m.samples);
    s += &format!(
        "train time       {:.1} s: {:.1} ms/sample = {:.1}× reference PBS ({:.1} ms)\n",
        m.train_seconds,
        spp * 1e3,
        spp / m.reference_pbs,
        m.reference_pbs * 1e3
    );
    let peak = m
        .pbs_seconds
        .map_or(String::new(), |t| format!(" (peak {:.0} on {} threads)", m.threads as f64 / t, m.threads));
    s += &format!(
        "PBS              {} ({} per sample), {:.0} PBS/s{peak}\n",
        m.pbs,
        m.pbs as f64 / samples,
        m.pbs as f64 / m.train_seconds.max(1e-9)
    );
    s += &format!("weights vs clear max |Δ| = {:.5}\n", m.max_diff);
    if !m.loss.is_empty() {
        let l: Vec<String> = m.loss.iter().map(|x| format!("{x:.4}")).collect();
        let c: Vec<String> = clear.plan_loss_per_epoch.iter().map(|x| format!("{x:.4}")).collect();
        s += &format!("loss per epoch   {} (encrypted, decrypted by the data owner)\n", l.join(" "));
        s += &format!("                 {} (clear backend, same program)\n", c.join(" "));
    }
    s += &format!(
        "client           keygen {:.1} s, encrypt {:.1} ms/sample\n",
        m.keygen_seconds,
        m.encrypt_seconds * 1e3 / samples
    );
    s
}

/// A private directory for the run's model file, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, CliError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("blindtuner-run-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::user(format!("cannot create a temporary directory `{}`: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
