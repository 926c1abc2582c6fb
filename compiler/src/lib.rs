//! The blindtuner compiler core. Pure: no tfhe, no I/O.
pub mod check;
pub mod datadims;
pub mod diag;
pub mod ir;
pub mod lower;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod spec;
