//! The compiler's refresh placement (`noise::refresh`): the weights' noise budget is
//! half an LSB of their format, and the schedule is the longest refresh interval that
//! keeps the budget's failure probability. Changing the failure budget, the batch, the
//! grid or the epochs moves it the way the random walk says (variance ∝ batch · steps).

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::noise::{budgets, AnalyzeOptions, Decision};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use std::collections::BTreeMap;

fn corpus_with(edit: impl Fn(&str) -> String) -> Plan {
    let path = format!("{}/../tests/corpus/grid_head.bt", env!("CARGO_MANIFEST_DIR"));
    let src = edit(&std::fs::read_to_string(path).expect("corpus spec"));
    let (spec, diags) = check_source(&src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
    pipeline::run(spec, None).expect("compiles").plan.expect("a plan")
}

/// `(every, digits)` of the plan's only refresh, or `None`.
fn every(plan: &Plan) -> Option<(u64, u32)> {
    match plan.train.refresh.as_slice() {
        [] => None,
        [r] => Some((r.every, r.digits())),
        more => panic!("one refresh expected: {more:?}"),
    }
}

#[test]
fn the_schedule_follows_budget_batch_grid_and_key() {
    let base = corpus_with(str::to_string);
    let looser = corpus_with(|s| s.replace("epochs    = 2", "epochs    = 2\n  p_fail    = 2^-20"));
    let batch16 = corpus_with(|s| s.replace("batch     = 8", "batch     = 16"));
    let coarser = corpus_with(|s| s.replace("fixed<12, 8>", "fixed<12, 7>"));
    let finer = corpus_with(|s| s.replace("fixed<12, 8>", "fixed<12, 10>"));
    let long = corpus_with(|s| s.replace("epochs    = 2", "epochs    = 20"));
    let rows: Vec<String> = [
        ("grid_head as written", &base),
        ("p_fail 2^-20", &looser),
        ("batch 16", &batch16),
        ("format W fixed<12, 7>", &coarser),
        ("format W fixed<12, 10>", &finer),
        ("epochs 20", &long),
    ]
    .iter()
    .map(|(what, p)| match every(p) {
        Some((e, d)) => format!("{what:<24} every {e} steps, {d} PBS per coefficient"),
        None => format!("{what:<24} no refresh"),
    })
    .collect();
    insta::assert_snapshot!(rows.join("\n"));

    let (b, digits) = every(&base).expect("the corpus spec is refreshed");
    // A looser budget allows longer intervals.
    assert!(every(&looser).expect("refreshed").0 > b);
    // Twice the batch: twice the variance per step, about half the interval.
    let b16 = every(&batch16).expect("refreshed").0 as f64;
    assert!((b16 / b as f64 - 0.5).abs() < 0.15, "batch 16: every {b16} vs {b}");
    // One more bit of grid: four times the variance allowed, one digit fewer.
    let (c, cd) = every(&coarser).expect("refreshed");
    assert!((c as f64 / b as f64 - 4.0).abs() < 0.6, "coarser: every {c} vs {b}");
    assert_eq!(cd + 1, digits);
    // Two bits finer: one step already spends the budget.
    assert_eq!(every(&finer), None);
    let np = blindtuner_compiler::noise::choose::chosen_params(&blindtuner_compiler::noise::choose_key(&finer));
    let bud = budgets(&finer, &np, &AnalyzeOptions::new(finer.train.p_fail));
    assert_eq!(bud[0].decision, Decision::Infeasible);
    // More epochs decay the rate (the error table shrinks) and take the quieter key: the
    // per-step noise falls, the interval grows.
    assert!(every(&long).expect("refreshed").0 >= b);
}

#[test]
fn the_bundled_head_is_not_refreshed_and_the_report_says_why() {
    let path = format!("{}/../models/mnist_vit_sigmoid.bt", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(path).expect("bundled model");
    let (spec, diags) = check_source(&src, &BTreeMap::new());
    let plan = pipeline::run(spec.unwrap_or_else(|| panic!("{diags:?}")), None).expect("compiles").plan.expect("plan");
    assert!(plan.train.refresh.is_empty());
    let np = blindtuner_compiler::noise::choose::chosen_params(&blindtuner_compiler::noise::choose_key(&plan));
    let bud = budgets(&plan, &np, &AnalyzeOptions::new(plan.train.p_fail));
    let [b] = bud.as_slice() else { panic!("one weight tensor: {bud:?}") };
    assert_eq!(b.decision, Decision::Infeasible);
    // One step's σ is above half the LSB of the format the lowering chose.
    assert!(b.per_step_log2_std > f64::from(b.lsb) - 1.0);
}

#[test]
fn large_features_shorten_the_budget() {
    // The budget bounds every coefficient with its own feature: the same mean feature
    // size with one feature carrying most of it breaks sooner, and the schedule follows.
    let plan = corpus_with(str::to_string);
    let np = blindtuner_compiler::noise::choose::chosen_params(&blindtuner_compiler::noise::choose_key(&plan));
    let cols = plan.tensors[0].cols;
    let even = vec![12.0; cols];
    let mut skewed = vec![6.0; cols];
    skewed[0] = 12.0 + 6.0 * (cols - 1) as f64;
    let with = |each: &Vec<f64>| {
        let opts = AnalyzeOptions {
            feature_ms: vec![Some(12.0)],
            feature_ms_each: vec![Some(each.clone())],
            ..AnalyzeOptions::new(plan.train.p_fail)
        };
        budgets(&plan, &np, &opts).remove(0)
    };
    let (e, s) = (with(&even), with(&skewed));
    assert!(s.steps_to_budget < e.steps_to_budget / 2.0, "{} vs {}", s.steps_to_budget, e.steps_to_budget);
    assert!(s.median_break < e.median_break);
    // The expected break is where the probability is one half.
    for b in [&e, &s] {
        assert!((b.p_exceed(b.median_break) - 0.5).abs() < 1e-6);
        assert!(b.steps_at(0.25) < b.median_break && b.median_break < b.steps_at(0.75));
    }
    let every = |b: &blindtuner_compiler::noise::TensorBudget| b.every().expect("refreshed");
    assert!(every(&s) < every(&e));
}
