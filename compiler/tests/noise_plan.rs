//! The noise model on the bundled `mnist_vit_sigmoid` plan, checked against the numbers
//! the GGSW probe measured on real ciphertexts (its README; d = 64, k = 5, features in
//! [−32, 31], ‖x_q‖ ≈ 2^6.7, z at 2^59 per unit, 1/4-z cells).

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::noise::formulas::{self as f, log2_std_u64};
use blindtuner_compiler::noise::tail::cell_errors;
use blindtuner_compiler::noise::{analyze, AnalyzeOptions, Decomp, NoiseParams, NoiseReport};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use std::collections::BTreeMap;

fn bundled_plan() -> (Plan, f64) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/mnist_vit_sigmoid.bt");
    let src = std::fs::read_to_string(path).expect("bundled model");
    // The probe's geometry: features at 1/8 resolution, so the constant feature is 8.
    let src = src.replace("format x  = fixed<8, 4>", "format x  = fixed<8, 3>");
    let (spec, diags) = check_source(&src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
    let p_fail = spec.train.p_fail;
    (pipeline::run(spec, None).expect("compiles").plan.expect("a plan"), p_fail)
}

/// The probe's features: ‖x_q‖² = 2^13.4 over 64 features + the constant 8.
const PROBE_NORM2: f64 = 10809.0; // 2^13.4
fn probe_ms() -> f64 {
    (PROBE_NORM2 - 64.0) / 64.0
}

fn var_of(log2_std_u64: f64) -> f64 {
    (2.0 * (log2_std_u64 - 64.0)).exp2()
}

/// Variance ratio predicted/measured within a factor of 2.
fn within_2(what: &str, predicted: f64, measured_log2_std: f64) {
    let ratio = predicted / var_of(measured_log2_std);
    println!("{what:<44} predicted 2^{:.2} measured 2^{measured_log2_std:.2}", log2_std_u64(predicted, 64));
    assert!((0.5..=2.0).contains(&ratio), "{what}: predicted/measured variance {ratio}");
}

fn report(p: &NoiseParams, steps: u64) -> NoiseReport {
    let (plan, p_fail) = bundled_plan();
    let opts = AnalyzeOptions { steps, feature_ms: vec![Some(probe_ms())], ..AnalyzeOptions::new(p_fail) };
    analyze(&plan, p, &opts)
}

#[test]
fn per_operation_noise_matches_the_probe() {
    let p = NoiseParams::DEFAULT;
    let r = report(&p, 0);
    within_2("PBS output, BSK 12/3", r.pbs, 38.45);
    within_2("PBS output, BSK 10/4", f::pbs(&p, Decomp::new(10, 4)), 36.7);
    within_2("PBS output, BSK 15/2", f::pbs(&p, Decomp::new(15, 2)), 41.9);
    within_2("PBS output, BSK 23/1 (stock)", f::pbs(&p, Decomp::new(23, 1)), 49.3);
    within_2("keyswitch + extraction (PBS input)", r.keyswitch + r.fresh_glwe, 53.0);
    // The data products of the plan: one forward, one backward, ‖μ‖² as in the probe.
    assert_eq!(r.products.len(), 2);
    for prod in &r.products {
        assert!((prod.mu_norm2 / PROBE_NORM2 - 1.0).abs() < 1e-9);
        within_2("data external product 10/4, direct", prod.external_product, 33.8);
    }
    for (ggsw, measured) in [(Decomp::new(12, 3), 37.8), (Decomp::new(8, 5), 33.5), (Decomp::new(7, 6), 31.5)] {
        within_2(
            &format!("data external product {ggsw:?}"),
            f::external_product(&p, ggsw, p.glwe_var(), PROBE_NORM2),
            measured,
        );
    }
    // The probe's number is over all coefficients of the packed GLWE, almost all of
    // which carry the key term only (the rounding term sits in the k inputs' own).
    let pks = r.products[1].packing_keyswitch.expect("the backward product packs");
    let key_only = f::packing_keyswitch_key(2048, p.pks, p.glwe_var(), 5);
    assert!(pks > key_only);
    within_2("packing keyswitch 9/4 × 5 (key term)", key_only, 30.8);
    assert!(r.unsupported.is_empty(), "{:?}", r.unsupported);
}

#[test]
fn weights_grow_like_the_probe_run() {
    // Probe: direct mode, BSK 10/4, batch 1, 200 updates → W noise std 2^44.4, and with
    // BSK 12/3 2^45.9. The bundled plan has batch 8: 25 steps are 200 samples.
    for (bsk, measured) in [(Decomp::new(10, 4), 44.4), (Decomp::new(12, 3), 45.9)] {
        let r = report(&NoiseParams::DEFAULT.with_bsk(bsk), 25);
        let w = &r.tensors[0];
        assert!(w.var.per_step > 0.0);
        within_2(&format!("W after 200 samples, BSK {bsk:?}"), w.var.at(25.0), measured);
        // The gradient accumulator is reset every step: it does not grow.
        assert_eq!(r.tensors[1].var.per_step, 0.0);
        // Logits read W through ‖x_q‖²: 2^51.1–2^51.4 measured (averaged over the run,
        // so between the start and the end of it).
        let z = r.regs[0].var.expect("z is modelled");
        let (start, end) = (log2_std_u64(z.at(0.0), 64), log2_std_u64(z.at(25.0), 64));
        println!("z noise over the run: 2^{start:.2} → 2^{end:.2}");
        assert!(start < 51.1 && 51.1 < end + 0.5, "{start} {end}");
    }
}

#[test]
fn one_cell_off_rate_is_consistent_with_the_probe() {
    // The probe's configuration: cells of 2^57 (1/4 z at 2^59), PBS input = extracted z
    // (2^51.1) + keyswitch + modulus switch; measured 108–116/1000 (digits: 2108/14400)
    // PBS in a neighbouring cell, none further.
    let p = NoiseParams::DEFAULT;
    let sigma = (var_of(51.1) + f::keyswitch(&p, 2048, p.ks, p.lwe_var()) + f::pbs_modulus_switch(&p)).sqrt();
    let e = cell_errors(sigma / 2f64.powi(-7));
    println!("probe configuration: one cell off {:.3}, far {:.2e}", e.one_off, e.far);
    assert!((0.108 / 3.0..=0.146 * 3.0).contains(&e.one_off), "{}", e.one_off);
    assert!(e.far * 14400.0 < 1.0, "no far landing expected in 14400 PBS: {}", e.far);

    // The bundled plan puts z at 2^58 (saturating beyond the assumed ±8) with the cells
    // the failure budget picks (`lut::cell_for_budget`): 1 z = 2^58, twice the probe's,
    // so about half its one-cell-off rate and a far rate within 2^-41 over 2^32 PBS.
    let r = report(&p, 0);
    assert_eq!(r.luts.len(), 3, "the error table, then the loss program's two");
    let lut = &r.luts[0];
    assert!((lut.log2_half_cell - 57.0).abs() < 1e-9);
    println!(
        "bundled plan: PBS input 2^{:.2}, half cell 2^57, margin {:.2} bits, one off {:.3}, far {:.2e} (worst {:.2e}), budget σ 2^{:.2}, steps to budget {:?}",
        lut.log2_std, lut.margin_bits, lut.errors.one_off, lut.errors.far, lut.errors.far_worst, lut.log2_std_budget, lut.steps_to_budget
    );
    let wide = cell_errors(sigma / 2f64.powi(-6));
    assert!((lut.errors.one_off / wide.one_off - 1.0).abs() < 0.1, "{} vs {}", lut.errors.one_off, wide.one_off);
    assert!((0.3..0.7).contains(&(lut.errors.one_off / e.one_off)), "{} vs probe {}", lut.errors.one_off, e.one_off);
    assert!(lut.errors.far_worst <= 2f64.powi(-41) / blindtuner_compiler::lower::lut::HORIZON_PBS);
    assert!((lut.margin_bits - (57.0 - lut.log2_std)).abs() < 1e-9);
    // With these cells the noise floor is within the 2^-40 budget from the start.
    assert!(lut.log2_std_budget > lut.log2_std);
}

#[test]
fn steps_to_budget_follow_the_growth() {
    // A generous budget (the modulus switch alone takes most of a 1/4-z cell at 2^58)
    // leaves room: the steps to reach it scale with 1/growth.
    let (plan, _) = bundled_plan();
    let p = NoiseParams::DEFAULT;
    let at = |bsk, p_fail| {
        let opts = AnalyzeOptions { feature_ms: vec![Some(probe_ms())], ..AnalyzeOptions::new(p_fail) };
        let r = analyze(&plan, &p.with_bsk(bsk), &opts);
        (r.luts[0].steps_to_budget.expect("the logits grow"), r.luts[0].pbs_input.per_step)
    };
    let (t12, g12) = at(Decomp::new(12, 3), 5e-2);
    let (t10, g10) = at(Decomp::new(10, 4), 5e-2);
    assert!(t12 > 0.0 && t10 > t12 && g10 < g12);
    assert!((t10 * g10 / (t12 * g12) - 1.0).abs() < 1e-9, "same room, divided by the growth");
    let (t_tight, _) = at(Decomp::new(12, 3), 2e-2);
    println!("steps to a 5e-2 budget: {t12:.0} (12/3), {t10:.0} (10/4); to 2e-2: {t_tight:.0} (12/3)");
    assert!(t_tight > 0.0 && t_tight < t12);
    // Default features (uniform over the declared range) are larger than the probe's:
    // noisier logits, every register modelled.
    let r = analyze(&plan, &p, &AnalyzeOptions::new(1e-3));
    assert!(r.regs.iter().all(|reg| reg.log2_std.is_some()));
    assert!(r.products[0].mu_norm2 > PROBE_NORM2);
}
