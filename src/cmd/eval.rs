//! PLACEHOLDER: being written.

use crate::cli::EvalArgs;
use crate::error::CliError;

pub fn run(_args: &EvalArgs) -> Result<(), CliError> {
    Err(CliError::user("`eval` is not implemented yet"))
}
