//! Shared helpers of the runtime tests: compile a spec, load the shared datasets.
#![allow(dead_code)]

use blindtuner_compiler::lower::LowerOptions;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use blindtuner_runtime::data::{load_csv, Dataset, Expect};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn compile(src: &str) -> Plan {
    let (spec, diags) = blindtuner_compiler::check::check_source(src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
    let ctx = pipeline::run(spec, None).unwrap_or_else(|d| panic!("lowering failed: {d:?}"));
    ctx.plan.expect("the pipeline produces a plan")
}

/// Compile with explicit lowering options (through the same passes).
pub fn compile_with(src: &str, opts: &LowerOptions) -> Plan {
    let (spec, diags) = blindtuner_compiler::check::check_source(src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
    let ctx = pipeline::run(spec, Some("simplify")).unwrap_or_else(|d| panic!("pipeline failed: {d:?}"));
    let tg = ctx.train.expect("training graph");
    blindtuner_compiler::lower::lower(&ctx.spec, &tg, opts).unwrap_or_else(|d| panic!("lowering failed: {d:?}"))
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("data")
}

pub fn load(name: &str) -> (Dataset, Dataset) {
    let e = Expect::default();
    let tr = load_csv(&data_dir().join(format!("{name}.train.csv")), e).expect("train split");
    let te = load_csv(&data_dir().join(format!("{name}.test.csv")), e).expect("test split");
    (tr, te)
}

/// A linear head (`W @ x + b`) spec text.
pub fn linear(loss: &str, d: usize, k: usize, range: (f64, f64), opt: &str, batch: usize, epochs: usize) -> String {
    format!(
        "model m {{
  input  x : fixed[{d}] in [{}, {}]
  label  y : onehot[{k}]
  param  W : fixed[{k}, {d}] = zeros
  param  b : fixed[{k}]    = zeros
  z    = W @ x + b
  loss = {loss}(z, y)
}}
train m {{
  optimizer = {opt}
  batch     = {batch}
  epochs    = {epochs}
}}
",
        range.0, range.1
    )
}
