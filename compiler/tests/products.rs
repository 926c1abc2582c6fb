//! Pass `products`: the lowering of every product of two server values, `--lowering`
//! overrides and their diagnostics.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::diag::render;
use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::lower::products::{rows, E_LOWERING};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::{Plan, ProductStrategy};
use std::collections::BTreeMap;

/// A one-hidden-layer relu MLP, H = 16 (shared with `lower_costs.rs`).
const MLP: &str = include_str!("data/mlp_h16.bt");

fn compile(src: &str, forced: &[(&str, ProductStrategy)]) -> Result<Plan, String> {
    let (spec, diags) = check_source(src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
    let forced = forced.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    pipeline::run_with(spec, None, forced)
        .map(|ctx| ctx.plan.expect("a plan"))
        .map_err(|d| render("case.bt", src, &d, false))
}

#[test]
fn every_product_gets_the_cheapest_feasible_lowering_and_conversions_are_shared() {
    let plan = compile(MLP, &[]).expect("compiles");
    let rows = rows(&plan);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    // The relu' mask is three bootstraps per unit, not a product (`emit::relu_mask`).
    assert_eq!(names, ["z", "d(W2|b2)", "da1"]);
    // A weight has ~20 bits: neither the square trick nor a bivariate table fits a
    // bootstrap's 5 input bits, so each product converts its integer operand: the
    // hidden activation `a1` and the error `e` (the softmax error of a head with a
    // hidden layer is one table's output, the label folded into its input:
    // `emit::label_folded_error`), from their tables' inputs, one bootstrap per GGSW
    // level.
    let converts = [ProductStrategy::GgswConversion, ProductStrategy::TableGgsw];
    for r in &rows {
        assert!(converts.contains(&r.chosen), "{}", r.name);
        assert!(r.alternatives.iter().filter(|a| !converts.contains(&a.strategy)).all(|a| a.pbs.is_none()));
        assert_eq!(plan.products[&r.inst].strategy, r.chosen);
        assert!(!r.forced);
    }
    let chosen: Vec<ProductStrategy> = rows.iter().map(|r| r.chosen).collect();
    assert_eq!(chosen, [ProductStrategy::TableGgsw; 3]);
    // 16 values × 10 levels instead of 16 × 6 bits × 4 levels; `e ⊗ a1` reuses it.
    assert_eq!(rows[0].pbs, 16 * 10);
    assert_eq!(rows[0].alternatives[2].pbs, Some(16 * 6 * 4));
    assert_eq!(rows[1].pbs, 0);
    assert!(rows[1].alternatives[3].why.contains("already converted by s2"), "{}", rows[1].alternatives[3].why);
    // 5 values × 10 levels instead of 5 × 7 bits × 4 levels.
    assert_eq!(rows[2].pbs, 5 * 10);
    assert_eq!(rows[2].alternatives[2].pbs, Some(5 * 7 * 4));
    let total: u64 = rows.iter().map(|r| r.pbs).sum();
    // relu, softmax and error, relu gate, the mask's two halving tables.
    assert_eq!(costs(&plan).pbs_per_sample, 16 + 14 + 16 + 2 * 16 + total);
}

#[test]
fn a_forced_lowering_is_recorded_and_an_impossible_one_refused() {
    let plan = compile(MLP, &[("da1", ProductStrategy::GgswConversion)]).expect("feasible");
    let r = rows(&plan).into_iter().find(|r| r.name == "da1").expect("da1");
    assert!(r.forced && r.chosen == ProductStrategy::GgswConversion);
    let by_id = compile(MLP, &[("s2", ProductStrategy::GgswConversion)]).expect("by node id");
    assert!(by_id.products.values().any(|p| p.forced));
    let err = compile(MLP, &[("s2", ProductStrategy::SquareTrick)]).expect_err("25 bits do not fit");
    assert!(err.contains(E_LOWERING), "{err}");
}

#[test]
fn e0703_impossible_lowering() {
    insta::assert_snapshot!(compile(MLP, &[("s2", ProductStrategy::SquareTrick)]).expect_err("refused"));
}

#[test]
fn e0703_not_a_table_output() {
    // A one-vs-rest sigmoid error is a table's output minus the label term: a sum.
    let sigmoid = MLP.replace("softmax_cross_entropy", "sigmoid_cross_entropy");
    insta::assert_snapshot!(compile(&sigmoid, &[("da1", ProductStrategy::TableGgsw)]).expect_err("refused"));
}

#[test]
fn e0703_no_such_product() {
    insta::assert_snapshot!(compile(MLP, &[("z1", ProductStrategy::BivariateLut)]).expect_err("refused"));
}
