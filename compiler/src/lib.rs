//! The blindtuner compiler core. Pure: no tfhe, no I/O.

/// Typed `u32` handles (entity ids, Cranelift-style): one newtype per kind of thing
/// so an input id can never index the parameter table.
macro_rules! entity {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}
pub mod check;
pub mod datadims;
pub mod diag;
pub mod ir;
pub mod lower;
pub mod noise;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod spec;
