//! The noise model: variances of every value of a [`Plan`](crate::plan::Plan) under a
//! tfhe parameter set, and what they mean for its lookup tables.
//!
//! * [`params`] — [`NoiseParams`]: the numbers of a parameter set, plain data;
//! * [`formulas`] — closed-form variances of the lowered operations (tfhe's
//!   `noise_formulas`, reimplemented: the compiler does not depend on tfhe);
//! * [`tail`] — Gaussian tails: one-cell-off vs failure probabilities of a bootstrap;
//! * [`sim`] — [`OpNoise`]: the own noise of each lowered operation, shared by
//!   [`analyze`](mod@analyze) and the runtime's noise simulator;
//! * [`analyze`](mod@analyze) — propagation through a plan: [`NoiseReport`];
//! * [`choose`] — which bootstrap key (parameter set) a plan runs with: [`KeyChoice`];
//! * [`refresh`] — the weights' noise budget and the refresh schedule.
//!
//! Unit everywhere: variance as a fraction of the torus, squared (see [`formulas`]).

pub mod analyze;
pub mod choose;
pub mod formulas;
pub mod params;
pub mod refresh;
pub mod sim;
pub mod tail;

pub use analyze::{analyze, AnalyzeOptions, DataProductNoise, Growing, LutNoise, NoiseReport, RegNoise, TensorNoise};
pub use choose::{choose_key, KeyCandidate, KeyChoice};
pub use params::{Decomp, NoiseDist, NoiseParams};
pub use refresh::{budgets, schedule, Decision, TensorBudget};
pub use sim::OpNoise;
