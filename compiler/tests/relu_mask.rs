//! The relu's backward mask (`emit::relu_mask`) as the plan computes it: a gate table,
//! two halving tables, and the dither before them that makes the tables' rounding
//! right on average (stochastic rounding); which of an MLP's tables the failure budget
//! counts.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::{dither, DitherAt, Inst, Plan, RegId};
use blindtuner_compiler::report;
use std::collections::BTreeMap;

const MLP: &str = include_str!("data/mlp_h16.bt");

fn plan() -> Plan {
    let (spec, diags) = check_source(MLP, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
    pipeline::run(spec, None).expect("compiles").plan.expect("a plan")
}

/// The mask's instructions: the dither, and the two tables that read its output,
/// directly (`half`) and with the gate added (`half, gated`).
struct Mask {
    dither: usize,
    width: u64,
    half: usize,
    gated: usize,
}

fn mask(plan: &Plan) -> Mask {
    let (dither, width, out) = plan
        .sample
        .iter()
        .enumerate()
        .find_map(|(i, inst)| match *inst {
            Inst::Dither { width, out, .. } => Some((i, width, out)),
            _ => None,
        })
        .expect("the relu mask dithers its input");
    let lut_of = |input: RegId| {
        plan.sample.iter().find_map(|inst| match *inst {
            Inst::Lut { lut, input: i, .. } if i == input => Some(lut.index()),
            _ => None,
        })
    };
    let gated_in = plan
        .sample
        .iter()
        .find_map(|inst| match *inst {
            Inst::Add { a, out: o, .. } if a == out => Some(o),
            _ => None,
        })
        .expect("the gate is added to the dithered input");
    Mask { dither, width, half: lut_of(out).expect("half"), gated: lut_of(gated_in).expect("half, gated") }
}

/// `half(dh + r) + half, gated(dh + r + gate)` for one draw `r`: the mask's output
/// (a torus value of `e1`'s format, as a signed integer).
fn read(plan: &Plan, m: &Mask, dh: u64, r: u64, open: bool) -> i64 {
    let n = plan.poly_size;
    let (half, gated) = (&plan.luts[m.half], &plan.luts[m.gated]);
    let gate = if open { 0 } else { 1u64 << 63 };
    let x = dh.wrapping_add(r);
    half.eval(x, n).0.wrapping_add(gated.eval(x.wrapping_add(gate), n).0) as i64
}

#[test]
fn the_mask_rounds_stochastically_to_the_value_on_average() {
    let plan = plan();
    let m = mask(&plan);
    // The dither spans exactly one of the tables' cells.
    assert_eq!(m.width, (1u64 << 63) / plan.luts[m.half].table.len() as u64);
    let cells = |c: f64| (c * m.width as f64) as i64 as u64;
    // One cell of input, read at a cell's centre, in the output's units.
    let one = read(&plan, &m, cells(1.0), 0, true) as f64;
    assert!(one > 0.0);
    assert_eq!(read(&plan, &m, cells(3.0), 0, true) as f64, 3.0 * one);
    // Values between cells: without the dither, 0.3 of a cell reads 0 and 1.3 reads
    // one cell (nearest rounding); with it, the reads average to the value.
    for frac in [0.3, 1.3, -2.7, 5.5, -0.1] {
        let dh = cells(frac);
        let draws = 4000u64;
        let mut sum = 0.0;
        for s in 0..draws {
            let r = dither(DitherAt { seed: 7, step: s, pos: 0, inst: m.dither as u64 }, 0, m.width);
            sum += read(&plan, &m, dh, r, true) as f64 / one;
            // Behind a closed gate both reads cancel, for every draw.
            assert_eq!(read(&plan, &m, dh, r, false), 0, "closed gate, {frac} cells, draw {s}");
        }
        let mean = sum / draws as f64;
        assert!((mean - frac).abs() < 0.03, "{frac} cells: dithered reads average {mean:.3}");
        let nearest = read(&plan, &m, dh, 0, true) as f64 / one;
        assert_eq!(nearest, frac.round(), "{frac} cells without the dither");
    }
}

#[test]
fn dither_offsets_are_uniform_within_a_cell_and_reproducible() {
    let width = 1u64 << 58;
    let at = |step| DitherAt { seed: 3, step, pos: 1, inst: 40 };
    let xs: Vec<f64> = (0..20_000u64).map(|s| dither(at(s), 2, width) as i64 as f64 / width as f64).collect();
    assert!(xs.iter().all(|&x| (-0.5..0.5).contains(&x)));
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0 / 12.0).abs() < 0.005, "variance {var} (uniform: 1/12)");
    // Same coordinates, same offset; any coordinate changed, another one.
    assert_eq!(dither(at(5), 2, width), dither(at(5), 2, width));
    let base = dither(at(5), 2, width);
    assert_ne!(base, dither(at(6), 2, width));
    assert_ne!(base, dither(DitherAt { pos: 2, ..at(5) }, 2, width));
    assert_ne!(base, dither(DitherAt { inst: 41, ..at(5) }, 2, width));
    assert_ne!(base, dither(DitherAt { seed: 4, ..at(5) }, 2, width));
    assert_ne!(base, dither(at(5), 3, width));
}

#[test]
fn the_activation_and_the_gate_are_graded_and_outside_the_failure_budget() {
    let plan = plan();
    let graded: Vec<&str> = plan.luts.iter().filter(|l| l.graded).map(|l| l.name.as_str()).collect();
    assert_eq!(graded, ["a1", "relu gate"]);
    let r = report::build(&plan, Some(MLP));
    // Their 1/8 cells are finer than the budget's: a far landing is likely...
    for row in r.luts.iter().filter(|l| l.graded) {
        assert!(row.p_far > 1e-3, "{}: P(further) {}", row.name, row.p_far);
    }
    // ...and only moves an activation (or a gate at its step) further, so the budget is
    // spent by the other tables, which keep it.
    let (worst, p) = r.failure.worst_lut.clone().expect("tables whose far landings are failures");
    assert!(!graded.contains(&worst.as_str()), "{worst}");
    assert!(p <= r.failure.per_pbs, "{worst}: {p} over {}", r.failure.per_pbs);
    let text = report::render_text(&r);
    assert!(!text.contains("OVER the budget"), "{text}");
    assert!(text.contains("`a1` has 256 cells per half torus: P(one cell off) 0.48"), "{text}");
}
