//! The clear backend: the reference interpreter of a [`Plan`].
//!
//! It executes exactly the integer torus arithmetic documented in
//! `blindtuner_compiler::plan` (wrapping `u64`), so a clear run predicts the encrypted
//! run up to noise (lookup-table cell flips). On top of the arithmetic it counts what
//! the compiler could only assume: lookup-table inputs outside their assumed range
//! (saturated) or outside their window (wrapped), and input features clamped by
//! quantization.

use crate::rng::SplitMix;
use crate::simulate::{poly_norms, Injector};
use blindtuner_compiler::plan::torus_shift;
use blindtuner_compiler::plan::{dither, rescale_bits, DitherAt, Inst, Layout, Plan, RegId, StepInst, TensorRole};
use blindtuner_compiler::spec::Init;
use std::collections::BTreeMap;

/// Violation and usage counters, accumulated over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Per LUT: evaluations.
    pub lut_evals: Vec<u64>,
    /// Per LUT: inputs outside `assumed` but inside `window` (the table saturates).
    pub lut_saturated: Vec<u64>,
    /// Per LUT: inputs outside `window` (the phase wraps: garbage output).
    pub lut_wrapped: Vec<u64>,
    /// Per plan input, per feature: values clamped to the declared range.
    pub clamped: Vec<Vec<u64>>,
    /// Samples quantized.
    pub samples: u64,
}

impl Counters {
    pub fn new(plan: &Plan) -> Counters {
        Counters {
            lut_evals: vec![0; plan.luts.len()],
            lut_saturated: vec![0; plan.luts.len()],
            lut_wrapped: vec![0; plan.luts.len()],
            clamped: plan.inputs.iter().map(|i| vec![0; i.len]).collect(),
            samples: 0,
        }
    }
    pub fn total_saturated(&self) -> u64 {
        self.lut_saturated.iter().sum()
    }
    pub fn total_wrapped(&self) -> u64 {
        self.lut_wrapped.iter().sum()
    }
    pub fn total_clamped(&self) -> u64 {
        self.clamped.iter().flatten().sum()
    }
}

/// One sample as the server sees it: quantized features (per plan input, with the
/// constant feature appended when the input has one) and class labels (per plan label).
#[derive(Clone, Debug, PartialEq)]
pub struct QSample {
    pub xq: Vec<Vec<i64>>,
    pub labels: Vec<usize>,
}

/// Per feature `j` of input `input` (augmented: the constant feature included), the mean
/// of `xq_j²` over `samples`: the feature sizes the noise model takes
/// (`AnalyzeOptions::feature_ms`, `feature_ms_each`).
pub fn feature_mean_squares(samples: &[QSample], input: usize) -> Vec<f64> {
    let d = samples.first().and_then(|q| q.xq.get(input)).map_or(0, Vec::len);
    let n = samples.len().max(1) as f64;
    (0..d).map(|j| samples.iter().map(|q| (q.xq[input][j] * q.xq[input][j]) as f64).sum::<f64>() / n).collect()
}

/// Quantize raw features (`features[i]` for `plan.inputs[i]`), counting clamps.
pub fn quantize(plan: &Plan, features: &[&[f64]], labels: &[usize], counters: &mut Counters) -> QSample {
    let xq = plan
        .inputs
        .iter()
        .zip(features)
        .enumerate()
        .map(|(i, (inp, x))| {
            let mut q = Vec::with_capacity(inp.augmented_len());
            for (j, &v) in x.iter().take(inp.len).enumerate() {
                let (v, clamped) = inp.quantize(v);
                if clamped {
                    counters.clamped[i][j] += 1;
                }
                q.push(v);
            }
            q.extend(inp.one);
            q
        })
        .collect();
    counters.samples += 1;
    QSample { xq, labels: labels.to_vec() }
}

/// Initial tensors: params from their `init` with a generator derived from the plan's
/// seed and the param's name, rounded onto the tensor format; everything else zero.
pub fn init_tensors(plan: &Plan) -> Vec<Vec<u64>> {
    plan.tensors
        .iter()
        .map(|t| {
            let mut data = vec![0u64; t.rows * t.cols];
            if t.role != TensorRole::Param {
                return data;
            }
            for part in &t.parts {
                let rows = part.shape.first().copied().unwrap_or(1);
                let n = part.shape.get(1).copied().unwrap_or(1);
                let mut rng = SplitMix::derive(plan.train.seed, &part.name);
                let xavier = (6.0 / (rows + n) as f64).sqrt();
                for r in 0..rows.min(t.rows) {
                    for j in 0..n {
                        let v = match part.init {
                            Init::Zeros => 0.0,
                            Init::Const(c) => c,
                            Init::Uniform(lo, hi) => rng.uniform(lo, hi),
                            Init::Normal(std) => std * rng.normal(),
                            Init::Xavier => rng.uniform(-xavier, xavier),
                        };
                        let col = part.col_start + j;
                        if col < t.cols {
                            data[r * t.cols + col] = t.fmt.from_real(v);
                        }
                    }
                }
            }
            data
        })
        .collect()
}

/// Real-valued params decoded from the tensors: name → (shape, row-major values).
pub fn decode_weights(plan: &Plan, tensors: &[Vec<u64>]) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let mut out = BTreeMap::new();
    for (t, data) in plan.tensors.iter().zip(tensors) {
        if t.role != TensorRole::Param {
            continue;
        }
        for part in &t.parts {
            let rows = part.shape.first().copied().unwrap_or(1);
            let n = part.shape.get(1).copied().unwrap_or(1);
            let mut vals = Vec::with_capacity(rows * n);
            for r in 0..rows {
                for j in 0..n {
                    let v = data.get(r * t.cols + part.col_start + j).copied().unwrap_or(0);
                    vals.push(t.fmt.to_real(v));
                }
            }
            out.insert(part.name.clone(), (part.shape.clone(), vals));
        }
    }
    out
}

/// The interpreter state: tensors persist across samples and steps, registers are
/// per-sample scratch.
#[derive(Clone, Debug)]
pub struct Machine<'p> {
    pub plan: &'p Plan,
    pub tensors: Vec<Vec<u64>>,
    regs: Vec<Vec<u64>>,
    /// Position in `plan.inputs` / `plan.labels` of each id.
    input_pos: BTreeMap<u32, usize>,
    label_pos: BTreeMap<u32, usize>,
    pub counters: Counters,
    /// Learning-rate shift of the current epoch (`PlanTrain::lr_shift`).
    pub lr_shift: u32,
    /// Differential testing against the encrypted backend: cells to use instead of the
    /// noise-free ones, per `Lut` instruction (index in `plan.sample`), per element.
    forced: BTreeMap<usize, Vec<usize>>,
    /// With forced cells: `(instruction, noise-free cell, cell used)` per bootstrap.
    pub cell_log: Vec<(usize, usize, usize)>,
    /// Index in `plan.sample` of the instruction being executed.
    pc: usize,
    /// `--backend simulate`: modelled noise injected at every lowered operation.
    pub noise: Option<Injector>,
    /// Steps run (the refresh schedule counts them over the whole run).
    pub steps_done: u64,
    /// Samples run since the last step: the position in its batch of the next one
    /// (with `steps_done`, where its `Inst::Dither` offsets are drawn).
    batch_pos: u64,
    /// Keys each register is a sum over on the encrypted backend (noise of its bootstrap
    /// input: one keyswitch per key).
    key_parts: Vec<u32>,
}

impl<'p> Machine<'p> {
    /// A machine with freshly initialised tensors.
    pub fn new(plan: &'p Plan) -> Machine<'p> {
        Machine::with_tensors(plan, init_tensors(plan))
    }

    pub fn with_tensors(plan: &'p Plan, tensors: Vec<Vec<u64>>) -> Machine<'p> {
        Machine {
            plan,
            tensors,
            regs: plan.regs.iter().map(|r| vec![0; r.len]).collect(),
            input_pos: plan.inputs.iter().enumerate().map(|(i, x)| (x.id.0, i)).collect(),
            label_pos: plan.labels.iter().enumerate().map(|(i, x)| (x.id.0, i)).collect(),
            counters: Counters::new(plan),
            lr_shift: 0,
            forced: BTreeMap::new(),
            cell_log: Vec::new(),
            pc: 0,
            noise: None,
            steps_done: 0,
            batch_pos: 0,
            key_parts: blindtuner_compiler::noise::sim::key_parts(plan),
        }
    }

    /// A machine that simulates the encrypted run: fresh tensors get the noise of a
    /// fresh encryption, and every operation adds the noise `injector` models for it.
    pub fn simulated(plan: &'p Plan, mut injector: Injector) -> Machine<'p> {
        let mut tensors = init_tensors(plan);
        let fresh = injector.op.fresh_glwe;
        for (t, data) in plan.tensors.iter().zip(&mut tensors) {
            // Gradient accumulators and scratch start as trivial zeros on the server.
            if matches!(t.role, TensorRole::Param | TensorRole::State(_)) {
                injector.add(data, fresh);
            }
        }
        let mut m = Machine::with_tensors(plan, tensors);
        m.noise = Some(injector);
        m
    }

    pub fn quantize(&mut self, features: &[&[f64]], labels: &[usize]) -> QSample {
        quantize(self.plan, features, labels, &mut self.counters)
    }

    /// A register's torus values after the last run.
    pub fn reg(&self, r: RegId) -> &[u64] {
        &self.regs[r.index()]
    }

    /// The logits register, as real values.
    pub fn logits(&self) -> Vec<f64> {
        let fmt = self.plan.regs[self.plan.logits.index()].fmt;
        self.reg(self.plan.logits).iter().map(|&t| fmt.to_real(t)).collect()
    }

    /// Forward only (`sample[..forward_len]`): what inference runs.
    pub fn forward(&mut self, s: &QSample) {
        let plan = self.plan;
        for inst in &plan.sample[..plan.forward_len.min(plan.sample.len())] {
            self.exec(inst, s);
        }
    }

    /// The whole per-sample program: forward, error, backward, accumulation.
    pub fn run_sample(&mut self, s: &QSample) {
        for (pc, inst) in self.plan.sample.iter().enumerate() {
            self.pc = pc;
            self.exec(inst, s);
        }
        self.batch_pos += 1;
    }

    /// The loss program (`Plan::loss`) after [`Machine::run_sample`] of the same sample:
    /// the sample's loss as a torus value of the loss register's format.
    pub fn run_loss(&mut self, s: &QSample) -> Option<u64> {
        let plan = self.plan;
        let loss = plan.loss.as_ref()?;
        for (j, inst) in loss.program.iter().enumerate() {
            self.pc = plan.sample.len() + j;
            self.exec(inst, s);
        }
        self.regs[loss.reg.index()].first().copied()
    }

    /// [`Machine::run_sample`], but every bootstrap of `Lut` instruction `i` lands in
    /// `cells[&i][element]` (the cells an encrypted run selected, recovered with the
    /// client key) instead of the noise-free cell. Both choices are logged in
    /// `cell_log`, so a test can tell levelled noise from lookup-table disagreements.
    pub fn run_sample_forced(&mut self, s: &QSample, cells: BTreeMap<usize, Vec<usize>>) {
        self.forced = cells;
        self.run_sample(s);
        self.forced.clear();
    }

    /// [`Machine::run_sample_forced`], then the loss program with its forced cells too
    /// (they are keyed by `Plan::inst` index); returns the sample's loss.
    pub fn run_sample_and_loss_forced(&mut self, s: &QSample, cells: BTreeMap<usize, Vec<usize>>) -> Option<u64> {
        self.forced = cells;
        self.run_sample(s);
        let loss = self.run_loss(s);
        self.forced.clear();
        loss
    }

    /// The next samples are those of the batch after `steps_done` steps (a machine that
    /// replays samples without running the step program: `lockstep`'s synced one).
    pub fn begin_step(&mut self, steps_done: u64) {
        self.steps_done = steps_done;
        self.batch_pos = 0;
    }

    /// The per-step program (after every sample of the batch has accumulated).
    pub fn run_step(&mut self) {
        for inst in &self.plan.step {
            self.exec_step(inst);
        }
        self.steps_done += 1;
        self.batch_pos = 0;
        let (plan, done) = (self.plan, self.steps_done);
        for r in plan.train.refresh.iter().filter(|r| r.due(done)) {
            self.rescale(r.tensor.index(), r.tensor.index(), (r.lsb, r.top), 1.0);
        }
    }

    /// `dst = factor · src` as a multi-digit bootstrap computes it ([`rescale_bits`]; a
    /// refresh is `factor = 1`), with its modelled noise when simulating: one weighted
    /// bootstrap output per bit and the sign, then the packing.
    fn rescale(&mut self, src: usize, dst: usize, (lsb, top): (u32, u32), factor: f64) {
        let mut res: Vec<u64> = self.tensors[src].iter().map(|&t| rescale_bits(lsb, top, factor, t)).collect();
        if let Some(n) = &mut self.noise {
            let var = n.op.refresh(top - lsb + 1, res.len());
            n.add(&mut res, var);
        }
        self.tensors[dst] = res;
    }

    /// Class with the largest logit (first one on ties) after [`Machine::forward`].
    pub fn argmax(&self) -> usize {
        let z = self.reg(self.plan.logits);
        (0..z.len()).fold(0, |best, c| if (z[c] as i64) > (z[best] as i64) { c } else { best })
    }

    fn exec(&mut self, inst: &Inst, s: &QSample) {
        let plan = self.plan;
        match *inst {
            Inst::DataMatVec { tensor, input, out } => {
                let t = &plan.tensors[tensor.index()];
                let x = &s.xq[self.input_pos[&input.0]];
                let p = &self.tensors[tensor.index()];
                let o = &mut self.regs[out.index()];
                for (r, o) in o.iter_mut().enumerate() {
                    let row = &p[r * t.cols..(r + 1) * t.cols];
                    *o = dot(row, x.iter().copied());
                }
                if let Some(n) = &mut self.noise {
                    // One external product per data polynomial, summed.
                    let var: f64 = poly_norms(t.layout, x).into_iter().map(|m| n.op.external_product(m)).sum();
                    n.add(o, var);
                }
            }
            Inst::MatVec { tensor, v, one, out } => {
                let t = &plan.tensors[tensor.index()];
                let fmt = plan.regs[v.index()].fmt;
                let vi: Vec<i64> = self.regs[v.index()].iter().map(|&x| fmt.int_value(x)).chain(one).collect();
                let p = &self.tensors[tensor.index()];
                let mut res = vec![0u64; plan.regs[out.index()].len];
                for (r, o) in res.iter_mut().enumerate() {
                    *o = dot(&p[r * t.cols..(r + 1) * t.cols], vi.iter().copied());
                }
                // One external product with the polynomial GGSW of `int(v)`.
                self.add_product_noise(v, &vi, &mut res);
                self.regs[out.index()] = res;
            }
            Inst::MatVecT { tensor, v, out } => {
                let t = &plan.tensors[tensor.index()];
                let fmt = plan.regs[v.index()].fmt;
                let vi: Vec<i64> = self.regs[v.index()].iter().map(|&x| fmt.int_value(x)).collect();
                let p = &self.tensors[tensor.index()];
                let mut res = vec![0u64; plan.regs[out.index()].len];
                for (j, o) in res.iter_mut().enumerate() {
                    let mut acc = 0u64;
                    for (r, &e) in vi.iter().enumerate().take(t.rows) {
                        acc = acc.wrapping_add(p[r * t.cols + j].wrapping_mul(e as u64));
                    }
                    *o = acc;
                }
                self.add_product_noise(v, &vi, &mut res);
                self.regs[out.index()] = res;
            }
            Inst::Lut { lut, input, out } => {
                let l = &plan.luts[lut.index()];
                let li = lut.index();
                let forced = self.forced.get(&self.pc);
                let mut res = Vec::with_capacity(self.regs[input.index()].len());
                let parts = self.key_parts.get(input.index()).copied().unwrap_or(1);
                for (e, &t) in self.regs[input.index()].iter().enumerate() {
                    let clean = self.noise.as_mut().map(|n| {
                        let before = n.op.before_pbs_parts(parts);
                        (l.eval(t, plan.poly_size).1, n.sample(before))
                    });
                    let t = t.wrapping_add(clean.map_or(0, |c| c.1));
                    let x = l.in_fmt.to_real(t);
                    self.counters.lut_evals[li] += 1;
                    if x < l.window.0 || x >= l.window.1 {
                        self.counters.lut_wrapped[li] += 1;
                    } else if x < l.assumed.0 || x > l.assumed.1 {
                        self.counters.lut_saturated[li] += 1;
                    }
                    let (v, cell) = l.eval_at(t, plan.poly_size, self.lr_shift);
                    if let (Some(n), Some((clean, _))) = (&mut self.noise, clean) {
                        n.tally(l, clean, cell);
                        let pbs = n.op.pbs;
                        res.push(v.wrapping_add(n.sample(pbs)));
                        continue;
                    }
                    match forced.and_then(|f| f.get(e)) {
                        Some(&used) => {
                            self.cell_log.push((self.pc, cell, used));
                            res.push(l.cell_value(used, self.lr_shift));
                        }
                        None => res.push(v),
                    }
                }
                self.regs[out.index()] = res;
            }
            Inst::Add { a, b, out } => self.zip(a, b, out, |x, y| x.wrapping_add(y)),
            Inst::Sub { a, b, out } => self.zip(a, b, out, |x, y| x.wrapping_sub(y)),
            Inst::Mul { a, b, out } => {
                let fa = plan.regs[a.index()].fmt;
                self.zip(a, b, out, move |x, y| (fa.int_value(x) as u64).wrapping_mul(y));
                if self.noise.is_none() {
                    return;
                }
                // Per element: `b_i` packed into a GLWE (its rounding and key noise, times
                // `int(a_i)²`), then one external product with `GGSW(int(a_i))`.
                let ai: Vec<i64> = self.regs[a.index()].iter().map(|&x| fa.int_value(x)).collect();
                // One scalar GGSW per element: its shared part is its own.
                let vars: Vec<f64> = ai.iter().map(|&m| self.product_noise(a, &[m]).iter().sum()).collect();
                if let Some(n) = &mut self.noise {
                    let (round, key) = n.op.packing(1);
                    for (o, (&m, var)) in self.regs[out.index()].iter_mut().zip(ai.iter().zip(vars)) {
                        let m2 = (m as f64) * (m as f64);
                        *o = o.wrapping_add(n.sample((round + key) * m2 + var));
                    }
                }
            }
            Inst::AddConst { a, c, out } => self.map(a, out, |x| x.wrapping_add(c)),
            Inst::Dither { a, width, out } => {
                // Inside `run_sample`, the sample is the `batch_pos`-th of its batch.
                let at = DitherAt {
                    seed: plan.train.seed,
                    step: self.steps_done,
                    pos: self.batch_pos,
                    inst: self.pc as u64,
                };
                let res = self.regs[a.index()].iter().enumerate().map(|(i, &x)| x.wrapping_add(dither(at, i, width)));
                self.regs[out.index()] = res.collect();
            }
            Inst::MulInt { a, c, out } => self.map(a, out, |x| x.wrapping_mul(c as u64)),
            Inst::LabelTerm { label, on, off, out, lr_scaled } => {
                let y = s.labels[self.label_pos[&label.0]];
                let shift = if lr_scaled { self.lr_shift } else { 0 };
                let (on, off) = (torus_shift(on, shift), torus_shift(off, shift));
                for (c, o) in self.regs[out.index()].iter_mut().enumerate() {
                    *o = if c == y { on } else { off };
                }
                if let Some(n) = &mut self.noise {
                    let var = if lr_scaled { n.op.label(n.max_shift, self.lr_shift) } else { n.op.fresh_glwe };
                    n.add(&mut self.regs[out.index()], var);
                }
            }
            Inst::Elem { a, index, out } => {
                let v = self.regs[a.index()][index];
                self.regs[out.index()] = vec![v];
            }
            Inst::Bcast { a, out } => {
                let v = self.regs[a.index()][0];
                self.regs[out.index()].iter_mut().for_each(|o| *o = v);
            }
            Inst::Concat { ref parts, out } => {
                let v: Vec<u64> = parts.iter().flat_map(|p| self.regs[p.index()].iter().copied()).collect();
                self.regs[out.index()] = v;
            }
            Inst::DataOuterAcc { grad, e, input } => {
                let x = &s.xq[self.input_pos[&input.0]];
                let t = &plan.tensors[grad.index()];
                let Some(n) = &mut self.noise else {
                    outer_acc(&mut self.tensors[grad.index()], t.cols, &self.regs[e.index()], x);
                    return;
                };
                // Packing rounds every error value (then multiplied by the data); the
                // packing key and the external product add to every coefficient.
                let (per_value, key) = n.op.packing(self.regs[e.index()].len());
                let mut ev = self.regs[e.index()].clone();
                n.add(&mut ev, per_value);
                let g = &mut self.tensors[grad.index()];
                outer_acc(g, t.cols, &ev, x);
                // Per data polynomial: its key term and external product, once.
                let vars: Vec<f64> =
                    poly_norms(t.layout, x).into_iter().map(|m| key * m + n.op.external_product(m)).collect();
                for row in g.chunks_mut(t.cols).take(ev.len()) {
                    for (j, gj) in row.iter_mut().take(x.len()).enumerate() {
                        let var = vars.get(poly_of(t.layout, j)).copied().unwrap_or(0.0);
                        *gj = gj.wrapping_add(n.sample(var));
                    }
                }
            }
            Inst::OuterAcc { grad, e, v, one } => {
                let fmt = plan.regs[v.index()].fmt;
                let vi: Vec<i64> = self.regs[v.index()].iter().map(|&x| fmt.int_value(x)).chain(one).collect();
                let cols = plan.tensors[grad.index()].cols;
                let [var, shared] = self.product_noise(v, &vi);
                let Some(n) = &mut self.noise else {
                    outer_acc(&mut self.tensors[grad.index()], cols, &self.regs[e.index()], &vi);
                    return;
                };
                // `e` packed into one GLWE (rounding per value, times `int(v_j)`; the key
                // term times ‖int(v)‖²), then one external product with the polynomial
                // GGSW of `int(v)`.
                let (round, key) = n.op.packing(self.regs[e.index()].len());
                let mut ev = self.regs[e.index()].clone();
                n.add(&mut ev, round);
                let g = &mut self.tensors[grad.index()];
                outer_acc(g, cols, &ev, &vi);
                let mu2: f64 = vi.iter().map(|&m| (m as f64) * (m as f64)).sum();
                let common = n.sample(shared);
                for row in g.chunks_mut(cols).take(ev.len()) {
                    for gj in row.iter_mut().take(vi.len()) {
                        *gj = gj.wrapping_add(n.sample(key * mu2 + var)).wrapping_add(common);
                    }
                }
            }
        }
    }

    fn exec_step(&mut self, inst: &StepInst) {
        match *inst {
            StepInst::SubAssign { dst, src } => self.assign(dst.index(), src.index(), u64::wrapping_sub),
            StepInst::AddAssign { dst, src } => self.assign(dst.index(), src.index(), u64::wrapping_add),
            StepInst::Rescale { dst, src, factor, .. } => {
                let span = self.plan.tensors[src.index()].fmt.bit_span();
                self.rescale(src.index(), dst.index(), span, factor);
            }
            StepInst::Zero { dst } => self.tensors[dst.index()].iter_mut().for_each(|x| *x = 0),
        }
    }

    fn assign(&mut self, dst: usize, src: usize, f: fn(u64, u64) -> u64) {
        if dst == src {
            self.tensors[dst].iter_mut().for_each(|x| *x = f(*x, *x));
            return;
        }
        // Borrow two distinct tensors at once.
        let (lo, hi) = self.tensors.split_at_mut(dst.max(src));
        let (d, s) = if dst < src { (&mut lo[dst], &hi[0]) } else { (&mut hi[0], &lo[src]) };
        for (d, &s) in d.iter_mut().zip(s.iter()) {
            *d = f(*d, s);
        }
    }

    fn zip(&mut self, a: RegId, b: RegId, out: RegId, f: impl Fn(u64, u64) -> u64) {
        let res: Vec<u64> = self.regs[a.index()].iter().zip(&self.regs[b.index()]).map(|(&x, &y)| f(x, y)).collect();
        self.regs[out.index()] = res;
    }

    fn map(&mut self, a: RegId, out: RegId, f: impl Fn(u64) -> u64) {
        let res: Vec<u64> = self.regs[a.index()].iter().map(|&x| f(x)).collect();
        self.regs[out.index()] = res;
    }
}

impl Machine<'_> {
    /// Noise of the product at `self.pc` whose integer operand `v` reads `ints` (0
    /// unless simulating), as `[own, shared]`: each output coefficient's own variance,
    /// and the variance of one draw shared by all of the product's outputs (see
    /// `OpNoise::converted_product_split`).
    fn product_noise(&self, v: RegId, ints: &[i64]) -> [f64; 2] {
        let Some(n) = &self.noise else { return [0.0; 2] };
        let Some(prod) = self.plan.products.get(&self.pc) else { return [0.0; 2] };
        let mu2: f64 = ints.iter().map(|&m| (m as f64) * (m as f64)).sum();
        let sum2 = (ints.iter().sum::<i64>() as f64).powi(2);
        let bits = self.plan.regs[v.index()].fmt.bits();
        n.op.converted_product_split(prod.strategy, ints.len(), bits, mu2, sum2)
    }

    /// The noise of a product (see [`Self::product_noise`]) on its outputs `res`: each
    /// its own draw, plus one draw shared by all.
    fn add_product_noise(&mut self, v: RegId, ints: &[i64], res: &mut [u64]) {
        let [own, shared] = self.product_noise(v, ints);
        if let Some(n) = &mut self.noise {
            n.add(res, own);
            let common = n.sample(shared);
            res.iter_mut().for_each(|o| *o = o.wrapping_add(common));
        }
    }
}

/// Index of the data polynomial that holds feature `j`.
fn poly_of(layout: Layout, j: usize) -> usize {
    match layout {
        Layout::DataPoly { per_poly, .. } if per_poly > 0 => j / per_poly,
        _ => 0,
    }
}

/// `Σ_j row[j] · x[j]`, wrapping.
fn dot(row: &[u64], x: impl Iterator<Item = i64>) -> u64 {
    row.iter().zip(x).fold(0u64, |acc, (&w, x)| acc.wrapping_add(w.wrapping_mul(x as u64)))
}

/// `G[r][j] += e[r] · v[j]` for the `v.len()` first columns.
fn outer_acc(g: &mut [u64], cols: usize, e: &[u64], v: &[i64]) {
    for (r, &er) in e.iter().enumerate() {
        let row = &mut g[r * cols..(r + 1) * cols];
        for (gj, &vj) in row.iter_mut().zip(v) {
            *gj = gj.wrapping_add(er.wrapping_mul(vj as u64));
        }
    }
}
