//! Algebraic simplification of the training graph, run to a fixed point:
//!
//! * constant folding: `Scale(a)(Scale(b)(x)) → Scale(ab)(x)`, `Scale(a)(Const c) →
//!   Const(ac)`, `Neg(Const c) → Const(-c)`, `Mul(Const c, x) → Scale(c)(x)`, and a
//!   negation next to a scale joins it (`Scale(a)(Neg x)`, `Neg(Scale(a) x)` →
//!   `Scale(-a)(x)`);
//! * `Scale(1)(x) → x`;
//! * common-subexpression elimination of identical pure nodes;
//! * dead-code elimination (what neither an update nor the loss needs).
//!
//! Every rewrite keeps the real-number meaning; node ids held by the
//! [`TrainGraph`] are redirected when a node is replaced.

use super::autodiff::{remove_dead, TrainGraph};
use super::{NodeId, Op, Phase};
use std::collections::HashMap;

/// Simplify until nothing changes; returns the number of rewrites.
pub fn simplify(tg: &mut TrainGraph) -> usize {
    let mut total = 0;
    loop {
        let before = tg.graph.len();
        let n = fold(tg) + cse(tg);
        remove_dead(tg);
        let removed = before.saturating_sub(tg.graph.len());
        if n == 0 {
            return total + removed;
        }
        total += n;
    }
}

fn konst(tg: &TrainGraph, n: NodeId) -> Option<f64> {
    match tg.graph.node(n).op {
        Op::Const(c) => Some(c),
        _ => None,
    }
}

/// Local rewrites; each is applied at most once per node per round.
fn fold(tg: &mut TrainGraph) -> usize {
    let mut count = 0;
    for n in tg.graph.node_ids() {
        if !tg.graph.contains(n) {
            continue;
        }
        let ops = tg.graph.operands(n);
        match tg.graph.node(n).op.clone() {
            Op::Scale(1.0) => {
                replace(tg, n, ops[0]);
                count += 1;
            }
            Op::Scale(a) => {
                let inner = tg.graph.node(ops[0]).op.clone();
                match inner {
                    Op::Scale(b) => {
                        let x = tg.graph.operands(ops[0])[0];
                        tg.graph.node_mut(n).op = Op::Scale(a * b);
                        tg.graph.set_operands(n, &[x]);
                        count += 1;
                    }
                    Op::Const(c) => {
                        to_const(tg, n, a * c);
                        count += 1;
                    }
                    Op::Neg => {
                        let x = tg.graph.operands(ops[0])[0];
                        tg.graph.node_mut(n).op = Op::Scale(-a);
                        tg.graph.set_operands(n, &[x]);
                        count += 1;
                    }
                    _ => {}
                }
            }
            Op::Neg => match tg.graph.node(ops[0]).op {
                Op::Const(c) => {
                    to_const(tg, n, -c);
                    count += 1;
                }
                Op::Scale(c) => {
                    let x = tg.graph.operands(ops[0])[0];
                    tg.graph.node_mut(n).op = Op::Scale(-c);
                    tg.graph.set_operands(n, &[x]);
                    count += 1;
                }
                _ => {}
            },
            Op::Mul => {
                let shape = tg.graph.node(n).shape.clone();
                for (k, x) in [(ops[0], ops[1]), (ops[1], ops[0])] {
                    if let (Some(c), true) = (konst(tg, k), *tg.graph.shape(x) == shape) {
                        tg.graph.node_mut(n).op = Op::Scale(c);
                        tg.graph.set_operands(n, &[x]);
                        count += 1;
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    count
}

/// Turn `n` into a constant leaf (constants are global).
fn to_const(tg: &mut TrainGraph, n: NodeId, c: f64) {
    let node = tg.graph.node_mut(n);
    node.op = Op::Const(c);
    node.phase = Phase::Global;
    tg.graph.set_operands(n, &[]);
}

/// Replace `old` by `new` everywhere and drop `old`; a name moves to an unnamed survivor.
fn replace(tg: &mut TrainGraph, old: NodeId, new: NodeId) {
    if tg.graph.node(new).name.is_none() {
        let name = tg.graph.node(old).name.clone();
        tg.graph.node_mut(new).name = name;
    }
    tg.graph.replace_uses(old, new);
    tg.remap(old, new);
    tg.graph.remove(old);
}

/// Merge nodes with the same op, operands, shape and phase into the first one.
fn cse(tg: &mut TrainGraph) -> usize {
    let Ok(order) = tg.graph.topo() else { return 0 };
    let mut seen: HashMap<String, NodeId> = HashMap::new();
    let mut count = 0;
    for n in order {
        let node = tg.graph.node(n);
        // Leaves other than constants are unique by construction; updates are sinks.
        if matches!(node.op, Op::Input(_) | Op::Label(_) | Op::Param(_) | Op::State(_) | Op::Update(_)) {
            continue;
        }
        // `{:?}` of an `Op` spells constants exactly (shortest round-trip form).
        let key = format!("{:?} {:?} {:?} {:?}", node.op, tg.graph.operands(n), node.shape, node.phase);
        match seen.get(&key) {
            Some(&first) => {
                replace(tg, n, first);
                count += 1;
            }
            None => {
                seen.insert(key, n);
            }
        }
    }
    count
}
