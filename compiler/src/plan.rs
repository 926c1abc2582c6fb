//! The plan: the lowered training step, what both runtime backends execute.
//!
//! Semantics are integer arithmetic on the discretised torus (`u64`, wrapping),
//! exactly what the encrypted backend computes minus noise:
//!
//! * a register holds, per element, a torus value `t`; its real value is
//!   `(t as i64) / 2^fmt.scale`;
//! * levelled ops (`Add`, `Sub`, `MulInt`, `LabelTerm`) are wrapping u64 ops;
//! * data products (`DataMatVec`, `DataOuterAcc`) multiply torus values by the
//!   client's quantized integer features `xq` (GLWE × GGSW external products);
//! * `Lut` is a programmable bootstrap: modulus-switch `t + offset` to `2N` positions,
//!   read the cell table negacyclically (see [`Lut::eval`]);
//! * server × server products (`Mul`, `MatVec`, `MatVecT`, `OuterAcc`) multiply the
//!   *integer value* of a low-precision operand (`t >> lsb`, rounded) by the torus
//!   value of the other, exactly; their lowering (PBS product, GGSW conversion, ...) is
//!   chosen by the compiler and only changes cost, never the result.
//!
//! The clear backend (`runtime::clear`) is the reference interpreter of this file.

use crate::spec::{Init, InputId, LabelId, ParamId};
use blindtuner_grammar::ast::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const PLAN_VERSION: u32 = 1;

entity!(
    /// A per-sample register (vector of torus values).
    RegId,
    /// A lookup table.
    LutId,
    /// A stored server tensor: parameter matrix, optimizer state, gradient accumulator.
    TensorId,
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub model: String,
    /// Concrete dimensions this plan was compiled for.
    pub dims: BTreeMap<String, usize>,
    /// Polynomial size N of the GLWE/GGSW ciphertexts (sets the LUT resolution 2N).
    pub poly_size: usize,
    pub inputs: Vec<PlanInput>,
    pub labels: Vec<PlanLabel>,
    pub tensors: Vec<PlanTensor>,
    pub regs: Vec<Reg>,
    pub luts: Vec<Lut>,
    /// Per-sample program: forward, error, backward, gradient accumulation.
    pub sample: Vec<Inst>,
    /// `sample[..forward_len]` computes the logits: what inference (eval) runs.
    pub forward_len: usize,
    /// The register holding the logits after `sample[..forward_len]`.
    pub logits: RegId,
    /// Per-step program, after every sample of the batch has accumulated.
    pub step: Vec<StepInst>,
    pub train: PlanTrain,
    /// The training loss measured under encryption (the data owner decrypts its curve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<PlanLoss>,
    /// How every product of two server ciphertexts is lowered, by index in `sample`
    /// (pass `products`; see `lower::products`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub products: BTreeMap<usize, PlanProduct>,
    /// Ranges the compiler could not prove and assumes (reported, counted at run time).
    pub assumptions: Vec<Assumption>,
}

/// How a product of two server ciphertexts (`MatVec`, `MatVecT`, `OuterAcc`, `Mul`) is
/// computed. It never changes the result (the plan's semantics are exact), only the
/// bootstraps it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProductStrategy {
    /// `a·b = ((a + b)² − (a − b)²) / 4`: two bootstraps per scalar product; both
    /// operands must fit a bootstrap's input precision.
    SquareTrick,
    /// One bootstrap per product reading both operands packed into one input.
    BivariateLut,
    /// The integer operand is turned into GGSW ciphertexts (circuit bootstrapping: one
    /// bootstrap per bit and decomposition level); every product with it is then an
    /// external product, and the conversion is shared by all products reading it.
    GgswConversion,
    /// The integer operand is a lookup table's output: its GGSW is built from one
    /// bootstrap of the table's *input* per GGSW level (the table times the level's
    /// gadget factor), no bit extraction; shared like `GgswConversion`.
    TableGgsw,
}

impl ProductStrategy {
    pub const ALL: [ProductStrategy; 4] = [
        ProductStrategy::SquareTrick,
        ProductStrategy::BivariateLut,
        ProductStrategy::GgswConversion,
        ProductStrategy::TableGgsw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProductStrategy::SquareTrick => "square",
            ProductStrategy::BivariateLut => "bivariate",
            ProductStrategy::GgswConversion => "ggsw",
            ProductStrategy::TableGgsw => "table-ggsw",
        }
    }

    pub fn from_name(s: &str) -> Option<ProductStrategy> {
        ProductStrategy::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// The lowering chosen for one product, and whether the user forced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProduct {
    pub strategy: ProductStrategy,
    pub forced: bool,
}

/// The training loss under encryption: a per-sample program whose bootstraps read the
/// label as a half-torus offset of their input (`loss_c = h(u_c) + (1 − 2y_c)·T(u_c)`,
/// the negacyclic half reads `−T`), run on the samples of every `every`-th step of an
/// epoch; the server adds the results into one sum per epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanLoss {
    /// Runs after `sample` (reading its registers) on every sample of a measured step.
    pub program: Vec<Inst>,
    /// Scalar register: the sample's loss (its format has room for 2^15 summed samples).
    pub reg: RegId,
    /// Measured steps: those whose index in their epoch is a multiple of `every`,
    /// chosen so the program adds at most 10 % to the training bootstraps.
    pub every: usize,
}

impl PlanLoss {
    pub fn measured(&self, step_in_epoch: usize) -> bool {
        step_in_epoch.is_multiple_of(self.every.max(1))
    }

    /// Samples measured in an epoch of `n` samples in batches of `batch`.
    pub fn samples_per_epoch(&self, n: usize, batch: usize) -> u64 {
        let batch = batch.max(1);
        let steps = n.div_ceil(batch);
        (0..steps).filter(|&s| self.measured(s)).map(|s| (n - s * batch).min(batch) as u64).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub name: String,
    pub id: InputId,
    /// Number of features `d` (without the constant feature).
    pub len: usize,
    /// Declared range; values outside are clamped (and counted).
    pub range: (f64, f64),
    /// `xq = clamp(round(x * 2^scale), qmin, qmax)`.
    pub scale: i32,
    pub qmin: i64,
    pub qmax: i64,
    /// Integer value of the constant feature appended for bias folding (`2^scale`),
    /// present when some parameter tensor has a bias part for this input.
    pub one: Option<i64>,
}

impl PlanInput {
    /// Quantize one feature; returns the integer and whether it was clamped.
    pub fn quantize(&self, x: f64) -> (i64, bool) {
        let v = (x * (self.scale as f64).exp2()).round();
        if v.is_nan() {
            return (0, true);
        }
        if v < self.qmin as f64 {
            (self.qmin, true)
        } else if v > self.qmax as f64 {
            (self.qmax, true)
        } else {
            (v as i64, false)
        }
    }
    /// Features as the data products see them (with the constant feature, if any).
    pub fn augmented_len(&self) -> usize {
        self.len + usize::from(self.one.is_some())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanLabel {
    pub name: String,
    pub id: LabelId,
    pub classes: usize,
}

/// Role of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TensorRole {
    Param,
    /// Optimizer state (momentum buffer) of the tensor given.
    State(TensorId),
    /// Per-step gradient accumulator of the tensor given.
    Grad(TensorId),
    /// Scratch space of the step program.
    Temp,
}

/// A `rows × cols` matrix of torus values kept by the server across samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanTensor {
    pub name: String,
    pub role: TensorRole,
    pub rows: usize,
    pub cols: usize,
    pub fmt: Format,
    pub layout: Layout,
    /// The spec params stored in this tensor (e.g. `W` in cols `0..d`, `b` in col `d`).
    pub parts: Vec<TensorPart>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorPart {
    pub name: String,
    pub param: ParamId,
    /// Shape of the spec param (`[rows, n]` or `[rows]`).
    pub shape: Vec<usize>,
    pub col_start: usize,
    pub init: Init,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Interleaved polynomials for external products with the data of `input`:
    /// element `[r][j]` sits in polynomial `j / per_poly`, coefficient
    /// `r + rows * (j % per_poly)`.
    DataPoly { input: InputId, per_poly: usize, polys: usize },
    /// One LWE ciphertext per element.
    Lwe,
    /// Interleaved polynomials like `DataPoly` (element `[r][j]` in polynomial
    /// `j / per_poly`, coefficient `r + rows * (j % per_poly)`), under the *PBS* GLWE
    /// key: the operand of products whose other factor the server converts to GGSW
    /// (`ProductStrategy::TableGgsw`, `runtime::tfhe::convert`).
    PbsPoly { per_poly: usize, polys: usize },
}

/// Fixed-point format of a value on the torus.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Format {
    /// Torus units per real unit, as a power of two: real = t / 2^scale.
    pub scale: i32,
    /// Values are multiples of 2^lsb torus units (the last meaningful bit).
    pub lsb: i32,
    /// Value range: proven or assumed (see `proven`).
    pub range: (f64, f64),
    /// `true` when the range follows from declared input ranges and constants.
    pub proven: bool,
}

impl Format {
    /// Bits needed for the range at this resolution, sign included.
    pub fn bits(&self) -> u32 {
        let m = self.range.0.abs().max(self.range.1.abs()).max(f64::MIN_POSITIVE);
        let int_bits = (m * ((self.scale - self.lsb) as f64).exp2()).log2().ceil().max(0.0) as u32;
        int_bits + u32::from(self.range.0 < 0.0)
    }
    /// Fractional bits of the real value (`scale - lsb`).
    pub fn frac(&self) -> i32 {
        self.scale - self.lsb
    }
    pub fn to_real(&self, t: u64) -> f64 {
        (t as i64) as f64 / (self.scale as f64).exp2()
    }
    /// Round a real value onto the grid of this format (wrapping on the torus).
    pub fn from_real(&self, x: f64) -> u64 {
        let q = (x * (self.frac() as f64).exp2()).round() as i64;
        (q as u64).wrapping_shl(self.lsb.max(0) as u32)
    }
    /// The bits a multi-digit bootstrap reads: from the grid (`lsb`, at least 1) to
    /// `top`, where the range `[−2^top, 2^top)` covers the format's (at most 62).
    pub fn bit_span(&self) -> (u32, u32) {
        let lsb = self.lsb.clamp(1, 61) as u32;
        let m = self.range.0.abs().max(self.range.1.abs()).max(f64::MIN_POSITIVE);
        let top = ((f64::from(self.scale) + m.log2().floor() + 1.0) as u32).clamp(lsb + 1, 62);
        (lsb, top)
    }
    /// Integer value on the `lsb` grid (rounded), for products.
    pub fn int_value(&self, t: u64) -> i64 {
        if self.lsb <= 0 {
            return t as i64;
        }
        let half = 1i128 << (self.lsb - 1);
        (((t as i64) as i128 + half) >> self.lsb) as i64
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reg {
    pub name: String,
    pub len: usize,
    pub fmt: Format,
    pub span: Span,
}

/// How the encrypted backend implements an instruction (for cost and reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lowering {
    /// LWE/GLWE additions and integer scalings: no bootstrap.
    Levelled,
    /// GLWE × GGSW(client data) external products.
    ExternalProduct,
    /// Programmable bootstraps evaluating a lookup table.
    LookupTable,
    /// Product of two server ciphertexts through PBS (square trick / bivariate LUT).
    PbsProduct,
    /// Client-encrypted per-sample constants: free for the server.
    Client,
}

impl Lowering {
    pub fn name(self) -> &'static str {
        match self {
            Lowering::Levelled => "levelled",
            Lowering::ExternalProduct => "external product",
            Lowering::LookupTable => "lookup table",
            Lowering::PbsProduct => "PBS product",
            Lowering::Client => "client-encrypted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Inst {
    /// `out[r] = Σ_j P[r][j] · xq[j]` over the augmented features of `input`.
    DataMatVec {
        tensor: TensorId,
        input: InputId,
        out: RegId,
    },
    /// `out[r] = Σ_j P[r][j] · int(v[j])` (+ `P[r][len]·one` when `one` is set: bias column).
    MatVec {
        tensor: TensorId,
        v: RegId,
        one: Option<i64>,
        out: RegId,
    },
    /// `out[j] = Σ_r P[r][j] · int(v[r])` for `j < out.len`.
    MatVecT {
        tensor: TensorId,
        v: RegId,
        out: RegId,
    },
    /// Elementwise programmable bootstrap.
    Lut {
        lut: LutId,
        input: RegId,
        out: RegId,
    },
    Add {
        a: RegId,
        b: RegId,
        out: RegId,
    },
    Sub {
        a: RegId,
        b: RegId,
        out: RegId,
    },
    /// Add a torus constant to every element.
    AddConst {
        a: RegId,
        c: u64,
        out: RegId,
    },
    /// Add a public pseudo-random offset per element, uniform in `[−width/2, width/2)`
    /// ([`dither`] of the run's seed, the step, the sample's position in its batch, this
    /// instruction and the element): stochastic rounding of the table reads that follow,
    /// whose cells are `width` wide. Nearest-cell rounding drops every change smaller
    /// than half a cell; with the offset, a read is right on average. Levelled and
    /// public (a plaintext added to the body), so it costs no bootstrap and no noise.
    Dither {
        a: RegId,
        width: u64,
        out: RegId,
    },
    /// Multiply by an integer constant (levelled).
    MulInt {
        a: RegId,
        c: i64,
        out: RegId,
    },
    /// `out[i] = int(a[i]) · b[i]`: server × server product.
    Mul {
        a: RegId,
        b: RegId,
        out: RegId,
    },
    /// Client-encrypted constant per class: `out[c] = on` if the label is `c`, else `off`.
    /// With `lr_scaled`, both are shifted right by the epoch's `lr_shift` (the client
    /// encrypts them at the largest shift; the server multiplies by `2^(max − shift)`).
    LabelTerm {
        label: LabelId,
        on: u64,
        off: u64,
        out: RegId,
        #[serde(default)]
        lr_scaled: bool,
    },
    /// `out[0] = a[index]`.
    Elem {
        a: RegId,
        index: usize,
        out: RegId,
    },
    /// `out[i] = a[0]` for every `i`.
    Bcast {
        a: RegId,
        out: RegId,
    },
    /// `out = parts[0] ++ parts[1] ++ …` (per-class scalars back into one vector).
    Concat {
        parts: Vec<RegId>,
        out: RegId,
    },
    /// `G[r][j] += e[r] · xq[j]` (pack `e`, external product with the backward GGSW).
    DataOuterAcc {
        grad: TensorId,
        e: RegId,
        input: InputId,
    },
    /// `G[r][j] += e[r] · int(v[j])` (+ `G[r][len] += e[r]·one`: bias column).
    OuterAcc {
        grad: TensorId,
        e: RegId,
        v: RegId,
        one: Option<i64>,
    },
}

impl Inst {
    pub fn out(&self) -> Option<RegId> {
        match *self {
            Inst::DataMatVec { out, .. }
            | Inst::MatVec { out, .. }
            | Inst::MatVecT { out, .. }
            | Inst::Lut { out, .. }
            | Inst::Add { out, .. }
            | Inst::Sub { out, .. }
            | Inst::AddConst { out, .. }
            | Inst::Dither { out, .. }
            | Inst::MulInt { out, .. }
            | Inst::Mul { out, .. }
            | Inst::LabelTerm { out, .. }
            | Inst::Elem { out, .. }
            | Inst::Bcast { out, .. }
            | Inst::Concat { out, .. } => Some(out),
            Inst::DataOuterAcc { .. } | Inst::OuterAcc { .. } => None,
        }
    }

    /// Registers the instruction reads.
    pub fn reads(&self) -> Vec<RegId> {
        match *self {
            Inst::Concat { ref parts, .. } => parts.clone(),
            Inst::DataMatVec { .. } | Inst::LabelTerm { .. } => vec![],
            Inst::MatVec { v, .. } | Inst::MatVecT { v, .. } => vec![v],
            Inst::Lut { input, .. } => vec![input],
            Inst::Add { a, b, .. } | Inst::Sub { a, b, .. } | Inst::Mul { a, b, .. } => vec![a, b],
            Inst::AddConst { a, .. }
            | Inst::Dither { a, .. }
            | Inst::MulInt { a, .. }
            | Inst::Elem { a, .. }
            | Inst::Bcast { a, .. } => vec![a],
            Inst::DataOuterAcc { e, .. } => vec![e],
            Inst::OuterAcc { e, v, .. } => vec![e, v],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StepInst {
    /// `dst -= src` (levelled).
    SubAssign { dst: TensorId, src: TensorId },
    /// `dst += src` (levelled).
    AddAssign { dst: TensorId, src: TensorId },
    /// `dst = factor · src` on `src`'s grid as [`rescale_bits`] computes it: a
    /// multi-digit bootstrap of every coefficient (not levelled for a fractional
    /// factor; `digits` = [`rescale_pbs`] PBS per coefficient).
    Rescale { dst: TensorId, src: TensorId, factor: f64, digits: u32 },
    /// `dst = 0`.
    Zero { dst: TensorId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LutEncoding {
    /// The function is anti-periodic over the full torus (`f(x + T/2) = -f(x)`, e.g.
    /// an odd function centred at 0): all of the torus is window, no padding bit.
    FullTorus,
    /// The window is half the torus; outside it the negacyclic half reads `-f`.
    HalfTorus,
}

/// A programmable-bootstrap lookup table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lut {
    pub name: String,
    /// Human description of the function, e.g. `512·(sigmoid(z) − ½)`.
    pub func: String,
    pub encoding: LutEncoding,
    /// Added to the input phase before the modulus switch (centres cells, shifts the window).
    pub offset: u64,
    /// Cell values over the first half of the torus (`phase ∈ [0, 2^63)`); the second
    /// half reads the negation. `table.len()` divides `N`.
    pub table: Vec<i64>,
    /// Output torus value = `table[cell] << out_shift` (wrapping).
    pub out_shift: u32,
    /// Input format (scale of the phase).
    pub in_fmt: Format,
    /// Inputs in this range get the function's value; outside, the table saturates
    /// where the encoding allows, and wraps beyond `window`.
    pub assumed: (f64, f64),
    /// Inputs outside this range wrap around the torus (garbage, counted).
    pub window: (f64, f64),
    /// The output carries the learning rate: in an epoch with `lr_shift = j` it is
    /// shifted right by `j` (an accumulator built with `out_shift − j`).
    #[serde(default)]
    pub lr_scaled: bool,
    /// A table whose value changes little from one cell to the next (a hidden
    /// activation or its derivative), or a gate whose cells only differ across its
    /// step: a bootstrap landing `j` cells off reads the value `j` cells away, an error
    /// that grows with the distance, like rounding, instead of an unrelated value. Its
    /// far landings are numeric error (`simulate` draws them), not failures: the failure
    /// budget does not count them.
    #[serde(default)]
    pub graded: bool,
}

impl Lut {
    /// Noise-free PBS: the value selected for input phase `t` with polynomial size `n`.
    /// Returns the output torus value and the cell index in `0..2·cells` (the second
    /// half are the negacyclic cells), which tests compare with what the encrypted PBS
    /// selected.
    pub fn eval(&self, t: u64, n: usize) -> (u64, usize) {
        let log2_2n = (2 * n).trailing_zeros();
        let p = t.wrapping_add(self.offset);
        let idx = ((p as u128 + (1u128 << (63 - log2_2n))) >> (64 - log2_2n)) as usize % (2 * n);
        self.at_index(idx, n)
    }

    /// Value read by the blind rotation for modulus-switched index `idx ∈ [0, 2N)`.
    pub fn at_index(&self, idx: usize, n: usize) -> (u64, usize) {
        let cells = self.table.len();
        let per_cell = n / cells;
        let (v, cell) = if idx < n {
            (self.table[idx / per_cell], idx / per_cell)
        } else {
            (self.table[(idx - n) / per_cell].wrapping_neg(), cells + (idx - n) / per_cell)
        };
        ((v as u64).wrapping_shl(self.out_shift), cell)
    }

    /// Output for cell `cell ∈ 0..2·cells` (as returned by [`Lut::eval`]), in an epoch
    /// with learning-rate shift `lr_shift`: what a bootstrap that landed in that cell
    /// outputs, noise aside.
    pub fn cell_value(&self, cell: usize, lr_shift: u32) -> u64 {
        let cells = self.table.len();
        let v = if cell < cells { self.table[cell] } else { self.table[(cell - cells) % cells].wrapping_neg() };
        let t = (v as u64).wrapping_shl(self.out_shift);
        if self.lr_scaled {
            torus_shift(t, lr_shift)
        } else {
            t
        }
    }

    /// [`Lut::eval`] in an epoch with learning-rate shift `lr_shift`.
    pub fn eval_at(&self, t: u64, n: usize, lr_shift: u32) -> (u64, usize) {
        let (v, cell) = self.eval(t, n);
        if self.lr_scaled {
            (torus_shift(v, lr_shift), cell)
        } else {
            (v, cell)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanTrain {
    pub batch: usize,
    pub epochs: usize,
    pub seed: u64,
    pub lr: f64,
    pub optimizer: String,
    /// Global failure budget of the spec (probability that any bootstrap of the run
    /// lands two or more cells off).
    #[serde(default = "default_p_fail")]
    pub p_fail: f64,
    /// Step decay: in epoch `e` the learning rate is `lr · 2^-lr_shift(e)`.
    #[serde(default)]
    pub schedule: Option<PlanSchedule>,
    /// The trained model is the mean of the weights after every step of the last
    /// `average` epochs (0: the last iterate). Clamped to the run's epochs.
    #[serde(default)]
    pub average: usize,
    /// Periodic refreshes of stored tensors, decided by the noise model
    /// (`noise::refresh`). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refresh: Vec<Refresh>,
}

/// A refresh of a stored tensor: a multi-digit bootstrap of every coefficient that
/// rounds it to the `2^lsb` grid of its format, which removes the noise the levelled
/// updates have added as long as it stays under half a grid step (the weights' noise
/// budget). The digits are read least significant first, one bootstrap per bit from
/// `lsb` to `top − 1`, plus one for the sign: the value is assumed in
/// `[−2^top, 2^top)` (the tensor's range; outside it wraps, as [`Refresh::apply`] does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub tensor: TensorId,
    /// After every `every`-th step of the run (counted from the first, over epochs).
    pub every: u64,
    pub lsb: u32,
    pub top: u32,
}

impl Refresh {
    /// Bootstraps per coefficient.
    pub fn digits(&self) -> u32 {
        rescale_pbs(self.lsb, self.top, 1.0)
    }
    /// Whether the refresh runs after the step that brings the count to `steps_done`.
    pub fn due(&self, steps_done: u64) -> bool {
        self.every > 0 && steps_done > 0 && steps_done.is_multiple_of(self.every)
    }
    /// The refreshed value of a noise-free coefficient: rounded to the grid (half up),
    /// then sign-extended from bit `top` (what the digit reads produce).
    pub fn apply(&self, t: u64) -> u64 {
        rescale_bits(self.lsb, self.top, 1.0, t)
    }
}

/// A multi-digit bootstrap's rescale of a torus value by `factor`, exactly as the
/// encrypted backend computes it: the value rounded to the `2^lsb` grid and read as a
/// two's-complement number of bits `lsb..=top` (sign at `top`), each bit weighted by
/// `factor · 2^bit` rounded to the grid, summed. With `factor = 1` this is the rounding
/// itself (a refresh); otherwise the per-bit roundings make it differ from
/// `round(factor · value)` by at most half a grid step per bit.
pub fn rescale_bits(lsb: u32, top: u32, factor: f64, t: u64) -> u64 {
    let half = 1u64 << (lsb - 1);
    let rounded = t.wrapping_add(half) & !((1u64 << lsb) - 1);
    let s = 63 - top;
    let n = (((rounded << s) as i64) >> s) >> lsb;
    if factor == 1.0 {
        return (n as u64) << lsb;
    }
    let bits = top - lsb;
    let w = |i: u32| (factor * f64::from(i).exp2()).round() as i64;
    let mut acc = 0i64;
    for i in 0..bits {
        if (n >> i) & 1 == 1 {
            acc = acc.wrapping_add(w(i));
        }
    }
    if n < 0 {
        acc = acc.wrapping_sub(w(bits));
    }
    (acc as u64).wrapping_shl(lsb)
}

/// Bootstraps per coefficient of a rescale by `factor` over bits `lsb..=top`: one per
/// bit and the sign for the rounding itself (`factor = 1`); otherwise each bit but the
/// sign also needs its plain value to step the residual, a second bootstrap.
pub fn rescale_pbs(lsb: u32, top: u32, factor: f64) -> u32 {
    let bits = top - lsb;
    if factor == 1.0 {
        bits + 1
    } else {
        2 * bits + 1
    }
}

fn default_p_fail() -> f64 {
    2f64.powi(-40)
}

impl PlanTrain {
    /// Right shift applied in epoch `epoch` to every learning-rate-scaled value
    /// (`Lut::lr_scaled` outputs and `LabelTerm { lr_scaled }` constants).
    pub fn lr_shift(&self, epoch: usize) -> u32 {
        self.schedule.map_or(0, |s| s.shift_at(epoch))
    }
    /// The largest shift of the run.
    pub fn max_lr_shift(&self) -> u32 {
        self.lr_shift(self.epochs.saturating_sub(1))
    }
    /// First epoch whose steps enter the tail average of a run of `epochs` epochs
    /// (`None`: no averaging, the model is the last iterate).
    pub fn average_from(&self, epochs: usize) -> Option<usize> {
        let n = self.average.min(epochs);
        (n > 0).then(|| epochs - n)
    }
}

impl Plan {
    /// Instruction `i` of the sample program followed by the loss program (one index
    /// space: the loss program's instructions come after `sample`).
    pub fn inst(&self, i: usize) -> Option<&Inst> {
        match i.checked_sub(self.sample.len()) {
            None => self.sample.get(i),
            Some(j) => self.loss.as_ref().and_then(|l| l.program.get(j)),
        }
    }

    /// The `Lut` instruction (index in `sample`) whose output is `reg`: what a
    /// `table-ggsw` conversion bootstraps again.
    pub fn table_writing(&self, reg: RegId) -> Option<usize> {
        self.sample.iter().position(|inst| matches!(*inst, Inst::Lut { out, .. } if out == reg))
    }

    /// The sample program, then the loss program.
    pub fn all_insts(&self) -> impl Iterator<Item = &Inst> {
        self.sample.iter().chain(self.loss.iter().flat_map(|l| l.program.iter()))
    }

    /// Bootstraps of one run of refresh `r`: `digits` per coefficient of its tensor.
    pub fn refresh_pbs_each(&self, r: &Refresh) -> u64 {
        self.tensors.get(r.tensor.index()).map_or(0, |t| (t.rows * t.cols) as u64 * u64::from(r.digits()))
    }
    /// Bootstraps of every refresh due within the first `steps` steps of a run.
    pub fn refresh_pbs(&self, steps: u64) -> u64 {
        self.train.refresh.iter().map(|r| steps / r.every.max(1) * self.refresh_pbs_each(r)).sum()
    }
}

/// The mean `sum / count` rounded half away from zero to a torus value, in exact
/// integer arithmetic: how both backends turn a tail-average sum into weights.
pub fn round_mean(sum: i128, count: i128) -> u64 {
    debug_assert!(count > 0);
    let q = (2 * sum + sum.signum() * count) / (2 * count);
    q as i64 as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSchedule {
    pub every: usize,
    pub shift: u32,
}

impl PlanSchedule {
    pub fn shift_at(&self, epoch: usize) -> u32 {
        ((epoch / self.every.max(1)) as u32).saturating_mul(self.shift).min(MAX_LR_SHIFT)
    }
}

/// Largest learning-rate shift: lr-scaled values sit at 2^40 and above on the
/// torus, so a shift up to here stays exact.
pub const MAX_LR_SHIFT: u32 = 24;

/// Arithmetic right shift of a torus value (exact when the low bits are zero, which
/// the compiler guarantees for lr-scaled values).
pub fn torus_shift(t: u64, shift: u32) -> u64 {
    ((t as i64) >> shift.min(63)) as u64
}

/// A range the compiler assumes rather than proves; the clear backend counts
/// violations per assumption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assumption {
    pub what: String,
    pub range: (f64, f64),
    pub reason: String,
    pub span: Span,
}

/// Where a [`Inst::Dither`] offset is drawn: the run's seed, the steps done before the
/// sample's batch, the sample's position in the batch and the instruction's index in
/// `Plan::sample`. Both backends derive the same offsets from it, so a clear run
/// predicts an encrypted one and resuming a run repeats nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DitherAt {
    pub seed: u64,
    pub step: u64,
    pub pos: u64,
    pub inst: u64,
}

/// The offset of element `elem`, uniform in `[−width/2, width/2)` (a torus value).
pub fn dither(at: DitherAt, elem: usize, width: u64) -> u64 {
    if width == 0 {
        return 0;
    }
    // SplitMix64's finaliser over a running mix of the coordinates: offsets of
    // neighbouring samples, steps and elements are independent for every use here.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let golden = 0x9e37_79b9_7f4a_7c15u64;
    let mut h = mix(at.seed ^ 0x6469_7468_6572); // "dither"
    for v in [at.step, at.pos, at.inst, elem as u64] {
        h = mix(h.wrapping_add(golden).wrapping_add(v));
    }
    // Multiply-shift: uniform on [0, width) without modulo bias worth naming.
    let u = ((h as u128 * width as u128) >> 64) as u64;
    u.wrapping_sub(width / 2)
}
