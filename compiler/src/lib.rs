//! The blindtuner compiler core. Pure: no tfhe, no I/O.
pub mod diag;
pub mod ir;
pub mod plan;
pub mod spec;
