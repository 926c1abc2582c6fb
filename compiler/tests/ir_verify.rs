//! The verifier rejects broken graphs and accepts every pass output.

mod ir_support;

use blindtuner_compiler::ir::autodiff::training_step;
use blindtuner_compiler::ir::build::build_forward;
use blindtuner_compiler::ir::verify::verify;
use blindtuner_compiler::ir::{Graph, Node, NodeId, Op, Phase, UpdateTarget};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::spec::{LossKind, Optimizer, ParamId, Spec};
use blindtuner_grammar::ast::Span;
use ir_support::*;

const SGD: Optimizer = Optimizer::Sgd { lr: 0.5 };
const NESTEROV: Optimizer = Optimizer::Nesterov { lr: 0.1, momentum: 0.9 };

fn specs() -> Vec<Spec> {
    let mut v = Vec::new();
    for kind in [LossKind::SoftmaxCrossEntropy, LossKind::SigmoidCrossEntropy, LossKind::Mse] {
        for opt in [SGD, NESTEROV] {
            v.push(linear(kind, opt, 8, 3, true));
        }
    }
    v.push(linear(LossKind::Mse, SGD, 8, 3, false));
    v.push(mlp(NESTEROV, 6, 4, 3));
    v.push(smooth(SGD, 4, 3, 2));
    v.push(smooth(NESTEROV, 4, 3, 2));
    v
}

fn leaf(g: &mut Graph, op: Op, shape: &[usize], phase: Phase) -> NodeId {
    g.add(Node::new(op, shape.to_vec(), phase, Span::default()), &[])
}

fn node(g: &mut Graph, op: Op, shape: &[usize], phase: Phase, operands: &[NodeId]) -> NodeId {
    g.add(Node::new(op, shape.to_vec(), phase, Span::default()), operands)
}

/// `W @ x` with W `[3, 4]` and x `[4]`.
fn small() -> (Graph, NodeId, NodeId, NodeId) {
    let mut g = Graph::new();
    let w = leaf(&mut g, Op::Param(ParamId(0)), &[3, 4], Phase::Global);
    let x = leaf(&mut g, Op::Input(blindtuner_compiler::spec::InputId(0)), &[4], Phase::Sample);
    let z = node(&mut g, Op::MatMul, &[3], Phase::Sample, &[w, x]);
    (g, w, x, z)
}

fn errors(g: &Graph) -> Vec<String> {
    verify(g).err().unwrap_or_default().into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn a_well_formed_graph_verifies() {
    let (g, ..) = small();
    assert_eq!(verify(&g), Ok(()));
}

#[test]
fn wrong_arity_is_rejected() {
    let (mut g, _, x, z) = small();
    let bad = node(&mut g, Op::Add, &[3], Phase::Sample, &[z]);
    let errs = verify(&g).expect_err("an add with one operand");
    assert!(errs.iter().any(|e| e.node == Some(bad) && e.message.contains("2 operand")), "{errs:?}");
    let _ = x;
}

#[test]
fn wrong_shape_is_rejected() {
    let (mut g, _, x, z) = small();
    // [3] + [4]: operands that do not broadcast.
    let bad = node(&mut g, Op::Add, &[3], Phase::Sample, &[z, x]);
    assert!(verify(&g).expect_err("mismatched add").iter().any(|e| e.node == Some(bad)));

    // A node whose declared shape is not what its op computes.
    let (mut g, w, x, _) = small();
    let bad = node(&mut g, Op::MatMul, &[4], Phase::Sample, &[w, x]);
    let errs = errors(&g);
    assert!(errs.iter().any(|e| e.starts_with(&format!("n{}:", bad.0)) && e.contains("[3]")), "{errs:?}");
}

#[test]
fn cycle_is_rejected() {
    let (mut g, _, _, z) = small();
    let a = node(&mut g, Op::Neg, &[3], Phase::Sample, &[z]);
    let b = node(&mut g, Op::Neg, &[3], Phase::Sample, &[a]);
    // Make `a` read `b`: a -> b -> a.
    g.set_operands(a, &[b]);
    let errs = errors(&g);
    assert!(errs.iter().any(|e| e.contains("cycle")), "{errs:?}");
}

#[test]
fn phase_rules_are_enforced() {
    // A step node reading a per-sample value without BatchSum.
    let (mut g, w, _, z) = small();
    let _ = node(&mut g, Op::Scale(2.0), &[3], Phase::Step, &[z]);
    assert!(errors(&g).iter().any(|e| e.contains("Sample")));

    // A global node reading a per-sample value.
    let (mut g, _, _, z) = small();
    let _ = node(&mut g, Op::Neg, &[3], Phase::Global, &[z]);
    assert!(verify(&g).is_err());

    // Two updates of the same param.
    let (mut g, w2, ..) = small();
    for _ in 0..2 {
        let _ = node(&mut g, Op::Update(UpdateTarget::Param(ParamId(0))), &[3, 4], Phase::Step, &[w2]);
    }
    assert!(errors(&g).iter().any(|e| e.contains("second update")));
    let _ = w;
}

#[test]
fn every_pass_output_verifies() {
    for spec in specs() {
        let fwd = build_forward(&spec);
        assert_eq!(verify(&fwd.graph), Ok(()), "forward graph of {}", spec.name);
        let tg = training_step(&fwd, &spec).expect("autodiff");
        assert_eq!(verify(&tg.graph), Ok(()), "training graph of {}", spec.name);
        for stop in ["build", "autodiff", "simplify"] {
            let ctx = pipeline::run(spec.clone(), Some(stop)).expect("pipeline runs");
            let g = ctx.graph().expect("a graph");
            assert_eq!(verify(g), Ok(()), "{} after {stop}", spec.name);
            assert_eq!(ctx.train.is_some(), stop != "build");
        }
    }
}

#[test]
fn training_graph_has_the_canonical_shape() {
    let spec = linear(LossKind::SoftmaxCrossEntropy, SGD, 8, 3, true);
    let fwd = build_forward(&spec);
    let tg = training_step(&fwd, &spec).expect("autodiff");
    let g = &tg.graph;
    // logits: z; its gradient is LossGrad(z, y), shared by b.
    assert!(matches!(g.node(tg.loss).op, Op::Loss(LossKind::SoftmaxCrossEntropy)));
    assert_eq!(g.operands(tg.loss)[0], tg.logits);
    let (_, gw) = tg.grads[0];
    let (_, gb) = tg.grads[1];
    assert!(matches!(g.node(gb).op, Op::LossGrad(LossKind::SoftmaxCrossEntropy)));
    assert_eq!(g.node(gw).op, Op::Outer);
    assert_eq!(g.operands(gw), vec![gb, tg.inputs[0]]);
    // Update(W)(Sub(W, Scale(lr/B)(BatchSum(dW)))).
    let upd = tg.updates[0];
    let sub = g.operands(upd)[0];
    assert_eq!(g.node(sub).op, Op::Sub);
    let [p, scale] = g.operands(sub)[..] else { panic!("sub has two operands") };
    assert_eq!(p, tg.params[0]);
    assert_eq!(g.node(scale).op, Op::Scale(0.5 / spec.train.batch as f64));
    let sum = g.operands(scale)[0];
    assert_eq!(g.node(sum).op, Op::BatchSum);
    assert_eq!(g.operands(sum), vec![gw]);
    // Every backward node carries a real span.
    assert!(g.node_ids().iter().all(|&n| g.node(n).span != Span::default()));
    // No dead nodes: everything but leaves has a user or is an update/loss.
    for n in g.node_ids() {
        let op = &g.node(n).op;
        let leaf = matches!(op, Op::Input(_) | Op::Label(_) | Op::Param(_) | Op::State(_));
        assert!(leaf || !g.users(n).is_empty() || matches!(op, Op::Update(_)) || n == tg.loss, "dead n{}", n.0);
    }
}

#[test]
fn simplify_folds_scales_and_merges() {
    let spec = smooth(SGD, 4, 3, 2);
    let raw = {
        let fwd = build_forward(&spec);
        training_step(&fwd, &spec).expect("autodiff")
    };
    let ctx = pipeline::run(spec, Some("simplify")).expect("pipeline");
    let tg = ctx.train.expect("train graph");
    assert!(ctx.simplified > 0);
    assert!(tg.graph.len() < raw.graph.len(), "{} !< {}", tg.graph.len(), raw.graph.len());
    for n in tg.graph.node_ids() {
        let node = tg.graph.node(n);
        assert_ne!(node.op, Op::Scale(1.0), "scale 1 left at n{}", n.0);
        if let Op::Scale(_) = node.op {
            let inner = tg.graph.operands(n)[0];
            assert!(!matches!(tg.graph.node(inner).op, Op::Scale(_) | Op::Const(_)), "unfolded n{}", n.0);
        }
    }
    // No two identical pure nodes remain.
    let mut keys = std::collections::HashSet::new();
    for n in tg.graph.node_ids() {
        let node = tg.graph.node(n);
        if matches!(node.op, Op::Update(_)) {
            continue;
        }
        let key = format!("{:?} {:?} {:?}", node.op, tg.graph.operands(n), node.shape);
        assert!(keys.insert(key.clone()), "duplicate {key}");
    }
}

#[test]
fn unknown_pass_lists_the_passes() {
    let spec = linear(LossKind::Mse, SGD, 2, 2, false);
    let errs = pipeline::run(spec, Some("bogus")).err().expect("unknown pass is an error");
    assert_eq!(errs[0].code, pipeline::E_UNKNOWN_PASS);
    assert!(errs[0].notes.iter().any(|n| n.contains("build, autodiff, simplify")), "{:?}", errs[0].notes);
}

#[test]
fn a_loss_without_a_loss_function_is_reported() {
    // loss = sum(W @ x): differentiable but there are no logits.
    let mut s = SpecBuilder::new("nologits", SGD, 2);
    let x = s.input("x", 3);
    let w = s.param("W", &[2, 3]);
    let z = s.matmul(w, x);
    let l = s.sum(z);
    let spec = s.loss(l);
    let errs = pipeline::run(spec, Some("simplify")).err().expect("rejected");
    assert_eq!(errs[0].code, blindtuner_compiler::ir::autodiff::E_NO_LOSS_FN);
    assert!(!errs[0].labels.is_empty());
}

#[test]
fn unused_param_warns() {
    let mut s = SpecBuilder::new("unused", SGD, 2);
    let x = s.input("x", 3);
    let y = s.label("y", 2);
    let w = s.param("W", &[2, 3]);
    let v = s.param("V", &[2]);
    let z = s.matmul(w, x);
    // `V` is used, but only by a let the loss ignores.
    let vz = s.add(z.clone(), v);
    let _ = s.let_("unused", vz);
    let l = s.loss_fn(LossKind::Mse, z, y);
    let spec = s.loss(l);
    let ctx = pipeline::run(spec, Some("simplify")).expect("ok");
    assert_eq!(ctx.notes.len(), 1);
    assert_eq!(ctx.notes[0].code, pipeline::W_UNTRAINED_PARAM);
    assert_eq!(ctx.train.expect("tg").updates.len(), 1);
}
