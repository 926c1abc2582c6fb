//! The server's training driver on real keys, for a compiled sigmoid head (d = 8,
//! k = 2, 6 samples, batch 2, 2 epochs with a learning-rate step, the last epoch
//! averaged): a killed and resumed run ends bit-identical to an uninterrupted one, the
//! decrypted weights follow the clear backend, the decrypted tail average is exactly
//! the mean of the decrypted iterates, and the PBS counted at the bootstraps are the
//! plan's cost.

use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::{round_mean, Plan, TensorRole};
use blindtuner_runtime::clear::{self, Counters};
use blindtuner_runtime::data::Dataset;
use blindtuner_runtime::order;
use blindtuner_runtime::rng::SplitMix;
use blindtuner_runtime::tfhe::driver::{self, DriverConfig, Progress, Silent, StepEvent, TrainState};
use blindtuner_runtime::tfhe::files::{FileErrorKind, PlanHash};
use blindtuner_runtime::tfhe::{keygen, ClientKey, CryptoRng, EncDataset, ParamSet, Server, ServerKeys};
use blindtuner_runtime::train::{self, TrainOptions};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const SPEC: &str = "
model tiny {
  dim d = 8
  dim k = 2
  input  x : fixed[d] in [-4, 4]
  label  y : onehot[k]
  param  W : fixed[k, d] = uniform(-0.25, 0.25)
  param  b : fixed[k]    = zeros
  z    = W @ x + b
  loss = sigmoid_cross_entropy(z, y)
}
train tiny {
  optimizer = sgd(lr = 0.25)
  schedule  = step(every = 1, factor = 0.5)
  batch     = 2
  epochs    = 2
  average   = 1
  seed      = 3
  precision = 7
}
";
// `precision = 7`: cells of 2^57, finer than the failure budget's choice (2^58), so that a
// bootstrap landing one cell off moves an error by half a logit, not a whole one: this
// six-sample run checks the driver against the clear backend, not the table's precision.

struct Fixture {
    plan: Plan,
    ck: ClientKey,
    sk: ServerKeys,
    clear: Dataset,
    enc: EncDataset,
}

/// Keys, plan and the encrypted dataset, made once per test binary.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (spec, diags) = blindtuner_compiler::check::check_source(SPEC, &BTreeMap::new());
        let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
        let plan = pipeline::run(spec, None).expect("lowers").plan.expect("plan");
        let (ck, sk) = keygen(&ParamSet::default_set(), &mut CryptoRng::from_seed(11));
        // Two separable classes: the sign of the first features decides.
        let mut r = SplitMix::new(5);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..6 {
            let c = i % 2;
            let sign = if c == 0 { -1.0 } else { 1.0 };
            x.push((0..8).map(|j| if j < 3 { sign * r.uniform(1.0, 3.5) } else { r.uniform(-3.5, 3.5) }).collect());
            y.push(c);
        }
        let clear = Dataset { x, y, d: 8 };
        let info = Server::new(&sk, &plan).expect("plan runs on tfhe").info().clone();
        let mut rng = CryptoRng::from_seed(12);
        let mut counters = Counters::new(&plan);
        let samples = clear
            .x
            .iter()
            .zip(&clear.y)
            .map(|(x, &y)| {
                let q = clear::quantize(&plan, &[x], &[y], &mut counters);
                ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut rng).expect("encrypts")
            })
            .collect();
        Fixture { plan, ck, sk, clear, enc: EncDataset { samples } }
    })
}

fn fresh(f: &Fixture) -> TrainState {
    fresh_for(f, &f.plan, f.plan.train.epochs)
}

fn fresh_for(f: &Fixture, plan: &Plan, epochs: usize) -> TrainState {
    let init = clear::init_tensors(plan);
    let model = driver::trivial_model(plan, f.sk.params(), &init).expect("trivial model");
    TrainState::fresh(model, epochs, f.enc.samples.len())
}

fn model_bytes(s: &TrainState) -> Vec<u8> {
    bincode::serialize(&s.model).expect("serializes")
}

/// Stops the run after `stop_after` steps, as a kill would.
struct KillAfter {
    stop_after: u64,
    seen: Vec<StepEvent>,
}

impl Progress for KillAfter {
    fn step(&mut self, ev: &StepEvent) -> ControlFlow<()> {
        self.seen.push(*ev);
        if ev.step >= self.stop_after {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
    fn log(&mut self, _: &str) {}
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bt-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn uninterrupted(f: &Fixture) -> &'static TrainState {
    static DONE: OnceLock<TrainState> = OnceLock::new();
    DONE.get_or_init(|| {
        let cfg = DriverConfig { checkpoint: None, checkpoint_every: Duration::from_secs(3600) };
        let out = driver::train(&f.plan, &f.sk, &f.enc, fresh(f), &cfg, &mut Silent).expect("trains");
        assert!(out.state.is_complete());
        assert_eq!(out.steps, 6, "3 batches of 2 per epoch, 2 epochs");
        out.state
    })
}

#[test]
fn killed_and_resumed_runs_are_bit_identical() {
    let f = fixture();
    let full = uninterrupted(f);
    // (stop after, checkpoint period): a checkpoint after every step and a kill in the
    // middle of epoch 0; only end-of-epoch checkpoints and a kill in epoch 1 (the
    // resume redoes the lost step).
    for (stop_after, every, resumes_at) in [(2u64, Duration::ZERO, (0, 2)), (4, Duration::from_secs(3600), (1, 0))] {
        let path = temp(&format!("kill{stop_after}.ckpt"));
        let cfg = DriverConfig { checkpoint: Some(path.clone()), checkpoint_every: every };
        let mut kill = KillAfter { stop_after, seen: Vec::new() };
        let part = driver::train(&f.plan, &f.sk, &f.enc, fresh(f), &cfg, &mut kill).expect("trains");
        assert!(!part.state.is_complete());
        assert_eq!(kill.seen.len() as u64, stop_after);
        assert_eq!(kill.seen[0].total_steps, 6);

        let hash = PlanHash::of(&f.plan);
        let state = driver::load_checkpoint(&path, &f.sk, hash).expect("checkpoint loads");
        assert_eq!((state.epoch, state.step), resumes_at, "checkpoint position");
        let rest = driver::train(&f.plan, &f.sk, &f.enc, state, &cfg, &mut Silent).expect("resumes");
        assert!(rest.state.is_complete());
        assert_eq!(rest.state.steps_done, 6);
        assert_eq!(rest.state.pbs, full.pbs, "PBS count carries over the resume");
        assert!(model_bytes(&rest.state) == model_bytes(full), "resumed model differs from the uninterrupted one");

        // The checkpoint is bound to its plan.
        let mut other = f.plan.clone();
        other.train.seed += 1;
        let err = driver::load_checkpoint(&path, &f.sk, PlanHash::of(&other)).expect_err("other plan");
        assert!(matches!(err.kind, FileErrorKind::PlanMismatch { .. }), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_resumed_run_changes_its_length_when_its_average_allows() {
    let f = fixture();
    let cfg = DriverConfig { checkpoint: None, checkpoint_every: Duration::from_secs(3600) };
    let run = |plan: &Plan, state: TrainState, stop_after: u64| {
        let mut kill = KillAfter { stop_after, seen: Vec::new() };
        driver::train(plan, &f.sk, &f.enc, state, &cfg, &mut kill).expect("trains").state
    };

    // The spec averages its last epoch: a run of 2 averages epoch 2, a run of 1 would
    // have averaged the epoch a run killed in epoch 1 has trained without averaging.
    let mut killed = fresh(f);
    (killed.epoch, killed.step) = (0, 2);
    let err = killed.set_epochs(&f.plan, 1).expect_err("the average would start in a trained epoch");
    assert!(err.to_string().contains("average = 1"), "{err}");
    assert_eq!(killed.epochs, 2, "a refused change leaves the run as it was");
    assert!(killed.set_epochs(&f.plan, 0).is_err(), "no run of 0 epochs");
    (killed.epoch, killed.step) = (1, 1);
    let err = killed.set_epochs(&f.plan, 1).expect_err("epoch 2 has trained steps");
    assert!(err.to_string().contains("cannot end after epoch 1"), "{err}");

    // Without the average, the steps trained so far are the first steps of a run of any
    // length: shortened in the middle of epoch 1, the run ends bit-identical to a run
    // of 1 epoch; lengthened again, to an uninterrupted run of 2.
    let mut plan = f.plan.clone();
    plan.train.average = 0;
    let mut state = run(&plan, fresh_for(f, &plan, 2), 2);
    assert_eq!((state.epoch, state.step), (0, 2));
    state.set_epochs(&plan, 1).expect("shortens");
    let short = run(&plan, state, u64::MAX);
    let one = run(&plan, fresh_for(f, &plan, 1), u64::MAX);
    assert!(short.is_complete() && short.steps_done == 3);
    assert!(model_bytes(&short) == model_bytes(&one), "shortened run differs from a 1-epoch run");
    assert_eq!(short.pbs, one.pbs);

    let mut state = short;
    state.set_epochs(&plan, 2).expect("lengthens");
    let long = run(&plan, state, u64::MAX);
    let two = run(&plan, fresh_for(f, &plan, 2), u64::MAX);
    assert_eq!(long.steps_done, 6);
    assert!(model_bytes(&long) == model_bytes(&two), "lengthened run differs from a 2-epoch run");
}

#[test]
fn decrypted_weights_follow_the_clear_backend() {
    let f = fixture();
    let full = uninterrupted(f);
    let dec = f.ck.decrypt_model(&f.plan, &full.model).expect("decrypts");
    let rep = train::train(&f.plan, &f.clear, None, &TrainOptions::default());
    let enc_w = clear::decode_weights(&f.plan, &dec);
    let clear_w = clear::decode_weights(&f.plan, &rep.tensors);
    let init_w = clear::decode_weights(&f.plan, &clear::init_tensors(&f.plan));
    let (mut worst, mut moved) = (0f64, 0f64);
    for (name, (_, cw)) in &clear_w {
        let (_, ew) = &enc_w[name];
        let (_, iw) = &init_w[name];
        for ((c, e), i) in cw.iter().zip(ew).zip(iw) {
            worst = worst.max((c - e).abs());
            moved = moved.max((c - i).abs());
        }
    }
    eprintln!("max |encrypted − clear| = {worst:.5}, largest clear update = {moved:.4}");
    // Training moved the weights by far more than the encrypted run deviates: the
    // deviation is levelled noise plus at most a few one-cell LUT selections
    // (each ≈ one error-table step × |x| ≤ lr·(LUT step)·4).
    assert!(moved > 0.1, "the clear run barely trained ({moved})");
    assert!(worst < moved / 10.0, "encrypted weights off by {worst} (updates {moved})");
    // Same samples, same order: the decrypted model classifies the training set alike.
    let acc_enc = train::accuracy(&f.plan, &dec, &f.clear);
    assert!((acc_enc - rep.train_accuracy).abs() < 1e-9, "accuracy {acc_enc} vs clear {}", rep.train_accuracy);
}

#[test]
fn the_decrypted_average_is_the_mean_of_the_decrypted_iterates() {
    let f = fixture();
    let full = uninterrupted(f);
    let mean = full.model.mean.as_ref().expect("the last epoch is averaged");
    assert_eq!(mean.steps, 3, "one epoch of 3 steps");
    // The driver's loop by hand, decrypting every iterate of the averaged epoch.
    // Ciphertext addition adds phases exactly (mod 2^64), so the decrypted sum is the
    // sum of the decrypted iterates to the bit; the client unwraps and rounds it.
    let mut server = Server::new(&f.sk, &f.plan).expect("server");
    let mut model = fresh(f).model;
    let mut sums: Vec<Vec<i128>> = Vec::new();
    for epoch in 0..2 {
        server.set_epoch(epoch);
        let order = order::epoch_order(f.plan.train.seed, epoch, f.enc.samples.len());
        for range in order::batches(order.len(), f.plan.train.batch) {
            let chunk: Vec<_> = order[range].iter().map(|&i| f.enc.samples[i].clone()).collect();
            server.train_batch(&mut model, &chunk).expect("step");
            if epoch == 1 {
                let it = f.ck.decrypt_iterate(&f.plan, &model).expect("decrypts");
                sums.resize(it.len(), Vec::new());
                for (s, t) in sums.iter_mut().zip(&it) {
                    s.resize(t.len(), 0);
                    s.iter_mut().zip(t).for_each(|(s, &v)| *s += i128::from(v as i64));
                }
            }
        }
    }
    let iterate = f.ck.decrypt_iterate(&f.plan, &full.model).expect("decrypts");
    let averaged = f.ck.decrypt_model(&f.plan, &full.model).expect("decrypts");
    let mut changed = 0;
    for (i, t) in f.plan.tensors.iter().enumerate() {
        for (j, &v) in averaged[i].iter().enumerate() {
            if t.role == TensorRole::Param {
                assert_eq!(v, round_mean(sums[i][j], 3), "tensor {} coefficient {j}", t.name);
                changed += usize::from(v != iterate[i][j]);
            } else {
                assert_eq!(v, iterate[i][j], "non-parameter tensor {} is not averaged", t.name);
            }
        }
    }
    assert!(changed > 0, "the average equals the last iterate everywhere");
}

#[test]
fn pbs_counted_at_the_bootstraps_are_the_plan_cost() {
    let f = fixture();
    let full = uninterrupted(f);
    let c = costs(&f.plan);
    let samples = (f.enc.samples.len() * f.plan.train.epochs) as u64;
    assert!(c.pbs_per_sample > 0);
    // Plus the training loss measured under encryption on the plan's measured steps.
    let loss = c.loss_pbs(&f.plan, f.enc.samples.len(), f.plan.train.epochs);
    assert!(loss > 0, "the sigmoid head measures its loss");
    assert_eq!(full.pbs, c.pbs_per_sample * samples + c.step_pbs * full.steps_done + loss);
}

#[test]
fn a_checkpoint_of_another_dataset_is_refused() {
    let f = fixture();
    let mut state = fresh(f);
    state.samples = 7;
    let cfg = DriverConfig { checkpoint: None, checkpoint_every: Duration::ZERO };
    let err = driver::train(&f.plan, &f.sk, &f.enc, state, &cfg, &mut Silent).err().expect("refused");
    assert!(err.to_string().contains("7 samples"), "{err}");
}
