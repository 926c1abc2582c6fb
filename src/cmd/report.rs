//! `blindtuner report FILE [--format text|json]`.

use super::load_spec;
use crate::cli::{ReportArgs, ReportFormat};
use crate::error::CliError;
use blindtuner_compiler::plan::Plan;
use blindtuner_compiler::{pipeline, report};
use std::collections::BTreeMap;

pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    let (src, spec) = load_spec(&args.spec, &BTreeMap::new())?;
    let ctx =
        pipeline::run_with(spec, None, args.spec.lowering.iter().cloned().collect()).map_err(|d| src.diagnostics(d))?;
    src.warn(&ctx.notes);
    let plan = ctx.plan.as_ref().ok_or_else(|| CliError::user("internal: the pipeline produced no plan"))?;
    let mut opts = report::ReportOptions::default();
    if let Some(f) = &args.calibration {
        opts.timing = super::calibrate_host::load_timing(f)?;
    }
    let rep = report::build_with(plan, Some(&src.text), &opts);
    match args.format {
        ReportFormat::Text => print!("{}", report::render_text(&rep)),
        ReportFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&rep).map_err(|e| CliError::user(e.to_string()))?)
        }
    }
    Ok(())
}

/// The text report of a plan (used by `run --report`), with the run's training-set
/// size for per-epoch estimates.
pub fn text_of(plan: &Plan, source: &str, opts: &report::ReportOptions) -> String {
    report::render_text(&report::build_with(plan, Some(source), opts))
}
