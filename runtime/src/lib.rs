//! Plan execution backends.
pub mod clear;
pub mod data;
pub mod order;
pub mod rng;
pub mod simulate;
pub mod tfhe;
pub mod train;
