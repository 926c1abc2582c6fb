//! Ciphertext containers shared by client and server: registers, model tensors and
//! the wire form of one encrypted sample.

use super::error::TfheError;
use super::keys::KeyKind;
use super::value::Value;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;

pub type Lwe = LweCiphertextOwned<u64>;
pub type Glwe = GlweCiphertextOwned<u64>;

/// A vector of LWE ciphertexts under one key: the value of a plan register.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LweVec {
    pub key: KeyKind,
    pub cts: Vec<Lwe>,
}

/// One stored tensor of the model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum EncTensor {
    /// `Layout::DataPoly`: one GLWE (under the data key) per polynomial.
    Poly(Vec<Glwe>),
    /// `Layout::Lwe`: one LWE per element, row-major.
    Lwe(LweVec),
}

/// The encrypted model: every tensor of the plan, in plan order (parameters,
/// optimizer state, gradient accumulators).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncModel {
    pub tensors: Vec<EncTensor>,
    /// The tail average (`average = N`), once its first epoch has begun.
    pub mean: Option<EncMean>,
    /// The training loss measured under encryption (`Plan::loss`): one sum per epoch.
    pub loss: Vec<EncLoss>,
}

impl EncModel {
    pub fn new(tensors: Vec<EncTensor>) -> EncModel {
        EncModel { tensors, mean: None, loss: Vec::new() }
    }

    /// Add one measured sample's loss to `epoch`'s sum.
    pub fn add_loss(&mut self, epoch: usize, v: &Value) -> Result<(), TfheError> {
        match self.loss.iter_mut().find(|l| l.epoch == epoch) {
            Some(l) => {
                l.sum = l.sum.add(v, false)?;
                l.samples += 1;
            }
            None => self.loss.push(EncLoss { epoch, samples: 1, sum: v.clone() }),
        }
        Ok(())
    }
}

/// The sum of the losses of an epoch's measured samples (a sum under the keys its
/// terms are under; the data owner decrypts and divides by `samples`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncLoss {
    pub epoch: usize,
    pub samples: u64,
    pub sum: Value,
}

/// Running sums of the parameters after every step of the averaged epochs: levelled
/// additions of the model's own ciphertexts, so the sums wrap on the torus and the
/// data owner unwraps them around the last iterate (see [`super::average`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncMean {
    /// Steps summed so far.
    pub steps: u64,
    /// Parallel to the plan's tensors: a sum for every parameter, `None` elsewhere.
    pub sums: Vec<Option<EncTensor>>,
}

/// One encrypted training sample as uploaded (seeded GGSWs: half the size).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncSample {
    /// `[need][poly]`, parallel to `PlanInfo::needs`.
    pub ggsw: Vec<Vec<SeededGgswCiphertextOwned<u64>>>,
    /// One vector per `LabelTerm` instruction, parallel to `PlanInfo::label_terms`.
    pub labels: Vec<LweVec>,
}

/// An encrypted dataset: samples in training order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EncDataset {
    pub samples: Vec<EncSample>,
}
