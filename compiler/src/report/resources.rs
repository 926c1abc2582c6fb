//! Security and resources of an encrypted run, known before it starts: parameter set,
//! key sizes, upload per sample and an estimated time.
//!
//! The compiler stays free of tfhe: [`PARAM_SETS`] mirrors the dimensions of the
//! runtime's `tfhe::params::ParamSet::all()` as plain numbers, and the runtime test
//! `runtime/tests/tfhe_resources.rs` asserts they are equal (and that the upload
//! estimate is the size of a really encrypted sample), so the two cannot drift.

use crate::lower::cost::Costs;
use crate::plan::{Inst, Layout, Plan};
use serde::Serialize;

/// Dimensions of one runtime parameter set. All sets take the lattice dimensions and
/// noise of tfhe's `PARAM_MESSAGE_2_CARRY_2_KS_PBS` (128-bit security, p-fail 2^-128)
/// and change only gadget decompositions `(base_log, levels)`, which do not enter the
/// security estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ParamDims {
    /// Small LWE dimension `n` (bootstrap input).
    pub lwe_dim: usize,
    pub glwe_dim: usize,
    /// Polynomial size `N`.
    pub poly_size: usize,
    pub ks: (usize, usize),
    pub bsk: (usize, usize),
    pub pks: (usize, usize),
    pub ggsw: (usize, usize),
    /// Nominal single-thread milliseconds of one bootstrap inside a batch (see
    /// [`TIMING_SOURCE`]).
    pub pbs_ms: f64,
}

/// Every parameter set the runtime accepts; the first is the default (`keygen --bsk 12x3`).
pub const PARAM_SETS: [ParamDims; 2] = [
    ParamDims {
        lwe_dim: 918,
        glwe_dim: 1,
        poly_size: 2048,
        ks: (4, 4),
        bsk: (12, 3),
        pks: (9, 4),
        ggsw: (10, 4),
        pbs_ms: 31.0,
    },
    ParamDims {
        lwe_dim: 918,
        glwe_dim: 1,
        poly_size: 2048,
        ks: (4, 4),
        bsk: (10, 4),
        pks: (9, 4),
        ggsw: (10, 4),
        pbs_ms: 39.0,
    },
];

/// Single-thread milliseconds of one keyswitch to the small key.
pub const KEYSWITCH_MS: f64 = 2.0;
/// Single-thread milliseconds per LWE of the packing keyswitch.
pub const PACK_MS_PER_LWE: f64 = 8.3;
/// Single-thread milliseconds of one conversion bootstrap (`table-ggsw`): a bootstrap
/// with the conversion key (8x6, twice the training key's levels) plus the two private
/// functional packing keyswitches of its output (`convert_bench`: 767 ms per value at
/// 10 levels on the development machine, 56 ms bootstrap + 20 ms keyswitches).
pub const CONVERT_MS: f64 = 76.7;
/// Cores the estimate assumes (rayon over the samples of a batch).
pub const THREADS: usize = 2;
pub const SECURITY_BITS: u32 = 128;
pub const TIMING_SOURCE: &str = "nominal figures measured on the 2-core development machine with \
`cargo run --release -p blindtuner-runtime --example tfhe_step` (k = 5 sigmoid head, 1 thread): \
31 ms per batched 12/3 bootstrap, 2 ms per keyswitch, 8.3 ms per packed LWE; 10/4 bootstraps \
taken as 1.25x slower (GGSW probe); 76.7 ms per conversion bootstrap (`convert_bench`); wall time \
divided by 2 threads. Re-measure on other hosts.";

/// Per-operation costs the time estimate multiplies by the plan's counts: the nominal
/// figures above, or what `blindtuner calibrate` measured on this host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    /// Single-thread ms per bootstrap of the default set (`PARAM_SETS[0]`); other sets
    /// scale by their nominal ratio.
    pub pbs_ms: f64,
    pub keyswitch_ms: f64,
    pub pack_ms_per_lwe: f64,
    /// Single-thread ms per conversion bootstrap ([`CONVERT_MS`]).
    pub convert_ms: f64,
    pub threads: usize,
    pub source: String,
}

impl Timing {
    pub fn nominal() -> Timing {
        Timing {
            pbs_ms: PARAM_SETS[0].pbs_ms,
            keyswitch_ms: KEYSWITCH_MS,
            pack_ms_per_lwe: PACK_MS_PER_LWE,
            convert_ms: CONVERT_MS,
            threads: THREADS,
            source: TIMING_SOURCE.to_string(),
        }
    }

    fn pbs_ms_for(&self, p: &ParamDims) -> f64 {
        self.pbs_ms * p.pbs_ms / PARAM_SETS[0].pbs_ms
    }
}

impl ParamDims {
    /// The id written in file headers, e.g. `bt128-n918-N2048-bsk12x3-pks9x4-ggsw10x4`.
    pub fn id(&self) -> String {
        format!(
            "bt128-n{}-N{}-bsk{}x{}-pks{}x{}-ggsw{}x{}",
            self.lwe_dim, self.poly_size, self.bsk.0, self.bsk.1, self.pks.0, self.pks.1, self.ggsw.0, self.ggsw.1
        )
    }
    /// LWE dimension of a sample extracted from a GLWE (`k·N`).
    fn big_lwe_dim(&self) -> u64 {
        (self.glwe_dim * self.poly_size) as u64
    }
    fn glwe_size(&self) -> u64 {
        (self.glwe_dim + 1) as u64
    }
    /// Secret keys: small LWE key + two GLWE keys (PBS output, data), one u64 per bit.
    pub fn client_key_bytes(&self) -> u64 {
        8 * (self.lwe_dim as u64 + 2 * self.big_lwe_dim())
    }
    /// Fourier bootstrap key: `n · levels · (k+1)²` polynomials of `N/2` complex f64.
    pub fn bootstrap_key_bytes(&self) -> u64 {
        let polys = self.lwe_dim as u64 * self.bsk.1 as u64 * self.glwe_size() * self.glwe_size();
        polys * (self.poly_size as u64 / 2) * 16
    }
    /// One keyswitch key `k·N → n`: `k·N · levels` LWEs of `n + 1` u64.
    pub fn keyswitch_key_bytes(&self) -> u64 {
        self.big_lwe_dim() * self.ks.1 as u64 * (self.lwe_dim as u64 + 1) * 8
    }
    /// Packing keyswitch key: `k·N · levels` GLWEs of `(k+1)·N` u64.
    pub fn packing_key_bytes(&self) -> u64 {
        self.big_lwe_dim() * self.pks.1 as u64 * self.glwe_size() * self.poly_size as u64 * 8
    }
    /// Seeded GGSW of one polynomial: `(k+1) · levels` GLWE bodies of `N` u64.
    pub fn seeded_ggsw_bytes(&self) -> u64 {
        self.glwe_size() * self.ggsw.1 as u64 * self.poly_size as u64 * 8
    }
    /// One LWE under a big (`k·N`) key.
    pub fn big_lwe_bytes(&self) -> u64 {
        (self.big_lwe_dim() + 1) * 8
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resources {
    pub param_set: String,
    pub security_bits: u32,
    /// Every parameter set the runtime accepts (all 128-bit).
    pub allowed_param_sets: Vec<String>,
    pub client_key_bytes: u64,
    /// Bootstrap key + two keyswitch keys + packing keyswitch key.
    pub server_keys_bytes: u64,
    pub bootstrap_key_bytes: u64,
    pub keyswitch_keys_bytes: u64,
    pub packing_key_bytes: u64,
    /// Seeded polynomial GGSWs the data owner uploads per sample (features).
    pub ggsw_per_sample: u64,
    /// LWEs the data owner uploads per sample (label terms).
    pub label_lwes_per_sample: u64,
    pub upload_bytes_per_sample: u64,
    /// Estimated wall seconds per training sample, per step and per 1000 samples
    /// (one epoch over 1000 samples) on [`THREADS`] cores.
    pub est_seconds_per_sample: f64,
    pub est_seconds_per_step: f64,
    pub est_seconds_per_1000_samples: f64,
    /// With a known training-set size: one epoch, and the whole run.
    pub est_seconds_per_epoch: Option<f64>,
    pub est_seconds_total: Option<f64>,
    pub timing_source: String,
    /// Why the estimate may not apply (e.g. the plan's `N` is not the set's).
    pub warning: Option<String>,
}

/// Resources of `plan` on the default parameter set.
pub fn resources(plan: &Plan, c: &Costs) -> Resources {
    resources_for(plan, c, &PARAM_SETS[0], &Timing::nominal(), None)
}

/// `samples`: training samples per epoch, when known (`run --report`).
pub fn resources_for(plan: &Plan, c: &Costs, p: &ParamDims, timing: &Timing, samples: Option<usize>) -> Resources {
    let (ggsw, labels, packed) = upload_counts(plan);
    let bsk = p.bootstrap_key_bytes();
    let ksk = 2 * p.keyswitch_key_bytes();
    let pks = p.packing_key_bytes();
    // Every bootstrap is preceded by a keyswitch to the small key; external products
    // and levelled ops are microseconds and left out.
    let pbs_ms = timing.pbs_ms_for(p) + timing.keyswitch_ms;
    let conversions = c.conversion_pbs_per_sample.min(c.pbs_per_sample);
    let sample_ms = (c.pbs_per_sample - conversions) as f64 * pbs_ms
        + conversions as f64 * timing.convert_ms
        + packed as f64 * timing.pack_ms_per_lwe;
    let step_ms = plan.train.batch as f64 * sample_ms + c.step_pbs as f64 * pbs_ms;
    let step_s = step_ms / 1e3 / timing.threads.max(1) as f64;
    let batch = plan.train.batch.max(1) as f64;
    let mut warnings = Vec::new();
    if plan.poly_size != p.poly_size {
        warnings.push(format!(
            "the plan was compiled for N = {}, the parameter set has N = {}",
            plan.poly_size, p.poly_size
        ));
    }
    let products = plan.sample.iter().filter(|i| is_ciphertext_product(i)).count();
    if products > 0 {
        // The conversion keys (`runtime::tfhe::convert`): a bootstrap key at `convert_bsk`
        // and the circuit-bootstrap packing keys (`k + 1` keys of `k·N + 1` blocks).
        let levels = crate::noise::NoiseParams::DEFAULT.convert_bsk.levels as u64;
        let conv_bsk = p.bootstrap_key_bytes() / p.bsk.1 as u64 * levels;
        let pfks = p.glwe_size() * (p.big_lwe_dim() + 1) * p.pks.1 as u64 * p.glwe_size() * p.poly_size as u64 * 8;
        warnings.push(format!(
            "{products} sample instruction(s) multiply two server ciphertexts: their {conversions} conversion \
             bootstraps per sample are costed at {:.1} ms each (their own deeper key and two keyswitches per \
             level), the external products not at all; the conversion keys ({:.1} MiB bootstrap key + {:.1} MiB \
             packing keys, `convert.keys`) come on top of the server keys",
            timing.convert_ms,
            conv_bsk as f64 / 1048576.0,
            pfks as f64 / 1048576.0
        ));
    }
    let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
    Resources {
        param_set: p.id(),
        security_bits: SECURITY_BITS,
        allowed_param_sets: PARAM_SETS.iter().map(ParamDims::id).collect(),
        client_key_bytes: p.client_key_bytes(),
        server_keys_bytes: bsk + ksk + pks,
        bootstrap_key_bytes: bsk,
        keyswitch_keys_bytes: ksk,
        packing_key_bytes: pks,
        ggsw_per_sample: ggsw,
        label_lwes_per_sample: labels,
        upload_bytes_per_sample: ggsw * p.seeded_ggsw_bytes() + labels * p.big_lwe_bytes(),
        est_seconds_per_sample: step_s / batch,
        est_seconds_per_step: step_s,
        est_seconds_per_1000_samples: step_s * 1000.0 / batch,
        est_seconds_per_epoch: samples.map(|n| step_s * n.div_ceil(plan.train.batch.max(1)) as f64),
        est_seconds_total: samples
            .map(|n| step_s * n.div_ceil(plan.train.batch.max(1)) as f64 * plan.train.epochs as f64),
        timing_source: timing.source.clone(),
        warning,
    }
}

fn is_ciphertext_product(inst: &Inst) -> bool {
    matches!(inst, Inst::Mul { .. } | Inst::MatVec { .. } | Inst::MatVecT { .. } | Inst::OuterAcc { .. })
}

/// `(GGSWs, label LWEs, packed LWEs)` per sample. One GGSW family per distinct
/// (input, tensor layout, direction) of the data products — the runtime's
/// `PlanInfo::needs` — with one GGSW per polynomial; one LWE per class per label term;
/// one packed LWE per element of every error register of a data outer product.
fn upload_counts(plan: &Plan) -> (u64, u64, u64) {
    let mut families = Vec::new();
    let (mut labels, mut packed) = (0u64, 0u64);
    // The loss program's label term is uploaded with every sample too.
    for inst in plan.all_insts() {
        let (tensor, input, backward) = match *inst {
            Inst::DataMatVec { tensor, input, .. } => (tensor, input, false),
            Inst::DataOuterAcc { grad, input, e } => {
                packed += plan.regs.get(e.index()).map_or(0, |r| r.len as u64);
                (grad, input, true)
            }
            Inst::LabelTerm { out, .. } => {
                labels += plan.regs.get(out.index()).map_or(0, |r| r.len as u64);
                continue;
            }
            _ => continue,
        };
        let Some(t) = plan.tensors.get(tensor.index()) else { continue };
        if let Layout::DataPoly { per_poly, polys, .. } = t.layout {
            let family = (input, t.rows, per_poly, polys, backward);
            if !families.contains(&family) {
                families.push(family);
            }
        }
    }
    let ggsw = families.iter().map(|f| f.3 as u64).sum();
    (ggsw, labels, packed)
}
