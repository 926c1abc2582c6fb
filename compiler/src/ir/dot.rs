//! Graphviz rendering of a graph, one cluster per phase (global values, the
//! per-sample program, the per-step update).

use super::print::{op_text, phase_text, stable_order};
use super::{Graph, Phase};
use std::fmt::Write;

pub fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph ir {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    let order = stable_order(graph);
    for phase in [Phase::Global, Phase::Sample, Phase::Step] {
        let name = phase_text(phase);
        let _ = writeln!(out, "  subgraph cluster_{name} {{\n    label=\"{name}\";");
        for &n in order.iter().filter(|&&n| graph.node(n).phase == phase) {
            let node = graph.node(n);
            let mut label = format!("n{}: {}\\n{:?}", n.0, op_text(graph, &node.op), node.shape);
            if let Some(name) = &node.name {
                label.push_str("\\n");
                label.push_str(name);
            }
            let _ = writeln!(out, "    n{} [label=\"{}\"];", n.0, escape(&label));
        }
        out.push_str("  }\n");
    }
    for &n in &order {
        let ops = graph.operands(n);
        for (i, o) in ops.iter().enumerate() {
            if ops.len() > 1 {
                let _ = writeln!(out, "  n{} -> n{} [label=\"{i}\"];", o.0, n.0);
            } else {
                let _ = writeln!(out, "  n{} -> n{};", o.0, n.0);
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Escape a label for a double-quoted dot string (keeping our `\n` line breaks).
fn escape(s: &str) -> String {
    s.replace('"', "\\\"")
}
