//! Lowering: the training-step graph → the fixed-point [`Plan`](crate::plan::Plan).
//!
//! One pass per module, run in this order by [`lower`]:
//! * [`select`]: pattern → instruction shape. Recognises the network as a chain of dense
//!   layers (`W @ v (+ b)`, elementwise activations) ending in a loss, and the
//!   optimizer; anything else is a "not supported by the lowering yet" diagnostic;
//! * [`ranges`]: interval analysis from declared input ranges, param bounds and
//!   constants; what cannot be proven (weights, logits during training) is assumed and
//!   recorded as a [`plan::Assumption`](crate::plan::Assumption);
//! * [`formats`]: a fixed-point format per value, derived so that every lookup table's
//!   input fills its window and every product fits the torus;
//! * [`emit`]: instructions, lookup tables (built by [`lut`]), tensors, the plan.
//!
//! [`cost`] counts PBS and external products of a plan (pure, used by reports and the
//! runtime).

pub mod cost;
pub mod emit;
pub mod formats;
pub mod lut;
pub mod products;
pub mod ranges;
pub mod select;

use crate::diag::Diagnostic;
use crate::ir::autodiff::TrainGraph;
use crate::plan::Plan;
use crate::spec::Spec;

/// Diagnostic code: a construct the lowering does not handle (yet).
pub const E_UNSUPPORTED: &str = "E0701";
/// Diagnostic code: no fixed-point format fits (a range or scale out of the torus).
pub const E_NO_FORMAT: &str = "E0702";

/// Knobs of the lowering (defaults are the probe's verified choices).
#[derive(Clone, Debug, PartialEq)]
pub struct LowerOptions {
    /// GLWE polynomial size N (LUT resolution 2N).
    pub poly_size: usize,
    /// Magnitude bits of quantized client features: `|xq| ≤ 2^(input_bits-1)`.
    pub input_bits: u32,
    /// Magnitude bits of the integer operand of server × server products. 7: a hidden
    /// activation's integer then has the resolution of its table's cells (relu over
    /// `[-16, 16)` in 256 cells: 1/8, integers 0..64), where 8 only doubled every
    /// integer — and with it the rounding noise of a converted GGSW's external product
    /// (`noise::formulas::external_product_poly`, `‖μ‖²` and `(Σμ)²`). `simulate` on
    /// `mnist_vit_mlp`, 10 noise seeds: 0.839 ± 0.010 at 7 against 0.834 ± 0.013 at 8
    /// (h = 16), 0.832 ± 0.008 against 0.821 ± 0.010 (h = 8); 6 loses resolution.
    pub product_bits: u32,
    /// Assumed `|W|` bound for params without a declared `range`.
    pub weight_bound: f64,
    /// Assumed `|z|` bound for LUT inputs (logits, pre-activations) without a declared range.
    pub logit_bound: f64,
    /// Saturated margin of odd full-torus tables: the window is `2^bits` × the assumed
    /// logit range (0 reproduces the probe's layout: window = assumed = ±8 at 2^59).
    pub logit_headroom_bits: i32,
    /// Least headroom, in bits, between the bootstrap-input noise floor (keyswitch +
    /// modulus switch, from the noise model) and half a lookup-table cell: a floor under
    /// the precision choice (`precision = auto` takes the finest cell that keeps the
    /// failure budget, `lut::cell_for_budget`, 2^58 at 2^-40; 1.25 bits alone would
    /// allow 2^57, the probe's geometry: ≈ 16 % one cell off, ≈ 3e-8 further).
    pub lut_margin_bits: f64,
    /// Assumed bound of back-propagated gradients `|Wᵀ g|` (hidden layers).
    pub backprop_bound: f64,
    /// Minimum fractional bits of params.
    pub param_frac: i32,
    /// Resolution of the error LUT output: `s = lr/B · 2^(f - x_scale) ≥ 2^error_bits`.
    pub error_bits: i32,
    /// Bits resolved per PBS digit of a multi-digit rescale.
    pub digit_bits: u32,
    /// Grid bits the momentum of `nesterov` drops below its weights' (a coarser state:
    /// two bootstraps fewer per coefficient and step for each bit). 8: clear accuracy
    /// unchanged on the bundled heads (mnist-vit nesterov sigmoid 0.854 → 0.852, softmax
    /// 0.846 → 0.846), 12 breaks them (0.248 / 0.678).
    pub momentum_drop_bits: u32,
}

impl Default for LowerOptions {
    fn default() -> LowerOptions {
        LowerOptions {
            poly_size: 2048,
            input_bits: 6,
            product_bits: 7,
            weight_bound: 8.0,
            logit_bound: 8.0,
            logit_headroom_bits: 1,
            lut_margin_bits: 1.25,
            backprop_bound: 4.0,
            param_frac: 16,
            error_bits: 9,
            digit_bits: 4,
            momentum_drop_bits: 8,
        }
    }
}

/// Lower a checked spec's training graph to a plan.
pub fn lower(spec: &Spec, tg: &TrainGraph, opts: &LowerOptions) -> Result<Plan, Vec<Diagnostic>> {
    let net = select::recognize(spec, tg)?;
    let ranges = ranges::analyze(spec, tg, &net, opts);
    let fmts = formats::choose(spec, &net, &ranges, opts)?;
    emit::emit(spec, tg, &net, &ranges, &fmts, opts)
}
