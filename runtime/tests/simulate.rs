//! `--backend simulate`: the clear machine with the modelled noise injected.
//!
//! The simulator and the noise report read the same per-operation variances
//! (`noise::sim::OpNoise`), so these tests check that the *propagation* agrees: the
//! bootstrap error rates the simulator observes are the ones the report predicts, and
//! the weights drift from the noise-free run by no more than the report's bound.

mod common;

use blindtuner_compiler::noise::{analyze, AnalyzeOptions, NoiseParams, OpNoise};
use blindtuner_compiler::plan::{Plan, TensorRole};
use blindtuner_runtime::data::Dataset;
use blindtuner_runtime::simulate::Injector;
use blindtuner_runtime::train::{train, TrainOptions, TrainReport};
use common::*;

fn vit16_plan(epochs: usize) -> Plan {
    let mut src = std::fs::read_to_string(data_dir().join("../models/mnist_vit_sigmoid.bt")).expect("bundled model");
    src = src.replace("dim d = 64", "dim d = 16");
    let mut plan = compile(&src);
    plan.train.epochs = epochs;
    plan
}

fn simulate(plan: &Plan, tr: &Dataset, seed: u64) -> TrainReport {
    let inj = Injector::new(OpNoise::new(&NoiseParams::DEFAULT), seed, plan.train.max_lr_shift());
    train(plan, tr, None, &TrainOptions { simulate: Some(inj), ..Default::default() })
}

#[test]
fn one_cell_off_rate_is_the_predicted_one() {
    // One epoch of 400 samples: 2000 bootstraps, weights still close to fresh.
    let plan = vit16_plan(1);
    let (tr, _) = load("mnist-vit16");
    let tr = tr.subset(400, 1);
    let rep = simulate(&plan, &tr, 3);
    let cells = rep.cells.expect("a simulated run tallies its bootstraps");
    let noise = analyze(&plan, &NoiseParams::DEFAULT, &AnalyzeOptions::new(plan.train.p_fail));
    let predicted = noise.luts[0].errors.one_off;
    let measured = cells.one_off as f64 / cells.pbs as f64;
    eprintln!("one cell off: measured {measured:.4} ({} of {}), predicted {predicted:.4}", cells.one_off, cells.pbs);
    // k per sample, and the loss program's 2k on the 24 samples of steps 0, 21 and 42.
    assert_eq!(cells.pbs, 2000 + 240);
    // Binomial σ over 2000 draws at p ≈ 0.16 is 0.008: allow ±4σ.
    assert!((measured - predicted).abs() < 0.035, "measured {measured} predicted {predicted}");
    assert_eq!(cells.far, 0);
}

#[test]
fn simulation_is_deterministic_and_seeded() {
    let plan = vit16_plan(1);
    let (tr, _) = load("mnist-vit16");
    let tr = tr.subset(200, 1);
    let a = simulate(&plan, &tr, 5);
    let b = simulate(&plan, &tr, 5);
    let c = simulate(&plan, &tr, 6);
    assert_eq!(a.tensors, b.tensors);
    assert_ne!(a.tensors, c.tensors);
}

#[test]
fn weights_drift_within_the_reported_bound() {
    // The report bounds the weights' noise by a random walk (every step adds the
    // batch's gradient noise). Training contracts part of it back (a noisy weight
    // changes the next gradients), so the drift from the noise-free run must stay
    // below the bound; it must also be there (the simulator injects noise at all).
    let plan = vit16_plan(3);
    let (tr, _) = load("mnist-vit16");
    let tr = tr.subset(800, 2);
    let clear = train(&plan, &tr, None, &TrainOptions::default());
    let sim = simulate(&plan, &tr, 7);
    let steps = clear.steps as f64;
    let noise = analyze(&plan, &NoiseParams::DEFAULT, &AnalyzeOptions::new(plan.train.p_fail));
    for (i, t) in plan.tensors.iter().enumerate() {
        if t.role != TensorRole::Param {
            continue;
        }
        let sigma = noise.tensors[i].var.at(steps).sqrt() * 2f64.powi(64);
        let n = clear.tensors[i].len() as f64;
        let ms = clear.tensors[i]
            .iter()
            .zip(&sim.tensors[i])
            .map(|(&a, &b)| (b.wrapping_sub(a) as i64 as f64).powi(2))
            .sum::<f64>()
            / n;
        let rms = ms.sqrt();
        eprintln!("{}: rms drift 2^{:.2}, bound σ 2^{:.2} after {steps} steps", t.name, rms.log2(), sigma.log2());
        assert!(rms > 0.0);
        assert!(rms < 2.0 * sigma, "drift 2^{:.2} above the bound 2^{:.2}", rms.log2(), sigma.log2());
    }
}
