//! The server: interprets a [`Plan`] on ciphertexts with [`ServerKeys`] only.
//!
//! Registers are vectors of LWE ciphertexts under the key [`PlanInfo`] inferred;
//! `DataPoly` tensors are GLWEs under the data key. Samples of a batch run in parallel
//! against the same model; their gradient contributions are added in sample order
//! (GLWE additions are exact mod 2^64, so the result does not depend on scheduling).

use super::analysis::{inst_name, PlanInfo};
use super::average;
use super::cipher::{EncModel, EncSample, EncTensor, Glwe, Lwe, LweVec};
use super::convert::{self, ConvertKey};
use super::error::{bad_ct, invalid, TfheError};
use super::ggsw::{to_fourier, Direction, FourierGgsw};
use super::keys::{KeyKind, ServerKeys};
use super::ops::{self, Scratch};
use super::pack::pack_batched;
use super::stats::{Stats, StatsSnapshot, Work};
use super::value::Value;
use blindtuner_compiler::plan::{dither, DitherAt, Inst, Layout, LutId, Plan, RegId, StepInst, TensorId};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tfhe::core_crypto::prelude::*;

/// A sample ready for the server: GGSWs decompressed and in the Fourier domain.
pub struct PreparedSample {
    ggsw: Vec<Vec<FourierGgsw>>,
    labels: Vec<LweVec>,
}

/// Bootstrap inputs per `Lut` instruction (`Plan::inst` index) of one sample.
pub type LutTrace = Vec<(usize, Vec<Lwe>)>;

/// Everything one sample program produced.
pub struct SampleRun {
    /// Final value of every register (`None`: never written).
    pub regs: Vec<Option<Value>>,
    /// For every `Lut` instruction (`Plan::inst` index), the bootstrap inputs after
    /// keyswitch and offset (small key): with the client key, `pbs_index` tells which
    /// cell each bootstrap selected.
    pub lut_inputs: LutTrace,
    /// Gradient contributions, per accumulated tensor, not yet added to the model.
    pub grads: Vec<(TensorId, Vec<Glwe>)>,
}

pub struct Server<'a> {
    keys: &'a ServerKeys,
    /// Conversion keys, for plans with products of two server values (`convert.rs`).
    convert: Option<&'a ConvertKey>,
    plan: &'a Plan,
    info: PlanInfo,
    /// Built for `lr_shift` (learning-rate scaled LUTs change with the epoch).
    accumulators: Vec<Glwe>,
    /// Learning-rate shift of the current epoch, and the largest of the run.
    lr_shift: u32,
    max_lr_shift: u32,
    fft: Fft,
    stats: Stats,
    /// Position of the next batch (the loss program's measured steps).
    epoch: usize,
    step_in_epoch: usize,
    /// Steps of the run done before the next batch (where `Inst::Dither` offsets are
    /// drawn; the clear machine's `steps_done`): counted by [`Server::step`], set by a
    /// resumed run's driver.
    steps_done: AtomicU64,
}

impl<'a> Server<'a> {
    /// Check the plan against the keys' parameters; fails on unsupported instructions.
    pub fn new(keys: &'a ServerKeys, plan: &'a Plan) -> Result<Server<'a>, TfheError> {
        Server::with_convert(keys, plan, None)
    }

    /// [`Server::new`] with the conversion keys a plan with products of two server
    /// values needs (its `table-ggsw` products run as one external product each).
    pub fn with_convert(
        keys: &'a ServerKeys,
        plan: &'a Plan,
        convert: Option<&'a ConvertKey>,
    ) -> Result<Server<'a>, TfheError> {
        let p = keys.params();
        if convert::needed_by(plan) && convert.is_none() {
            return Err(TfheError::Unsupported {
                what: "products of two server values".into(),
                why: "the server needs the conversion keys (`ClientKey::convert_key`)".into(),
            });
        }
        super::fftplan::pin(p.poly_size);
        let info = PlanInfo::analyse(plan, p)?;
        let accumulators = plan.luts.iter().map(|l| ops::accumulator(p, l, 0)).collect();
        Ok(Server {
            keys,
            convert,
            plan,
            info,
            accumulators,
            lr_shift: 0,
            max_lr_shift: plan.train.max_lr_shift(),
            fft: Fft::new(p.poly_size),
            stats: Stats::default(),
            epoch: 0,
            step_in_epoch: 0,
            steps_done: AtomicU64::new(0),
        })
    }

    /// The next batch is step `step` (from 0) of the current epoch: the loss program
    /// runs on the steps `Plan::loss` measures.
    pub fn set_step(&mut self, step: usize) {
        self.step_in_epoch = step;
    }

    /// `steps` steps of the run are done (a resumed run starts at its checkpoint's count).
    pub fn set_steps_done(&mut self, steps: u64) {
        *self.steps_done.get_mut() = steps;
    }

    /// Enter `epoch`: learning-rate scaled LUTs and label terms use its shift.
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        let shift = self.plan.train.lr_shift(epoch);
        if shift != self.lr_shift {
            let p = self.keys.params();
            self.accumulators = self.plan.luts.iter().map(|l| ops::accumulator(p, l, shift)).collect();
            self.lr_shift = shift;
        }
    }

    pub fn info(&self) -> &PlanInfo {
        &self.info
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Decompress and Fourier-transform a sample's GGSWs, checking its shape.
    pub fn prepare(&self, s: &EncSample) -> Result<PreparedSample, TfheError> {
        let p = self.keys.params();
        if s.ggsw.len() != self.info.needs.len() || s.labels.len() != self.info.label_terms.len() {
            return Err(bad_ct(format!(
                "sample carries {} GGSW families and {} label terms, plan needs {} and {}",
                s.ggsw.len(),
                s.labels.len(),
                self.info.needs.len(),
                self.info.label_terms.len()
            )));
        }
        let mut buf = ComputationBuffers::new();
        let mut ggsw = Vec::with_capacity(s.ggsw.len());
        for (family, need) in s.ggsw.iter().zip(&self.info.needs) {
            if family.len() != need.polys {
                return Err(bad_ct(format!("{} GGSWs where the layout has {} polynomials", family.len(), need.polys)));
            }
            let mut out = Vec::with_capacity(family.len());
            for g in family {
                let ok = g.polynomial_size() == p.poly_size
                    && g.glwe_size() == p.glwe_size()
                    && g.decomposition_base_log() == p.ggsw.base_log()
                    && g.decomposition_level_count() == p.ggsw.level_count();
                if !ok {
                    return Err(bad_ct("a data GGSW has other parameters than the keys"));
                }
                let full = g.clone().decompress_into_ggsw_ciphertext();
                out.push(to_fourier(&full, self.fft.as_view(), &mut buf));
            }
            ggsw.push(out);
        }
        for (l, &i) in s.labels.iter().zip(&self.info.label_terms) {
            let Some(out) = self.plan.inst(i).and_then(Inst::out) else {
                return Err(invalid("label term without output"));
            };
            let want_len = self.plan.regs[out.index()].len;
            let want_key = self.info.reg_keys[out.index()];
            check_lwes(l, want_key, want_len, p.big_lwe_dim().0, "label term")?;
        }
        Ok(PreparedSample { ggsw, labels: s.labels.clone() })
    }

    /// Run `plan.sample[..upto]` for one sample against `model` (not modified).
    pub fn run_sample(&self, model: &EncModel, s: &PreparedSample, upto: usize) -> Result<SampleRun, TfheError> {
        self.run_program(model, s, (upto, 0), false)
    }

    /// [`Server::run_sample`] for the sample at position `pos` of its batch (where its
    /// `Inst::Dither` offsets are drawn).
    pub fn run_sample_at(
        &self,
        model: &EncModel,
        s: &PreparedSample,
        upto: usize,
        pos: usize,
    ) -> Result<SampleRun, TfheError> {
        self.run_program(model, s, (upto, pos), false)
    }

    /// [`Server::run_sample`], then with `loss` the loss program (`Plan::loss`) on the
    /// same registers (its bootstraps are traced at `Plan::inst` indices).
    fn run_program(
        &self,
        model: &EncModel,
        s: &PreparedSample,
        (upto, pos): (usize, usize),
        loss: bool,
    ) -> Result<SampleRun, TfheError> {
        let p = self.keys.params();
        let fft = self.fft.as_view();
        let mut scratch = Scratch::new();
        let mut regs: Vec<Option<Value>> = vec![None; self.plan.regs.len()];
        let mut lut_inputs = Vec::new();
        let mut grads: Vec<(TensorId, Vec<Glwe>)> = Vec::new();
        // GGSWs converted from a register, shared by every product reading it.
        let mut converted: HashMap<RegId, Vec<GgswCiphertextOwned<u64>>> = HashMap::new();
        let n = self.plan.sample.len();
        let loss_program = self.plan.loss.as_ref().filter(|_| loss).map_or(&[][..], |l| l.program.as_slice());
        let program = self
            .plan
            .sample
            .iter()
            .enumerate()
            .take(upto)
            .chain(loss_program.iter().enumerate().map(|(j, x)| (n + j, x)));
        for (i, inst) in program {
            let get = |r: RegId| {
                regs[r.index()].as_ref().ok_or_else(|| {
                    invalid(format!("sample instruction {i} ({}) reads an unwritten register", inst_name(inst)))
                })
            };
            let value = match *inst {
                Inst::DataMatVec { tensor, out, .. } => {
                    let glwes = poly_tensor(model, tensor)?;
                    let ggsw = self.ggsw_for(s, tensor, Direction::Forward)?;
                    let t0 = Instant::now();
                    let mut acc = ops::zero_glwe(p);
                    for (w, g) in glwes.iter().zip(ggsw) {
                        ops::external_product_add(p, &mut acc, g, w, fft, &mut scratch);
                    }
                    let cts = ops::extract(p, &acc, self.plan.regs[out.index()].len);
                    self.stats.record(Work::ExternalProduct, t0);
                    Some((out, LweVec { key: KeyKind::Data, cts }.into()))
                }
                Inst::Lut { lut, input, out } => {
                    let (v, small) = self.lut_with(lut, get(input)?, &mut scratch)?;
                    lut_inputs.push((i, small));
                    Some((out, v.into()))
                }
                Inst::Add { a, b, out } | Inst::Sub { a, b, out } => {
                    let sub = matches!(inst, Inst::Sub { .. });
                    let r = get(a)?.add(get(b)?, sub).map_err(|e| invalid(format!("sample instruction {i}: {e}")))?;
                    Some((out, r))
                }
                Inst::AddConst { a, c, out } => {
                    let mut r = get(a)?.clone();
                    r.add_plaintext(c);
                    Some((out, r))
                }
                Inst::Dither { a, width, out } => {
                    let at = DitherAt {
                        seed: self.plan.train.seed,
                        step: self.steps_done.load(Ordering::Relaxed),
                        pos: pos as u64,
                        inst: i as u64,
                    };
                    let mut r = get(a)?.clone();
                    r.add_plaintext_each(|j| dither(at, j, width));
                    Some((out, r))
                }
                Inst::MulInt { a, c, out } => {
                    let mut r = get(a)?.clone();
                    r.mul_int(c);
                    Some((out, r))
                }
                Inst::LabelTerm { out, lr_scaled, .. } => {
                    let slot = self.info.label_terms.iter().position(|&j| j == i);
                    let l = slot.and_then(|k| s.labels.get(k)).ok_or_else(|| bad_ct("missing label term"))?;
                    let mut l = l.clone();
                    if lr_scaled {
                        // The client encrypted `on`/`off` at the largest shift; this
                        // epoch's values are 2^(max − shift) times that, exactly.
                        let factor = 1u64 << (self.max_lr_shift - self.lr_shift);
                        l.cts.iter_mut().for_each(|x| lwe_ciphertext_cleartext_mul_assign(x, Cleartext(factor)));
                    }
                    Some((out, l.into()))
                }
                Inst::Elem { a, index, out } => Some((out, get(a)?.elem(index)?)),
                Inst::Bcast { a, out } => Some((out, get(a)?.bcast(self.plan.regs[out.index()].len))),
                Inst::Concat { ref parts, out } => {
                    let values = parts.iter().map(|&p| get(p)).collect::<Result<Vec<_>, _>>()?;
                    Some((out, Value::concat(&values)?))
                }
                Inst::DataOuterAcc { grad, e, .. } => {
                    let e = match get(e)?.single() {
                        Some(e) if e.key == KeyKind::Pbs => e,
                        _ => {
                            return Err(invalid(format!("sample instruction {i}: the error is not a bootstrap output")))
                        }
                    };
                    let ggsw = self.ggsw_for(s, grad, Direction::Backward)?;
                    let t0 = Instant::now();
                    let mut packed = ops::zero_glwe(p);
                    pack_batched(&self.keys.pksk, &e.cts, &mut packed);
                    self.stats.record(Work::Pack, t0);
                    let t0 = Instant::now();
                    let delta: Vec<Glwe> = ggsw
                        .iter()
                        .map(|g| {
                            let mut acc = ops::zero_glwe(p);
                            ops::external_product_add(p, &mut acc, g, &packed, fft, &mut scratch);
                            acc
                        })
                        .collect();
                    self.stats.record(Work::ExternalProduct, t0);
                    match grads.iter_mut().find(|(t, _)| *t == grad) {
                        Some((_, acc)) => {
                            acc.iter_mut().zip(&delta).for_each(|(a, d)| glwe_ciphertext_add_assign(a, d))
                        }
                        None => grads.push((grad, delta)),
                    }
                    None
                }
                Inst::MatVec { tensor, v, one, out } => {
                    // W(X) · Σ_j int(v_j) X^(−rows·j): coefficient r is row r's dot product.
                    let rows = self.plan.tensors[tensor.index()].rows as i64;
                    let g = self.product_ggsw(v, &regs, &mut converted, one, |j| -rows * j)?;
                    let acc = self.ggsw_times(&g, &poly_tensor(model, tensor)?[0], &mut scratch);
                    let cts = ops::extract(p, &acc, self.plan.regs[out.index()].len);
                    Some((out, LweVec { key: KeyKind::Pbs, cts }.into()))
                }
                Inst::MatVecT { tensor, v, out } => {
                    // W(X) · Σ_r int(v_r) X^(−r): coefficient rows·j is column j's.
                    let rows = self.plan.tensors[tensor.index()].rows;
                    let g = self.product_ggsw(v, &regs, &mut converted, None, |r| -r)?;
                    let acc = self.ggsw_times(&g, &poly_tensor(model, tensor)?[0], &mut scratch);
                    let cts = ops::extract_at(p, &acc, (0..self.plan.regs[out.index()].len).map(|j| rows * j));
                    Some((out, LweVec { key: KeyKind::Pbs, cts }.into()))
                }
                Inst::OuterAcc { grad, e, v, one } => {
                    // E(X) = Σ_r e_r X^r times Σ_j int(v_j) X^(rows·j): the gradient in
                    // the tensor's layout.
                    let e = match get(e)?.single() {
                        Some(e) if e.key == KeyKind::Pbs => e,
                        _ => {
                            return Err(invalid(format!("sample instruction {i}: the error is not a bootstrap output")))
                        }
                    };
                    let ck = self.convert.ok_or_else(|| invalid("no conversion keys"))?;
                    let t0 = Instant::now();
                    let packed = convert::pack_pbs(p, ck, &e.cts);
                    self.stats.record(Work::Pack, t0);
                    let rows = self.plan.tensors[grad.index()].rows as i64;
                    let g = self.product_ggsw(v, &regs, &mut converted, one, |j| rows * j)?;
                    let delta = self.ggsw_times(&g, &packed, &mut scratch);
                    match grads.iter_mut().find(|(t, _)| *t == grad) {
                        Some((_, acc)) => glwe_ciphertext_add_assign(&mut acc[0], &delta),
                        None => grads.push((grad, vec![delta])),
                    }
                    None
                }
                Inst::Mul { .. } => {
                    return Err(TfheError::Unsupported {
                        what: format!("sample instruction {i} ({})", inst_name(inst)),
                        why: "elementwise products of two server ciphertexts are not implemented yet".into(),
                    });
                }
            };
            if let Some((out, v)) = value {
                regs[out.index()] = Some(v);
            }
        }
        self.stats.record_sample();
        Ok(SampleRun { regs, lut_inputs, grads })
    }

    /// The polynomial GGSW `Σ_j int(v_j)·X^(degree(j))` (plus `one` at `degree(len)`)
    /// of a product's integer operand, converted from its table input once per sample.
    fn product_ggsw(
        &self,
        v: RegId,
        regs: &[Option<Value>],
        cache: &mut HashMap<RegId, Vec<GgswCiphertextOwned<u64>>>,
        one: Option<i64>,
        degree: impl Fn(i64) -> i64,
    ) -> Result<GgswCiphertextOwned<u64>, TfheError> {
        let p = self.keys.params();
        let ck = self.convert.ok_or_else(|| invalid("no conversion keys"))?;
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(v) {
            let w = self.plan.table_writing(v).ok_or_else(|| invalid("a product operand without its table"))?;
            let Inst::Lut { lut, input, .. } = self.plan.sample[w] else {
                return Err(invalid("a product operand without its table"));
            };
            let x = regs.get(input.index()).and_then(Option::as_ref).ok_or_else(|| invalid("unwritten table input"))?;
            let int_fmt = self.plan.regs[v.index()].fmt;
            let t0 = Instant::now();
            let (g, pbs) = convert::table_to_ggsw_parts(
                self.keys,
                ck,
                &self.plan.luts[lut.index()],
                &int_fmt,
                self.lr_shift,
                x.parts(),
            )?;
            self.stats.record_pbs(pbs as usize, t0);
            slot.insert(g);
        }
        let gs = &cache[&v];
        let t0 = Instant::now();
        let mut sum = convert::zero_ggsw(p, ck.params());
        for (j, g) in gs.iter().enumerate() {
            convert::add_monomial_ggsw(&mut sum, g, degree(j as i64));
        }
        if let Some(o) = one {
            convert::add_monomial_ggsw(&mut sum, &convert::trivial_ggsw(p, ck.params(), o), degree(gs.len() as i64));
        }
        self.stats.record(Work::ExternalProduct, t0);
        Ok(sum)
    }

    /// `glwe ⊡ ggsw` (the GGSW to the Fourier domain first).
    fn ggsw_times(&self, ggsw: &GgswCiphertextOwned<u64>, glwe: &Glwe, scratch: &mut Scratch) -> Glwe {
        let p = self.keys.params();
        let t0 = Instant::now();
        let acc = convert::external_product_with(p, ggsw, glwe, self.fft.as_view(), scratch);
        self.stats.record(Work::ExternalProduct, t0);
        acc
    }

    /// Evaluate LUT `lut` on every element of `x` (keyswitch, offset, batch PBS).
    /// Also returns the bootstrap inputs (small key), see [`SampleRun::lut_inputs`].
    pub fn lut(&self, lut: LutId, x: &LweVec) -> Result<(LweVec, Vec<Lwe>), TfheError> {
        self.lut_with(lut, &Value::from(x.clone()), &mut Scratch::new())
    }

    /// Every part of `x` is keyswitched to the small key, where the parts add up.
    fn lut_with(&self, lut: LutId, x: &Value, scratch: &mut Scratch) -> Result<(LweVec, Vec<Lwe>), TfheError> {
        let p = self.keys.params();
        let def = self.plan.luts.get(lut.index()).ok_or_else(|| invalid(format!("no lut {}", lut.0)))?;
        let t0 = Instant::now();
        for part in x.parts() {
            check_lwes(part, part.key, x.len(), p.big_lwe_dim().0, "LUT input")?;
        }
        let small = ops::keyswitch_parts(self.keys, x.parts(), def.offset)?;
        self.stats.record(Work::Keyswitch, t0);
        let t0 = Instant::now();
        let cts =
            ops::batch_pbs(p, &self.keys.bsk, &self.accumulators[lut.index()], &small, self.fft.as_view(), scratch);
        self.stats.record_pbs(small.len(), t0);
        Ok((LweVec { key: KeyKind::Pbs, cts }, small))
    }

    /// Inference: the logits of one sample (`plan.sample[..forward_len]`).
    pub fn forward(&self, model: &EncModel, s: &EncSample) -> Result<LweVec, TfheError> {
        self.check_model(model)?;
        let prepared = self.prepare(s)?;
        let mut run = self.run_sample(model, &prepared, self.plan.forward_len)?;
        run.regs
            .get_mut(self.plan.logits.index())
            .and_then(Option::take)
            .ok_or_else(|| invalid("the forward program does not write the logits register"))?
            .into_single("the logits register")
    }

    /// Inference on many samples in parallel; logits in sample order.
    pub fn forward_batch(&self, model: &EncModel, samples: &[EncSample]) -> Result<Vec<LweVec>, TfheError> {
        samples.par_iter().map(|s| self.forward(model, s)).collect()
    }

    /// Run the sample program of every sample of `batch` (in parallel) and add their
    /// gradient contributions to the model's accumulators, in sample order. Returns the
    /// bootstrap inputs of every sample (see [`SampleRun::lut_inputs`]).
    pub fn accumulate(&self, model: &mut EncModel, batch: &[EncSample]) -> Result<Vec<LutTrace>, TfheError> {
        self.check_model(model)?;
        let model_ref: &EncModel = model;
        let measure = self.plan.loss.as_ref().filter(|l| l.measured(self.step_in_epoch));
        let runs: Vec<Result<SampleRun, TfheError>> = batch
            .par_iter()
            .enumerate()
            .map(|(pos, s)| {
                self.prepare(s)
                    .and_then(|ps| self.run_program(model_ref, &ps, (self.plan.sample.len(), pos), measure.is_some()))
            })
            .collect();
        let runs: Vec<SampleRun> = runs.into_iter().collect::<Result<_, _>>()?;
        let mut traces = Vec::with_capacity(runs.len());
        for mut run in runs {
            if let Some(l) = measure {
                let v = run.regs.get_mut(l.reg.index()).and_then(Option::take);
                let v = v.ok_or_else(|| invalid("the loss program does not write its register"))?;
                model.add_loss(self.epoch, &v)?;
            }
            traces.push(run.lut_inputs);
            for (t, delta) in run.grads {
                let EncTensor::Poly(acc) = &mut model.tensors[t.index()] else {
                    return Err(bad_ct("gradient tensor is not polynomial"));
                };
                acc.iter_mut().zip(&delta).for_each(|(a, d)| glwe_ciphertext_add_assign(a, d));
            }
        }
        Ok(traces)
    }

    /// The per-step program (optimizer update, accumulator reset).
    pub fn step(&self, model: &mut EncModel) -> Result<(), TfheError> {
        self.check_model(model)?;
        for s in &self.plan.step {
            match *s {
                StepInst::SubAssign { dst, src } | StepInst::AddAssign { dst, src } => {
                    let sub = matches!(s, StepInst::SubAssign { .. });
                    let src = model.tensors[src.index()].clone();
                    match (&mut model.tensors[dst.index()], &src) {
                        (EncTensor::Poly(d), EncTensor::Poly(s)) => d.iter_mut().zip(s).for_each(|(d, s)| {
                            if sub {
                                glwe_ciphertext_sub_assign(d, s)
                            } else {
                                glwe_ciphertext_add_assign(d, s)
                            }
                        }),
                        (EncTensor::Lwe(d), EncTensor::Lwe(s)) if d.key == s.key => {
                            d.cts.iter_mut().zip(&s.cts).for_each(|(d, s)| {
                                if sub {
                                    lwe_ciphertext_sub_assign(d, s)
                                } else {
                                    lwe_ciphertext_add_assign(d, s)
                                }
                            })
                        }
                        _ => return Err(bad_ct("step operands differ in layout or key")),
                    }
                }
                StepInst::Zero { dst } => match &mut model.tensors[dst.index()] {
                    // All-zero mask and body: a trivial encryption of 0.
                    EncTensor::Poly(d) => d.iter_mut().for_each(|g| g.as_mut().fill(0)),
                    EncTensor::Lwe(d) => d.cts.iter_mut().for_each(|c| c.as_mut().fill(0)),
                },
                StepInst::Rescale { dst, src, factor, .. } => {
                    let span = self.plan.tensors[src.index()].fmt.bit_span();
                    super::refresh::rescale(
                        (self.keys, self.convert),
                        self.plan,
                        model,
                        (src, dst),
                        span,
                        factor,
                        self.fft.as_view(),
                        &self.stats,
                    )?;
                }
            }
        }
        self.steps_done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Run the refreshes of the plan's schedule that are due after step `steps_done` of
    /// the run (see [`super::refresh`]); returns how many ran.
    pub fn refresh(&self, model: &mut EncModel, steps_done: u64) -> Result<usize, TfheError> {
        self.check_model(model)?;
        super::refresh::run_due(
            (self.keys, self.convert),
            self.plan,
            model,
            steps_done,
            self.fft.as_view(),
            &self.stats,
        )
    }

    /// One training step: accumulate the batch, then run the step program.
    pub fn train_batch(&self, model: &mut EncModel, batch: &[EncSample]) -> Result<Vec<LutTrace>, TfheError> {
        let traces = self.accumulate(model, batch)?;
        self.step(model)?;
        Ok(traces)
    }

    fn ggsw_for<'s>(
        &self,
        s: &'s PreparedSample,
        tensor: TensorId,
        dir: Direction,
    ) -> Result<&'s [FourierGgsw], TfheError> {
        let k = self.info.need_index(self.plan, tensor, dir).ok_or_else(|| invalid("no data GGSW for this tensor"))?;
        s.ggsw.get(k).map(Vec::as_slice).ok_or_else(|| bad_ct("sample lacks a data GGSW"))
    }

    /// The model must have the plan's tensors with the parameters' dimensions.
    pub fn check_model(&self, model: &EncModel) -> Result<(), TfheError> {
        let p = self.keys.params();
        if model.tensors.len() != self.plan.tensors.len() {
            return Err(bad_ct(format!("model has {} tensors, plan {}", model.tensors.len(), self.plan.tensors.len())));
        }
        for (t, enc) in self.plan.tensors.iter().zip(&model.tensors) {
            let ok = match (t.layout, enc) {
                (Layout::DataPoly { polys, .. } | Layout::PbsPoly { polys, .. }, EncTensor::Poly(g)) => {
                    g.len() == polys
                        && g.iter().all(|g| g.polynomial_size() == p.poly_size && g.glwe_size() == p.glwe_size())
                }
                (Layout::Lwe, EncTensor::Lwe(v)) => {
                    check_lwes(v, v.key, t.rows * t.cols, p.big_lwe_dim().0, "").is_ok()
                }
                _ => false,
            };
            if !ok {
                return Err(bad_ct(format!("model tensor `{}` does not match the plan", t.name)));
            }
        }
        match &model.mean {
            Some(mean) => average::check(self.plan, &model.tensors, mean),
            None => Ok(()),
        }
    }
}

fn poly_tensor(model: &EncModel, t: TensorId) -> Result<&[Glwe], TfheError> {
    match model.tensors.get(t.index()) {
        Some(EncTensor::Poly(g)) => Ok(g),
        _ => Err(bad_ct(format!("model tensor {} is not polynomial", t.0))),
    }
}

fn check_lwes(v: &LweVec, key: KeyKind, len: usize, dim: usize, what: &str) -> Result<(), TfheError> {
    if v.key != key || v.cts.len() != len || v.cts.iter().any(|c| c.lwe_size().to_lwe_dimension().0 != dim) {
        return Err(bad_ct(format!("{what}: expected {len} LWEs under the {key}")));
    }
    Ok(())
}
