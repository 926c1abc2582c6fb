//! The IR verifier: checks the invariants documented in [`super`] after every pass.
//!
//! A failure is a compiler bug, never a user error: the pipeline renders it as an
//! internal-compiler-error diagnostic (code `ICE`).

use super::{Graph, NodeId, Op, Phase, UpdateTarget};
use crate::spec::Shape;
use std::collections::HashMap;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct VerifyError {
    /// The offending node (`None` for graph-level problems).
    pub node: Option<NodeId>,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(n) => write!(f, "n{}: {}", n.0, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Op {
    /// Result shape of this op applied to operands of the given shapes; `Err` says
    /// why the operands do not fit. Leaves have no inferable shape (`Ok(None)`): their
    /// shape is declared. User calls accept any number of operands here; their arity
    /// is checked against the function by [`verify`].
    pub fn infer_shape(&self, operands: &[&Shape]) -> Result<Option<Shape>, String> {
        let want = |n: usize| {
            if operands.len() == n {
                Ok(())
            } else {
                Err(format!("`{}` takes {n} operand(s), has {}", self.mnemonic(), operands.len()))
            }
        };
        let shape = match self {
            Op::Input(_) | Op::Label(_) | Op::Param(_) | Op::State(_) | Op::Const(_) => {
                want(0)?;
                return Ok(None);
            }
            Op::MatMul => {
                want(2)?;
                match (operands[0].as_slice(), operands[1].as_slice()) {
                    ([m, n], [n2]) if n == n2 => vec![*m],
                    ([m, n], [n2, p]) if n == n2 => vec![*m, *p],
                    (a, b) => return Err(format!("matmul of {a:?} and {b:?}")),
                }
            }
            Op::Transpose => {
                want(1)?;
                match operands[0].as_slice() {
                    [m, n] => vec![*n, *m],
                    a => return Err(format!("transpose of non-matrix {a:?}")),
                }
            }
            Op::Outer => {
                want(2)?;
                match (operands[0].as_slice(), operands[1].as_slice()) {
                    ([m], [n]) => vec![*m, *n],
                    (a, b) => return Err(format!("outer product of {a:?} and {b:?}")),
                }
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div => {
                want(2)?;
                broadcast(operands)?
            }
            Op::Call(_) | Op::CallDeriv(..) => {
                if operands.is_empty() {
                    return Err("user call without arguments".into());
                }
                broadcast(operands)?
            }
            Op::Neg | Op::Scale(_) | Op::Unary(_) | Op::UnaryDeriv(_) | Op::BatchSum | Op::Update(_) => {
                want(1)?;
                operands[0].clone()
            }
            Op::Sum => {
                want(1)?;
                vec![]
            }
            Op::Broadcast(s) => {
                want(1)?;
                if !operands[0].is_empty() {
                    return Err(format!("broadcast of non-scalar {:?}", operands[0]));
                }
                s.clone()
            }
            Op::Loss(_) | Op::LossGrad(_) => {
                want(2)?;
                if operands[0] != operands[1] || operands[0].len() != 1 {
                    return Err(format!("loss of logits {:?} and label {:?}", operands[0], operands[1]));
                }
                if matches!(self, Op::Loss(_)) {
                    vec![]
                } else {
                    operands[0].clone()
                }
            }
        };
        Ok(Some(shape))
    }
}

/// Elementwise result shape: all operands equal, scalars broadcast.
fn broadcast(operands: &[&Shape]) -> Result<Shape, String> {
    let mut out: &Shape = operands[0];
    for &s in &operands[1..] {
        if out.is_empty() {
            out = s;
        } else if !s.is_empty() && s != out {
            return Err(format!("elementwise operands {out:?} and {s:?}"));
        }
    }
    Ok(out.clone())
}

pub fn verify(graph: &Graph) -> Result<(), Vec<VerifyError>> {
    let mut errs = Vec::new();
    let mut err = |node: Option<NodeId>, message: String| errs.push(VerifyError { node, message });

    if let Err(n) = graph.topo() {
        err(Some(n), "the graph has a cycle through this node".into());
    }

    let mut targets: HashMap<UpdateTarget, NodeId> = HashMap::new();
    let mut param_shapes: HashMap<u32, &Shape> = HashMap::new();
    for id in graph.node_ids() {
        if let Op::Param(p) = graph.node(id).op {
            if param_shapes.insert(p.0, &graph.node(id).shape).is_some() {
                err(Some(id), format!("second leaf for param#{}", p.0));
            }
        }
    }

    for id in graph.node_ids() {
        let node = graph.node(id);

        // Operand edges: positions 0..k, each exactly once.
        let mut positions: Vec<u8> = {
            let pg = graph.petgraph();
            pg.edges_directed(petgraph::stable_graph::NodeIndex::new(id.index()), petgraph::Direction::Incoming)
                .map(|e| *e.weight())
                .collect()
        };
        positions.sort_unstable();
        if positions.iter().enumerate().any(|(i, &p)| p as usize != i) {
            err(Some(id), format!("operand positions {positions:?} are not 0..{}", positions.len()));
            continue;
        }
        let operands = graph.operands(id);
        let arity = match &node.op {
            Op::Call(f) | Op::CallDeriv(f, _) => match graph.funcs.get(f.index()) {
                Some(decl) => Some(decl.params.len()),
                None => {
                    err(Some(id), format!("call of unknown fn#{}", f.0));
                    None
                }
            },
            op => op.arity(),
        };
        if let Some(a) = arity {
            if a != operands.len() {
                err(Some(id), format!("`{}` takes {a} operand(s), has {}", node.op.mnemonic(), operands.len()));
                continue;
            }
        }
        if let Op::CallDeriv(f, i) = node.op {
            if i >= operands.len() {
                err(
                    Some(id),
                    format!("derivative w.r.t. parameter {i} of fn#{} with {} parameters", f.0, operands.len()),
                );
            }
        }

        // Shapes.
        let shapes: Vec<&Shape> = operands.iter().map(|&o| graph.shape(o)).collect();
        match node.op.infer_shape(&shapes) {
            Ok(Some(s)) if s != node.shape => {
                err(Some(id), format!("shape {:?}, but `{}` gives {s:?}", node.shape, node.op.mnemonic()))
            }
            Ok(_) => {}
            Err(m) => err(Some(id), m),
        }
        match node.op {
            Op::Const(_) if !node.shape.is_empty() => err(Some(id), "constant is not a scalar".into()),
            Op::State(s) => match graph.states.get(s.index()) {
                Some(decl) if decl.shape != node.shape => {
                    err(Some(id), format!("state shape {:?}, declared {:?}", node.shape, decl.shape))
                }
                Some(_) => {}
                None => err(Some(id), format!("undeclared state#{}", s.0)),
            },
            Op::Update(t) => {
                if let Some(first) = targets.insert(t, id) {
                    err(Some(id), format!("second update of the target already updated by n{}", first.0));
                }
                let target_shape = match t {
                    UpdateTarget::Param(p) => param_shapes.get(&p.0).copied(),
                    UpdateTarget::State(s) => graph.states.get(s.index()).map(|d| &d.shape),
                };
                match target_shape {
                    Some(s) if *s != node.shape => {
                        err(Some(id), format!("update of shape {:?} for a target of shape {s:?}", node.shape))
                    }
                    Some(_) => {}
                    None => err(Some(id), "update of an unknown target".into()),
                }
                if !graph.users(id).is_empty() {
                    err(Some(id), "an update is a sink but has users".into());
                }
            }
            _ => {}
        }

        // Phases.
        let ops: Vec<Phase> = operands.iter().map(|&o| graph.node(o).phase).collect();
        if let Some(m) = phase_error(&node.op, node.phase, &ops) {
            err(Some(id), m);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// The phase rules: leaves have fixed phases; `BatchSum` is the only way from
/// `Sample` to `Step`; global values depend only on global values.
fn phase_error(op: &Op, phase: Phase, operands: &[Phase]) -> Option<String> {
    let fixed = match op {
        Op::Input(_) | Op::Label(_) => Some(Phase::Sample),
        Op::Param(_) | Op::State(_) | Op::Const(_) => Some(Phase::Global),
        Op::BatchSum | Op::Update(_) => Some(Phase::Step),
        _ => None,
    };
    if let Some(f) = fixed {
        if f != phase {
            return Some(format!("`{}` must be {f:?}, is {phase:?}", op.mnemonic()));
        }
    }
    if let Op::BatchSum = op {
        return (operands != [Phase::Sample]).then(|| format!("batch_sum of a {:?} value", operands.first()));
    }
    let bad = |p: &Phase| match phase {
        Phase::Global => *p != Phase::Global,
        Phase::Sample => *p == Phase::Step,
        Phase::Step => *p == Phase::Sample,
    };
    operands.iter().find(|p| bad(p)).map(|p| format!("a {phase:?} node cannot use a {p:?} value"))
}
