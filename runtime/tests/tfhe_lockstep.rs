//! Differential test of the two backends, in lock-step.
//!
//! A plan compiled from a spec runs on real ciphertexts and on the clear backend
//! (`clear::Machine`, the reference interpreter of plans). The clear run applies, at
//! every bootstrap, the lookup-table cell the encrypted bootstrap actually selected
//! (recovered with the client key), so after every step the decrypted weights differ
//! from the clear weights by levelled noise only. Cells that differ from the
//! noise-free choice are counted: one cell off is expected (the modulus switch),
//! further off is a failure.

mod tfhe_common;

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use blindtuner_runtime::clear;
use blindtuner_runtime::tfhe::lockstep::LockStep;
use blindtuner_runtime::tfhe::{CryptoRng, Server};
use std::collections::BTreeMap;
use tfhe_common::{keys, Rng};

fn compile(src: &str) -> Plan {
    let (spec, diags) = check_source(src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
    pipeline::run(spec, None).unwrap_or_else(|d| panic!("{d:?}")).plan.expect("plan")
}

/// A spec that is not in `models/`: d = 16, k = 5 sigmoid head with a schedule.
const SPEC: &str = "
model lockstep {
  input  x : fixed[16] in [-4, 4]
  label  y : onehot[5]
  param  W : fixed[5, 16] = uniform(-0.5, 0.5)
  param  b : fixed[5]     = zeros
  z    = W @ x + b
  loss = sigmoid_cross_entropy(z, y)
}
train lockstep {
  optimizer = sgd(lr = 0.25)
  schedule  = step(every = 1, factor = 0.5)
  batch     = 2
  epochs    = 2
}
";

#[test]
fn encrypted_weights_track_the_clear_backend_step_by_step() {
    assert_eq!(costs(&compile(SPEC)).pbs_per_sample, 5, "k PBS per sample");
    lock_step(SPEC, 16, 2);
}

/// The softmax head: its leave-one-out lse's add bootstrap outputs to logits, values
/// the server keeps as sums under two keys until the next bootstrap (`tfhe::value`).
/// 4k − 6 = 14 bootstraps per sample, counted.
#[test]
fn softmax_head_tracks_the_clear_backend_step_by_step() {
    let spec = SPEC.replace("sigmoid_cross_entropy", "softmax_cross_entropy").replace("epochs    = 2", "epochs    = 1");
    let plan = compile(&spec);
    assert_eq!(costs(&plan).pbs_per_sample, 14);
    lock_step(&spec, 16, 2);
}

/// A ViT-Base-sized embedding: W needs two GLWE polynomials (⌊2048/5⌋ = 409 features
/// each), the plan and both backends are unchanged, PBS per sample stay k.
#[test]
fn d768_head_trains_encrypted_unchanged() {
    let spec = SPEC
        .replace("fixed[16]", "fixed[768]")
        .replace("fixed[5, 16]", "fixed[5, 768]")
        .replace("epochs    = 2", "epochs    = 1");
    let plan = compile(&spec);
    assert!(plan
        .tensors
        .iter()
        .any(|t| matches!(t.layout, blindtuner_compiler::plan::Layout::DataPoly { polys: 2, .. })));
    assert_eq!(costs(&plan).pbs_per_sample, 5, "k PBS per sample, whatever d");
    lock_step(&spec, 768, 1);
}

fn lock_step(src: &str, d: usize, steps_per_epoch: usize) {
    let (ck, sk) = keys();
    let plan = compile(src);
    let server = Server::new(sk, &plan).expect("plan supported by the tfhe backend");
    let info = server.info().clone();
    let init = clear::init_tensors(&plan);
    let mut model = ck.encrypt_model(&plan, &init, &mut CryptoRng::from_seed(1)).expect("model");
    let mut ls = LockStep::new(&plan, init);
    let mut rng = CryptoRng::from_seed(2);
    let mut data = Rng(3);
    let (k, batch) = (5, plan.train.batch);
    let mut worst_noise = 0u64;
    for epoch in 0..plan.train.epochs {
        ls.set_epoch(epoch);
        let mut srv = Server::new(sk, &plan).expect("server");
        srv.set_epoch(epoch);
        for step in 0..steps_per_epoch {
            srv.set_step(step);
            ls.set_step(step);
            let qs: Vec<_> = (0..batch)
                .map(|_| {
                    let x: Vec<f64> = (0..d).map(|_| data.int(-30, 30) as f64 / 8.0).collect();
                    let y = data.int(0, k as i64 - 1) as usize;
                    ls.clear.quantize(&[&x], &[y])
                })
                .collect();
            let enc: Vec<_> = qs
                .iter()
                .map(|q| ck.encrypt_sample(&plan, &info, &q.xq, &q.labels, &mut rng).expect("sample"))
                .collect();
            let traces = srv.train_batch(&mut model, &enc).expect("encrypted step");
            // After every step: decrypted weights = clear weights + levelled noise.
            let check = ls.step(ck, &qs, &traces, &model).expect("lock-step");
            worst_noise = worst_noise.max(check.max_abs);
            assert!(check.max_abs < 1 << 47, "weights off by 2^{:.1}", (check.max_abs as f64).log2());
        }
        let per_sample = costs(&plan).pbs_per_sample;
        let loss = costs(&plan).loss_pbs(&plan, steps_per_epoch * batch, 1);
        assert_eq!(
            srv.stats().pbs,
            steps_per_epoch as u64 * batch as u64 * per_sample + loss,
            "counted at the bootstrap"
        );
    }
    // The training loss measured under encryption: the decrypted per-epoch means equal
    // the loss program run in the clear on the decrypted state with the same cells, up
    // to the bootstraps' output noise (2k bootstraps of σ 2^38.5 against the loss's
    // 2^48 scale: σ ≈ 0.004 per sample).
    let loss = plan.loss.as_ref().expect("the head measures its loss");
    let fmt = plan.regs[loss.reg.index()].fmt;
    let enc_loss = ck.decrypt_loss(&plan, &model).expect("decrypts the loss");
    assert_eq!(enc_loss.len(), plan.train.epochs, "a loss sum per epoch");
    for (epoch, mean, n) in enc_loss {
        let clear = ls.loss[epoch];
        eprintln!("epoch {epoch}: loss {mean:.4} encrypted, {:.4} clear ({n} samples)", clear.mean(fmt));
        assert_eq!(n, clear.samples);
        assert!((mean - clear.mean(fmt)).abs() < 0.02, "epoch {epoch}: {mean} vs {}", clear.mean(fmt));
        // The d = 768 head's random logits lie far beyond the tables' window, where
        // the loss wraps (the clear run agrees); the others read a few nats.
        assert!(d > 64 || (mean > 0.05 && mean < 10.0), "a cross-entropy of a few nats: {mean}");
    }
    let (cells, own) = (ls.cells, ls.landings);
    eprintln!(
        "lock-step: {} bootstraps, {} one cell off, {} further (against the decrypted state: {}, {}); \
         worst weight noise 2^{:.1}",
        cells.pbs,
        cells.one_off,
        cells.far,
        own.one_off,
        own.far,
        (worst_noise.max(1) as f64).log2()
    );
    // A few steps: the weights' noise (2^45) is far below a cell (2^57), so both
    // tallies agree on what is a failure.
    assert_eq!(own.far, 0, "a bootstrap landed more than one cell off its input");
    // One cell off is expected and benign (the modulus switch to 2N rounds the phase;
    // the noise model predicts ~16 % for the sigmoid table's 2^57-wide cells): it is
    // applied to the clear run above, so the weights still agree. Further off would be
    // a failure (predicted 3e-8 per bootstrap).
    assert_eq!(cells.far, 0, "a bootstrap landed more than one cell off");
    assert!(cells.one_off < cells.pbs, "every bootstrap off by one: the cell recovery is wrong");
    assert_eq!(cells.pbs, (plan.train.epochs * steps_per_epoch * batch) as u64 * costs(&plan).pbs_per_sample);
}
