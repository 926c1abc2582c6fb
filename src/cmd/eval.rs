//! `blindtuner eval --weights weights.json --data FILE.csv [--json]`.
//!
//! Clear inference with the plan and torus tensors embedded in `weights.json`: the same
//! fixed-point forward program the clear backend uses, so the accuracy is exactly what
//! `run` would report for these weights.

use super::decrypt::{hex, WeightsFile};
use crate::cli::EvalArgs;
use crate::error::CliError;
use blindtuner_compiler::plan::PLAN_VERSION;
use blindtuner_runtime::clear::Machine;
use blindtuner_runtime::data::{load_csv, Expect};
use blindtuner_runtime::tfhe::files::PlanHash;
use serde_json::json;
use std::path::Path;

pub fn run(args: &EvalArgs) -> Result<(), CliError> {
    let w = load_weights(&args.weights)?;
    let plan = &w.plan;
    let classes = plan.labels.first().map_or(0, |l| l.classes);
    let expect = Expect { features: plan.inputs.first().map(|i| i.len), classes: Some(classes) };
    let data = load_csv(&args.data, expect)?;
    let mut m = Machine::with_tensors(plan, w.tensors.clone());
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (x, &y) in data.x.iter().zip(&data.y) {
        let q = m.quantize(&[x], &[y]);
        m.forward(&q);
        confusion[y][m.argmax().min(classes.saturating_sub(1))] += 1;
    }
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / data.len().max(1) as f64;
    let clamped = m.counters.total_clamped();
    if clamped > 0 {
        eprintln!("warning: {clamped} feature values outside the plan's input range were clamped");
    }
    if args.json {
        let v = json!({
            "model": w.model,
            "data": args.data.display().to_string(),
            "samples": data.len(),
            "accuracy": accuracy,
            "confusion": confusion,
            "clamped_values": clamped,
        });
        println!("{v}");
    } else {
        println!("model     {}", w.model);
        println!("data      {} ({} samples)", args.data.display(), data.len());
        println!("accuracy  {:.2} % ({correct} / {})", 100.0 * accuracy, data.len());
        print!("{}", confusion_text(&confusion));
    }
    Ok(())
}

/// Read and validate `weights.json`: the embedded plan must hash to the recorded hash
/// and every tensor must have the plan's shape (the forward program indexes them).
fn load_weights(path: &Path) -> Result<WeightsFile, CliError> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| CliError::user(format!("cannot read `{name}`: {e}")))?;
    let w: WeightsFile = serde_json::from_str(&text)
        .map_err(|e| CliError::user(format!("`{name}` is not a weights file written by `blindtuner decrypt`: {e}")))?;
    if w.plan.version != PLAN_VERSION {
        return Err(CliError::user(format!(
            "`{name}`: plan format version {}, this build reads version {PLAN_VERSION}",
            w.plan.version
        )));
    }
    if hex(&PlanHash::of(&w.plan).0) != w.plan_hash {
        return Err(CliError::user(format!(
            "`{name}`: the embedded plan does not match its recorded hash (edited file?)"
        )));
    }
    let shapes_ok = w.tensors.len() == w.plan.tensors.len()
        && w.plan.tensors.iter().zip(&w.tensors).all(|(t, v)| v.len() == t.rows * t.cols);
    if !shapes_ok || w.plan.inputs.len() != 1 || w.plan.labels.len() != 1 {
        return Err(CliError::user(format!("`{name}`: tensors do not match the embedded plan (edited file?)")));
    }
    Ok(w)
}

fn confusion_text(c: &[Vec<u64>]) -> String {
    let width = c.iter().flatten().map(|v| v.to_string().len()).max().unwrap_or(1).max(3);
    let mut s = String::from("\nconfusion (rows: true class, columns: predicted)\n");
    s += &format!("{:>6}", "");
    for j in 0..c.len() {
        s += &format!(" {:>width$}", j);
    }
    s.push('\n');
    for (i, row) in c.iter().enumerate() {
        s += &format!("{i:>6}");
        for v in row {
            s += &format!(" {v:>width$}");
        }
        s.push('\n');
    }
    s
}
