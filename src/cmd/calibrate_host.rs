//! `blindtuner calibrate`: measure what one bootstrap, keyswitch and packed LWE cost on
//! this host, so that `report --calibration FILE` estimates times for this machine
//! instead of the nominal figures of the development machine.

use crate::cli::CalibrateHostArgs;
use crate::error::CliError;
use blindtuner_compiler::report::{Timing, CONVERT_MS, PARAM_SETS};
use blindtuner_runtime::tfhe::bench::{calibrate, Calibration};
use blindtuner_runtime::tfhe::{keygen, CryptoRng, ParamSet};
use std::collections::BTreeMap;
use std::path::Path;

/// The timed head: the bundled linear sigmoid head's shape (d = 64, k = 5, batch 8).
const HEAD: &str = "model calibration {
  input  x : fixed[64] in [-6, 6]
  label  y : onehot[5]
  param  W : fixed[5, 64] = zeros
  param  b : fixed[5]     = zeros
  z    = W @ x + b
  loss = sigmoid_cross_entropy(z, y)
}
train calibration { optimizer = sgd(lr = 0.5)  batch = 8  epochs = 1 }
";

pub fn run(args: &CalibrateHostArgs) -> Result<(), CliError> {
    let (spec, diags) = blindtuner_compiler::check::check_source(HEAD, &BTreeMap::new());
    let spec = spec.ok_or_else(|| CliError::user(format!("internal: calibration head does not check: {diags:?}")))?;
    let ctx = blindtuner_compiler::pipeline::run(spec, None)
        .map_err(|d| CliError::user(format!("internal: calibration head does not compile: {d:?}")))?;
    let plan = ctx.plan.ok_or_else(|| CliError::user("internal: the pipeline produced no plan"))?;
    let params = ParamSet::default_set();
    eprintln!("generating keys ({}) ...", params.id());
    let (ck, sk) = keygen(&params, &mut CryptoRng::from_os());
    eprintln!("timing {} encrypted training samples ...", args.samples);
    let c = calibrate(&ck, &sk, &plan, args.samples).map_err(|e| CliError::user(e.to_string()))?;
    let text = serde_json::to_string_pretty(&c).map_err(|e| CliError::user(e.to_string()))?;
    write_atomic(&args.out, &text)?;
    println!("bootstrap          {:.1} ms (1 thread)", c.pbs_ms);
    println!("keyswitch          {:.2} ms", c.keyswitch_ms);
    println!("packing keyswitch  {:.2} ms per LWE", c.pack_ms_per_lwe);
    println!(
        "training           {:.1} ms per sample on {} threads ({:.2}x the reference PBS, {:.1} ms)",
        1e3 * c.wall_seconds_per_sample,
        c.threads,
        1e3 * c.wall_seconds_per_sample / c.reference_pbs_ms,
        c.reference_pbs_ms
    );
    println!("written to {} (use: blindtuner report FILE --calibration {0})", args.out.display());
    Ok(())
}

/// Read a file written by `calibrate` as the report's [`Timing`].
pub fn load_timing(path: &Path) -> Result<Timing, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::user(format!("{}: {e}", path.display())))?;
    let c: Calibration = serde_json::from_str(&text)
        .map_err(|e| CliError::user(format!("{}: not a calibration file ({e})", path.display())))?;
    let sane = |v: f64| v.is_finite() && v > 0.0;
    if !(sane(c.pbs_ms) && sane(c.keyswitch_ms) && sane(c.pack_ms_per_lwe)) || c.threads == 0 {
        return Err(CliError::user(format!("{}: calibration figures must be positive", path.display())));
    }
    // Conversions are not part of the calibration run: their nominal cost, scaled by how
    // this host's bootstraps compare with the development machine's.
    let convert_ms = CONVERT_MS * c.pbs_ms / PARAM_SETS[0].pbs_ms;
    Ok(Timing {
        pbs_ms: c.pbs_ms,
        keyswitch_ms: c.keyswitch_ms,
        pack_ms_per_lwe: c.pack_ms_per_lwe,
        convert_ms,
        threads: c.threads,
        source: format!(
            "measured on this host by `blindtuner calibrate` ({}, {} samples, {} threads): {:.1} ms per \
             bootstrap, {:.2} ms per keyswitch, {:.2} ms per packed LWE, {:.1} ms per conversion bootstrap \
             (nominal, scaled by the bootstrap ratio)",
            path.display(),
            c.samples,
            c.threads,
            c.pbs_ms,
            c.keyswitch_ms,
            c.pack_ms_per_lwe,
            convert_ms
        ),
    })
}

fn write_atomic(path: &Path, text: &str) -> Result<(), CliError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| CliError::user(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::user(format!("{}: {e}", path.display())))
}
