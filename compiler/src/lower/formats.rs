//! Fixed-point formats: a torus scale (and last meaningful bit) for every value.
//!
//! The scales are derived backwards from what the encrypted arithmetic needs:
//! * a lookup table's input must fill its window: the logits' scale `zs` comes from
//!   the assumed range of the table input (the probe: `|z| ≤ 8` → `z·2^59`);
//! * a data product multiplies torus values by the integer features
//!   `xq = round(x·2^xs)`, so a weight matrix feeding `z` is stored at `2^(zs − xs)`;
//!   its `f` fractional bits set the last meaningful bit `lsb = zs − xs − f`;
//! * the error of a layer is produced directly in "weight units": `lr/B`, the input
//!   scale and the fixed point are folded into the table producing it, so the update is
//!   a plain subtraction (the error's scale is `zs − 2·xs`, real value `lr/B · g`);
//! * a server × server product multiplies the *integer* of one operand, which gets
//!   `product_bits` magnitude bits over its range, and the product must fit the torus.
//!
//! User pins (`format` on inputs and params) override the derived choice.

use super::ranges::{Interval, Ranges};
use super::select::{LayerInput, Net};
use super::{LowerOptions, E_NO_FORMAT};
use crate::diag::Diagnostic;
use crate::plan::Format;
use crate::spec::{LossKind, Spec};

/// Quantization of the client input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputFmt {
    pub scale: i32,
    pub qmin: i64,
    pub qmax: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerFmt {
    /// Fractional bits of the integer the layer's input enters products with.
    pub vs: i32,
    /// The weight tensor (with the bias column).
    pub w: Format,
    /// The pre-activation / logits.
    pub z: Format,
    /// The error `lr/B·g` of this layer's output, in weight-update units.
    pub e: Format,
    /// Multiplier of the error table: `lr/B · 2^(f − vs)` (error integer per unit of g).
    pub s: f64,
}

/// Formats of a hidden activation `h = f(z)` feeding the next layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActFmt {
    /// `h` as a product operand: `int(h) = round(h·2^vs)`.
    pub h: Format,
    /// The back-propagated gradient `lr/B · Wᵀg` (output of `MatVecT`).
    pub dh: Format,
    /// `f'(z)` table: value `round(f'·2^deriv_bits)`, output shift `deriv_shift`.
    pub deriv_bits: u32,
    pub deriv_shift: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Formats {
    pub input: InputFmt,
    pub layers: Vec<LayerFmt>,
    /// Per layer, for layers whose input is an activation.
    pub acts: Vec<Option<ActFmt>>,
    /// Scale of the quantity the loss-gradient tables read (the logits' scale).
    pub loss_window_scale: i32,
}

fn ceil_log2(x: f64) -> i32 {
    x.max(f64::MIN_POSITIVE).log2().ceil() as i32
}
fn floor_log2(x: f64) -> i32 {
    x.max(f64::MIN_POSITIVE).log2().floor() as i32
}

/// Bound of the loss gradient `dL/dz` per element.
pub fn loss_grad_bound(kind: LossKind, z: Interval, classes: usize) -> f64 {
    match kind {
        LossKind::SigmoidCrossEntropy | LossKind::SoftmaxCrossEntropy => 1.0,
        LossKind::Mse => 2.0 / classes as f64 * (z.abs_max() + 1.0),
    }
}

/// Half-torus scale whose window (`2^(63 − scale)` wide) holds `width` with 50 % margin.
pub fn half_torus_scale(width: f64) -> i32 {
    63 - ceil_log2(1.5 * width)
}

/// Scale of the logits for the loss-gradient tables.
pub fn loss_scale(kind: LossKind, z: Interval, classes: usize, opts: &LowerOptions) -> i32 {
    match kind {
        // Odd table on the full torus: the window is half of it (the probe's 2^59 for
        // |z| < 8); beyond the window the table mirrors (F(2H − z)), which pushes
        // logits further out, so by default the window gets `logit_headroom_bits` of
        // saturated margin over the assumed range.
        LossKind::SigmoidCrossEntropy => 62 - ceil_log2(z.abs_max()) - opts.logit_headroom_bits,
        // softplus(b − a) with b − a in ±(2A + ln(k − 1)): the window holds it exactly
        // (no headroom: every bit of scale halves the cells the failure budget allows).
        LossKind::SoftmaxCrossEntropy => {
            63 - ceil_log2(2.0 * (2.0 * z.abs_max() + (classes.saturating_sub(1).max(1) as f64).ln()))
        }
        // the table reads z − y.
        LossKind::Mse => half_torus_scale(z.width() + 1.0),
    }
}

pub fn choose(spec: &Spec, net: &Net, r: &Ranges, opts: &LowerOptions) -> Result<Formats, Vec<Diagnostic>> {
    let decl = &spec.inputs[net.input.index()];
    let input = match decl.format {
        Some(pin) => {
            let m = 1i64 << (pin.bits.clamp(1, 62) - 1);
            InputFmt { scale: pin.frac, qmin: -m, qmax: m - 1 }
        }
        None => {
            let m = (1i64 << (opts.input_bits - 1)) as f64;
            let scale = floor_log2(m / r.input.abs_max());
            let q = |x: f64| ((x * (scale as f64).exp2()).round()).clamp(-m, m) as i64;
            InputFmt { scale, qmin: q(r.input.lo), qmax: q(r.input.hi) }
        }
    };
    let classes = spec.labels[net.label.index()].classes;
    let pb = opts.product_bits as i32;
    let n = net.layers.len();
    let loss_window_scale = loss_scale(net.loss, r.z[n - 1], classes, opts);
    let log2_fold = net.fold.log2();
    let mut layers: Vec<LayerFmt> = Vec::with_capacity(n);
    let mut acts: Vec<Option<ActFmt>> = vec![None; n];
    let mut errs = Vec::new();
    // Input-side integer scales of each layer.
    let mut vs = Vec::with_capacity(n);
    for (l, layer) in net.layers.iter().enumerate() {
        vs.push(match layer.input {
            LayerInput::Data(_) => input.scale,
            LayerInput::Act { .. } => (pb - 1) - ceil_log2(r.v[l].abs_max()),
        });
    }
    for (l, layer) in net.layers.iter().enumerate() {
        let zs = if l + 1 == n { loss_window_scale } else { half_torus_scale(r.z[l].width()) };
        let s_w = zs - vs[l];
        let pin = spec.params[layer.w.index()].format.map(|p| p.frac);
        let f = pin.unwrap_or_else(|| opts.param_frac.max(opts.error_bits + vs[l] + (-log2_fold).ceil() as i32));
        let lsb = s_w - f;
        let wr = r.params[layer.w.index()];
        if lsb < 0 || s_w as f64 + wr.abs_max().log2() >= 63.0 {
            let p = &spec.params[layer.w.index()];
            errs.push(
                Diagnostic::error(E_NO_FORMAT, format!("no fixed-point format fits param `{}`", p.name))
                    .at(p.span, format!("needs scale 2^{s_w} with {f} fractional bits and range ±{}", wr.abs_max()))
                    .hint("declare a smaller `range` for the param or the logits, or fewer fractional bits"),
            );
            continue;
        }
        let w = Format { scale: s_w, lsb, range: wr.pair(), proven: false };
        let z = Format { scale: zs, lsb, range: r.z[l].pair(), proven: r.z[l].proven };
        let e_scale = s_w - vs[l];
        let s = net.fold * ((f - vs[l]) as f64).exp2();
        let gmax = if l + 1 == n { loss_grad_bound(net.loss, r.z[l], classes) } else { r.backprop[l + 1].abs_max() };
        // As the integer operand of `MatVecT` (when a hidden layer precedes): pb magnitude
        // bits, and `Wᵀ·int(e)` must not wrap.
        let e_lsb = if l > 0 {
            let frac_bits = (pb - 1) - ceil_log2(net.fold * gmax);
            let fit = 62 - s_w - ceil_log2(net.fold * r.backprop[l].abs_max());
            e_scale - frac_bits.min(fit)
        } else {
            lsb
        };
        let e = Format { scale: e_scale, lsb: e_lsb, range: (-net.fold * gmax, net.fold * gmax), proven: false };
        layers.push(LayerFmt { vs: vs[l], w, z, e, s });
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    for l in 1..n {
        let LayerInput::Act { .. } = net.layers[l].input else { continue };
        let hr = r.v[l];
        let h_lsb = 63 - pb;
        let h = Format { scale: vs[l] + h_lsb, lsb: h_lsb, range: hr.pair(), proven: hr.proven };
        // dh = Σ_r W[r][j]·int(e[r]): scale of W plus the fractional bits of int(e).
        let e = layers[l].e;
        let dh_scale = layers[l].w.scale + e.frac();
        let bound = net.fold * r.backprop[l].abs_max();
        let dh_frac = (pb - 1) - ceil_log2(bound);
        let dh = Format { scale: dh_scale, lsb: dh_scale - dh_frac, range: (-bound, bound), proven: false };
        // g = int(dh)·f'(z)·2^p must be in the previous layer's error format.
        let p = layers[l - 1].e.scale - dh_frac;
        if p < 0 || dh_frac > dh_scale {
            let span = spec.params[net.layers[l].w.index()].span;
            return Err(vec![Diagnostic::error(
                E_NO_FORMAT,
                "no fixed-point format fits the hidden layer's backward pass",
            )
            .at(span, format!("the gradient into this layer's input needs shift 2^{p}"))]);
        }
        let deriv_bits = p.min(8) as u32;
        acts[l] = Some(ActFmt { h, dh, deriv_bits, deriv_shift: p as u32 - deriv_bits });
    }
    Ok(Formats { input, layers, acts, loss_window_scale })
}
