//! Subcommands. Each module is one command; shared loading lives here.

mod calibrate;
mod calibrate_host;
mod check;
mod compile;
mod decrypt;
mod encrypt;
mod eval;
mod keygen;
mod progress;
mod report;
mod run;
mod run_tfhe;
mod train;

use crate::cli::{ColorChoice, Command, SpecArgs};
use crate::error::CliError;
use blindtuner_compiler::diag::{self, Diagnostic};
use blindtuner_compiler::spec::Spec;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

pub fn dispatch(cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::Check(a) => check::run(&a),
        Command::Compile(a) => compile::run(&a),
        Command::Report(a) => report::run(&a),
        Command::Run(a) => run::run(&a),
        Command::CalibrateRanges(a) => calibrate::run(&a),
        Command::Calibrate(a) => calibrate_host::run(&a),
        Command::Keygen(a) => keygen::run(&a),
        Command::Encrypt(a) => encrypt::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Decrypt(a) => decrypt::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Passes => {
            for p in blindtuner_compiler::pipeline::passes() {
                println!("{:<10} {}", p.name, p.about);
            }
            Ok(())
        }
    }
}

pub fn use_color(c: ColorChoice) -> bool {
    match c {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// A spec file read from disk, with its display name.
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source, CliError> {
        let bytes =
            std::fs::read(path).map_err(|e| CliError::user(format!("cannot read `{}`: {e}", path.display())))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            CliError::user(format!("`{}` is not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to()))
        })?;
        Ok(Source { name: path.display().to_string(), text })
    }

    pub fn diagnostics(&self, diags: Vec<Diagnostic>) -> CliError {
        CliError::Diagnostics { file: self.name.clone(), source: self.text.clone(), diags }
    }

    /// Print warnings (no errors) to stderr.
    pub fn warn(&self, diags: &[Diagnostic]) {
        if !diags.is_empty() {
            eprint!("{}", diag::render(&self.name, &self.text, diags, use_color(ColorChoice::Auto)));
        }
    }
}

pub fn overrides(set: &[(String, usize)]) -> BTreeMap<String, usize> {
    set.iter().cloned().collect()
}

/// Read and check a spec; warnings are printed, errors returned.
pub fn load_spec(args: &SpecArgs, extra: &BTreeMap<String, usize>) -> Result<(Source, Spec), CliError> {
    let src = Source::read(&args.file)?;
    let mut ov = overrides(&args.set);
    for (k, v) in extra {
        ov.entry(k.clone()).or_insert(*v);
    }
    let (spec, diags) = blindtuner_compiler::check::check_source(&src.text, &ov);
    match spec {
        Some(spec) if !diag::has_errors(&diags) => {
            src.warn(&diags);
            Ok((src, spec))
        }
        _ => Err(src.diagnostics(diags)),
    }
}

/// Write `text` to `out` (or stdout), atomically for files.
pub fn write_output(out: Option<&Path>, text: &str) -> Result<(), CliError> {
    match out {
        None => {
            print!("{text}");
            Ok(())
        }
        Some(p) => {
            let tmp = p.with_extension("tmp~");
            std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, p))
                .map_err(|e| CliError::user(format!("cannot write `{}`: {e}", p.display())))
        }
    }
}

/// Read a plan written by `compile --emit plan`; errors name the file.
pub fn load_plan(path: &Path) -> Result<blindtuner_compiler::plan::Plan, CliError> {
    use blindtuner_compiler::plan::{Plan, PLAN_VERSION};
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::user(format!("cannot read plan `{}`: {e}", path.display())))?;
    // Check the version before the full shape so an old or newer plan gets the
    // version message rather than a missing-field error.
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        let hint = if path.extension().is_some_and(|x| x == "bt") {
            " (a spec: write its plan with `blindtuner compile FILE --emit plan -o PLAN`)"
        } else {
            ""
        };
        CliError::user(format!("`{}` is not a plan: invalid JSON ({e}){hint}", path.display()))
    })?;
    match raw.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PLAN_VERSION) => {}
        Some(v) => {
            return Err(CliError::user(format!(
                "`{}`: plan format version {v}, this build reads version {PLAN_VERSION} (recompile the spec)",
                path.display()
            )))
        }
        None => {
            return Err(CliError::user(format!(
                "`{}` is not a plan (no `version` field): write one with `blindtuner compile FILE --emit plan -o PLAN`",
                path.display()
            )))
        }
    }
    serde_json::from_value::<Plan>(raw)
        .map_err(|e| CliError::user(format!("`{}` is not a valid plan: {e}", path.display())))
}

/// Warn about feature values outside an input's declared range (clamped by the
/// quantization), per feature, worst first.
pub fn warn_clamped(plan: &blindtuner_compiler::plan::Plan, clamped: &[Vec<u64>], noun: &str, hint: &str) {
    for (input, per_feature) in plan.inputs.iter().zip(clamped) {
        let total: u64 = per_feature.iter().sum();
        if total == 0 {
            continue;
        }
        let mut worst: Vec<(usize, u64)> = per_feature.iter().copied().enumerate().filter(|&(_, c)| c > 0).collect();
        worst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let list: Vec<String> = worst.iter().take(12).map(|(f, c)| format!("f{f}: {c}")).collect();
        let more = if worst.len() > 12 { format!(", ... ({} features in all)", worst.len()) } else { String::new() };
        eprintln!(
            "warning: {total} {noun} clamped to the declared range [{}, {}] of input `{}` ({}{more})",
            input.range.0,
            input.range.1,
            input.name,
            list.join(", ")
        );
        eprintln!("  hint: {hint}");
    }
}
