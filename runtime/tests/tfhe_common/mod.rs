//! Shared by the tfhe test binaries: a hand-built plan of the probe's one-vs-rest
//! sigmoid head, a data RNG, and keys generated once per test binary.
#![allow(dead_code)] // each test binary uses a different subset

use blindtuner_compiler::noise::{NoiseParams, OpNoise};
use blindtuner_compiler::plan::*;
use blindtuner_compiler::spec::{Init, InputId, LabelId, ParamId};
use blindtuner_runtime::simulate::CellTally;
use blindtuner_runtime::tfhe::cipher::Lwe;
use blindtuner_runtime::tfhe::{keygen, ClientKey, CryptoRng, ParamSet, ServerKeys};
use std::sync::OnceLock;

/// Logits: 2^59 torus units per unit (z ∈ [−8, 8) is the centred window).
pub const Z_SCALE: i32 = 59;
/// W = W_int·2^-16 stored as W_int·2^40, so that Σ_j W·x_q lands at the logit scale
/// (x_q = 8x: 59 = 40 + 16 + 3).
pub const W_SHIFT: u32 = 40;
/// e = round(s·(sigmoid(z) − ½)) − s·(y − ½) with s = lr/B·2^13 = 512 (lr/B = 1/16).
pub const E_SCALE: f64 = 512.0;
/// LUT cells per half torus: z resolved to 1/4 over [0, 16).
pub const CELLS: usize = 64;

pub fn keys() -> &'static (ClientKey, ServerKeys) {
    static KEYS: OnceLock<(ClientKey, ServerKeys)> = OnceLock::new();
    KEYS.get_or_init(|| keygen(&ParamSet::default_set(), &mut CryptoRng::from_seed(7)))
}

/// Where the bootstraps of `lut` on messages `msgs` landed (their small-key inputs
/// `small`, as `Server::lut` returns them), against each message's noise-free cell.
pub fn landings(ck: &ClientKey, lut: &Lut, small: &[Lwe], msgs: &[u64]) -> CellTally {
    let n = ck.params().n();
    let mut tally = CellTally::default();
    for (s, &m) in small.iter().zip(msgs) {
        tally.record(lut, lut.eval(m, n).1, lut.at_index(ck.pbs_index(s), n).1);
    }
    tally
}

/// σ (torus fraction) of the phase a bootstrap reads from a fresh GLWE-key LWE: the
/// encryption, the keyswitch to the small key and the modulus switch.
pub fn fresh_pbs_input_sigma(np: &NoiseParams) -> f64 {
    (np.glwe_var() + OpNoise::new(np).before_pbs()).sqrt()
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn fmt(scale: i32, lsb: i32, range: (f64, f64)) -> Format {
    Format { scale, lsb, range, proven: false }
}

fn reg(name: &str, len: usize, f: Format) -> Reg {
    Reg { name: name.into(), len, fmt: f, span: Default::default() }
}

/// The sigmoid-error LUT of the probe: odd, full torus, cells centred by `offset`.
pub fn sigmoid_lut() -> Lut {
    let r = 4.0;
    let table = (0..CELLS)
        .map(|g| {
            // Cells g ≥ 32 hold z − 16 ∈ [−8, 0), read through the negacyclic half.
            let z = g as f64 / r;
            let (z, sign) = if g < CELLS / 2 { (z, 1) } else { (z - 16.0, -1) };
            sign * (E_SCALE * (1.0 / (1.0 + (-z).exp()) - 0.5)).round() as i64
        })
        .collect();
    Lut {
        name: "sig".into(),
        func: "512·(sigmoid(z) − ½)".into(),
        encoding: LutEncoding::FullTorus,
        offset: 1 << (Z_SCALE - 2 - 1),
        table,
        out_shift: W_SHIFT,
        in_fmt: fmt(Z_SCALE, Z_SCALE - 2, (-8.0, 8.0)),
        assumed: (-8.0, 8.0),
        window: (-16.0, 16.0),
        lr_scaled: false,
        graded: false,
    }
}

/// One SGD step of a `k`-class one-vs-rest sigmoid head on `d` features, lowered the
/// way the probe does it: W ⊡ GGSW(x) → sigmoid LUT → minus label term → e ⊡ GGSW(x)
/// into G; step: W −= G, G = 0.
pub fn head_plan(d: usize, k: usize) -> Plan {
    let n = 2048;
    let per_poly = n / k;
    let polys = (d + 1).div_ceil(per_poly);
    let x = InputId(0);
    let layout = Layout::DataPoly { input: x, per_poly, polys };
    let wfmt = fmt(56, W_SHIFT as i32, (-128.0, 128.0));
    let tensor = |name: &str, role| PlanTensor {
        name: name.into(),
        role,
        rows: k,
        cols: d + 1,
        fmt: wfmt,
        layout,
        parts: vec![TensorPart {
            name: "W".into(),
            param: ParamId(0),
            shape: vec![k, d],
            col_start: 0,
            init: Init::Zeros,
        }],
    };
    let (z, s, lab, e) = (RegId(0), RegId(1), RegId(2), RegId(3));
    let half = (E_SCALE / 2.0) as i64;
    let efmt = fmt(56, W_SHIFT as i32, (-1.0, 1.0));
    Plan {
        loss: None,
        products: Default::default(),
        version: PLAN_VERSION,
        model: "head".into(),
        dims: [("d".to_string(), d), ("k".to_string(), k)].into_iter().collect(),
        poly_size: n,
        inputs: vec![PlanInput {
            name: "x".into(),
            id: x,
            len: d,
            range: (-4.0, 4.0),
            scale: 3,
            qmin: -32,
            qmax: 31,
            one: Some(8),
        }],
        labels: vec![PlanLabel { name: "y".into(), id: LabelId(0), classes: k }],
        tensors: vec![tensor("W", TensorRole::Param), tensor("G", TensorRole::Grad(TensorId(0)))],
        regs: vec![
            reg("z", k, fmt(Z_SCALE, 0, (-8.0, 8.0))),
            reg("s", k, efmt),
            reg("label", k, efmt),
            reg("e", k, efmt),
        ],
        luts: vec![sigmoid_lut()],
        sample: vec![
            Inst::DataMatVec { tensor: TensorId(0), input: x, out: z },
            Inst::Lut { lut: LutId(0), input: z, out: s },
            Inst::LabelTerm {
                label: LabelId(0),
                on: (half << W_SHIFT) as u64,
                off: (-half << W_SHIFT) as u64,
                out: lab,
                lr_scaled: false,
            },
            Inst::Sub { a: s, b: lab, out: e },
            Inst::DataOuterAcc { grad: TensorId(1), e, input: x },
        ],
        forward_len: 1,
        logits: z,
        step: vec![StepInst::SubAssign { dst: TensorId(0), src: TensorId(1) }, StepInst::Zero { dst: TensorId(1) }],
        train: PlanTrain {
            batch: 2,
            epochs: 1,
            seed: 1,
            lr: 1.0 / 16.0,
            optimizer: "sgd".into(),
            schedule: None,
            p_fail: 2f64.powi(-40),
            average: 0,
            refresh: Vec::new(),
        },
        assumptions: vec![],
    }
}

/// Random quantized features in `[−32, 31]`.
pub fn features(rng: &mut Rng, d: usize) -> Vec<i64> {
    (0..d).map(|_| rng.int(-32, 31)).collect()
}

/// A random initial model: W small enough that |z| stays inside the window, G = 0.
pub fn initial_model(rng: &mut Rng, plan: &Plan) -> Vec<Vec<u64>> {
    plan.tensors
        .iter()
        .map(|t| {
            (0..t.rows * t.cols)
                .map(|_| match t.role {
                    TensorRole::Param => (rng.int(-1500, 1500) as u64) << W_SHIFT,
                    _ => 0,
                })
                .collect()
        })
        .collect()
}

/// Signed distance of two torus values.
pub fn torus_diff(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}
