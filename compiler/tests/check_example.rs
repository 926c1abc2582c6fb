//! The example spec of the language checks cleanly into the expected `Spec`.

use blindtuner_compiler::check::{check_source, codes};
use blindtuner_compiler::diag::{has_errors, render};
use blindtuner_compiler::spec::{FuncBody, Init, Optimizer, Precision, TExprKind};
use std::collections::BTreeMap;

const EXAMPLE: &str = include_str!("data/example.bt");

#[test]
fn example_checks() {
    let (spec, diags) = check_source(EXAMPLE, &BTreeMap::new());
    assert!(!has_errors(&diags), "{}", render("example.bt", EXAMPLE, &diags, false));
    assert!(diags.is_empty(), "{}", render("example.bt", EXAMPLE, &diags, false));
    let spec = spec.expect("a spec");
    assert_eq!(spec.name, "mnist_vit_mlp");
    let dims: Vec<(&str, usize)> = spec.dims.iter().map(|d| (d.name.as_str(), d.value)).collect();
    assert_eq!(dims, [("d", 64), ("k", 5), ("h", 16)]);
    assert_eq!(spec.inputs[0].shape, [64]);
    assert_eq!(spec.inputs[0].range, (-4.0, 4.0));
    assert_eq!(spec.labels[0].classes, 5);
    let params: Vec<(&str, Vec<usize>)> = spec.params.iter().map(|p| (p.name.as_str(), p.shape.clone())).collect();
    assert_eq!(params, [("W1", vec![16, 64]), ("b1", vec![16]), ("W2", vec![5, 16]), ("b2", vec![5])]);
    assert_eq!(spec.params[0].init, Init::Normal(0.1));
    assert_eq!(spec.params[2].init, Init::Xavier);
    assert_eq!(spec.params[2].range, Some((-8.0, 8.0)));
    let lets: Vec<(&str, Vec<usize>)> = spec.lets.iter().map(|l| (l.name.as_str(), l.value.shape.clone())).collect();
    assert_eq!(lets, [("z1", vec![16]), ("h1", vec![16]), ("z", vec![5]), ("loss", vec![])]);
    assert_eq!(spec.lets[spec.loss.index()].name, "loss");
    assert!(matches!(spec.lets[3].value.kind, TExprKind::Loss(..)));
    // Train block: optimizer, settings and pins.
    assert_eq!(spec.train.optimizer, Optimizer::Nesterov { lr: 0.1, momentum: 0.9 });
    assert_eq!((spec.train.batch, spec.train.epochs, spec.train.seed), (16, 10, 1));
    assert_eq!(spec.train.precision, Precision::Auto);
    assert_eq!(spec.train.p_fail, 2f64.powi(-40));
    let z = &spec.lets[2];
    assert_eq!(z.range, Some((-16.0, 16.0)));
    assert_eq!(z.format.map(|f| (f.bits, f.frac)), Some((12, 4)));
    assert_eq!(spec.lets[0].range, Some((-8.0, 8.0)));
    // Top-level functions.
    assert_eq!(spec.funcs.len(), 2);
    assert!(
        matches!(&spec.funcs[1].body, FuncBody::Table { values, lo, hi } if values.len() == 4 && *lo == -2.0 && *hi == 2.0)
    );
}

#[test]
fn overrides_replace_dims() {
    let overrides = BTreeMap::from([("d".to_string(), 16usize), ("k".to_string(), 3)]);
    let (spec, diags) = check_source(EXAMPLE, &overrides);
    let spec = spec.unwrap_or_else(|| panic!("{}", render("example.bt", EXAMPLE, &diags, false)));
    assert_eq!(spec.inputs[0].shape, [16]);
    assert_eq!(spec.params[0].shape, [16, 16]);
    assert_eq!(spec.labels[0].classes, 3);
    assert_eq!(spec.lets[2].value.shape, [3]);
}

#[test]
fn defaults_without_train_block() {
    let src = EXAMPLE.split("train mnist_vit_mlp").next().unwrap_or_default();
    let (spec, diags) = check_source(src, &BTreeMap::new());
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, [codes::NO_TRAIN_BLOCK]);
    let spec = spec.expect("warnings do not block the spec");
    assert_eq!(spec.train.optimizer, Optimizer::Sgd { lr: 0.5 });
    assert_eq!(spec.train.span, spec.span);
}

#[test]
fn check_is_fast() {
    let start = std::time::Instant::now();
    for _ in 0..100 {
        let (spec, _) = check_source(EXAMPLE, &BTreeMap::new());
        assert!(spec.is_some());
    }
    // 100 parses + checks; generous bound so a loaded CI machine does not flake.
    assert!(start.elapsed().as_secs_f64() < 2.0, "took {:?}", start.elapsed());
}

/// Every example model shipped in `models/` checks without errors.
#[test]
fn shipped_models_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("bt") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap_or_default();
        let (spec, diags) = check_source(&src, &BTreeMap::new());
        let name = path.display().to_string();
        assert!(spec.is_some(), "{}", render(&name, &src, &diags, false));
        assert!(!has_errors(&diags));
    }
}
