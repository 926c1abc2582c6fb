//! PLACEHOLDER: being written.

use crate::cli::KeygenArgs;
use crate::error::CliError;

pub fn run(_args: &KeygenArgs) -> Result<(), CliError> {
    Err(CliError::user("`keygen` is not implemented yet"))
}
