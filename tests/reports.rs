//! Golden reports: the text report of every model in `models/` and of every spec
//! in the corpus `tests/corpus/` is pinned by an insta snapshot
//! (`tests/snapshots/reports__<dir>__<name>.snap`). A change in formats, lowering
//! or PBS counts shows up as a reviewable diff; bless with `INSTA_UPDATE=always`.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::{pipeline, report};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn specs(dir: &str) -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&root)
        .expect("spec dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bt"))
        .map(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read spec"))
        })
        .collect();
    out.sort();
    out
}

fn report_text(name: &str, src: &str) -> String {
    let (spec, diags) = check_source(src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{name} does not check: {diags:?}"));
    let ctx = pipeline::run(spec, None).unwrap_or_else(|d| panic!("{name} does not compile: {d:?}"));
    let plan = ctx.plan.expect("plan");
    report::render_text(&report::build(&plan, Some(src)))
}

fn snapshot_dir(dir: &str) {
    let all = specs(dir);
    assert!(!all.is_empty(), "no specs in {dir}");
    for (name, src) in all {
        let text = report_text(&name, &src);
        insta::with_settings!({ snapshot_suffix => format!("{}__{name}", dir.replace('/', "_")), prepend_module_to_snapshot => true }, {
            insta::assert_snapshot!(text);
        });
    }
}

#[test]
fn models() {
    snapshot_dir("models");
}

#[test]
fn corpus() {
    snapshot_dir("tests/corpus");
}

#[test]
fn check_and_compile_every_model_is_fast_enough_to_feel_instant() {
    // Not a timing assertion (machine-dependent): it records the figure for the
    // README and makes sure compiling everything stays a sub-second job in practice.
    let start = std::time::Instant::now();
    for dir in ["models", "tests/corpus"] {
        for (name, src) in specs(dir) {
            let _ = report_text(&name, &src);
        }
    }
    eprintln!("check + compile + report of all specs: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
}
