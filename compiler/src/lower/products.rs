//! Pass `products`: how every product of two server ciphertexts is lowered.
//!
//! A data product (one operand is the client's data) is an external product with the
//! client's GGSW and costs no bootstrap. Once a hidden layer exists, `W2 @ h`, `e hᵀ`,
//! `W2ᵀ e` and the activation-derivative mask multiply two server values, and there
//! are three ways to do it, with very different costs:
//!
//! * **square trick** `a·b = ((a + b)² − (a − b)²)/4`: two bootstraps per scalar
//!   product, but a bootstrap reads only `lut_bits` bits (the finest table the failure
//!   budget allows: 5 at N = 2048), so both operands must fit in them;
//! * **bivariate table**: one bootstrap per product on both operands packed into one
//!   input, which needs the sum of their bits;
//! * **GGSW conversion**: circuit-bootstrap the integer operand into GGSW ciphertexts
//!   (one bootstrap per bit and GGSW decomposition level), after which every product
//!   with it is an external product, exactly like a data product. The conversion is
//!   paid once per register and shared by every product that reads it;
//! * **table → GGSW**: when the integer operand is a lookup table's output (a hidden
//!   activation, its derivative), its GGSW needs no bit extraction — one bootstrap of
//!   the table's input per GGSW level, with the table times that level's gadget factor
//!   (`runtime::tfhe::convert`); shared per register like the general conversion.
//!
//! The plan's semantics are exact whatever the lowering (`plan.rs`): the choice only
//! changes the bootstraps. The pass takes the cheapest feasible lowering per product in
//! program order (so a later product sees the conversions earlier ones paid for), or
//! the one `--lowering NODE=STRATEGY` forces, and records it in `Plan::products`.

use crate::diag::Diagnostic;
use crate::noise::params::NoiseParams;
use crate::plan::{Inst, Plan, PlanProduct, ProductStrategy, RegId};
use blindtuner_grammar::ast::Span;
use serde::Serialize;
use std::collections::BTreeMap;

/// Diagnostic code: `--lowering` names no product or a lowering that cannot work.
pub const E_LOWERING: &str = "E0703";

/// A product instruction as the strategies see it.
#[derive(Clone, Copy, Debug)]
struct Operands {
    /// Scalar products computed.
    products: u64,
    /// The operand read as an integer (`t >> lsb`), and its bits (sign included).
    int_reg: RegId,
    int_bits: u32,
    /// Bits of the other operand (a torus value: a weight or an error).
    other_bits: u32,
}

fn operands(plan: &Plan, inst: &Inst) -> Option<Operands> {
    let len = |r: RegId| plan.regs[r.index()].len as u64;
    let bits = |r: RegId| plan.regs[r.index()].fmt.bits();
    let tbits = |t: crate::plan::TensorId| plan.tensors[t.index()].fmt.bits();
    match *inst {
        Inst::MatVec { tensor, v, out, .. } | Inst::MatVecT { tensor, v, out } => {
            Some(Operands { products: len(v) * len(out), int_reg: v, int_bits: bits(v), other_bits: tbits(tensor) })
        }
        Inst::OuterAcc { e, v, .. } => {
            Some(Operands { products: len(e) * len(v), int_reg: v, int_bits: bits(v), other_bits: bits(e) })
        }
        Inst::Mul { a, b, .. } => {
            Some(Operands { products: len(a), int_reg: a, int_bits: bits(a), other_bits: bits(b) })
        }
        _ => None,
    }
}

/// Input bits a bootstrap of this plan resolves: the cells per half torus the failure
/// budget allows (`lut::cell_for_budget`; 5 bits at 2^-40, N = 2048). Finer tables
/// exist in some plans, but their far landings break the budget.
pub fn lut_bits(plan: &Plan) -> u32 {
    use super::lut::{cell_for_budget, HORIZON_PBS};
    let cell =
        cell_for_budget(plan.train.p_fail / 2.0 / HORIZON_PBS, super::LowerOptions::default().lut_margin_bits, 1);
    (63 - cell).max(1) as u32
}

/// One lowering of one product and what it would cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alternative {
    pub strategy: ProductStrategy,
    /// Bootstraps per sample; `None` when it cannot work (see `why`).
    pub pbs: Option<u64>,
    pub why: String,
}

/// A product of the plan: the lowering used and the ones considered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProductRow {
    /// Index in `plan.sample` (the report's node `s<inst>`).
    pub inst: usize,
    pub name: String,
    pub chosen: ProductStrategy,
    pub forced: bool,
    pub pbs: u64,
    pub alternatives: Vec<Alternative>,
}

/// Registers already converted to GGSW: by which product (index in `plan.sample`) and
/// lowering.
type Converted = BTreeMap<RegId, (usize, ProductStrategy)>;

fn alternatives(plan: &Plan, op: &Operands, converted: &Converted, bits: u32) -> Vec<Alternative> {
    let levels = NoiseParams::DEFAULT.ggsw.levels;
    let convert_levels = NoiseParams::DEFAULT.convert.levels;
    let name = |r: RegId| plan.regs[r.index()].name.clone();
    ProductStrategy::ALL
        .into_iter()
        .map(|strategy| {
            let (pbs, why) = match strategy {
                ProductStrategy::SquareTrick => {
                    let need = op.int_bits.max(op.other_bits) + 1;
                    if need <= bits {
                        (Some(2 * op.products), format!("2 × {} products", op.products))
                    } else {
                        (None, format!("(a ± b)² needs {need} input bits, a bootstrap reads {bits}"))
                    }
                }
                ProductStrategy::BivariateLut => {
                    let need = op.int_bits + op.other_bits;
                    if need <= bits {
                        (Some(op.products), format!("{} products", op.products))
                    } else {
                        (None, format!("both operands need {need} input bits, a bootstrap reads {bits}"))
                    }
                }
                ProductStrategy::GgswConversion => match converted.get(&op.int_reg) {
                    Some(&(by, _)) => (Some(0), format!("`{}` already converted by s{by}", name(op.int_reg))),
                    None => {
                        let len = plan.regs[op.int_reg.index()].len as u64;
                        (
                            Some(len * u64::from(op.int_bits) * u64::from(levels)),
                            format!("{len} values × {} bits × {levels} levels of `{}`", op.int_bits, name(op.int_reg)),
                        )
                    }
                },
                ProductStrategy::TableGgsw => match (converted.get(&op.int_reg), plan.table_writing(op.int_reg)) {
                    (_, None) => (None, format!("`{}` is not a lookup table's output", name(op.int_reg))),
                    (Some(&(by, _)), Some(_)) => {
                        (Some(0), format!("`{}` already converted by s{by}", name(op.int_reg)))
                    }
                    (None, Some(w)) => {
                        let len = plan.regs[op.int_reg.index()].len as u64;
                        (
                            Some(len * u64::from(convert_levels)),
                            format!(
                                "{len} values × {convert_levels} levels of `{}` (its table, s{w})",
                                name(op.int_reg)
                            ),
                        )
                    }
                },
            };
            Alternative { strategy, pbs, why }
        })
        .collect()
}

fn row_name(plan: &Plan, inst: &Inst) -> String {
    match (inst.out(), inst) {
        (Some(out), _) => plan.regs[out.index()].name.clone(),
        (None, Inst::OuterAcc { grad, .. }) => plan.tensors[grad.index()].name.clone(),
        _ => String::new(),
    }
}

/// The cheapest feasible lowering (a GGSW conversion always is); on a tie, the one
/// that already converted the operand (`prefer`), so a register reads one kind of GGSW.
fn cheapest(alts: &[Alternative], prefer: Option<ProductStrategy>) -> ProductStrategy {
    alts.iter()
        .filter(|a| a.pbs.is_some())
        .min_by_key(|a| (a.pbs, Some(a.strategy) != prefer))
        .map_or(ProductStrategy::GgswConversion, |a| a.strategy)
}

/// Every product in program order with its alternatives, the lowering `decide` picks
/// (`None`: skip it) and its cost given the GGSW conversions earlier products paid for.
fn walk(
    plan: &Plan,
    mut decide: impl FnMut(usize, &str, &[Alternative], Option<ProductStrategy>) -> Option<PlanProduct>,
) -> Vec<ProductRow> {
    let bits = lut_bits(plan);
    let mut converted = Converted::new();
    let mut out = Vec::new();
    for (i, inst) in plan.sample.iter().enumerate() {
        let Some(op) = operands(plan, inst) else { continue };
        let alts = alternatives(plan, &op, &converted, bits);
        let name = row_name(plan, inst);
        let prefer = converted.get(&op.int_reg).map(|&(_, s)| s);
        let Some(PlanProduct { strategy: chosen, forced }) = decide(i, &name, &alts, prefer) else { continue };
        // `choose` refuses an infeasible lowering; a plan edited to hold one anyway is
        // costed as the conversion it would need.
        let feasible = |s: ProductStrategy| alts.iter().find(|a| a.strategy == s).and_then(|a| a.pbs);
        let pbs = feasible(chosen).or_else(|| feasible(ProductStrategy::GgswConversion)).unwrap_or(0);
        if matches!(chosen, ProductStrategy::GgswConversion | ProductStrategy::TableGgsw) {
            converted.entry(op.int_reg).or_insert((i, chosen));
        }
        out.push(ProductRow { inst: i, name, chosen, forced, pbs, alternatives: alts });
    }
    out
}

/// Every product of the plan with its lowering: the one `Plan::products` records, or
/// (before the pass has run) the cheapest feasible one.
pub fn rows(plan: &Plan) -> Vec<ProductRow> {
    walk(plan, |i, _, alts, prefer| {
        Some(plan.products.get(&i).copied().unwrap_or(PlanProduct { strategy: cheapest(alts, prefer), forced: false }))
    })
}

/// Pass `products`: record the lowering of every product, the cheapest feasible one
/// unless `forced` (node `s<i>` or the product's name → strategy) says otherwise.
pub fn choose(plan: &mut Plan, forced: &BTreeMap<String, ProductStrategy>) -> Result<(), Vec<Diagnostic>> {
    let names: Vec<(usize, String)> = plan
        .sample
        .iter()
        .enumerate()
        .filter(|(_, inst)| operands(plan, inst).is_some())
        .map(|(i, inst)| (i, row_name(plan, inst)))
        .collect();
    let unknown: Vec<Diagnostic> = forced
        .keys()
        .filter(|node| !names.iter().any(|(i, name)| **node == format!("s{i}") || *node == name))
        .map(|node| {
            let d = Diagnostic::error(E_LOWERING, format!("`--lowering {node}=…` names no product of this plan"));
            if names.is_empty() {
                d.note("this plan has no product of two server values (data products are always external products)")
            } else {
                let list: Vec<String> = names.iter().map(|(i, n)| format!("s{i} ({n})")).collect();
                d.note(format!("its products are: {}", list.join(", ")))
            }
        })
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let mut errs = Vec::new();
    let rows = walk(plan, |i, name, alts, prefer| {
        let Some(&s) = forced.get(&format!("s{i}")).or_else(|| forced.get(name)) else {
            return Some(PlanProduct { strategy: cheapest(alts, prefer), forced: false });
        };
        let a = alts.iter().find(|a| a.strategy == s)?;
        if a.pbs.is_some() {
            return Some(PlanProduct { strategy: s, forced: true });
        }
        let inst = &plan.sample[i];
        let at = inst.out().or_else(|| inst.reads().first().copied());
        let span = at.map_or(Span::default(), |r| plan.regs[r.index()].span);
        errs.push(
            Diagnostic::error(E_LOWERING, format!("`s{i}` ({name}) cannot be lowered by `{}`", s.name()))
                .at(span, a.why.clone())
                .hint("the feasible lowerings are listed in the report's `products` section"),
        );
        None
    });
    if !errs.is_empty() {
        return Err(errs);
    }
    plan.products = rows.into_iter().map(|r| (r.inst, PlanProduct { strategy: r.chosen, forced: r.forced })).collect();
    Ok(())
}
