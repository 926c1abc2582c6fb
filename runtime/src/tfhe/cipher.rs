//! Ciphertext containers shared by client and server: registers, model tensors and
//! the wire form of one encrypted sample.

use super::keys::KeyKind;
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
}

impl EncModel {
    pub fn new(tensors: Vec<EncTensor>) -> EncModel {
        EncModel { tensors, mean: None }
    }
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
