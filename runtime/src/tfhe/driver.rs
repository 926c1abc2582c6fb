//! The server's training loop: every epoch of a plan over an encrypted dataset, with
//! the server keys only, resumable from atomic checkpoints.
//!
//! Samples are visited in [`crate::order`]'s order (the clear backend's), one
//! [`Server::train_batch`] per batch. The loop state is `(epoch, step in epoch, model,
//! PBS so far)`: the order of an epoch is recomputed from the plan's seed, so a
//! checkpoint of that state is all a resume needs. Everything the server computes is
//! deterministic (fixed FFT plan, see [`super::fftplan`]; gradients added in sample
//! order), so a resumed run ends with the same ciphertexts, bit for bit, as an
//! uninterrupted one.

use super::average;
use super::cipher::{EncDataset, EncModel, EncSample, EncTensor, LweVec};
use super::convert::ConvertKey;
use super::error::TfheError;
use super::exec::Server;
use super::files::{self, Expect, FileError, FileKind, Header, PlanHash};
use super::keys::{KeyKind, ServerKeys};
use super::params::ParamSet;
use super::stats::StatsSnapshot;
use crate::order;
use blindtuner_compiler::plan::Plan;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tfhe::core_crypto::prelude::*;

/// Where training stands: the next step to run, and what the model has cost so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Epoch of the next step (`== epochs` when training is complete).
    pub epoch: usize,
    /// Index of the next batch within `epoch`.
    pub step: usize,
    /// Steps run since the start of training (all invocations).
    pub steps_done: u64,
    /// Bootstraps run since the start of training (all invocations).
    pub pbs: u64,
    /// Epoch count of the run (a resume changes it only through [`TrainState::set_epochs`]).
    pub epochs: usize,
    /// Dataset size the order was computed for (a resume must see the same dataset).
    pub samples: usize,
    pub model: EncModel,
}

impl TrainState {
    /// The state before the first step.
    pub fn fresh(model: EncModel, epochs: usize, samples: usize) -> TrainState {
        TrainState { epoch: 0, step: 0, steps_done: 0, pbs: 0, epochs, samples, model }
    }

    pub fn is_complete(&self) -> bool {
        self.epoch >= self.epochs
    }

    /// Make this (resumed) run one of `epochs` epochs: shorter, to stop after an epoch
    /// it has not finished yet, or longer. The sample order, the learning rate and the
    /// label terms depend on the epoch index only, so the steps already trained are the
    /// first steps of a run of any length: except under a tail average (`average = N`
    /// averages the last N epochs), whose sums must have started at the same epoch.
    /// An extension past the plan's learning-rate schedule is refused when the run
    /// starts ([`train`] checks the state against the plan).
    pub fn set_epochs(&mut self, plan: &Plan, epochs: usize) -> Result<(), DriverError> {
        if epochs == 0 {
            return Err(DriverError::Invalid("a run has at least one epoch".into()));
        }
        // Epochs with at least one trained step.
        let touched = self.epoch + usize::from(self.step > 0);
        if epochs < touched {
            return Err(DriverError::Invalid(format!(
                "the run has already trained steps of epoch {touched}: it cannot end after epoch {epochs}"
            )));
        }
        // First trained epoch that entered the average (`touched`: none yet).
        let averaged_from = |n: usize| plan.train.average_from(n).map_or(touched, |a| a.min(touched));
        if averaged_from(self.epochs) != averaged_from(epochs) {
            // Epoch numbers from 1 for the user.
            let from = |n: usize| plan.train.average_from(n).unwrap_or(n) + 1;
            return Err(DriverError::Invalid(format!(
                "`average = {}` averages the last epochs: this run averages from epoch {}, a run of {epochs} \
                 from epoch {}, and it has trained epoch {touched} already (start over to change its length)",
                plan.train.average,
                from(self.epochs),
                from(epochs),
            )));
        }
        self.epochs = epochs;
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Checkpoint file (written atomically); `None`: no checkpoints.
    pub checkpoint: Option<PathBuf>,
    /// Write a checkpoint when this much time has passed since the last one (and at the
    /// end of every epoch). `Duration::ZERO`: after every step.
    pub checkpoint_every: Duration,
}

/// One finished step, for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct StepEvent {
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done within `epoch` (1-based) and the epoch's step count.
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    /// Steps done in the whole run (all invocations) and the run's total.
    pub step: u64,
    pub total_steps: u64,
    /// Bootstraps since the start of training (all invocations).
    pub pbs: u64,
    /// Steps, bootstraps and wall time of this invocation (for rates and ETAs).
    pub steps_here: u64,
    pub pbs_here: u64,
    pub elapsed: Duration,
}

/// Receives progress; `step` may stop training ([`ControlFlow::Break`]) as a kill
/// would: nothing more is written, the last checkpoint stays.
pub trait Progress {
    fn step(&mut self, ev: &StepEvent) -> ControlFlow<()>;
    fn log(&mut self, line: &str);
}

/// A [`Progress`] that ignores everything.
pub struct Silent;

impl Progress for Silent {
    fn step(&mut self, _: &StepEvent) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    fn log(&mut self, _: &str) {}
}

pub struct TrainOutcome {
    /// The final state (`state.is_complete()` unless progress stopped the run).
    pub state: TrainState,
    /// Steps and samples run by this invocation, its wall time and server counters.
    pub steps: u64,
    pub samples: u64,
    pub seconds: f64,
    pub stats: StatsSnapshot,
}

#[derive(Debug)]
pub enum DriverError {
    Tfhe(TfheError),
    File(FileError),
    /// The run cannot start or continue as configured.
    Invalid(String),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Tfhe(e) => e.fmt(f),
            DriverError::File(e) => e.fmt(f),
            DriverError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<TfheError> for DriverError {
    fn from(e: TfheError) -> DriverError {
        DriverError::Tfhe(e)
    }
}

impl From<FileError> for DriverError {
    fn from(e: FileError) -> DriverError {
        DriverError::File(e)
    }
}

/// Run training from `state` to the end (or until `progress` stops it).
pub fn train(
    plan: &Plan,
    keys: &ServerKeys,
    data: &EncDataset,
    state: TrainState,
    cfg: &DriverConfig,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, DriverError> {
    train_with_convert(plan, (keys, None), data, state, cfg, progress)
}

/// [`train`] with the conversion keys a plan with products of two server values needs.
pub fn train_with_convert(
    plan: &Plan,
    (keys, convert): (&ServerKeys, Option<&ConvertKey>),
    data: &EncDataset,
    mut state: TrainState,
    cfg: &DriverConfig,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, DriverError> {
    let n = data.samples.len();
    check_state(plan, &state, n)?;
    let mut server = Server::with_convert(keys, plan, convert)?;
    server.check_model(&state.model)?;
    let plan_hash = PlanHash::of(plan);
    let batch = plan.train.batch.max(1);
    let per_epoch = order::steps_per_epoch(n, batch);
    let total_steps = (per_epoch * state.epochs) as u64;
    let average_from = plan.train.average_from(state.epochs);
    let start = Instant::now();
    let mut last_checkpoint = Instant::now();
    let (mut steps, mut samples) = (0u64, 0u64);
    if state.epoch > 0 || state.step > 0 {
        progress.log(&format!(
            "resuming at epoch {}/{}, step {}/{per_epoch} ({} PBS so far)",
            state.epoch + 1,
            state.epochs,
            state.step,
            state.pbs
        ));
    }
    while !state.is_complete() {
        server.set_epoch(state.epoch);
        let order = order::epoch_order(plan.train.seed, state.epoch, n);
        let ranges: Vec<_> = order::batches(n, batch).collect();
        while state.step < ranges.len() {
            let chunk: Vec<EncSample> =
                order[ranges[state.step].clone()].iter().map(|&i| data.samples[i].clone()).collect();
            let before = server.stats().pbs;
            server.set_step(state.step);
            server.set_steps_done(state.steps_done);
            server.train_batch(&mut state.model, &chunk)?;
            server.refresh(&mut state.model, state.steps_done + 1)?;
            if average_from.is_some_and(|e| state.epoch >= e) {
                average::accumulate(plan, &mut state.model)?;
            }
            state.pbs += server.stats().pbs - before;
            state.step += 1;
            state.steps_done += 1;
            steps += 1;
            samples += chunk.len() as u64;
            let epoch_done = state.step == ranges.len();
            let ev = StepEvent {
                epoch: state.epoch,
                epochs: state.epochs,
                step_in_epoch: state.step,
                steps_per_epoch: per_epoch,
                step: state.steps_done,
                total_steps,
                pbs: state.pbs,
                steps_here: steps,
                pbs_here: server.stats().pbs,
                elapsed: start.elapsed(),
            };
            if epoch_done {
                state.epoch += 1;
                state.step = 0;
            }
            if let Some(path) = &cfg.checkpoint {
                if epoch_done || last_checkpoint.elapsed() >= cfg.checkpoint_every {
                    save_checkpoint(path, keys, plan_hash, &state)?;
                    last_checkpoint = Instant::now();
                }
            }
            if progress.step(&ev).is_break() {
                return Ok(outcome(state, steps, samples, start, &server));
            }
            if epoch_done {
                break;
            }
        }
        if n == 0 {
            // No batches: nothing to train, but the epochs still pass.
            state.epoch += 1;
        }
    }
    Ok(outcome(state, steps, samples, start, &server))
}

fn outcome(state: TrainState, steps: u64, samples: u64, start: Instant, server: &Server<'_>) -> TrainOutcome {
    TrainOutcome { state, steps, samples, seconds: start.elapsed().as_secs_f64(), stats: server.stats() }
}

/// The state must fit the plan and the dataset (a checkpoint of another run does not).
fn check_state(plan: &Plan, state: &TrainState, n: usize) -> Result<(), DriverError> {
    if state.samples != n {
        return Err(DriverError::Invalid(format!(
            "the training state is for {} samples, the dataset has {n}",
            state.samples
        )));
    }
    let per_epoch = order::steps_per_epoch(n, plan.train.batch);
    if state.epoch > state.epochs || (state.epoch < state.epochs && state.step >= per_epoch.max(1)) {
        return Err(DriverError::Invalid(format!(
            "training state at epoch {} step {} does not fit {} epochs of {per_epoch} steps",
            state.epoch, state.step, state.epochs
        )));
    }
    // Learning-rate scaled label terms were encrypted at the plan's largest shift; an
    // epoch past the plan's schedule would need a larger one.
    let max = plan.train.max_lr_shift();
    if let Some(e) = (0..state.epochs).find(|&e| plan.train.lr_shift(e) > max) {
        return Err(DriverError::Invalid(format!(
            "epoch {} is past the plan's learning-rate schedule ({} epochs): recompile the spec with more epochs",
            e + 1,
            plan.train.epochs
        )));
    }
    Ok(())
}

/// Write `state` atomically to `path`, under the keys' parameters and fingerprint.
pub fn save_checkpoint(path: &Path, keys: &ServerKeys, plan: PlanHash, state: &TrainState) -> Result<(), FileError> {
    let h = Header { kind: FileKind::Checkpoint, params: keys.params().id(), fingerprint: keys.fingerprint(), plan };
    files::write_file(path, &h, state)
}

/// Read a checkpoint written for `keys` and `plan`.
pub fn load_checkpoint(path: &Path, keys: &ServerKeys, plan: PlanHash) -> Result<TrainState, FileError> {
    let expect = Expect { kind: FileKind::Checkpoint, fingerprint: Some(keys.fingerprint()), plan: Some(plan) };
    files::read_file(path, &expect).map(|(_, s)| s)
}

/// The model holding `values` (tensor `t` row-major, as `clear::init_tensors` gives
/// them) as trivial ciphertexts: no key needed, because the initial weights are public
/// (the spec's init and seed). The first step adds encrypted gradients to them.
pub fn trivial_model(plan: &Plan, p: &ParamSet, values: &[Vec<u64>]) -> Result<EncModel, TfheError> {
    use super::client::{model_messages, TensorMessages};
    let tensors = model_messages(plan, p.n(), values)?
        .into_iter()
        .map(|m| match m {
            TensorMessages::Poly(polys) => EncTensor::Poly(
                polys
                    .into_iter()
                    .map(|m| {
                        let pt = PlaintextList::from_container(m);
                        allocate_and_trivially_encrypt_new_glwe_ciphertext(p.glwe_size(), &pt, p.modulus)
                    })
                    .collect(),
            ),
            TensorMessages::Lwe(v) => {
                let size = p.big_lwe_dim().to_lwe_size();
                let cts = v
                    .iter()
                    .map(|&x| allocate_and_trivially_encrypt_new_lwe_ciphertext(size, Plaintext(x), p.modulus))
                    .collect();
                EncTensor::Lwe(LweVec { key: KeyKind::Data, cts })
            }
        })
        .collect();
    Ok(EncModel::new(tensors))
}
