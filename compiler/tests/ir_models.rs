//! The shipped example models, through the real checker and the IR pipeline:
//! every pass output verifies and the gradients match finite differences.

mod ir_support;

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::diag::has_errors;
use blindtuner_compiler::ir::build::Forward;
use blindtuner_compiler::ir::interp::{eval, Bindings, Sample, Tensor};
use blindtuner_compiler::ir::print::print_train;
use blindtuner_compiler::ir::verify::verify;
use blindtuner_compiler::ir::Op;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::spec::{Builtin, Spec};
use ir_support::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Every construct the IR supports, in source form.
const EVERYTHING: &str = "
fn hswish(t) = t * relu(t + 3) / 6
fn soft(a, b) = a * sigmoid(b) - exp(a) / (2 + b * b)
fn bump(t) = table [0, 0.5, 1, 0.25] over [-2, 2]
model everything {
  dim d = 6
  dim h = 4
  dim k = 3
  input  x  : fixed[d] in [-1, 1]
  label  y  : onehot[k]
  param  W1 : fixed[h, d] = normal(0.5)
  param  b1 : fixed[h]    = zeros
  param  W2 : fixed[k, h] = normal(0.5)
  z1   = W1 @ x + b1
  a1   = hswish(z1) + soft(tanh(z1), z1) - bump(z1) * 0.5 + sum(exp(z1 / 4)) / 8
  z    = W2 @ a1
  loss = mse(z, y)
}
train everything {
  optimizer = nesterov(lr = 0.1, momentum = 0.9)
  batch = 4
}
";

fn check(src: &str, what: &str) -> Spec {
    let (spec, diags) = check_source(src, &BTreeMap::new());
    assert!(!has_errors(&diags), "{what}: {diags:#?}");
    spec.unwrap_or_else(|| panic!("{what}: no spec"))
}

fn models() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("models directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "bt"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("readable model")))
        .collect();
    out.sort();
    out.push(("everything".into(), EVERYTHING.into()));
    out
}

/// No relu input (including the one inside `hswish`) within 1e-4 of its kink.
fn away_from_kinks(fwd: &Forward, params: &[Tensor], s: &Sample) -> bool {
    let b = Bindings { inputs: &s.inputs, labels: &s.labels, params, states: &[] };
    let vals = eval(&fwd.graph, &b).expect("evaluates");
    fwd.graph.node_ids().into_iter().all(|n| {
        let g = &fwd.graph;
        let kinks: &[f64] = match g.node(n).op {
            Op::Unary(Builtin::Relu) => &[0.0],
            Op::Call(_) => &[-3.0, -2.0, -2.0 / 3.0, 2.0 / 3.0, 2.0],
            _ => return true,
        };
        let arg = vals.get(g.operands(n)[0]).expect("operand value");
        arg.data.iter().all(|v| kinks.iter().all(|k| (v - k).abs() >= 1e-4))
    })
}

#[test]
fn example_models_verify_and_differentiate() {
    let mut rng = Rng::new(7);
    for (name, src) in models() {
        let spec = check(&src, &name);
        for stop in ["build", "autodiff", "simplify"] {
            let ctx = pipeline::run(spec.clone(), Some(stop)).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
            assert_eq!(verify(ctx.graph().expect("graph")), Ok(()), "{name} after {stop}");
        }
        let ctx = pipeline::run(spec.clone(), Some("simplify")).expect("pipeline");
        let (fwd, tg) = (ctx.forward.expect("forward"), ctx.train.expect("train"));
        assert_eq!(tg.grads.len(), spec.params.len(), "{name}: every param trained");
        let mut checked = 0;
        for _ in 0..200 {
            let params = random_params(&mut rng, &spec, 0.5);
            let s = random_sample(&mut rng, &spec);
            if !away_from_kinks(&fwd, &params, &s) {
                continue;
            }
            let states: Vec<Tensor> = tg.graph.states.iter().map(|d| Tensor::zeros(&d.shape)).collect();
            assert_close(&name, &ad_grads(&tg, &params, &states, &s), &fd_grads(&fwd, &params, &s));
            checked += 1;
            if checked == 2 {
                break;
            }
        }
        assert_eq!(checked, 2, "{name}: samples away from kinks");
    }
}

#[test]
fn everything_training_graph_text() {
    let ctx = pipeline::run(check(EVERYTHING, "everything"), Some("simplify")).expect("pipeline");
    insta::assert_snapshot!(print_train(&ctx.train.expect("train"), Some(EVERYTHING)));
}
