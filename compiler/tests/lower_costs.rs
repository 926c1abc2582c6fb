//! Exact PBS / external-product counts of lowered plans, and lowering diagnostics.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::lower::E_UNSUPPORTED;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::{Lowering, Plan};
use std::collections::BTreeMap;

fn plan(src: &str) -> Result<Plan, Vec<blindtuner_compiler::diag::Diagnostic>> {
    let (spec, diags) = check_source(src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
    pipeline::run(spec, None).map(|ctx| ctx.plan.expect("a plan"))
}

fn linear(loss: &str, d: usize, k: usize, opt: &str) -> String {
    format!(
        "model m {{
  input  x : fixed[{d}] in [-4, 4]
  label  y : onehot[{k}]
  param  W : fixed[{k}, {d}] = zeros
  param  b : fixed[{k}]    = zeros
  z    = W @ x + b
  loss = {loss}(z, y)
}}
train m {{
  optimizer = {opt}
  batch     = 8
  epochs    = 1
}}
"
    )
}

#[test]
fn linear_sigmoid_costs_k_pbs_independent_of_d() {
    for d in [16, 64, 768] {
        for k in [2, 5, 10] {
            let p = plan(&linear("sigmoid_cross_entropy", d, k, "sgd(lr = 0.5)")).unwrap();
            let c = costs(&p);
            assert_eq!(c.pbs_per_sample, k as u64, "d={d} k={k}");
            assert_eq!(c.pbs_depth, 1);
            assert_eq!(c.forward_pbs, 0);
            // One external product per W polynomial, forward and backward.
            let polys = (d + 1).div_ceil(2048 / k) as u64;
            assert_eq!(c.external_products_per_sample, 2 * polys, "d={d} k={k}");
            assert_eq!(c.step_pbs, 0, "sgd's update is levelled");
            assert_eq!(c.pbs_per_step, 8 * k as u64);
            assert_eq!(c.external_products_per_step, 16 * polys);
            let kinds: Vec<Lowering> = c.sample.iter().map(|i| i.lowering).collect();
            assert!(kinds.contains(&Lowering::Client) && kinds.contains(&Lowering::ExternalProduct));
        }
    }
    // d = 768, k = 5: two polynomials of 409 features (the probe's layout).
    let c = costs(&plan(&linear("sigmoid_cross_entropy", 768, 5, "sgd(lr = 0.5)")).unwrap());
    assert_eq!(c.external_products_per_sample, 4);
}

#[test]
fn softmax_costs_leave_one_out_lse() {
    for k in [2, 5, 10] {
        let c = costs(&plan(&linear("softmax_cross_entropy", 64, k, "sgd(lr = 0.5)")).unwrap());
        // Prefix and suffix lse chains (k − 2 softplus each), k − 2 middle combinations,
        // then k sigmoid(z_c − lse of the others): 4k − 6.
        assert_eq!(c.pbs_per_sample, 4 * k as u64 - 6, "k={k}");
        // The chains are sequential: the end classes' lse of the others is k − 2 deep.
        assert_eq!(c.pbs_depth, k as u32 - 1, "k={k}");
    }
}

#[test]
fn mse_costs_one_rescale_table() {
    let c = costs(&plan(&linear("mse", 64, 5, "sgd(lr = 0.5)")).unwrap());
    assert_eq!(c.pbs_per_sample, 5);
}

#[test]
fn nesterov_rescales_per_step() {
    let p = plan(&linear("sigmoid_cross_entropy", 64, 5, "nesterov(lr = 0.5, momentum = 0.9)")).unwrap();
    let c = costs(&p);
    assert_eq!(c.pbs_per_sample, 5);
    let w = &p.tensors[0];
    // One bootstrap per bit for the bit's value and one for its weight μ·2^bit, the
    // sign only weighted (`plan::rescale_pbs`), over the state's bits: the weights'
    // 20 but the 8 lowest (`LowerOptions::momentum_drop_bits`), 2 × 12 + 1.
    let (lsb, top) = w.fmt.bit_span();
    assert_eq!(top - lsb, 20);
    let m = p.tensors.iter().find(|t| t.name.ends_with(".momentum")).expect("the state");
    let (mlsb, mtop) = m.fmt.bit_span();
    assert_eq!((mlsb, mtop), (lsb + 8, top));
    let digits = u64::from(2 * (mtop - mlsb) + 1);
    assert_eq!(digits, 25);
    // One rescale by μ of every coefficient of the state (it holds μ·b, see `emit`).
    assert_eq!(c.step_pbs, digits * (5 * 65) as u64);
    assert_eq!(c.pbs_per_step, 8 * 5 + c.step_pbs);
}

#[test]
fn mlp_costs() {
    // A one-hidden-layer relu MLP, H = 16 (shared with `products.rs`).
    let src = include_str!("data/mlp_h16.bt");
    let c = costs(&plan(src).unwrap());
    // No product of two server values fits a bootstrap's 5 input bits (weights have
    // ~20), so each converts its integer operand to GGSW, once per register: relu 16 +
    // `W2 @ a1` (a1 is a table's output: 16 values × 10 GGSW levels) + softmax 4·5 − 6 +
    // `e ⊗ a1` (a1 already converted) + `W2ᵀ e` (e is the error table's output, the
    // label folded into its input: 5 × 10) + the relu' mask without a product: a gate
    // table and two halving tables per unit.
    let expected = 16 + 160 + 14 + 50 + 3 * 16;
    assert_eq!(c.pbs_per_sample, expected);
    assert_eq!(c.forward_pbs, 16 + 160);
    // The conversions, which the time estimate costs at the conversion key's speed.
    assert_eq!(c.conversion_pbs_per_sample, 160 + 50);
    // It grows with H and k, not with d.
    let c16 = costs(&plan(&src.replace("fixed[64]", "fixed[16]").replace("fixed[16, 64]", "fixed[16, 16]")).unwrap());
    assert_eq!(c16.pbs_per_sample, expected);
}

#[test]
fn unsupported_constructs_are_diagnostics() {
    let src = "model m {
  input  x : fixed[4] in [-4, 4]
  label  y : onehot[2]
  param  W : fixed[2, 4] = zeros
  z    = relu(W @ x)
  loss = mse(z, y)
}
";
    let errs = plan(src).unwrap_err();
    assert_eq!(errs[0].code, E_UNSUPPORTED);
    assert!(errs[0].message.starts_with("not supported by the lowering yet"), "{}", errs[0].message);
    assert!(!errs[0].labels.is_empty(), "points at the source");
}
