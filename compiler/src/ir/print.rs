//! Stable text form of a graph, one line per node (Cranelift style):
//!
//! ```text
//! n12 = matmul n3, n7 : [5] @sample  # z  (9:8)
//! ```
//!
//! Nodes come in topological order, ties broken by id, so the text only changes
//! when the graph does. With the source text, spans print as `line:col`; without,
//! as byte ranges.

use super::autodiff::TrainGraph;
use super::{Graph, NodeId, Op, Phase};
use blindtuner_grammar::ast::Span;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write;

/// Topological order with the smallest ready id first (a cycle's nodes come last,
/// by id, so a broken graph still prints).
pub fn stable_order(graph: &Graph) -> Vec<NodeId> {
    let ids = graph.node_ids();
    let size = ids.iter().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut pending = vec![0usize; size];
    let mut ready = BinaryHeap::new();
    for &n in &ids {
        pending[n.index()] = graph.operands(n).len();
        if pending[n.index()] == 0 {
            ready.push(Reverse(n));
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    let mut done = vec![false; size];
    while let Some(Reverse(n)) = ready.pop() {
        out.push(n);
        done[n.index()] = true;
        for u in graph.users(n) {
            pending[u.index()] -= 1;
            if pending[u.index()] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    out.extend(ids.into_iter().filter(|n| !done[n.index()]));
    out
}

/// The op as printed: user functions by name.
pub fn op_text(graph: &Graph, op: &Op) -> String {
    let fname = |f: usize| graph.funcs.get(f).map_or_else(|| format!("fn#{f}"), |d| d.name.clone());
    match op {
        Op::Call(f) => format!("call {}", fname(f.index())),
        Op::CallDeriv(f, i) => format!("call {}'[{i}]", fname(f.index())),
        op => op.mnemonic(),
    }
}

pub fn phase_text(p: Phase) -> &'static str {
    match p {
        Phase::Sample => "sample",
        Phase::Step => "step",
        Phase::Global => "global",
    }
}

/// `line:col` (1-based) of a span's start in `source`, or the byte range.
pub fn span_text(span: Span, source: Option<&str>) -> String {
    match source {
        Some(src) if span.start <= src.len() => {
            let before = &src[..span.start];
            let line = before.matches('\n').count() + 1;
            let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
            format!("{line}:{col}")
        }
        _ => format!("{}..{}", span.start, span.end),
    }
}

pub fn print(graph: &Graph, source: Option<&str>) -> String {
    let mut out = String::new();
    for f in &graph.funcs {
        let _ = writeln!(out, "fn {}({})", f.name, f.params.join(", "));
    }
    for (i, s) in graph.states.iter().enumerate() {
        let _ = writeln!(out, "state#{i} : {:?}  # {} (param#{})", s.shape, s.name, s.param.0);
    }
    for n in stable_order(graph) {
        let node = graph.node(n);
        let _ = write!(out, "n{} = {}", n.0, op_text(graph, &node.op));
        let ops = graph.operands(n);
        for (i, o) in ops.iter().enumerate() {
            let _ = write!(out, "{}n{}", if i == 0 { " " } else { ", " }, o.0);
        }
        let _ = write!(out, " : {:?} @{}", node.shape, phase_text(node.phase));
        if let Some(name) = &node.name {
            let _ = write!(out, "  # {name}");
        }
        let _ = writeln!(out, "  ({})", span_text(node.span, source));
    }
    out
}

/// A training graph: a header naming the roles (loss, logits, gradients), then the nodes.
pub fn print_train(tg: &TrainGraph, source: Option<&str>) -> String {
    let mut out = format!("; training step, batch {}\n; loss n{}, logits n{}\n", tg.batch, tg.loss.0, tg.logits.0);
    for (p, g) in &tg.grads {
        let name = tg.graph.node(tg.params[p.index()]).name.clone().unwrap_or_default();
        let _ = writeln!(out, "; grad param#{} ({name}) = n{}", p.0, g.0);
    }
    out.push_str(&print(&tg.graph, source));
    out
}
