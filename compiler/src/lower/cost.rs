//! Cost of a plan: PBS and external products per sample and per step, PBS depth.
//!
//! Counting rules (what the encrypted backend runs):
//! * `Lut` over a register of length n: n PBS;
//! * server × server products (`Mul`, `MatVec`, `MatVecT`, `OuterAcc`): each scalar
//!   product `int(a)·b` through the square trick `((a+b)² − (a−b)²)/4` costs 2 PBS; a
//!   product with the constant bias feature `one` is levelled (free);
//! * `DataMatVec` / `DataOuterAcc`: one external product per polynomial of the
//!   tensor's `DataPoly` layout (`⌈cols / ⌊N/rows⌋⌉`), no PBS;
//! * `LabelTerm`: client-encrypted, free; everything else is levelled;
//! * step `Rescale`: `digits` PBS per coefficient.
//!
//! PBS depth: the longest chain of PBS-using instructions along register
//! dependencies within one sample (levelled and external-product steps add 0).

use crate::plan::{Inst, Layout, Lowering, Plan, ProductStrategy, StepInst};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstCost {
    pub lowering: Lowering,
    pub pbs: u64,
    pub external_products: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Costs {
    /// Per instruction of `plan.sample`.
    pub sample: Vec<InstCost>,
    /// Per instruction of `plan.step`.
    pub step: Vec<InstCost>,
    pub pbs_per_sample: u64,
    /// PBS of `sample[..forward_len]` (inference).
    pub forward_pbs: u64,
    pub external_products_per_sample: u64,
    pub pbs_depth: u32,
    /// PBS depth of every register (bootstraps on the longest chain producing it).
    pub reg_depth: Vec<u32>,
    /// PBS of the step program alone.
    pub step_pbs: u64,
    /// `batch · pbs_per_sample + step_pbs`.
    pub pbs_per_step: u64,
    pub external_products_per_step: u64,
    /// PBS of the loss program for one measured sample (`Plan::loss`; 0 without).
    pub loss_pbs_per_sample: u64,
    /// The part of `pbs_per_sample` that converts a server value to GGSW (`table-ggsw`,
    /// `ggsw` products): bootstraps with the conversion key plus two packing keyswitches
    /// each, ~2.5× a training bootstrap (the report's time estimate costs them apart).
    pub conversion_pbs_per_sample: u64,
}

impl Costs {
    /// Bootstraps of a run of `samples` sample programs in `steps` steps: theirs, the
    /// step programs' and the refreshes due (`Plan::refresh_pbs`).
    pub fn run_pbs(&self, plan: &Plan, samples: u64, steps: u64) -> u64 {
        self.pbs_per_sample * samples + self.step_pbs * steps + plan.refresh_pbs(steps)
    }

    /// Bootstraps of the loss measurement over `epochs` epochs of `n` samples.
    pub fn loss_pbs(&self, plan: &Plan, n: usize, epochs: usize) -> u64 {
        plan.loss
            .as_ref()
            .map_or(0, |l| self.loss_pbs_per_sample * l.samples_per_epoch(n, plan.train.batch) * epochs as u64)
    }
}

fn polys(plan: &Plan, t: usize) -> u64 {
    let t = &plan.tensors[t];
    match t.layout {
        Layout::DataPoly { polys, .. } => polys as u64,
        Layout::Lwe => t.cols.div_ceil((plan.poly_size / t.rows.max(1)).max(1)) as u64,
        Layout::PbsPoly { polys, .. } => polys as u64,
    }
}

pub fn inst_cost(plan: &Plan, inst: &Inst) -> InstCost {
    let len = |r: crate::plan::RegId| plan.regs[r.index()].len as u64;
    let (lowering, pbs, ep) = match *inst {
        Inst::DataMatVec { tensor, .. } => (Lowering::ExternalProduct, 0, polys(plan, tensor.index())),
        Inst::DataOuterAcc { grad, .. } => (Lowering::ExternalProduct, 0, polys(plan, grad.index())),
        Inst::Lut { input, .. } => (Lowering::LookupTable, len(input), 0),
        Inst::MatVec { v, out, .. } => (Lowering::PbsProduct, 2 * len(v) * len(out), 0),
        Inst::MatVecT { v, out, .. } => (Lowering::PbsProduct, 2 * len(v) * len(out), 0),
        Inst::OuterAcc { e, v, .. } => (Lowering::PbsProduct, 2 * len(e) * len(v), 0),
        Inst::Mul { out, .. } => (Lowering::PbsProduct, 2 * len(out), 0),
        Inst::LabelTerm { .. } => (Lowering::Client, 0, 0),
        Inst::Add { .. }
        | Inst::Sub { .. }
        | Inst::AddConst { .. }
        | Inst::Dither { .. }
        | Inst::MulInt { .. }
        | Inst::Elem { .. }
        | Inst::Bcast { .. }
        | Inst::Concat { .. } => (Lowering::Levelled, 0, 0),
    };
    InstCost { lowering, pbs, external_products: ep }
}

fn step_cost(plan: &Plan, inst: &StepInst) -> InstCost {
    match *inst {
        StepInst::Rescale { dst, digits, .. } => {
            let t = &plan.tensors[dst.index()];
            InstCost {
                lowering: Lowering::LookupTable,
                pbs: u64::from(digits) * (t.rows * t.cols) as u64,
                external_products: 0,
            }
        }
        _ => InstCost { lowering: Lowering::Levelled, pbs: 0, external_products: 0 },
    }
}

pub fn costs(plan: &Plan) -> Costs {
    // Products of two server values cost what their lowering does (`products`).
    let rows = super::products::rows(plan);
    let products: std::collections::BTreeMap<usize, u64> = rows.iter().map(|r| (r.inst, r.pbs)).collect();
    let conversion_pbs_per_sample = rows
        .iter()
        .filter(|r| matches!(r.chosen, ProductStrategy::TableGgsw | ProductStrategy::GgswConversion))
        .map(|r| r.pbs)
        .sum();
    let sample: Vec<InstCost> = plan
        .sample
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let c = inst_cost(plan, inst);
            match products.get(&i) {
                Some(&pbs) => InstCost { pbs, ..c },
                None => c,
            }
        })
        .collect();
    let step: Vec<InstCost> = plan.step.iter().map(|i| step_cost(plan, i)).collect();
    let mut depth = vec![0u32; plan.regs.len()];
    let mut pbs_depth = 0;
    for (inst, c) in plan.sample.iter().zip(&sample) {
        let d = inst.reads().iter().map(|r| depth[r.index()]).max().unwrap_or(0) + u32::from(c.pbs > 0);
        if let Some(out) = inst.out() {
            depth[out.index()] = d;
        }
        pbs_depth = pbs_depth.max(d);
    }
    let pbs_per_sample = sample.iter().map(|c| c.pbs).sum();
    let forward_pbs = sample[..plan.forward_len.min(sample.len())].iter().map(|c| c.pbs).sum();
    let external_products_per_sample = sample.iter().map(|c| c.external_products).sum();
    let step_pbs = step.iter().map(|c| c.pbs).sum();
    let b = plan.train.batch as u64;
    let loss_pbs_per_sample = plan.loss.as_ref().map_or(0, |l| l.program.iter().map(|i| inst_cost(plan, i).pbs).sum());
    Costs {
        loss_pbs_per_sample,
        conversion_pbs_per_sample,
        pbs_per_sample,
        forward_pbs,
        external_products_per_sample,
        pbs_depth,
        reg_depth: depth,
        step_pbs,
        pbs_per_step: b * pbs_per_sample + step_pbs,
        external_products_per_step: b * external_products_per_sample,
        sample,
        step,
    }
}
