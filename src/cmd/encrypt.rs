//! `blindtuner encrypt --keys DIR --plan PLAN --data FILE.csv --out FILE [--limit N]`.
//!
//! Quantizes every sample with the plan's input formats (exactly as the clear backend
//! does), encrypts it in the layout the plan needs (seeded polynomial GGSWs of the
//! features, label terms under the key of the register they join) and writes one
//! encrypted dataset whose header ties it to the key and to the plan.

use super::keygen::{human_bytes, load_client_key};
use super::load_plan;
use crate::cli::EncryptArgs;
use crate::error::CliError;
use blindtuner_compiler::plan::Plan;
use blindtuner_runtime::clear::{quantize, Counters, QSample};
use blindtuner_runtime::data::{load_csv, Expect};
use blindtuner_runtime::tfhe::files::{self, PlanHash};
use blindtuner_runtime::tfhe::{ClientKey, CryptoRng, EncDataset, EncSample, PlanInfo};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

pub fn run(args: &EncryptArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.plan)?;
    let (features, classes) = single_input(&plan, &args.plan)?;
    let ck = load_client_key(&args.keys)?;
    let info =
        PlanInfo::analyse(&plan, ck.params()).map_err(|e| CliError::user(format!("`{}`: {e}", args.plan.display())))?;
    let mut data = load_csv(&args.data, Expect { features: Some(features), classes: Some(classes) })?;
    if let Some(n) = args.limit {
        data = data.subset(n, plan.train.seed);
    }
    if data.is_empty() {
        return Err(CliError::user(format!("`{}`: no samples to encrypt (--limit 0?)", args.data.display())));
    }
    let mut counters = Counters::new(&plan);
    let samples: Vec<QSample> =
        data.x.iter().zip(&data.y).map(|(x, &y)| quantize(&plan, &[x], &[y], &mut counters)).collect();
    super::warn_clamped(
        &plan,
        &counters.clamped,
        "values",
        "`blindtuner calibrate-ranges` prints the observed ranges of a CSV",
    );

    eprintln!("encrypting {} samples of {} for plan `{}` ...", samples.len(), args.data.display(), plan.model);
    let start = Instant::now();
    let enc = encrypt_all(&ck, &plan, &info, &samples)?;
    let secs = start.elapsed().as_secs_f64();
    files::save_dataset(&args.out, &ck, PlanHash::of(&plan), &EncDataset { samples: enc })?;

    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    let n = samples.len() as u64;
    println!("encrypted dataset  {} ({} samples, {})", args.out.display(), n, human_bytes(size));
    println!("upload per sample  {} ({} bytes)", human_bytes(size / n), size / n);
    println!("key fingerprint    {}", ck.fingerprint());
    println!("encrypt time       {secs:.1} s ({:.1} ms per sample)", 1e3 * secs / n as f64);
    Ok(())
}

/// `encrypt` reads one CSV: the plan must have one input and one label.
fn single_input(plan: &Plan, path: &std::path::Path) -> Result<(usize, usize), CliError> {
    match (plan.inputs.as_slice(), plan.labels.as_slice()) {
        ([input], [label]) => Ok((input.len, label.classes)),
        _ => Err(CliError::user(format!(
            "`{}`: plan `{}` has {} inputs and {} labels; `encrypt` reads one CSV (`label,f0,...`) for one input and one label",
            path.display(),
            plan.model,
            plan.inputs.len(),
            plan.labels.len()
        ))),
    }
}

/// Encrypt every sample, in order, on all cores. Each worker has its own OS-seeded
/// generator: ciphertexts need fresh randomness, not reproducibility.
pub(super) fn encrypt_all(
    ck: &ClientKey,
    plan: &Plan,
    info: &PlanInfo,
    samples: &[QSample],
) -> Result<Vec<EncSample>, CliError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(samples.len()).max(1);
    let chunk = samples.len().div_ceil(workers).max(1);
    let bar = ProgressBar::new(samples.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} samples  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results: Vec<Result<Vec<EncSample>, CliError>> = std::thread::scope(|s| {
        let handles: Vec<_> = samples
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let bar = bar.clone();
                s.spawn(move || {
                    let mut rng = CryptoRng::from_os();
                    part.iter()
                        .enumerate()
                        .map(|(i, q)| {
                            let enc = ck
                                .encrypt_sample(plan, info, &q.xq, &q.labels, &mut rng)
                                .map_err(|e| CliError::user(format!("sample {}: {e}", c * chunk + i + 1)))?;
                            bar.inc(1);
                            Ok(enc)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(CliError::user("internal: an encryption worker panicked"))))
            .collect()
    });
    bar.finish_and_clear();
    let mut out = Vec::with_capacity(samples.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}
