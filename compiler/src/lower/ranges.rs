//! Interval analysis: the real range of every value the plan stores or feeds to a
//! lookup table.
//!
//! Proven: client inputs (declared range, enforced by clamping), constants, and
//! what follows from them. Assumed: params (declared `range`, or the default weight
//! bound) and therefore everything computed from params during training — logits,
//! pre-activations, back-propagated gradients. A `let` with a declared range pins the
//! assumption for its value. Every assumption is recorded with the span of the value
//! and a reason; the clear backend counts its violations.

use super::select::{LayerInput, Net};
use super::LowerOptions;
use crate::ir::autodiff::TrainGraph;
use crate::ir::NodeId;
use crate::plan::Assumption;
use crate::spec::Spec;

/// A real interval and whether it is proven.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    pub proven: bool,
}

impl Interval {
    pub fn new(lo: f64, hi: f64, proven: bool) -> Interval {
        Interval { lo, hi, proven }
    }
    pub fn abs_max(&self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
    pub fn pair(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ranges {
    pub input: Interval,
    /// Per `ParamId` of the spec.
    pub params: Vec<Interval>,
    /// Per layer: the pre-activation / logits `z`.
    pub z: Vec<Interval>,
    /// Per layer: the layer's input (the data, or the activation of the previous `z`).
    pub v: Vec<Interval>,
    /// Per layer: bound of the back-propagated gradient `Wᵀ g` into this layer's input.
    pub backprop: Vec<Interval>,
    pub assumptions: Vec<Assumption>,
}

pub fn analyze(spec: &Spec, tg: &TrainGraph, net: &Net, opts: &LowerOptions) -> Ranges {
    let mut assumptions = Vec::new();
    let decl = &spec.inputs[net.input.index()];
    let input = Interval::new(decl.range.0, decl.range.1, true);
    let params: Vec<Interval> = spec
        .params
        .iter()
        .map(|p| match p.range {
            Some((lo, hi)) => {
                assumptions.push(Assumption {
                    what: p.name.clone(),
                    range: (lo, hi),
                    reason: "declared `range` of the param (training may leave it)".into(),
                    span: p.span,
                });
                Interval::new(lo, hi, false)
            }
            None => {
                let w = opts.weight_bound;
                assumptions.push(Assumption {
                    what: p.name.clone(),
                    range: (-w, w),
                    reason: format!(
                        "default weight bound ±{w}: params change during training, their range cannot be proven"
                    ),
                    span: p.span,
                });
                Interval::new(-w, w, false)
            }
        })
        .collect();

    let mut z = Vec::new();
    let mut v = Vec::new();
    for layer in &net.layers {
        let vin = match layer.input {
            LayerInput::Data(_) => input,
            LayerInput::Act { f, .. } => {
                let prev: Interval = *z.last().unwrap_or(&input);
                let (a, b) = (f.eval(prev.lo), f.eval(prev.hi));
                Interval::new(a.min(b), a.max(b), prev.proven)
            }
        };
        v.push(vin);
        let w = params[layer.w.index()];
        // Σ_j W[r][j] v[j] + b[r], by interval arithmetic.
        let corners = [w.lo * vin.lo, w.lo * vin.hi, w.hi * vin.lo, w.hi * vin.hi];
        let (plo, phi) = corners.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &c| (a.0.min(c), a.1.max(c)));
        let n = layer.cols as f64;
        let (blo, bhi) = layer.b.map(|b| params[b.index()].pair()).unwrap_or((0.0, 0.0));
        let derived = Interval::new(n * plo + blo, n * phi + bhi, false);
        let node = tg.graph.node(layer.z);
        let name = node.name.clone().unwrap_or_else(|| format!("n{}", layer.z.0));
        let pinned = let_range(spec, tg, layer.z);
        let zi = match pinned {
            Some((lo, hi)) => {
                assumptions.push(Assumption {
                    what: name,
                    range: (lo, hi),
                    reason: "declared range of the value".into(),
                    span: node.span,
                });
                Interval::new(lo, hi, false)
            }
            None => {
                let a = opts.logit_bound;
                assumptions.push(Assumption {
                    what: name,
                    range: (-a, a),
                    reason: format!(
                        "default bound ±{a} for a lookup-table input computed from params (interval analysis gives [{:.3}, {:.3}])",
                        derived.lo, derived.hi
                    ),
                    span: node.span,
                });
                Interval::new(-a, a, false)
            }
        };
        z.push(zi);
    }
    let mut backprop = Vec::new();
    for (l, layer) in net.layers.iter().enumerate() {
        let bp = opts.backprop_bound;
        if l > 0 {
            let node = tg.graph.node(net.layers[l - 1].z);
            assumptions.push(Assumption {
                what: format!("gradient into {}", node.name.clone().unwrap_or_else(|| format!("n{}", layer.z.0))),
                range: (-bp, bp),
                reason: format!(
                    "default bound ±{bp} of a back-propagated gradient Wᵀg (depends on the trained weights)"
                ),
                span: node.span,
            });
        }
        backprop.push(Interval::new(-bp, bp, false));
    }
    Ranges { input, params, z, v, backprop, assumptions }
}

/// The declared range of the `let` bound to `node`, if any.
fn let_range(spec: &Spec, tg: &TrainGraph, node: NodeId) -> Option<(f64, f64)> {
    tg.lets.iter().zip(&spec.lets).find(|(n, _)| **n == Some(node)).and_then(|(_, l)| l.range)
}
