//! Training loop over a plan with the clear backend.
//!
//! Order of samples: [`crate::order`] (a deterministic shuffle per epoch derived from
//! `plan.train.seed`, shared with the encrypted backend). Batches: consecutive chunks of `plan.train.batch` samples; the last partial batch
//! of an epoch is processed too (its update is the sum of its gradients scaled by the
//! same `lr/B`, i.e. it counts as a batch of B with the missing samples contributing 0).

use crate::clear::{Counters, Machine, QSample};
use crate::data::Dataset;
use crate::order;
use crate::simulate::{CellTally, Injector};
use blindtuner_compiler::lower::cost::costs;
use blindtuner_compiler::plan::{round_mean, Format, Plan, TensorRole};
use blindtuner_compiler::spec::LossKind;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Loss to report per epoch (computed in f64 from the clear logits; information only).
    pub loss: Option<LossKind>,
    /// Override the plan's epoch count.
    pub epochs: Option<usize>,
    /// `--backend simulate`: inject the modelled noise (see [`crate::simulate`]).
    pub simulate: Option<Injector>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LutViolations {
    pub lut: String,
    pub evals: u64,
    /// Inputs outside the assumed range (the table saturates).
    pub saturated: u64,
    /// Inputs outside the window (the phase wraps).
    pub wrapped: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    pub test_accuracy: Option<f64>,
    pub train_accuracy: f64,
    pub epochs: usize,
    pub steps: usize,
    pub samples: usize,
    pub train_seconds: f64,
    /// PBS the encrypted backend would run for the same work (from the plan's costs).
    pub pbs_count: u64,
    pub external_products: u64,
    pub luts: Vec<LutViolations>,
    /// Per input, per feature: training values clamped by quantization.
    pub clamped: Vec<Vec<u64>>,
    /// Mean training loss per epoch (f64 from the clear logits, before each update).
    pub loss_per_epoch: Vec<f64>,
    /// The plan's loss program (what the encrypted run measures): per epoch, the
    /// mean over the measured samples (`Plan::loss`), empty without one.
    pub plan_loss_per_epoch: Vec<f64>,
    /// Trained tensors (torus values), for `decode_weights` / `predict`.
    pub tensors: Vec<Vec<u64>>,
    /// Simulated runs: where the noisy bootstraps landed, over the run and per epoch
    /// (a one-cell-off rate that climbs means the weights' noise reaches the tables).
    pub cells: Option<CellTally>,
    pub cells_per_epoch: Vec<CellTally>,
}

/// Train from the plan's initial tensors.
pub fn train(plan: &Plan, train: &Dataset, test: Option<&Dataset>, opts: &TrainOptions) -> TrainReport {
    let mut m = match &opts.simulate {
        Some(inj) => Machine::simulated(plan, inj.clone()),
        None => Machine::new(plan),
    };
    let start = Instant::now();
    let qtrain: Vec<QSample> = train.x.iter().zip(&train.y).map(|(x, &y)| m.quantize(&[x], &[y])).collect();
    let clamped = m.counters.clamped.clone();
    let epochs = opts.epochs.unwrap_or(plan.train.epochs);
    let batch = plan.train.batch.max(1);
    let mut order: Vec<usize> = (0..qtrain.len()).collect();
    let (mut steps, mut samples) = (0usize, 0usize);
    let mut loss_per_epoch = Vec::with_capacity(epochs);
    let mut plan_loss_per_epoch = Vec::with_capacity(epochs);
    let mut loss_samples = 0u64;
    let mut cells_per_epoch = Vec::new();
    let mut cells_before = CellTally::default();
    let mut mean = Average::new(plan, epochs);
    for epoch in 0..epochs {
        m.lr_shift = plan.train.lr_shift(epoch);
        order::shuffle_epoch(plan.train.seed, epoch, &mut order);
        let mut loss = 0.0;
        let mut measured = LossSum::default();
        for (si, range) in order::batches(order.len(), batch).enumerate() {
            let chunk = &order[range];
            let measure = plan.loss.as_ref().is_some_and(|l| l.measured(si));
            for &i in chunk {
                m.run_sample(&qtrain[i]);
                if let Some(kind) = opts.loss {
                    loss += loss_value(kind, &m.logits(), train.y[i]);
                }
                if measure {
                    if let Some(t) = m.run_loss(&qtrain[i]) {
                        measured.add(t);
                    }
                }
            }
            m.run_step();
            mean.add(epoch, &m.tensors);
            steps += 1;
            samples += chunk.len();
        }
        loss_per_epoch.push(loss / qtrain.len().max(1) as f64);
        if let Some(l) = &plan.loss {
            plan_loss_per_epoch.push(measured.mean(plan.regs[l.reg.index()].fmt));
            loss_samples += measured.samples;
        }
        if let Some(n) = &m.noise {
            cells_per_epoch.push(n.cells.minus(&cells_before));
            cells_before = n.cells;
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let c = costs(plan);
    // The data owner evaluates decrypted weights in the clear: no noise from here on.
    let noise = m.noise.take();
    mean.apply(&mut m.tensors);
    let train_accuracy = accuracy_q(&mut m, &qtrain);
    let test_accuracy = test.map(|t| accuracy(plan, &m.tensors, t));
    let luts = plan
        .luts
        .iter()
        .enumerate()
        .map(|(i, l)| LutViolations {
            lut: l.name.clone(),
            evals: m.counters.lut_evals[i],
            saturated: m.counters.lut_saturated[i],
            wrapped: m.counters.lut_wrapped[i],
        })
        .collect();
    TrainReport {
        test_accuracy,
        train_accuracy,
        epochs,
        steps,
        samples,
        train_seconds,
        pbs_count: c.run_pbs(plan, samples as u64, steps as u64) + c.loss_pbs_per_sample * loss_samples,
        external_products: c.external_products_per_sample * samples as u64,
        luts,
        clamped,
        loss_per_epoch,
        plan_loss_per_epoch,
        cells: noise.map(|n| n.cells),
        cells_per_epoch,
        tensors: m.tensors,
    }
}

/// `average = N`: the mean of the parameters after every step of the last `N` epochs.
/// Sums are kept exactly (i128 of the signed torus values), which is what the data
/// owner recovers from an encrypted accumulator by unwrapping it around the last
/// iterate; the mean is rounded back to the torus.
struct Average {
    from_epoch: usize,
    params: Vec<bool>,
    sums: Vec<Vec<i128>>,
    count: i128,
}

impl Average {
    fn new(plan: &Plan, epochs: usize) -> Average {
        Average {
            from_epoch: plan.train.average_from(epochs).unwrap_or(usize::MAX),
            params: plan.tensors.iter().map(|t| t.role == TensorRole::Param).collect(),
            sums: plan.tensors.iter().map(|_| Vec::new()).collect(),
            count: 0,
        }
    }

    fn add(&mut self, epoch: usize, tensors: &[Vec<u64>]) {
        if epoch < self.from_epoch {
            return;
        }
        self.count += 1;
        for ((sum, t), &param) in self.sums.iter_mut().zip(tensors).zip(&self.params) {
            if param {
                sum.resize(t.len(), 0);
                sum.iter_mut().zip(t).for_each(|(s, &v)| *s += i128::from(v as i64));
            }
        }
    }

    fn apply(&self, tensors: &mut [Vec<u64>]) {
        if self.count == 0 {
            return;
        }
        for ((sum, t), &param) in self.sums.iter().zip(tensors.iter_mut()).zip(&self.params) {
            if param {
                for (v, &s) in t.iter_mut().zip(sum) {
                    *v = round_mean(s, self.count);
                }
            }
        }
    }
}

/// Accuracy of the tensors on a dataset (forward program only).
pub fn accuracy(plan: &Plan, tensors: &[Vec<u64>], data: &Dataset) -> f64 {
    let mut m = Machine::with_tensors(plan, tensors.to_vec());
    let q: Vec<QSample> = data.x.iter().zip(&data.y).map(|(x, &y)| m.quantize(&[x], &[y])).collect();
    accuracy_q(&mut m, &q)
}

fn accuracy_q(m: &mut Machine<'_>, q: &[QSample]) -> f64 {
    let ok = q
        .iter()
        .filter(|s| {
            m.forward(s);
            s.labels.first() == Some(&m.argmax())
        })
        .count();
    ok as f64 / q.len().max(1) as f64
}

/// Class predicted for one sample's raw features.
pub fn predict(plan: &Plan, tensors: &[Vec<u64>], x: &[f64]) -> usize {
    let mut m = Machine::with_tensors(plan, tensors.to_vec());
    let mut counters = Counters::new(plan);
    let q = crate::clear::quantize(plan, &[x], &[0], &mut counters);
    m.forward(&q);
    m.argmax()
}

/// The loss of real logits `z` for class `y`.
pub fn loss_value(kind: LossKind, z: &[f64], y: usize) -> f64 {
    match kind {
        LossKind::SoftmaxCrossEntropy => {
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            lse - z.get(y).copied().unwrap_or(0.0)
        }
        LossKind::SigmoidCrossEntropy => z
            .iter()
            .enumerate()
            .map(|(c, &v)| {
                let t = if c == y { 1.0 } else { 0.0 };
                // log(1 + e^v) - t v, stably
                v.max(0.0) + (-v.abs()).exp().ln_1p() - t * v
            })
            .sum(),
        LossKind::Mse => {
            let k = z.len().max(1) as f64;
            z.iter().enumerate().map(|(c, &v)| (v - if c == y { 1.0 } else { 0.0 }).powi(2)).sum::<f64>() / k
        }
    }
}

/// A sum of per-sample losses on the torus (wrapping, exactly as the server adds them).
#[derive(Clone, Copy, Debug, Default)]
pub struct LossSum {
    pub sum: u64,
    pub samples: u64,
}

impl LossSum {
    pub fn add(&mut self, t: u64) {
        self.sum = self.sum.wrapping_add(t);
        self.samples += 1;
    }
    /// The mean loss, reading the sum in `fmt` (NaN for no samples).
    pub fn mean(&self, fmt: Format) -> f64 {
        fmt.to_real(self.sum) / self.samples as f64
    }
}
