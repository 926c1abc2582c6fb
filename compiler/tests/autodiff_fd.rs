//! Autodiff against central finite differences, in f64 through the interpreter,
//! and one optimizer step against the update formula applied to the FD gradient.

mod ir_support;

use blindtuner_compiler::ir::autodiff::{training_step, TrainGraph};
use blindtuner_compiler::ir::build::{build_forward, Forward};
use blindtuner_compiler::ir::interp::{eval, run_step, Bindings, Sample, Tensor};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::spec::{LossKind, Optimizer, Spec};
use ir_support::*;

/// The states an optimizer needs, random so momentum matters.
fn random_states(rng: &mut Rng, tg: &TrainGraph) -> Vec<Tensor> {
    tg.graph.states.iter().map(|s| rng.tensor(&s.shape, 0.3)).collect()
}

/// Both the raw autodiff output and the simplified pipeline result, for one spec.
fn graphs(spec: &Spec) -> (Forward, Vec<TrainGraph>) {
    let fwd = build_forward(spec);
    let raw = training_step(&fwd, spec).expect("autodiff succeeds");
    let ctx = pipeline::run(spec.clone(), Some("simplify")).expect("pipeline succeeds");
    let simplified = ctx.train.expect("training graph");
    (fwd, vec![raw, simplified])
}

/// FD check on `trials` random points; `ok` rejects samples near a kink.
fn check_gradients(spec: &Spec, seed: u64, trials: usize, ok: impl Fn(&Forward, &[Tensor], &Sample) -> bool) {
    let mut rng = Rng::new(seed);
    let (fwd, tgs) = graphs(spec);
    let mut done = 0;
    let mut attempts = 0;
    while done < trials {
        attempts += 1;
        assert!(attempts < 100 * trials, "could not find samples away from kinks");
        let params = random_params(&mut rng, spec, 0.8);
        let s = random_sample(&mut rng, spec);
        if !ok(&fwd, &params, &s) {
            continue;
        }
        let fd = fd_grads(&fwd, &params, &s);
        for (i, tg) in tgs.iter().enumerate() {
            assert_eq!(tg.grads.len(), spec.params.len(), "every param is trained");
            let states = random_states(&mut rng, tg);
            let ad = ad_grads(tg, &params, &states, &s);
            assert_close(&format!("{} graph {i}", spec.name), &ad, &fd);
            // The training graph's loss is the forward loss.
            let b = Bindings { inputs: &s.inputs, labels: &s.labels, params: &params, states: &states };
            let l = eval(&tg.graph, &b).expect("evaluates").get(tg.loss).expect("loss").data[0];
            assert!(close(l, loss_at(&fwd, &params, &s)));
        }
        done += 1;
    }
}

fn always(_: &Forward, _: &[Tensor], _: &Sample) -> bool {
    true
}

const SGD: Optimizer = Optimizer::Sgd { lr: 0.3 };
const NESTEROV: Optimizer = Optimizer::Nesterov { lr: 0.2, momentum: 0.9 };

#[test]
fn linear_heads_every_loss() {
    for (i, kind) in
        [LossKind::SoftmaxCrossEntropy, LossKind::SigmoidCrossEntropy, LossKind::Mse].into_iter().enumerate()
    {
        for bias in [false, true] {
            check_gradients(&linear(kind, SGD, 6, 4, bias), 10 + i as u64, 5, always);
        }
    }
}

#[test]
fn relu_mlp_away_from_kinks() {
    let spec = mlp(SGD, 5, 7, 3);
    let away = |fwd: &Forward, params: &[Tensor], s: &Sample| {
        let b = Bindings { inputs: &s.inputs, labels: &s.labels, params, states: &[] };
        let vals = eval(&fwd.graph, &b).expect("evaluates");
        let pre = vals.get(fwd.lets[0]).expect("pre");
        pre.data.iter().all(|v| v.abs() >= 1e-4)
    };
    check_gradients(&spec, 20, 8, away);
}

#[test]
fn smooth_units_and_user_functions() {
    check_gradients(&smooth(SGD, 4, 5, 3), 30, 6, always);
}

#[test]
fn nesterov_graphs_have_the_same_gradients() {
    check_gradients(&linear(LossKind::SoftmaxCrossEntropy, NESTEROV, 5, 3, true), 40, 3, always);
    check_gradients(&smooth(NESTEROV, 3, 4, 2), 41, 3, always);
}

/// One step over a batch: new params (and momentum) equal the optimizer formula
/// applied to the mean finite-difference gradient.
fn check_step(spec: &Spec, seed: u64) {
    let mut rng = Rng::new(seed);
    let (fwd, tgs) = graphs(spec);
    let params = random_params(&mut rng, spec, 0.8);
    let batch: Vec<Sample> = (0..spec.train.batch).map(|_| random_sample(&mut rng, spec)).collect();
    let bsz = batch.len() as f64;

    let mut mean: Vec<Tensor> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    let mut mean_loss = 0.0;
    for s in &batch {
        for (m, g) in mean.iter_mut().zip(fd_grads(&fwd, &params, s)) {
            m.data.iter_mut().zip(&g.data).for_each(|(m, g)| *m += g / bsz);
        }
        mean_loss += loss_at(&fwd, &params, s) / bsz;
    }

    for tg in &tgs {
        let states = random_states(&mut rng, tg);
        let r = run_step(tg, &batch, &params, &states).expect("step runs");
        assert!(close(r.loss, mean_loss), "mean loss {} vs {mean_loss}", r.loss);
        match spec.train.optimizer {
            Optimizer::Sgd { lr } => {
                for p in 0..params.len() {
                    for k in 0..params[p].data.len() {
                        let want = params[p].data[k] - lr * mean[p].data[k];
                        assert!(close(r.params[p].data[k], want), "sgd param {p}[{k}]");
                    }
                }
            }
            Optimizer::Nesterov { lr, momentum } => {
                assert_eq!(tg.graph.states.len(), params.len(), "one momentum buffer per param");
                for (si, decl) in tg.graph.states.iter().enumerate() {
                    let p = decl.param.index();
                    for k in 0..params[p].data.len() {
                        let g = mean[p].data[k];
                        let buf = momentum * states[si].data[k] + g;
                        let want = params[p].data[k] - lr * (g + momentum * buf);
                        assert!(close(r.states[si].data[k], buf), "momentum {si}[{k}]");
                        assert!(close(r.params[p].data[k], want), "nesterov param {p}[{k}]");
                    }
                }
            }
        }
    }
}

#[test]
fn sgd_step_is_the_formula() {
    check_step(&linear(LossKind::SoftmaxCrossEntropy, SGD, 6, 4, true), 50);
    check_step(&smooth(SGD, 4, 3, 2), 51);
}

#[test]
fn nesterov_step_is_the_formula() {
    check_step(&linear(LossKind::Mse, NESTEROV, 6, 4, true), 60);
    check_step(&smooth(NESTEROV, 4, 3, 2), 61);
}
