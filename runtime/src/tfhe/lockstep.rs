//! Lock-step differential execution of the two backends: a verification tool for the
//! data owner's side (it holds the client key), used by the suite's lock-step tests
//! and by the long `lockstep` example.
//!
//! The clear machine follows an encrypted run step by step and applies, at every
//! bootstrap, the lookup-table cell the encrypted bootstrap actually selected
//! (recovered from the traced bootstrap inputs with the client key). With the cells
//! agreeing, the error values agree exactly, so after every step the decrypted
//! weights differ from the clear weights by the levelled noise alone: the random walk
//! `noise::analyze` predicts (variance `base + per_step · steps`), with no feedback
//! through the trajectory.
//!
//! Where a bootstrap landed (same cell as the noise-free one, one off, further) is
//! tallied twice. `cells` counts against the lock-stepped clear run, whose weights
//! lack the encrypted weights' accumulated noise: over a long run that noise moves the
//! logits by whole cells, so these counts grow with the run and say how far the two
//! trajectories' inputs drifted, not whether a bootstrap failed. `landings` counts
//! against a second clear machine re-synchronised to the decrypted weights before
//! every step: the bootstrap's own error on the state the server really had (the
//! fresh noise of one sample's products and keyswitches, and the modulus switch) —
//! what the noise model's one-cell-off and failure probabilities describe.

use super::cipher::EncModel;
use super::error::{bad_ct, TfheError};
use super::exec::LutTrace;
use super::keys::ClientKey;
use crate::clear::{Machine, QSample};
use crate::simulate::CellTally;
use crate::train::LossSum;
use blindtuner_compiler::plan::{Inst, Plan, TensorRole};
use std::collections::BTreeMap;

pub struct LockStep<'p> {
    plan: &'p Plan,
    pub clear: Machine<'p>,
    /// Landings against the lock-stepped clear run (includes the weights' drift).
    pub cells: CellTally,
    /// Landings against the decrypted state before each step (the bootstrap's own error).
    pub landings: CellTally,
    synced: Machine<'p>,
    /// Steps run.
    pub steps: u64,
    /// The loss program on the decrypted state with the encrypted run's cells, per
    /// epoch, over the steps `Plan::loss` measures (see [`LockStep::set_step`]).
    pub loss: Vec<LossSum>,
    epoch: usize,
    measure: bool,
}

/// The distance of the decrypted parameters from the clear ones after a step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepCheck {
    /// Largest |decrypted − clear| over every parameter coefficient, torus units.
    pub max_abs: u64,
    /// Mean of (decrypted − clear)² over the parameter coefficients, torus units².
    pub mean_sq: f64,
}

impl<'p> LockStep<'p> {
    /// Follow a run that starts from `tensors` (the values the model was encrypted or
    /// trivially built from).
    pub fn new(plan: &'p Plan, tensors: Vec<Vec<u64>>) -> LockStep<'p> {
        LockStep {
            plan,
            clear: Machine::with_tensors(plan, tensors.clone()),
            cells: CellTally::default(),
            landings: CellTally::default(),
            synced: Machine::with_tensors(plan, tensors),
            steps: 0,
            loss: Vec::new(),
            epoch: 0,
            measure: plan.loss.is_some(),
        }
    }

    /// The server is about to run epoch `epoch` (learning-rate schedule).
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        self.clear.lr_shift = self.plan.train.lr_shift(epoch);
        self.synced.lr_shift = self.clear.lr_shift;
    }

    /// The next step is step `step` of its epoch (whether the loss is measured).
    pub fn set_step(&mut self, step: usize) {
        self.measure = self.plan.loss.as_ref().is_some_and(|l| l.measured(step));
    }

    /// Replay one encrypted step in the clear: `batch` in the order the server ran it,
    /// `traces` as `Server::train_batch` returned them; then compare the parameters
    /// with `model` (the encrypted model after that step).
    pub fn step(
        &mut self,
        ck: &ClientKey,
        batch: &[QSample],
        traces: &[LutTrace],
        model: &EncModel,
    ) -> Result<StepCheck, TfheError> {
        if batch.len() != traces.len() {
            return Err(bad_ct(format!("{} samples but {} bootstrap traces", batch.len(), traces.len())));
        }
        self.synced.begin_step(self.clear.steps_done);
        for (q, trace) in batch.iter().zip(traces) {
            let mut cells = BTreeMap::new();
            for (pc, lwes) in trace {
                let Some(Inst::Lut { lut, .. }) = self.plan.inst(*pc) else {
                    return Err(bad_ct(format!("bootstrap trace of instruction {pc}, which is not a lookup")));
                };
                let lut = &self.plan.luts[lut.index()];
                let used = lwes.iter().map(|c| lut.at_index(ck.pbs_index(c), self.plan.poly_size).1).collect();
                cells.insert(*pc, used);
            }
            self.synced.cell_log.clear();
            if self.measure {
                if let Some(t) = self.synced.run_sample_and_loss_forced(q, cells.clone()) {
                    if self.loss.len() <= self.epoch {
                        self.loss.resize(self.epoch + 1, LossSum::default());
                    }
                    self.loss[self.epoch].add(t);
                }
            } else {
                self.synced.run_sample_forced(q, cells.clone());
            }
            tally(self.plan, &self.synced.cell_log, &mut self.landings);
            self.clear.cell_log.clear();
            self.clear.run_sample_forced(q, cells);
            tally(self.plan, &self.clear.cell_log, &mut self.cells);
        }
        self.clear.run_step();
        self.steps += 1;
        let dec = ck.decrypt_iterate(self.plan, model)?;
        self.synced.tensors.clone_from(&dec);
        let mut check = StepCheck::default();
        let mut n = 0usize;
        for ((t, a), b) in self.plan.tensors.iter().zip(&dec).zip(&self.clear.tensors) {
            if t.role != TensorRole::Param {
                continue;
            }
            for (x, y) in a.iter().zip(b) {
                let d = x.wrapping_sub(*y) as i64;
                check.max_abs = check.max_abs.max(d.unsigned_abs());
                check.mean_sq += (d as f64) * (d as f64);
                n += 1;
            }
        }
        check.mean_sq /= n.max(1) as f64;
        Ok(check)
    }
}

fn tally(plan: &Plan, log: &[(usize, usize, usize)], into: &mut CellTally) {
    for &(pc, clean, used) in log {
        if let Some(Inst::Lut { lut, .. }) = plan.sample.get(pc) {
            into.record(&plan.luts[lut.index()], clean, used);
        }
    }
}
