//! Text and dot forms of the IR.

mod ir_support;

use blindtuner_compiler::ir::{dot::dot, print::print, print::print_train};
use blindtuner_compiler::pipeline;
use blindtuner_compiler::spec::{LossKind, Optimizer};
use ir_support::*;

#[test]
fn linear_softmax_training_graph() {
    let spec = linear(LossKind::SoftmaxCrossEntropy, Optimizer::Sgd { lr: 0.5 }, 4, 3, true);
    let ctx = pipeline::run(spec, Some("simplify")).expect("pipeline");
    let tg = ctx.train.expect("training graph");
    insta::assert_snapshot!(print_train(&tg, None));
}

#[test]
fn nesterov_training_graph() {
    let spec = linear(LossKind::Mse, Optimizer::Nesterov { lr: 0.1, momentum: 0.9 }, 4, 3, false);
    let ctx = pipeline::run(spec, Some("simplify")).expect("pipeline");
    insta::assert_snapshot!(print(&ctx.train.expect("training graph").graph, None));
}

#[test]
fn print_uses_line_and_column_with_source() {
    let spec = linear(LossKind::Mse, Optimizer::Sgd { lr: 0.5 }, 2, 2, false);
    let ctx = pipeline::run(spec, Some("build")).expect("pipeline");
    // Spans in the synthetic spec start at byte 10, 20, ...: put a newline before.
    let source = format!("{}\n{}", "x".repeat(14), "y".repeat(200));
    let text = print(&ctx.forward.expect("forward").graph, Some(&source));
    assert!(text.contains("(1:11)"), "{text}");
    assert!(text.contains("(2:6)"), "{text}");
}

#[test]
fn dot_clusters_by_phase() {
    let spec = mlp(Optimizer::Sgd { lr: 0.5 }, 3, 2, 2);
    let ctx = pipeline::run(spec, Some("simplify")).expect("pipeline");
    let tg = ctx.train.expect("training graph");
    let d = dot(&tg.graph);
    for c in ["cluster_global", "cluster_sample", "cluster_step"] {
        assert!(d.contains(c), "{c} missing");
    }
    // Every node is declared exactly once and every edge appears.
    for n in tg.graph.node_ids() {
        assert_eq!(d.matches(&format!("  n{} [label=", n.0)).count(), 1);
        for o in tg.graph.operands(n) {
            assert!(d.contains(&format!("n{} -> n{}", o.0, n.0)));
        }
    }
}
