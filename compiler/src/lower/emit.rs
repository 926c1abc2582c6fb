//! Emission: instructions, lookup tables, tensors and the assembled [`Plan`].
//!
//! Per sample: the forward pass (data layer by external products, hidden layers by
//! server products, activations by tables), then the error of the logits with `lr/B`
//! folded into its table, then per layer (last first) the gradient accumulation and
//! the back-propagation through `Wᵀ` and `f'`. Per step: the optimizer on the
//! accumulated gradients (already in weight units), then zero the accumulators.

use super::formats::{Formats, LayerFmt};
use super::lut::{cell_for_budget, folded, full_torus, half_torus, TableFn, HORIZON_PBS};
use super::ranges::Ranges;
use super::select::{unsupported, LayerInput, Net};
use super::LowerOptions;
use crate::diag::Diagnostic;
use crate::ir::autodiff::TrainGraph;
use crate::plan::*;
use crate::spec::{Builtin, LossKind, Optimizer, Precision, Spec};
use blindtuner_grammar::ast::Span;
use std::collections::BTreeMap;

struct Emitter {
    regs: Vec<Reg>,
    luts: Vec<Lut>,
    sample: Vec<Inst>,
    poly_size: usize,
}

impl Emitter {
    fn reg(&mut self, name: impl Into<String>, len: usize, fmt: Format, span: Span) -> RegId {
        self.regs.push(Reg { name: name.into(), len, fmt, span });
        RegId(self.regs.len() as u32 - 1)
    }
    /// One plan table per distinct function (a softmax applies the same softplus
    /// 3(k − 2) times; the server builds one accumulator for it).
    fn lut(&mut self, lut: Lut) -> LutId {
        if let Some(i) = self.luts.iter().position(|l| *l == lut) {
            return LutId(i as u32);
        }
        self.luts.push(lut);
        LutId(self.luts.len() as u32 - 1)
    }
    /// `out = lut(input)` into a new register.
    fn apply(&mut self, lut: Lut, input: RegId, out_fmt: Format, span: Span) -> RegId {
        let len = self.regs[input.index()].len;
        let name = lut.name.clone();
        let lut = self.lut(lut);
        let out = self.reg(name, len, out_fmt, span);
        self.sample.push(Inst::Lut { lut, input, out });
        out
    }
    fn bin(
        &mut self,
        op: fn(RegId, RegId, RegId) -> Inst,
        a: RegId,
        b: RegId,
        name: &str,
        fmt: Format,
        span: Span,
    ) -> RegId {
        let len = self.regs[a.index()].len;
        let out = self.reg(name, len, fmt, span);
        self.sample.push(op(a, b, out));
        out
    }
}

/// `e = relu'(z)·dh` without a product of two server values: a gate table puts half
/// the torus on `dh` where `relu'(z) = 0`, and an odd table `T(u) = u/2` (full torus,
/// in `e`'s format) read at `dh + gate` and at `dh` gives `±T(dh)` and `T(dh)`: their
/// sum is `dh` where the unit is active and `0` where it is not. Three bootstraps per
/// hidden unit instead of a GGSW conversion of `dh` (bits × levels); `dh` is read at
/// the failure budget's cells (`cell_log2`), stochastically rounded (`Inst::Dither`).
fn relu_mask(
    em: &mut Emitter,
    (dh_in, dh_fmt): (RegId, Format),
    (z, z_fmt, z_range): (RegId, Format, (f64, f64)),
    e_fmt: Format,
    cell_log2: i32,
    name: &str,
    span: Span,
) -> RegId {
    let n = em.poly_size;
    let closed = |u: f64| if Builtin::Relu.deriv(u) > 0.0 { 0.0 } else { 1.0 };
    // A landing off the gate's cell only matters across its step, at z ≈ 0, where the
    // mask then passes or drops a unit's `dh` by mistake: graded, like the activation.
    let gate = half_torus(
        &TableFn {
            name: "relu gate".into(),
            func: "(1 − relu'(z))·2^63".into(),
            f: &closed,
            in_fmt: z_fmt,
            assumed: z_range,
            out_shift: 63,
        },
        1.0 / 8.0,
        n,
    );
    let gate = Lut { graded: true, ..gate };
    let unit = (e_fmt.frac() as f64).exp2();
    let a = dh_fmt.range.0.abs().max(dh_fmt.range.1.abs());
    let halve = move |x: f64| x.clamp(-a, a) / 2.0 * unit;
    let half = full_torus(
        &TableFn {
            name: "half".into(),
            func: "dh/2".into(),
            f: &halve,
            in_fmt: dh_fmt,
            assumed: (-a, a),
            out_shift: e_fmt.lsb.max(0) as u32,
        },
        ((cell_log2 - dh_fmt.scale) as f64).exp2(),
        n,
    );
    // Both reads round `dh` to the nearest of the table's cells, and `dh` (a product
    // of the small error with `W2`) mostly moves by less than half a cell early in
    // training: nearest rounding drops those gradients. A public offset within a cell,
    // the same for both reads so a closed gate still sums to exactly 0, makes the
    // rounding right on average (stochastic rounding) at no bootstrap.
    let width = (1u64 << 63) / half.table.len() as u64;
    // `dh`'s range is an assumed bound the tables saturate at; half a cell more stays
    // far inside their window, so the format is `dh`'s.
    let dh = em.reg("dh + dither", em.regs[dh_in.index()].len, dh_fmt, span);
    em.sample.push(Inst::Dither { a: dh_in, width, out: dh });
    let gate_fmt = Format { scale: dh_fmt.scale, lsb: 63, range: dh_fmt.range, proven: false };
    let g = em.apply(gate, z, gate_fmt, span);
    let u = em.bin(|a, b, out| Inst::Add { a, b, out }, dh, g, "dh + gate", dh_fmt, span);
    // Behind a closed gate the input reads the negacyclic half: the point, not a wrap
    // (the same table under its own name, so the clear backend's range counters stay
    // meaningful for the ungated read).
    let gated = folded(Lut { name: "half, gated".into(), ..half.clone() });
    let h_fmt = Format { range: (e_fmt.range.0 / 2.0, e_fmt.range.1 / 2.0), ..e_fmt };
    let signed = em.apply(gated, u, h_fmt, span);
    let plain = em.apply(half, dh, h_fmt, span);
    em.bin(|a, b, out| Inst::Add { a, b, out }, signed, plain, name, e_fmt, span)
}

fn to_u64(v: i64, shift: i32) -> u64 {
    (v as u64).wrapping_shl(shift.max(0) as u32)
}

pub fn emit(
    spec: &Spec,
    tg: &TrainGraph,
    net: &Net,
    r: &Ranges,
    fmts: &Formats,
    opts: &LowerOptions,
) -> Result<Plan, Vec<Diagnostic>> {
    let n = opts.poly_size;
    let mut em = Emitter { regs: vec![], luts: vec![], sample: vec![], poly_size: n };
    let decl = &spec.inputs[net.input.index()];
    let label = &spec.labels[net.label.index()];
    let k = label.classes;
    let nl = net.layers.len();

    // ---- tensors
    let mut tensors = Vec::new();
    let mut ptensor = Vec::new();
    let mut gtensor = Vec::new();
    for (l, layer) in net.layers.iter().enumerate() {
        let f = &fmts.layers[l];
        let cols = layer.cols + usize::from(layer.b.is_some());
        let layout = match layer.input {
            LayerInput::Data(input) => {
                let per_poly = n / layer.rows;
                if per_poly == 0 {
                    return Err(vec![unsupported(tg, layer.z, format!("a data layer with more than N = {n} rows"))]);
                }
                Layout::DataPoly { input, per_poly, polys: cols.div_ceil(per_poly) }
            }
            LayerInput::Act { .. } => {
                let per_poly = (n / layer.rows.max(1)).max(1);
                Layout::PbsPoly { per_poly, polys: cols.div_ceil(per_poly) }
            }
        };
        let part = |p: crate::spec::ParamId, col_start: usize| {
            let d = &spec.params[p.index()];
            TensorPart { name: d.name.clone(), param: p, shape: d.shape.clone(), col_start, init: d.init.clone() }
        };
        let mut parts = vec![part(layer.w, 0)];
        parts.extend(layer.b.map(|b| part(b, layer.cols)));
        let name = parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join("|");
        let t = TensorId(tensors.len() as u32);
        let base =
            PlanTensor { name: name.clone(), role: TensorRole::Param, rows: layer.rows, cols, fmt: f.w, layout, parts };
        let grad = PlanTensor { name: format!("d({name})"), role: TensorRole::Grad(t), parts: vec![], ..base.clone() };
        tensors.push(base);
        ptensor.push(t);
        gtensor.push(TensorId(tensors.len() as u32));
        tensors.push(grad);
    }

    // ---- forward
    let mut z_regs = Vec::with_capacity(nl);
    let mut h_regs: Vec<Option<RegId>> = vec![None; nl];
    for (l, layer) in net.layers.iter().enumerate() {
        let f = &fmts.layers[l];
        let zn = tg.graph.node(layer.z);
        let zname = zn.name.clone().unwrap_or_else(|| format!("z{}", l + 1));
        let z = em.reg(zname, layer.rows, f.z, zn.span);
        match layer.input {
            LayerInput::Data(input) => em.sample.push(Inst::DataMatVec { tensor: ptensor[l], input, out: z }),
            LayerInput::Act { .. } => {
                let v = h_regs[l].expect("activation register emitted by the previous layer");
                let one = layer.b.map(|_| 1i64 << f.vs);
                em.sample.push(Inst::MatVec { tensor: ptensor[l], v, one, out: z });
            }
        }
        z_regs.push(z);
        if let Some(next) = net.layers.get(l + 1) {
            let LayerInput::Act { f: act, node } = next.input else { unreachable!("hidden layers read activations") };
            let af = fmts.acts[l + 1].expect("formats of every activation");
            let an = tg.graph.node(node);
            let func = move |u: f64| act.eval(u) * (fmts.layers[l + 1].vs as f64).exp2();
            let lut = half_torus(
                &TableFn {
                    name: an.name.clone().unwrap_or_else(|| act.name().into()),
                    func: format!("{}(z)·2^{}", act.name(), fmts.layers[l + 1].vs),
                    f: &func,
                    in_fmt: f.z,
                    assumed: r.z[l].pair(),
                    out_shift: af.h.lsb as u32,
                },
                1.0 / 8.0,
                n,
            );
            // Hidden activations are monotone: a far landing is a larger rounding error.
            // Their 1/8 cells are finer than the failure budget's: the noise that
            // buys is cheaper in accuracy than coarser activations (`simulate`).
            let lut = Lut { graded: true, ..lut };
            h_regs[l + 1] = Some(em.apply(lut, z, af.h, an.span));
        }
    }
    let forward_len = em.sample.len();
    let logits = z_regs[nl - 1];

    // ---- error of the logits, lr/B folded in
    let last = &fmts.layers[nl - 1];
    let span = tg.graph.node(net.loss_node).span;
    // The error table's cell: pinned by `precision = N` (2^N cells over the torus), or
    // the finest whose bootstraps keep the failure budget (`lut::cell_for_budget`).
    let cell_log2 = match spec.train.precision {
        Precision::Bits(b) => 64 - b as i32,
        Precision::Auto => {
            // A softmax's tables read sums under two keys (a logit plus a bootstrap output).
            let parts = if net.loss == LossKind::SoftmaxCrossEntropy && k > 2 { 2 } else { 1 };
            cell_for_budget(spec.train.p_fail / 2.0 / HORIZON_PBS, opts.lut_margin_bits, parts)
        }
    };
    let (e, loss_input) = loss_error(&mut em, net.loss, logits, last, k, net, span, cell_log2)?;
    let loss = loss_input.map(|(u, bound)| emit_loss(&mut em, net, u, bound, k, span, cell_log2));

    // ---- backward
    let mut e_cur = e;
    for l in (0..nl).rev() {
        let layer = &net.layers[l];
        let f = &fmts.layers[l];
        match layer.input {
            LayerInput::Data(input) => em.sample.push(Inst::DataOuterAcc { grad: gtensor[l], e: e_cur, input }),
            LayerInput::Act { f: act, .. } => {
                let h = h_regs[l].expect("activation register");
                let one = layer.b.map(|_| 1i64 << f.vs);
                em.sample.push(Inst::OuterAcc { grad: gtensor[l], e: e_cur, v: h, one });
                let af = fmts.acts[l].expect("formats of every activation");
                let span = tg.graph.node(layer.z).span;
                let dh = em.reg(format!("d{}", em.regs[h.index()].name), layer.cols, af.dh, span);
                em.sample.push(Inst::MatVecT { tensor: ptensor[l], v: e_cur, out: dh });
                let prev = &fmts.layers[l - 1];
                if act == Builtin::Relu {
                    let z = (z_regs[l - 1], prev.z, r.z[l - 1].pair());
                    e_cur = relu_mask(&mut em, (dh, af.dh), z, prev.e, cell_log2, &format!("e{l}"), span);
                    continue;
                }
                let m = (af.deriv_bits as f64).exp2();
                let deriv = move |u: f64| act.deriv(u) * m;
                let lut = half_torus(
                    &TableFn {
                        name: format!("{}'", act.name()),
                        func: format!("{}'(z)·2^{}", act.name(), af.deriv_bits),
                        f: &deriv,
                        in_fmt: prev.z,
                        assumed: r.z[l - 1].pair(),
                        out_shift: af.deriv_shift,
                    },
                    1.0 / 8.0,
                    n,
                );
                // Continuous at its cells' scale, as the activation: graded.
                let lut = Lut { graded: true, ..lut };
                let dfmt =
                    Format { scale: af.deriv_shift as i32, lsb: af.deriv_shift as i32, range: (0.0, m), proven: true };
                let d = em.apply(lut, z_regs[l - 1], dfmt, span);
                e_cur = em.bin(|a, b, out| Inst::Mul { a, b, out }, dh, d, &format!("e{l}"), prev.e, span);
            }
        }
    }

    // ---- step program
    let mut step = Vec::new();
    for l in 0..nl {
        let (p, g) = (ptensor[l], gtensor[l]);
        match net.momentum {
            None => step.push(StepInst::SubAssign { dst: p, src: g }),
            Some(mu) => {
                // Nesterov: b' = μ b + g, W -= g + μ b'. The state holds m = μ·b (lr·μ·b
                // in weight units) instead of b: b' = m + g, m' = μ b', W -= g + m'. The
                // same optimizer with one multi-digit rescale of the state per step
                // instead of two (μ·b and μ·b'): half the bootstraps of the update.
                // The state is a decaying sum of a few steps' updates: it does not need the
                // weights' long-accumulation resolution, and every bit it keeps costs two
                // bootstraps per coefficient per step (`LowerOptions::momentum_drop_bits`).
                let base = tensors[p.index()].clone();
                let (lsb, top) = base.fmt.bit_span();
                let lsb = (lsb + opts.momentum_drop_bits).min(top - 1);
                let fmt = Format { lsb: lsb as i32, ..base.fmt };
                let digits = rescale_pbs(lsb, top, mu);
                let s = TensorId(tensors.len() as u32);
                tensors.push(PlanTensor {
                    name: format!("{}.momentum", base.name),
                    role: TensorRole::State(p),
                    parts: vec![],
                    fmt,
                    ..base
                });
                step.extend([
                    StepInst::AddAssign { dst: s, src: g },
                    StepInst::Rescale { dst: s, src: s, factor: mu, digits },
                    StepInst::SubAssign { dst: p, src: g },
                    StepInst::SubAssign { dst: p, src: s },
                ]);
            }
        }
        step.push(StepInst::Zero { dst: g });
    }

    let optimizer = match spec.train.optimizer {
        Optimizer::Sgd { .. } => "sgd".to_string(),
        Optimizer::Nesterov { momentum, .. } => format!("nesterov(momentum = {momentum})"),
    };
    Ok(Plan {
        version: PLAN_VERSION,
        model: spec.name.clone(),
        dims: spec.dims.iter().map(|d| (d.name.clone(), d.value)).collect(),
        poly_size: em.poly_size,
        inputs: vec![PlanInput {
            name: decl.name.clone(),
            id: net.input,
            len: net.layers[0].cols,
            range: decl.range,
            scale: fmts.input.scale,
            qmin: fmts.input.qmin,
            qmax: fmts.input.qmax,
            one: net.layers[0].b.map(|_| 1i64 << fmts.input.scale),
        }],
        labels: vec![PlanLabel { name: label.name.clone(), id: net.label, classes: k }],
        tensors,
        regs: em.regs,
        luts: em.luts,
        sample: em.sample,
        forward_len,
        logits,
        step,
        loss: None,
        products: BTreeMap::new(),
        train: PlanTrain {
            batch: spec.train.batch,
            epochs: spec.train.epochs,
            seed: spec.train.seed,
            lr: spec.train.optimizer.lr(),
            optimizer,
            p_fail: spec.train.p_fail,
            schedule: spec.train.schedule.map(|s| PlanSchedule { every: s.every, shift: s.shift }),
            average: spec.train.average,
            refresh: Vec::new(),
        },
        assumptions: r.assumptions.clone(),
    })
    .map(|mut plan| {
        plan.loss = loss;
        // At most 10 % more bootstraps than training: step 0 of every epoch and then
        // every `every`-th, one more than the ratio so that the extra first step stays
        // within it once an epoch has ten times `every` steps.
        let c = super::cost::costs(&plan);
        if let Some(l) = &mut plan.loss {
            l.every = (c.loss_pbs_per_sample * 10).div_ceil(c.pbs_per_sample.max(1)) as usize + 1;
        }
        plan
    })
}

/// What the loss program reads: the error table's input register and its bound
/// (negative for a softmax's `z − lse of the others`, see [`emit_loss`]).
type LossInput = (RegId, f64);

/// The per-sample error `lr/B · dL/dz` in weight-update units of the last layer.
#[allow(clippy::too_many_arguments)]
fn loss_error(
    em: &mut Emitter,
    kind: LossKind,
    z: RegId,
    f: &LayerFmt,
    k: usize,
    net: &Net,
    span: Span,
    cell_log2: i32,
) -> Result<(RegId, Option<LossInput>), Vec<Diagnostic>> {
    let n = em.poly_size;
    let s = f.s;
    let lsb = f.w.lsb;
    let out_fmt = Format { scale: f.e.scale, lsb, range: f.e.range, proven: false };
    let assumed = f.z.range;
    match kind {
        LossKind::SigmoidCrossEntropy => {
            // E = round(s·(σ(z) − ½)) − s·(y − ½): odd table, the ½ in the label term.
            // Saturate at the assumed bound; the window (half the torus) may be wider.
            let a = assumed.0.abs().max(assumed.1.abs());
            let func = move |u: f64| s * (Builtin::Sigmoid.eval(u.clamp(-a, a)) - 0.5);
            let lut = full_torus(
                &TableFn {
                    name: "error".into(),
                    func: format!("{s}·(sigmoid(z) − ½)"),
                    f: &func,
                    in_fmt: f.z,
                    assumed: (-a, a),
                    out_shift: lsb as u32,
                },
                ((cell_log2 - f.z.scale) as f64).exp2(),
                n,
            );
            let raw = em.apply(LrScaled(lut).into(), z, out_fmt, span);
            let half = (s / 2.0).round() as i64;
            let lab = em.reg("label term", k, out_fmt, span);
            em.sample.push(Inst::LabelTerm {
                label: net.label,
                on: to_u64(half, lsb),
                off: to_u64(-half, lsb),
                out: lab,
                lr_scaled: true,
            });
            Ok((em.bin(|a, b, out| Inst::Sub { a, b, out }, raw, lab, "e", f.e, span), Some((z, a))))
        }
        LossKind::SoftmaxCrossEntropy => {
            // p_c = σ(z_c − lse_{−c}) with lse_{−c} = log Σ_{j≠c} e^{z_j}: the same odd
            // error table as the sigmoid head, so a correctly classified sample reads a
            // saturated cell whatever the rounding of the lse below it (the table
            // `s·exp(z − lse)` instead turned every lse rounding into a gradient that
            // never vanishes). The leave-one-out lse's come from prefix and suffix
            // chains of lse(a, b) = a + softplus(b − a): 3(k − 2) softplus bootstraps.
            let zf = f.z;
            let cell = cell_real(cell_log2, zf);
            let a = assumed.0.abs().max(assumed.1.abs());
            let u_bound = 2.0 * a + ((k - 1) as f64).ln();
            let to_units = (zf.frac() as f64).exp2();
            let sp = move |u: f64| Builtin::Softplus.eval(u) * to_units;
            let softplus = half_torus(
                &TableFn {
                    name: "softplus".into(),
                    func: format!("softplus(u)·2^{}", zf.frac()),
                    f: &sp,
                    in_fmt: zf,
                    assumed: (-u_bound, u_bound),
                    out_shift: zf.lsb as u32,
                },
                cell,
                n,
            );
            let zc: Vec<RegId> = (0..k)
                .map(|c| {
                    let r = em.reg(format!("z[{c}]"), 1, zf, span);
                    em.sample.push(Inst::Elem { a: z, index: c, out: r });
                    r
                })
                .collect();
            let lse2 = |em: &mut Emitter, a: RegId, b: RegId| {
                let d = em.bin(|a, b, out| Inst::Sub { a, b, out }, b, a, "lse diff", zf, span);
                let spv = em.apply(softplus.clone(), d, zf, span);
                em.bin(|a, b, out| Inst::Add { a, b, out }, a, spv, "lse", zf, span)
            };
            // prefix[i] = lse(z_0..=z_i), suffix[i] = lse(z_i..z_k); only the ones a
            // leave-one-out lse reads are emitted.
            let mut prefix = vec![zc[0]];
            for c in 1..k.saturating_sub(1) {
                let p = lse2(em, prefix[c - 1], zc[c]);
                prefix.push(p);
            }
            let mut suffix = vec![zc[k - 1]; k];
            for c in (1..k - 1).rev() {
                suffix[c] = lse2(em, suffix[c + 1], zc[c]);
            }
            let rest: Vec<RegId> = (0..k)
                .map(|c| match c {
                    0 => suffix[1],
                    c if c == k - 1 => prefix[k - 2],
                    c => lse2(em, prefix[c - 1], suffix[c + 1]),
                })
                .collect();
            let rest_v = em.reg("lse of the others", k, zf, span);
            em.sample.push(Inst::Concat { parts: rest, out: rest_v });
            let u = em.bin(|a, b, out| Inst::Sub { a, b, out }, z, rest_v, "z − lse of the others", zf, span);
            let w = u_bound;
            if net.layers.len() > 1 {
                return Ok((label_folded_error(em, u, zf, f, s, w, net, cell, span), Some((u, -w))));
            }
            let func = move |u: f64| s * (Builtin::Sigmoid.eval(u.clamp(-w, w)) - 0.5);
            let lut = full_torus(
                &TableFn {
                    name: "error".into(),
                    func: format!("{s}·(sigmoid(z − lse of the others) − ½)"),
                    f: &func,
                    in_fmt: zf,
                    assumed: (-w, w),
                    out_shift: lsb as u32,
                },
                cell,
                n,
            );
            let raw = em.apply(LrScaled(lut).into(), u, out_fmt, span);
            let half = (s / 2.0).round() as i64;
            let lab = em.reg("label term", k, out_fmt, span);
            em.sample.push(Inst::LabelTerm {
                label: net.label,
                on: to_u64(half, lsb),
                off: to_u64(-half, lsb),
                out: lab,
                lr_scaled: true,
            });
            Ok((em.bin(|a, b, out| Inst::Sub { a, b, out }, raw, lab, "e", f.e, span), Some((u, -w))))
        }
        LossKind::Mse => {
            // E = round(s·(2/k)·(z − y)): levelled z − y, then a rescale table.
            let zf = f.z;
            let yt = em.reg("label", k, zf, span);
            em.sample.push(Inst::LabelTerm {
                label: net.label,
                on: zf.from_real(1.0),
                off: 0,
                out: yt,
                lr_scaled: false,
            });
            let u = em.bin(|a, b, out| Inst::Sub { a, b, out }, z, yt, "z − y", zf, span);
            let c = s * 2.0 / k as f64;
            let lin = move |u: f64| c * u;
            let lut = half_torus(
                &TableFn {
                    name: "error".into(),
                    func: format!("{c}·(z − y)"),
                    f: &lin,
                    in_fmt: zf,
                    assumed: (assumed.0 - 1.0, assumed.1),
                    out_shift: lsb as u32,
                },
                0.0,
                n,
            );
            Ok((em.apply(LrScaled(lut).into(), u, f.e, span), None))
        }
    }
}

/// Fractional bits of the loss and its torus scale: 2^15 samples of loss up to 2^15 /
/// 2^15 = 1 on average fit the half torus, per-sample bootstrap noise (σ ≈ 2^38.5)
/// is 2^-9.5 of a unit.
const LOSS_FRAC: i32 = 16;
const LOSS_SCALE: i32 = 48;

/// The loss program (see [`PlanLoss`]) over `u`, the error table's input: per class
/// `h(u_c) + (1 − 2y_c)·T(u_c)`, the sign from a client label term of half the torus
/// added to T's input (the negacyclic half reads `−T`). A sigmoid head's `u` is `z`
/// (`bound > 0`): `h = softplus − u/2` (even), `T = u/2`, so class c adds
/// `softplus((1 − 2y_c)·z_c)`. A softmax's `u` is `z_c − lse of the others`
/// (`bound < 0` marks it): `h = −T = softplus(−u)/2`, so only the true class adds
/// `softplus(−u_y) = −log p_y`. Inputs beyond `|bound|` saturate.
fn emit_loss(em: &mut Emitter, net: &Net, u: RegId, bound: f64, k: usize, span: Span, cell_log2: i32) -> PlanLoss {
    let n = em.poly_size;
    let uf = em.regs[u.index()].fmt;
    let a = bound.abs();
    let softmax = bound < 0.0;
    let unit = f64::from(LOSS_FRAC).exp2();
    let lf = Format { scale: LOSS_SCALE, lsb: LOSS_SCALE - LOSS_FRAC, range: (0.0, 32.0), proven: false };
    let saved = std::mem::take(&mut em.sample);
    let h = move |x: f64| {
        let x = x.clamp(-a, a);
        unit * if softmax { Builtin::Softplus.eval(-x) / 2.0 } else { Builtin::Softplus.eval(x) - x / 2.0 }
    };
    let t = move |x: f64| {
        let x = x.clamp(-a, a);
        unit * if softmax { -Builtin::Softplus.eval(-x) / 2.0 } else { x / 2.0 }
    };
    let cell = cell_real(cell_log2, uf);
    let table = |name: &str, func: String, f: &dyn Fn(f64) -> f64, odd: bool| {
        let t = TableFn { name: name.into(), func, f, in_fmt: uf, assumed: (-a, a), out_shift: lf.lsb as u32 };
        if odd {
            full_torus(&t, cell, n)
        } else {
            half_torus(&t, cell, n)
        }
    };
    let (hf, tf) = if softmax {
        ("softplus(−u)/2".to_string(), "−softplus(−u)/2".to_string())
    } else {
        ("softplus(z) − z/2".to_string(), "z/2".to_string())
    };
    // The sigmoid head's T = u/2 is odd: the full torus, like its error table.
    let h_lut = table("loss h", format!("({hf})·2^{LOSS_FRAC}"), &h, false);
    let t_lut = table("loss T", format!("({tf})·2^{LOSS_FRAC}"), &t, !softmax);
    // The true class's input reads the negacyclic half (its label term): the point, not
    // a wrap. `loss h` reads the same `u` unfolded, so its range counters speak for both.
    let t_lut = folded(t_lut);
    let hv = em.apply(h_lut, u, lf, span);
    let sign = em.reg("label sign", k, uf, span);
    em.sample.push(Inst::LabelTerm { label: net.label, on: 1u64 << 63, off: 0, out: sign, lr_scaled: false });
    let v = em.bin(|a, b, out| Inst::Add { a, b, out }, u, sign, "u + y·½", uf, span);
    let tv = em.apply(t_lut, v, lf, span);
    let per_class = em.bin(|a, b, out| Inst::Add { a, b, out }, hv, tv, "loss per class", lf, span);
    let mut total = em.reg("loss[0]", 1, lf, span);
    em.sample.push(Inst::Elem { a: per_class, index: 0, out: total });
    for c in 1..k {
        let e = em.reg(format!("loss[{c}]"), 1, lf, span);
        em.sample.push(Inst::Elem { a: per_class, index: c, out: e });
        total = em.bin(|a, b, out| Inst::Add { a, b, out }, total, e, "loss", lf, span);
    }
    let program = std::mem::replace(&mut em.sample, saved);
    PlanLoss { program, reg: total, every: 1 }
}

/// A table whose output carries the learning rate (shifted by the schedule).
struct LrScaled(Lut);

impl From<LrScaled> for Lut {
    fn from(l: LrScaled) -> Lut {
        Lut { lr_scaled: true, ..l.0 }
    }
}

/// The softmax error `s·(p_c − y_c)` as *one table's output*, for heads where it is
/// the integer operand of a product (`W2ᵀ e`): a GGSW conversion can then read it from
/// its table input (`table-ggsw`, `levels` bootstraps per class instead of bits ×
/// levels). The label moves the input by a quarter torus (a client label term, `on` =
/// 2^62): the table's half-torus window holds `σ(u)` for `u ∈ [−Q/2, Q/2)` and
/// `σ(u − Q) − 1` for `[Q/2, 3Q/2)`, `Q` a quarter torus in `u`'s units (32 logits at
/// 2^57). Beyond `|u| ≥ Q/2` (16 logits) a sample reads the wrong region: only a class
/// both badly wrong and that confident flips its error's sign (the clear backend
/// counts such inputs as outside the table's window).
#[allow(clippy::too_many_arguments)]
fn label_folded_error(
    em: &mut Emitter,
    u: RegId,
    zf: Format,
    f: &LayerFmt,
    s: f64,
    w: f64,
    net: &Net,
    cell: f64,
    span: Span,
) -> RegId {
    let q = f64::from(62 - zf.scale).exp2();
    // The table's values on e's own grid (the product reads `int(e)` there).
    let se = s * f64::from(f.w.lsb - f.e.lsb).exp2();
    let func = move |v: f64| {
        if v < q / 2.0 {
            se * Builtin::Sigmoid.eval(v.clamp(-w, w))
        } else {
            se * (Builtin::Sigmoid.eval((v - q).clamp(-w, w)) - 1.0)
        }
    };
    let lut = half_torus(
        &TableFn {
            name: "error".into(),
            func: format!("{s}·(sigmoid(u) − y), y as a quarter torus on u"),
            f: &func,
            in_fmt: zf,
            assumed: (-q / 2.0, 1.5 * q),
            out_shift: f.e.lsb.max(0) as u32,
        },
        cell,
        em.poly_size,
    );
    let k = em.regs[u.index()].len;
    let lab = em.reg("label term", k, zf, span);
    em.sample.push(Inst::LabelTerm { label: net.label, on: 1 << 62, off: 0, out: lab, lr_scaled: false });
    let shifted = em.bin(|a, b, out| Inst::Add { a, b, out }, u, lab, "u + label", zf, span);
    em.apply(LrScaled(lut).into(), shifted, f.e, span)
}

/// A table cell of `2^cell_log2` torus units in real units of the input format.
fn cell_real(cell_log2: i32, f: Format) -> f64 {
    f64::from(cell_log2 - f.scale).exp2()
}
