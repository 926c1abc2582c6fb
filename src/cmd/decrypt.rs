//! `blindtuner decrypt --keys DIR --plan PLAN --model FILE --out weights.json`.
//!
//! The model file's header must carry this key's fingerprint and this plan's hash
//! (checked before any ciphertext is touched). The output is self-contained: real
//! weights for people, the exact torus tensors and the plan for `eval`.

use super::keygen::load_client_key;
use super::{load_plan, write_output};
use crate::cli::DecryptArgs;
use crate::error::CliError;
use blindtuner_compiler::plan::{Format, Plan};
use blindtuner_runtime::clear::decode_weights;
use blindtuner_runtime::tfhe::files::{self, PlanHash};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `weights.json`.
#[derive(Serialize, Deserialize)]
pub struct WeightsFile {
    pub model: String,
    /// Hex sha256 of the plan (as in the encrypted files' headers).
    pub plan_hash: String,
    pub param_set: String,
    pub key_fingerprint: String,
    /// Real-valued spec params: name → shape and row-major values.
    pub params: BTreeMap<String, Param>,
    /// Every plan tensor as torus values on its format's grid, row-major: what the
    /// fixed-point forward of `eval` runs on.
    pub tensors: Vec<Vec<u64>>,
    pub plan: Plan,
}

#[derive(Serialize, Deserialize)]
pub struct Param {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run(args: &DecryptArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.plan)?;
    let ck = load_client_key(&args.keys)?;
    let hash = PlanHash::of(&plan);
    // Header checks (kind, key fingerprint, plan hash, checksum) happen in `load_model`.
    let model = files::load_model(&args.model, ck.fingerprint(), hash)?;
    let phases =
        ck.decrypt_model(&plan, &model).map_err(|e| CliError::user(format!("`{}`: {e}", args.model.display())))?;
    // The phases carry the ciphertext noise below the grid; rounding recovers the
    // fixed-point values the clear machine would hold.
    let tensors: Vec<Vec<u64>> = plan
        .tensors
        .iter()
        .zip(phases)
        .map(|(t, v)| v.into_iter().map(|x| round_to_grid(t.fmt, x)).collect())
        .collect();
    let params = decode_weights(&plan, &tensors)
        .into_iter()
        .map(|(name, (shape, values))| (name, Param { shape, values }))
        .collect();
    let out = WeightsFile {
        model: plan.model.clone(),
        plan_hash: hex(&hash.0),
        param_set: ck.params().id().0,
        key_fingerprint: ck.fingerprint().short(),
        params,
        tensors,
        plan,
    };
    let json = serde_json::to_string(&out).map_err(|e| CliError::user(format!("cannot encode weights: {e}")))?;
    write_output(Some(&args.out), &(json + "\n"))?;
    print_summary(&out, &args.out);
    if let Some(mean) = &model.mean {
        println!("  parameters: mean of the last {} step(s) (`average = {}`)", mean.steps, out.plan.train.average);
    }
    let loss = ck.decrypt_loss(&out.plan, &model).map_err(|e| CliError::user(e.to_string()))?;
    if let Some(l) = out.plan.loss.as_ref().filter(|_| !loss.is_empty()) {
        println!("  training loss, measured under encryption (every {}. step's samples):", l.every);
        for (epoch, mean, n) in loss {
            println!("    epoch {:>3}  {mean:.4}  ({n} samples)", epoch + 1);
        }
    }
    Ok(())
}

/// Round a phase to the nearest multiple of `2^lsb` (wrapping on the torus).
fn round_to_grid(fmt: Format, t: u64) -> u64 {
    if fmt.lsb <= 0 {
        return t;
    }
    (fmt.int_value(t) as u64).wrapping_shl(fmt.lsb as u32)
}

fn print_summary(w: &WeightsFile, out: &Path) {
    println!("decrypted model `{}` → {}", w.model, out.display());
    for (name, p) in &w.params {
        let max = p.values.iter().fold(0f64, |m, v| m.max(v.abs()));
        let shape: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
        println!("  {name:<8} [{}]  max |w| = {max:.4}", shape.join(", "));
    }
}
