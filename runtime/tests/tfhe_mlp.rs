//! A one-hidden-layer relu MLP head trained on real keys: every product of two server
//! values runs as `table-ggsw` (`runtime::tfhe::convert`: the integer operand's GGSW
//! bootstrapped from its table input, one external product per product). The
//! bootstraps counted at the call sites are exactly the report's, for two values of
//! d; the decrypted weights follow the clear backend's.

mod tfhe_common;

use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::{Inst, Plan, ProductStrategy};
use blindtuner_runtime::clear::{self, Counters, Machine};
use blindtuner_runtime::order;
use blindtuner_runtime::tfhe::convert::{ConvertKey, ConvertParams};
use blindtuner_runtime::tfhe::{CryptoRng, Server};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tfhe_common::{keys, Rng};

fn mlp(d: usize) -> Plan {
    mlp_with(d, "sgd(lr = 0.5)")
}

fn mlp_with(d: usize, optimizer: &str) -> Plan {
    let src = format!(
        "model mlp {{
  dim d = {d}
  dim h = 2
  dim k = 3
  input  x  : fixed[d] in [-4, 4]
  label  y  : onehot[k]
  param  W1 : fixed[h, d] = normal(0.5)
  param  b1 : fixed[h]    = zeros
  param  W2 : fixed[k, h] = normal(0.5)
  param  b2 : fixed[k]    = zeros
  z1   = W1 @ x + b1
  a1   = relu(z1)
  z    = W2 @ a1 + b2
  loss = softmax_cross_entropy(z, y)
}}
train mlp {{ optimizer = {optimizer}  batch = 2  epochs = 1  p_fail = 2^-35 }}
"
    );
    let (spec, diags) = blindtuner_compiler::check::check_source(&src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("spec does not check: {diags:?}"));
    pipeline::run(spec, None).expect("lowers").plan.expect("plan")
}

fn convert_key() -> &'static ConvertKey {
    static KEY: OnceLock<ConvertKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (ck, _) = keys();
        ck.convert_key(ConvertParams::of(ck.params()), &mut CryptoRng::from_seed(11))
    })
}

/// Train `plan` encrypted on 4 samples (2 steps); returns (PBS counted, the report's
/// count, max |decrypted − clear| over the parameters and max |clear − initial|, in
/// real units).
fn run(plan: &Plan) -> (u64, u64, f64, f64) {
    let (ck, sk) = keys();
    let d = plan.inputs[0].len;
    assert!(!plan.products.is_empty());
    assert!(plan.products.values().all(|p| p.strategy == ProductStrategy::TableGgsw));
    let mut server = Server::with_convert(sk, plan, Some(convert_key())).expect("the MLP runs on tfhe");
    let info = server.info().clone();
    let mut counters = Counters::new(plan);
    let mut r = Rng(5 + d as u64);
    let xs: Vec<(Vec<f64>, usize)> =
        (0..4).map(|i| ((0..d).map(|_| r.int(-30, 30) as f64 / 10.0).collect(), i % 3)).collect();
    let qs: Vec<_> = xs.iter().map(|(x, y)| clear::quantize(plan, &[&x[..]], &[*y], &mut counters)).collect();
    let mut crng = CryptoRng::from_seed(9);
    let enc: Vec<_> =
        qs.iter().map(|q| ck.encrypt_sample(plan, &info, &q.xq, &q.labels, &mut crng).expect("encrypts")).collect();
    let init = clear::init_tensors(plan);
    let mut model = blindtuner_runtime::tfhe::driver::trivial_model(plan, sk.params(), &init).expect("model");
    let mut machine = Machine::new(plan);
    machine.tensors = init.clone();
    let ord = order::epoch_order(plan.train.seed, 0, qs.len());
    let before = server.stats().pbs;
    for (step, range) in order::batches(qs.len(), plan.train.batch).enumerate() {
        let be: Vec<_> = ord[range.clone()].iter().map(|&i| enc[i].clone()).collect();
        server.set_step(step);
        server.train_batch(&mut model, &be).expect("step");
        for &i in &ord[range] {
            machine.run_sample(&qs[i]);
        }
        machine.run_step();
    }
    let c = costs(plan);
    let report = c.pbs_per_sample * 4 + c.step_pbs * 2 + c.loss_pbs(plan, 4, 1);
    let dec = ck.decrypt_iterate(plan, &model).expect("decrypts");
    let (mut worst, mut moved) = (0f64, 0f64);
    for (i, t) in plan.tensors.iter().enumerate() {
        if t.role != blindtuner_compiler::plan::TensorRole::Param {
            continue;
        }
        for ((&a, &b), &w0) in dec[i].iter().zip(&machine.tensors[i]).zip(&init[i]) {
            worst = worst.max((t.fmt.to_real(a) - t.fmt.to_real(b)).abs());
            moved = moved.max((t.fmt.to_real(b) - t.fmt.to_real(w0)).abs());
        }
    }
    (server.stats().pbs - before, report, worst, moved)
}

#[test]
fn an_mlp_trains_encrypted_with_the_reported_bootstraps_whatever_d() {
    let mut counts = Vec::new();
    for d in [4, 12] {
        let plan = mlp(d);
        let (pbs, report, worst, moved) = run(&plan);
        eprintln!(
            "d = {d}: {pbs} PBS counted, {report} reported; max |W_enc − W_clear| {worst:.4}, clear moved {moved:.4}"
        );
        assert_eq!(pbs, report, "d = {d}: counted vs reported bootstraps");
        // One-cell-off relu outputs (1/8 cells; the conversions bootstrap the relu's
        // input again and may land in a neighbour cell) move a gradient by an eighth of
        // an error: the runs differ by a fraction of what training moved the weights.
        assert!(worst < moved / 2.0, "d = {d}: decrypted weights {worst} from the clear run (moved {moved})");
        counts.push(pbs);
    }
    assert_eq!(counts[0], counts[1], "the bootstraps do not depend on d");
}

/// The relu mask's dither (stochastic rounding of `dh` before its tables) is a public
/// plaintext: the encrypted backend adds exactly the clear machine's offsets, for every
/// step and position in a batch. Decrypting the register before and after the dither
/// and subtracting cancels the noise, so the comparison is bit-exact.
#[test]
fn the_relu_mask_dither_is_the_clear_machines_to_the_bit() {
    let plan = mlp(4);
    let (ck, sk) = keys();
    let mut server = Server::with_convert(sk, &plan, Some(convert_key())).expect("the MLP runs on tfhe");
    let info = server.info().clone();
    let (pc, a, out) = plan
        .sample
        .iter()
        .enumerate()
        .find_map(|(i, inst)| match *inst {
            Inst::Dither { a, out, .. } => Some((i, a, out)),
            _ => None,
        })
        .expect("the MLP's relu mask dithers");
    let mut counters = Counters::new(&plan);
    let mut r = Rng(17);
    let qs: Vec<_> = (0..2)
        .map(|i| {
            let x: Vec<f64> = (0..4).map(|_| r.int(-30, 30) as f64 / 10.0).collect();
            clear::quantize(&plan, &[&x[..]], &[i], &mut counters)
        })
        .collect();
    let init = clear::init_tensors(&plan);
    let model = blindtuner_runtime::tfhe::driver::trivial_model(&plan, sk.params(), &init).expect("model");
    let mut crng = CryptoRng::from_seed(3);
    for steps in [0u64, 5] {
        server.set_steps_done(steps);
        let mut machine = Machine::with_tensors(&plan, init.clone());
        machine.begin_step(steps);
        for (pos, q) in qs.iter().enumerate() {
            machine.run_sample(q);
            let want: Vec<u64> = machine.reg(out).iter().zip(machine.reg(a)).map(|(y, x)| y.wrapping_sub(*x)).collect();
            let s = ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut crng).expect("encrypts");
            let run = server.run_sample_at(&model, &server.prepare(&s).expect("prepares"), pc + 1, pos).expect("runs");
            let dec =
                |r: blindtuner_compiler::plan::RegId| ck.decrypt_value(run.regs[r.index()].as_ref().expect("written"));
            let got: Vec<u64> = dec(out).iter().zip(dec(a)).map(|(y, x)| y.wrapping_sub(x)).collect();
            assert_eq!(got, want, "step {steps}, position {pos}");
            assert!(want.iter().any(|&d| d != 0), "step {steps}, position {pos}: offsets drawn");
        }
    }
}

/// `nesterov` on an MLP head: the momentum of `W2` lives under the PBS key
/// (`Layout::PbsPoly`), so its rescale packs back with the conversion keys' identity
/// packing key (`refresh::rescale`); the update's bootstraps are the report's too.
#[test]
fn an_mlp_trains_encrypted_with_nesterov() {
    let plan = mlp_with(4, "nesterov(lr = 0.5, momentum = 0.5)");
    assert!(costs(&plan).step_pbs > 0, "the momentum rescale bootstraps");
    let (pbs, report, worst, moved) = run(&plan);
    eprintln!(
        "nesterov: {pbs} PBS counted, {report} reported; max |W_enc − W_clear| {worst:.4}, clear moved {moved:.4}"
    );
    assert_eq!(pbs, report);
    assert!(worst < moved / 2.0, "decrypted weights {worst} from the clear run (moved {moved})");
}
