//! Static checks of a plan for the encrypted backend, and key inference.
//!
//! Run once before any ciphertext work so that an unsupported instruction or an
//! inconsistent plan is an error up front, never a panic halfway through an epoch.
//! Key inference: every register is a sum of LWE vectors under the keys of the chain
//! (see [`super::keys`] and [`super::value`]): `DataMatVec` outputs are under the data
//! key, `Lut` outputs under the PBS key, levelled ops take the union of their operands'
//! keys, and a `LabelTerm` takes one key of whatever it is combined with (the client
//! encrypts it under that key; the PBS key when there is a choice).

use super::error::{invalid, TfheError};
use super::ggsw::Direction;
use super::keys::KeyKind;
use super::params::ParamSet;
use blindtuner_compiler::noise::sim::key_sets;
use blindtuner_compiler::plan::{Inst, Layout, Plan, ProductStrategy, RegId, StepInst, TensorId};
use blindtuner_compiler::spec::InputId;

/// One data GGSW family a sample must carry: `polys` GGSWs of the input's features for
/// tensors of `stride` rows with `per_poly` features per polynomial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataNeed {
    pub input: InputId,
    pub stride: usize,
    pub per_poly: usize,
    pub polys: usize,
    pub dir: Direction,
}

/// What the client must encrypt and the server may assume, derived from a plan.
#[derive(Clone, Debug)]
pub struct PlanInfo {
    /// Key of every register of the sample program: the one key of a single-key
    /// register (what the client encrypts a label term under), the PBS key for a sum.
    pub reg_keys: Vec<KeyKind>,
    /// Whether a register is a sum under both big keys (see [`super::value`]).
    pub reg_mixed: Vec<bool>,
    /// Data GGSW families, in first-use order.
    pub needs: Vec<DataNeed>,
    /// Indices (`Plan::inst`: the sample program, then the loss program) of the
    /// `LabelTerm` instructions, in order.
    pub label_terms: Vec<usize>,
}

impl PlanInfo {
    pub fn analyse(plan: &Plan, params: &ParamSet) -> Result<PlanInfo, TfheError> {
        let n = params.n();
        if plan.poly_size != n {
            return Err(invalid(format!("plan compiled for N = {}, parameter set has N = {n}", plan.poly_size)));
        }
        check_luts(plan, n)?;
        check_tensors(plan, n)?;
        check_refresh(plan)?;
        check_regs(plan)?;
        let sets = key_sets(plan);
        let reg_keys = sets.iter().map(|s| if s.data && !s.pbs { KeyKind::Data } else { KeyKind::Pbs }).collect();
        let reg_mixed = sets.iter().map(|s| s.mixed()).collect();
        let mut info = PlanInfo { reg_keys, reg_mixed, needs: Vec::new(), label_terms: Vec::new() };
        let mut written = Vec::new();
        let mut read = Vec::new();
        for (i, inst) in plan.all_insts().enumerate() {
            info.check_inst(plan, i, inst)?;
            match *inst {
                Inst::DataMatVec { tensor, .. } => read.push(tensor),
                Inst::DataOuterAcc { grad, .. } => written.push(grad),
                _ => {}
            }
        }
        if let Some(t) = written.iter().find(|t| read.contains(t)) {
            // Samples of a batch run in parallel against the same tensors: a tensor both
            // read and accumulated per sample would make the result order-dependent.
            return Err(invalid(format!(
                "tensor `{}` is both read and accumulated by the sample program",
                tname(plan, *t)
            )));
        }
        for s in &plan.step {
            check_step(plan, s)?;
        }
        Ok(info)
    }

    /// Index into [`PlanInfo::needs`] of the GGSW family an instruction uses.
    pub fn need_index(&self, plan: &Plan, tensor: TensorId, dir: Direction) -> Option<usize> {
        let Layout::DataPoly { input, per_poly, polys } = plan.tensors.get(tensor.index())?.layout else {
            return None;
        };
        let stride = plan.tensors[tensor.index()].rows;
        self.needs.iter().position(|d| *d == DataNeed { input, stride, per_poly, polys, dir })
    }

    fn add_need(&mut self, need: DataNeed) {
        if !self.needs.contains(&need) {
            self.needs.push(need);
        }
    }

    fn check_inst(&mut self, plan: &Plan, i: usize, inst: &Inst) -> Result<(), TfheError> {
        let len = |r: RegId| {
            plan.regs.get(r.index()).map(|r| r.len).ok_or_else(|| invalid(format!("register {} out of range", r.0)))
        };
        let key = |r: RegId| self.reg_keys[r.index()];
        let at = || format!("sample instruction {i} ({})", inst_name(inst));
        match *inst {
            Inst::DataMatVec { tensor, input, out } | Inst::DataOuterAcc { grad: tensor, input, e: out } => {
                let t = plan
                    .tensors
                    .get(tensor.index())
                    .ok_or_else(|| invalid(format!("{}: no tensor {}", at(), tensor.0)))?;
                let Layout::DataPoly { input: li, per_poly, polys } = t.layout else {
                    return Err(invalid(format!("{}: tensor `{}` is not in the data-polynomial layout", at(), t.name)));
                };
                if li != input {
                    return Err(invalid(format!("{}: tensor `{}` is laid out for another input", at(), t.name)));
                }
                if len(out)? != t.rows {
                    return Err(invalid(format!(
                        "{}: register has {} elements, tensor `{}` {} rows",
                        at(),
                        len(out)?,
                        t.name,
                        t.rows
                    )));
                }
                let dir =
                    if matches!(inst, Inst::DataMatVec { .. }) { Direction::Forward } else { Direction::Backward };
                if dir == Direction::Backward && (key(out) != KeyKind::Pbs || self.reg_mixed[out.index()]) {
                    return Err(TfheError::Unsupported {
                        what: at(),
                        why: format!("the error register is under the {}; only bootstrap outputs can be packed (no key is packed under itself)", key(out)),
                    });
                }
                self.add_need(DataNeed { input, stride: t.rows, per_poly, polys, dir });
            }
            Inst::Lut { lut, input, out } => {
                if plan.luts.get(lut.index()).is_none() {
                    return Err(invalid(format!("{}: no lut {}", at(), lut.0)));
                }
                if len(input)? != len(out)? {
                    return Err(invalid(format!("{}: input and output lengths differ", at())));
                }
            }
            Inst::Add { a, b, out } | Inst::Sub { a, b, out } => {
                if len(a)? != len(b)? || len(a)? != len(out)? {
                    return Err(invalid(format!("{}: operand lengths differ", at())));
                }
            }
            Inst::AddConst { a, out, .. } | Inst::Dither { a, out, .. } | Inst::MulInt { a, out, .. } => {
                if len(a)? != len(out)? {
                    return Err(invalid(format!("{}: operand lengths differ", at())));
                }
            }
            Inst::LabelTerm { label, out, on, off, lr_scaled } => {
                let shift = if lr_scaled { plan.train.max_lr_shift() } else { 0 };
                if shift >= 64 || (on | off).trailing_zeros() < shift {
                    return Err(invalid(format!("{}: label constants lose bits at learning-rate shift {shift}", at())));
                }
                let l = plan
                    .labels
                    .iter()
                    .find(|l| l.id == label)
                    .ok_or_else(|| invalid(format!("{}: unknown label", at())))?;
                if l.classes != len(out)? {
                    return Err(invalid(format!(
                        "{}: label has {} classes, register {} elements",
                        at(),
                        l.classes,
                        len(out)?
                    )));
                }
                self.label_terms.push(i);
            }
            Inst::Elem { a, index, out } => {
                if index >= len(a)? || len(out)? != 1 {
                    return Err(invalid(format!("{}: index out of range", at())));
                }
            }
            Inst::Bcast { a, .. } => {
                if len(a)? != 1 {
                    return Err(invalid(format!("{}: broadcast of a non-scalar", at())));
                }
            }
            Inst::Concat { ref parts, out } => {
                let mut total = 0;
                for &p in parts {
                    total += len(p)?;
                }
                if total != len(out)? {
                    return Err(invalid(format!("{}: parts of {total} elements into {}", at(), len(out)?)));
                }
            }
            Inst::MatVec { tensor, v, .. }
            | Inst::MatVecT { tensor, v, .. }
            | Inst::OuterAcc { grad: tensor, v, .. } => {
                // Executed as one external product of a polynomial GGSW the server
                // converts from `v`'s table input (`convert.rs`) with the tensor's one
                // polynomial under the PBS key.
                let strategy = plan.products.get(&i).map(|p| p.strategy);
                let why = if strategy != Some(ProductStrategy::TableGgsw) {
                    let name = strategy.map_or("not recorded", ProductStrategy::name);
                    Some(format!("its lowering is `{name}`; only `table-ggsw` runs on ciphertexts"))
                } else if plan.table_writing(v).is_none() {
                    Some("its integer operand is not a lookup table's output".to_string())
                } else {
                    match plan.tensors.get(tensor.index()).map(|t| t.layout) {
                        Some(Layout::PbsPoly { polys: 1, .. }) => None,
                        _ => Some("its tensor is not one polynomial under the PBS key".to_string()),
                    }
                };
                if let Some(why) = why {
                    return Err(TfheError::Unsupported { what: at(), why });
                }
            }
            Inst::Mul { .. } => {
                return Err(TfheError::Unsupported {
                    what: at(),
                    why: "elementwise products of two server ciphertexts are not implemented yet".into(),
                });
            }
        }
        Ok(())
    }
}

fn tname(plan: &Plan, t: TensorId) -> &str {
    plan.tensors.get(t.index()).map_or("?", |t| t.name.as_str())
}

pub(crate) fn inst_name(inst: &Inst) -> &'static str {
    match inst {
        Inst::DataMatVec { .. } => "DataMatVec",
        Inst::MatVec { .. } => "MatVec",
        Inst::MatVecT { .. } => "MatVecT",
        Inst::Lut { .. } => "Lut",
        Inst::Add { .. } => "Add",
        Inst::Sub { .. } => "Sub",
        Inst::AddConst { .. } => "AddConst",
        Inst::Dither { .. } => "Dither",
        Inst::MulInt { .. } => "MulInt",
        Inst::Mul { .. } => "Mul",
        Inst::LabelTerm { .. } => "LabelTerm",
        Inst::Elem { .. } => "Elem",
        Inst::Bcast { .. } => "Bcast",
        Inst::Concat { .. } => "Concat",
        Inst::DataOuterAcc { .. } => "DataOuterAcc",
        Inst::OuterAcc { .. } => "OuterAcc",
    }
}

fn check_luts(plan: &Plan, n: usize) -> Result<(), TfheError> {
    for l in &plan.luts {
        let cells = l.table.len();
        if n.checked_rem(cells) != Some(0) {
            return Err(invalid(format!("lut `{}`: {cells} cells do not divide N = {n}", l.name)));
        }
        if l.out_shift >= 64 {
            return Err(invalid(format!("lut `{}`: output shift {} ≥ 64", l.name, l.out_shift)));
        }
        // The bootstrap negates the shifted cell value; `eval_at` shifts the negated
        // value. They agree only if the shift drops zero bits.
        let max_shift = plan.train.max_lr_shift();
        if l.lr_scaled && l.out_shift < max_shift {
            return Err(invalid(format!(
                "lut `{}`: learning-rate shift {max_shift} exceeds its output shift {}",
                l.name, l.out_shift
            )));
        }
    }
    Ok(())
}

fn check_tensors(plan: &Plan, n: usize) -> Result<(), TfheError> {
    for t in &plan.tensors {
        if let Layout::DataPoly { input, per_poly, polys } = t.layout {
            if per_poly == 0 || t.rows * per_poly > n {
                return Err(invalid(format!(
                    "tensor `{}`: {} rows × {per_poly} per polynomial exceed N = {n}",
                    t.name, t.rows
                )));
            }
            if per_poly * polys < t.cols {
                return Err(invalid(format!(
                    "tensor `{}`: {polys} polynomials of {per_poly} hold fewer than {} columns",
                    t.name, t.cols
                )));
            }
            let inp = plan.inputs.iter().find(|i| i.id == input);
            if !matches!(inp, Some(i) if i.augmented_len() == t.cols) {
                return Err(invalid(format!("tensor `{}`: columns do not match its input's features", t.name)));
            }
        }
    }
    Ok(())
}

/// The refresh reads bits `lsb..=top` with shifts `2^(63−bit)` and tables `2^(bit−1)`,
/// from coefficients extracted out of polynomials.
fn check_refresh(plan: &Plan) -> Result<(), TfheError> {
    for r in &plan.train.refresh {
        let t = plan.tensors.get(r.tensor.index()).ok_or_else(|| invalid("refresh of a tensor the plan lacks"))?;
        if !matches!(t.layout, Layout::DataPoly { .. }) || t.role != blindtuner_compiler::plan::TensorRole::Param {
            return Err(TfheError::Unsupported {
                what: format!("refresh of `{}`", t.name),
                why: "only parameters stored as polynomials are refreshed".into(),
            });
        }
        if r.lsb == 0 || r.top <= r.lsb || r.top > 62 || r.every == 0 {
            return Err(invalid(format!(
                "refresh of `{}`: bits {}..={} every {} steps",
                t.name, r.lsb, r.top, r.every
            )));
        }
    }
    Ok(())
}

fn check_step(plan: &Plan, s: &StepInst) -> Result<(), TfheError> {
    let get = |t: TensorId| plan.tensors.get(t.index()).ok_or_else(|| invalid(format!("step: no tensor {}", t.0)));
    match *s {
        StepInst::SubAssign { dst, src } | StepInst::AddAssign { dst, src } => {
            let (d, s) = (get(dst)?, get(src)?);
            if d.rows != s.rows || d.cols != s.cols || d.layout != s.layout {
                return Err(invalid(format!("step: tensors `{}` and `{}` differ in shape or layout", d.name, s.name)));
            }
            Ok(())
        }
        StepInst::Zero { dst } => get(dst).map(|_| ()),
        // A multi-digit bootstrap between tensors of one polynomial layout (`tfhe::refresh`).
        StepInst::Rescale { dst, src, .. } => {
            let (d, s) = (get(dst)?, get(src)?);
            if d.rows != s.rows || d.cols != s.cols || d.layout != s.layout {
                return Err(invalid(format!(
                    "step: rescale between `{}` and `{}` of different shapes",
                    s.name, d.name
                )));
            }
            // Under the data key (packing key) or the PBS key (the conversion keys'
            // identity packing key, which every plan with `PbsPoly` tensors has).
            if !matches!(s.layout, Layout::DataPoly { .. } | Layout::PbsPoly { .. }) {
                return Err(TfheError::Unsupported {
                    what: format!("rescale of `{}`", s.name),
                    why: "only tensors stored as polynomials are rescaled".into(),
                });
            }
            Ok(())
        }
    }
}

/// Every register an instruction reads or writes exists (before anything indexes
/// `plan.regs` by them: a plan file may be corrupt or hand-edited).
fn check_regs(plan: &Plan) -> Result<(), TfheError> {
    for inst in plan.all_insts() {
        if let Some(r) = inst.reads().into_iter().chain(inst.out()).find(|r| r.index() >= plan.regs.len()) {
            return Err(invalid(format!("register {} out of range", r.0)));
        }
    }
    Ok(())
}
