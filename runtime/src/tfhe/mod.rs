//! The encrypted backend: executes a [`Plan`](blindtuner_compiler::plan::Plan) on
//! tfhe-rs ciphertexts.
//!
//! * [`params`] — parameter sets (128-bit, only decompositions changed from tfhe's 2_2);
//! * [`keys`] — [`ClientKey`] (secret) and [`ServerKeys`] (public), distinct types;
//! * [`ggsw`] — polynomial GGSW encryption of the client's data;
//! * [`client`] — sample/model encryption and decryption (client side);
//! * [`analysis`] — plan checks and key inference; [`exec`] — the server interpreter;
//! * [`value`] — a register's value: one LWE vector per key it is a sum over;
//! * [`refresh`] — multi-digit bootstrap of the weights on the compiler's schedule;
//! * [`average`] — tail averaging: encrypted running sums, unwrapped by the client;
//! * [`lockstep`] — the clear backend following an encrypted run cell for cell (verification);
//! * [`pack`], [`keyswitch`] — batched keyswitches (vectorised, bit-identical to tfhe); [`files`] — versioned files.

pub mod analysis;
pub mod average;
pub mod bench;
pub mod cipher;
pub mod client;
pub mod convert;
pub mod driver;
pub mod error;
pub mod exec;
pub mod fftplan;
pub mod files;
pub mod ggsw;
mod kernel;
pub mod keys;
pub mod keyswitch;
pub mod lockstep;
pub mod noise_params;
mod ops;
pub mod pack;
pub mod params;
pub(crate) mod refresh;
pub mod rng;
pub mod stats;
pub mod value;

pub use analysis::PlanInfo;
pub use cipher::{EncDataset, EncMean, EncModel, EncSample, EncTensor, LweVec};
pub use error::TfheError;
pub use exec::{LutTrace, PreparedSample, SampleRun, Server};
pub use keys::{keygen, ClientKey, Fingerprint, KeyKind, ServerKeys};
pub use params::{BskChoice, ParamSet, ParamSetId};
pub use rng::CryptoRng;
pub use stats::StatsSnapshot;
