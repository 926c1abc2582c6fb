//! The refresh of the weights on real keys (`plan::Refresh`, a multi-digit bootstrap of
//! every coefficient): it rounds every coefficient to its format's grid — also negative
//! ones, also with the sub-grid part close to half a step — so noise under half a step
//! is gone after it; it bootstraps `digits` times per coefficient, counted at the
//! bootstrap; the clear backend's rounding (`Refresh::apply`) is the same function.

mod tfhe_common;

use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::{Plan, Refresh, TensorRole};
use blindtuner_runtime::clear::Machine;
use blindtuner_runtime::tfhe::{CryptoRng, Server};
use std::collections::BTreeMap;
use tfhe_common::{keys, torus_diff, Rng};

/// A head whose weights live on a coarse grid (`format W = fixed<12, 6>`: LSB 2^51), so
/// the updates keep them on it and a refresh can round the noise away.
const SPEC: &str = "
model grid {
  dim d = 6
  dim k = 2
  input  x : fixed[d] in [-4, 4]
  label  y : onehot[k]
  param  W : fixed[k, d] = zeros
  param  b : fixed[k]    = zeros
  z    = W @ x + b
  loss = sigmoid_cross_entropy(z, y)
}
train grid {
  optimizer = sgd(lr = 0.5)
  batch     = 2
  epochs    = 1
  format x  = fixed<5, 1>
  format W  = fixed<12, 6>
  format b  = fixed<12, 6>
}
";

fn plan() -> Plan {
    let (spec, diags) = blindtuner_compiler::check::check_source(SPEC, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
    pipeline::run(spec, None).expect("lowers").plan.expect("plan")
}

#[test]
fn the_compiler_schedules_a_refresh_for_a_grid_it_can_keep() {
    let plan = plan();
    let [r] = plan.train.refresh.as_slice() else { panic!("expected one refresh: {:?}", plan.train.refresh) };
    let w = &plan.tensors[r.tensor.index()];
    assert_eq!(w.role, TensorRole::Param);
    assert_eq!(r.lsb as i32, w.fmt.lsb);
    assert!(r.every >= 2, "refresh every {} steps", r.every);
}

#[test]
fn a_refresh_rounds_every_coefficient_to_the_grid() {
    let mut plan = plan();
    let (ck, sk) = keys();
    let w = plan.tensors.iter().position(|t| t.role == TensorRole::Param).expect("a param tensor");
    let (rows, cols, lsb) = (plan.tensors[w].rows, plan.tensors[w].cols, plan.tensors[w].fmt.lsb as u32);
    let top = 61;
    let r = Refresh { tensor: blindtuner_compiler::plan::TensorId(w as u32), every: 1, lsb, top };
    plan.train.refresh = vec![r];
    // Values on the grid across the range, both signs, plus sub-grid parts up to ±0.45
    // of a step (the noise a refresh must drop; past half a step it rounds the other way).
    let grid = 1i64 << lsb;
    let mut rng = Rng(11);
    let mut values: Vec<Vec<u64>> = plan.tensors.iter().map(|t| vec![0u64; t.rows * t.cols]).collect();
    let mut expect = Vec::new();
    for v in values[w].iter_mut() {
        let n = rng.int(-(1 << (top - lsb - 1)), (1 << (top - lsb - 1)) - 1);
        let frac = rng.int(-45, 45) * grid / 100;
        *v = (n * grid + frac) as u64;
        expect.push((n * grid) as u64);
    }
    // Also a value just under half a step above a grid point, and one at the top.
    values[w][0] = (3 * grid + grid / 2 - grid / 64) as u64;
    expect[0] = (3 * grid) as u64;
    values[w][1] = (((1i64 << (top - lsb)) - 1) * grid) as u64;
    expect[1] = values[w][1];
    for (v, e) in values[w].iter().zip(&expect) {
        assert_eq!(r.apply(*v), *e, "clear rounding of {v:#x}");
    }
    let mut model = ck.encrypt_model(&plan, &values, &mut CryptoRng::from_os()).expect("encrypts");
    let server = Server::new(sk, &plan).expect("plan runs on tfhe");
    let before = server.stats().pbs;
    assert_eq!(server.refresh(&mut model, 1).expect("refreshes"), 1);
    assert_eq!(server.stats().pbs - before, (rows * cols) as u64 * u64::from(r.digits()));
    let dec = ck.decrypt_iterate(&plan, &model).expect("decrypts");
    // What is left is the refresh's own noise: digits bootstrap outputs and the packing.
    let worst = dec[w].iter().zip(&expect).map(|(a, b)| torus_diff(*a, *b).unsigned_abs()).max().unwrap_or(0);
    assert!(worst < (1u64 << (lsb - 4)), "worst distance from the grid 2^{:.1}", (worst as f64).log2());

    // The clear machine does the same after its step.
    let mut m = Machine::with_tensors(&plan, values.clone());
    m.run_step();
    assert_eq!(m.tensors[w], expect);
}

/// The driver runs the schedule (here every 2 steps, forced short): a killed and
/// resumed run ends bit-identical, the PBS counted at the bootstraps are the samples'
/// plus the refreshes' (`Plan::refresh_pbs`), and in lock-step with the clear backend
/// every refresh brings the weights back onto the plan's values, with only the
/// refresh's own noise left.
#[test]
fn the_driver_refreshes_on_schedule_and_resumes_bit_identical() {
    use blindtuner_compiler::lower::cost::costs;
    use blindtuner_runtime::clear::{self, Counters};
    use blindtuner_runtime::order;
    use blindtuner_runtime::tfhe::driver::{self, DriverConfig, Progress, Silent, StepEvent, TrainState};
    use blindtuner_runtime::tfhe::lockstep::LockStep;
    use blindtuner_runtime::tfhe::EncDataset;
    use std::ops::ControlFlow;
    use std::time::Duration;

    let mut plan = plan();
    plan.train.refresh[0].every = 2;
    let r = plan.train.refresh[0];
    let (ck, sk) = keys();
    let info = Server::new(sk, &plan).expect("plan runs on tfhe").info().clone();
    let mut rng = Rng(5);
    let mut counters = Counters::new(&plan);
    let mut crng = CryptoRng::from_seed(6);
    let qs: Vec<_> = (0..8)
        .map(|i| {
            let c = i % 2;
            let x: Vec<f64> = (0..6)
                .map(|j| if j < 2 { (2 * c as i64 - 1) as f64 * 2.5 } else { rng.int(-8, 8) as f64 / 2.0 })
                .collect();
            clear::quantize(&plan, &[&x], &[c], &mut counters)
        })
        .collect();
    let enc = EncDataset {
        samples: qs
            .iter()
            .map(|q| ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut crng).expect("encrypts"))
            .collect(),
    };
    let init = clear::init_tensors(&plan);
    let fresh = || {
        let model = driver::trivial_model(&plan, sk.params(), &init).expect("trivial model");
        TrainState::fresh(model, plan.train.epochs, enc.samples.len())
    };
    let cfg = DriverConfig { checkpoint: None, checkpoint_every: Duration::from_secs(3600) };
    let full = driver::train(&plan, sk, &enc, fresh(), &cfg, &mut Silent).expect("trains").state;
    assert_eq!(full.steps_done, 4);
    let c = costs(&plan);
    assert_eq!(
        full.pbs,
        c.pbs_per_sample * 8 + plan.refresh_pbs(4) + c.loss_pbs(&plan, enc.samples.len(), plan.train.epochs)
    );
    assert_eq!(plan.refresh_pbs(4), 2 * 14 * u64::from(r.digits()));

    struct Kill(u64);
    impl Progress for Kill {
        fn step(&mut self, ev: &StepEvent) -> ControlFlow<()> {
            if ev.step >= self.0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        fn log(&mut self, _: &str) {}
    }
    let part = driver::train(&plan, sk, &enc, fresh(), &cfg, &mut Kill(3)).expect("trains").state;
    assert_eq!(part.steps_done, 3);
    let rest = driver::train(&plan, sk, &enc, part, &cfg, &mut Silent).expect("resumes").state;
    assert_eq!(rest.pbs, full.pbs);
    let bytes = |s: &TrainState| bincode::serialize(&s.model).expect("serializes");
    assert!(bytes(&rest) == bytes(&full), "resumed model differs from the uninterrupted one");

    // The driver's loop by hand, in lock-step.
    let mut server = Server::new(sk, &plan).expect("server");
    let mut model = fresh().model;
    let mut ls = LockStep::new(&plan, init.clone());
    let half = 1u64 << (r.lsb - 1);
    let ord = order::epoch_order(plan.train.seed, 0, qs.len());
    for (step, range) in order::batches(qs.len(), plan.train.batch).enumerate() {
        let bq: Vec<_> = ord[range.clone()].iter().map(|&i| qs[i].clone()).collect();
        let be: Vec<_> = ord[range].iter().map(|&i| enc.samples[i].clone()).collect();
        // The driver measures the loss on the plan's steps: so does the hand loop.
        server.set_step(step);
        let traces = server.train_batch(&mut model, &be).expect("step");
        let ran = server.refresh(&mut model, ls.steps + 1).expect("refresh");
        let c = ls.step(ck, &bq, &traces, &model).expect("lock-step");
        assert!(c.max_abs < half, "step {}: noise {} half-LSB", ls.steps, c.max_abs as f64 / half as f64);
        if ran > 0 {
            assert!(c.max_abs < half >> 4, "after the refresh at step {}: {}", ls.steps, c.max_abs);
        }
    }
    assert!(bytes(&TrainState { model, ..fresh() }) == bytes(&full), "the hand loop is the driver's");
}

/// A rescale by a fraction (`StepInst::Rescale`, what a momentum needs) runs the same
/// bit reads with each bit's weight in its table: on real keys the result decrypts to
/// `plan::rescale_bits` of the input, up to the bootstraps' own noise.
#[test]
fn a_rescale_by_a_fraction_weights_every_bit() {
    use blindtuner_compiler::plan::{rescale_bits, rescale_pbs, StepInst};
    let mut plan = plan();
    plan.train.refresh.clear();
    let (ck, sk) = keys();
    let w = plan.tensors.iter().position(|t| t.role == TensorRole::Param).expect("a param tensor");
    let id = blindtuner_compiler::plan::TensorId(w as u32);
    let (lsb, top) = plan.tensors[w].fmt.bit_span();
    let factor = 0.8125;
    plan.step = vec![StepInst::Rescale { dst: id, src: id, factor, digits: rescale_pbs(lsb, top, factor) }];
    let grid = 1i64 << lsb;
    let mut rng = Rng(17);
    let mut values: Vec<Vec<u64>> = plan.tensors.iter().map(|t| vec![0u64; t.rows * t.cols]).collect();
    for v in values[w].iter_mut() {
        let n = rng.int(-(1 << (top - lsb - 1)), (1 << (top - lsb - 1)) - 1);
        *v = (n * grid + rng.int(-40, 40) * grid / 100) as u64;
    }
    let expect: Vec<u64> = values[w].iter().map(|&v| rescale_bits(lsb, top, factor, v)).collect();
    // Per-bit rounding: within half a grid step per bit of round(factor · value).
    for (&v, &e) in values[w].iter().zip(&expect) {
        let exact = ((v as i64 as f64 / grid as f64).round() * factor * grid as f64) as i64;
        assert!((e as i64 - exact).unsigned_abs() <= u64::from(top - lsb + 1) * (grid as u64 / 2));
    }
    let mut model = ck.encrypt_model(&plan, &values, &mut CryptoRng::from_os()).expect("encrypts");
    let server = Server::new(sk, &plan).expect("rescale runs on tfhe");
    let before = server.stats().pbs;
    server.step(&mut model).expect("rescales");
    let coeffs = (plan.tensors[w].rows * plan.tensors[w].cols) as u64;
    assert_eq!(server.stats().pbs - before, coeffs * u64::from(rescale_pbs(lsb, top, factor)));
    let dec = ck.decrypt_iterate(&plan, &model).expect("decrypts");
    let worst = dec[w].iter().zip(&expect).map(|(a, b)| torus_diff(*a, *b).unsigned_abs()).max().unwrap_or(0);
    assert!(worst < (1u64 << (lsb - 4)), "worst distance 2^{:.1}", (worst as f64).log2());
    let mut m = Machine::with_tensors(&plan, values);
    m.run_step();
    assert_eq!(m.tensors[w], expect, "the clear backend computes the same");
}

/// `nesterov` trains encrypted: its two momentum rescales per step are multi-digit
/// bootstraps (`plan::rescale_pbs` per coefficient, counted at the bootstraps), and in
/// lock-step the decrypted weights follow the clear backend within the levelled noise.
#[test]
fn a_nesterov_head_trains_encrypted() {
    use blindtuner_compiler::lower::cost::costs;
    use blindtuner_compiler::plan::StepInst;
    use blindtuner_runtime::clear::{self, Counters};
    use blindtuner_runtime::order;
    use blindtuner_runtime::tfhe::lockstep::LockStep;
    const NESTEROV: &str = "
model mom {
  dim d = 2
  dim k = 2
  input  x : fixed[d] in [-4, 4]
  label  y : onehot[k]
  param  W : fixed[k, d] = zeros
  param  b : fixed[k]    = zeros
  z    = W @ x + b
  loss = sigmoid_cross_entropy(z, y)
}
train mom {
  optimizer = nesterov(lr = 0.25, momentum = 0.5)
  batch     = 2
  epochs    = 1
}
";
    let (spec, diags) = blindtuner_compiler::check::check_source(NESTEROV, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
    let plan = pipeline::run(spec, None).expect("lowers").plan.expect("plan");
    // One rescale per step: the state holds μ·b (`emit`).
    assert_eq!(plan.step.iter().filter(|s| matches!(s, StepInst::Rescale { .. })).count(), 1);
    let (ck, sk) = keys();
    let mut server = Server::new(sk, &plan).expect("nesterov runs on tfhe");
    let info = server.info().clone();
    let mut counters = Counters::new(&plan);
    let mut crng = CryptoRng::from_seed(9);
    let qs: Vec<_> = [([2.5, -1.0], 1), ([-2.0, 0.5], 0), ([3.0, 1.5], 1), ([-1.5, -2.5], 0)]
        .iter()
        .map(|(x, y)| clear::quantize(&plan, &[&x[..]], &[*y], &mut counters))
        .collect();
    let enc: Vec<_> =
        qs.iter().map(|q| ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut crng).expect("encrypts")).collect();
    let init = clear::init_tensors(&plan);
    let mut model = blindtuner_runtime::tfhe::driver::trivial_model(&plan, sk.params(), &init).expect("model");
    let mut ls = LockStep::new(&plan, init);
    let ord = order::epoch_order(plan.train.seed, 0, qs.len());
    let before = server.stats().pbs;
    let w = plan.tensors.iter().position(|t| t.role == TensorRole::Param).expect("W");
    let scale = plan.tensors[w].fmt.scale;
    for (step, range) in order::batches(qs.len(), plan.train.batch).enumerate() {
        let bq: Vec<_> = ord[range.clone()].iter().map(|&i| qs[i].clone()).collect();
        let be: Vec<_> = ord[range].iter().map(|&i| enc[i].clone()).collect();
        server.set_step(step);
        let traces = server.train_batch(&mut model, &be).expect("step");
        let c = ls.step(ck, &bq, &traces, &model).expect("lock-step");
        // The momentum carries the levelled noise (its bits below the noise are read as
        // they decrypt): far below the weights' updates (≥ 2^-4 here).
        assert!((c.max_abs as f64) < 2f64.powi(scale - 8), "step {}: 2^{:.1}", ls.steps, (c.max_abs as f64).log2());
    }
    let c = costs(&plan);
    assert_eq!(server.stats().pbs - before, c.pbs_per_sample * 4 + c.step_pbs * 2 + c.loss_pbs(&plan, 4, 1));
    assert!(c.step_pbs > 0);
    // The head trained.
    let dec = ck.decrypt_iterate(&plan, &model).expect("decrypts");
    let moved = dec[w].iter().map(|&v| (v as i64).unsigned_abs()).max().unwrap_or(0);
    assert!(moved as f64 > 2f64.powi(scale - 4), "the weights barely moved");
}
