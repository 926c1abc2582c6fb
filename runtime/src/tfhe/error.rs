//! Errors of the encrypted backend (file errors are in [`super::files`]).

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum TfheError {
    /// The plan uses something this backend cannot execute (yet).
    Unsupported { what: String, why: String },
    /// The plan is inconsistent for this backend (shapes, keys, layouts).
    InvalidPlan(String),
    /// A ciphertext (sample, model) does not match the plan or the parameters.
    BadCiphertext(String),
}

impl fmt::Display for TfheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TfheError::Unsupported { what, why } => {
                write!(f, "the tfhe backend cannot execute {what}: {why}")
            }
            TfheError::InvalidPlan(m) => write!(f, "plan not executable on ciphertexts: {m}"),
            TfheError::BadCiphertext(m) => write!(f, "ciphertext does not match the plan: {m}"),
        }
    }
}

impl std::error::Error for TfheError {}

pub(crate) fn invalid(m: impl Into<String>) -> TfheError {
    TfheError::InvalidPlan(m.into())
}

pub(crate) fn bad_ct(m: impl Into<String>) -> TfheError {
    TfheError::BadCiphertext(m.into())
}
