//! The accuracy bar: every bundled model trained on bundled data with the clear
//! backend (the quantized arithmetic the encrypted backend runs) reaches test
//! accuracy within 1.5 points of the float logistic-regression baseline
//! ("as given" column of `data/README.md`). These are the numbers in the README.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::pipeline;
use blindtuner_runtime::data::{load_csv, Expect};
use blindtuner_runtime::train::{train, TrainOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Train `models/{model}.bt` on `data/{data}` with the spec's own settings.
fn accuracy(model: &str, data: &str) -> f64 {
    let src = std::fs::read_to_string(root().join(format!("models/{model}.bt"))).expect("model file");
    let dir = root().join("data");
    let tr = load_csv(&dir.join(format!("{data}.train.csv")), Expect::default()).expect("train csv");
    let te = load_csv(&dir.join(format!("{data}.test.csv")), Expect::default()).expect("test csv");
    let k = tr.y.iter().chain(&te.y).max().map_or(0, |m| m + 1);
    let set: BTreeMap<String, usize> = [("d".to_string(), tr.d), ("k".to_string(), k)].into();
    let (spec, diags) = check_source(&src, &set);
    let spec = spec.unwrap_or_else(|| panic!("{model}: {diags:?}"));
    let ctx = pipeline::run(spec, None).unwrap_or_else(|d| panic!("{model}: {d:?}"));
    let plan = ctx.plan.expect("plan");
    train(&plan, &tr, Some(&te), &TrainOptions::default()).test_accuracy.expect("test accuracy")
}

/// Float logistic regression, "as given" (data/README.md).
fn baseline(data: &str) -> f64 {
    match data {
        "digits" => 0.9667,
        "mnist-vit" => 0.8600,
        "mnist-vit16" => 0.7800,
        _ => unreachable!("no baseline for {data}"),
    }
}

fn assert_bar(model: &str, data: &str) {
    let acc = accuracy(model, data);
    let bar = baseline(data) - 0.015;
    eprintln!("{model} on {data}: {acc:.4} (float LR {:.4}, bar {bar:.4})", baseline(data));
    assert!(acc >= bar, "{model} on {data}: test accuracy {acc:.4} below {bar:.4}");
}

#[test]
fn digits_heads() {
    assert_bar("digits_softmax", "digits");
    assert_bar("digits_sigmoid", "digits");
}

#[test]
fn mnist_vit_heads() {
    assert_bar("mnist_vit_softmax", "mnist-vit");
    assert_bar("mnist_vit_sigmoid", "mnist-vit");
}

#[test]
fn mnist_vit16_heads_same_spec() {
    assert_bar("mnist_vit_softmax", "mnist-vit16");
    assert_bar("mnist_vit_sigmoid", "mnist-vit16");
}

#[test]
fn mlp_head_trains() {
    // No float baseline for the MLP in data/README.md; it must at least match the
    // linear bar on the same data.
    assert_bar("mnist_vit_mlp", "mnist-vit");
}
