//! PLACEHOLDER: being written.

use crate::cli::TrainArgs;
use crate::error::CliError;

pub fn run(_args: &TrainArgs) -> Result<(), CliError> {
    Err(CliError::user("`train` is not implemented yet"))
}
