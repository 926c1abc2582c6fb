//! PLACEHOLDER: being written.

use crate::cli::DecryptArgs;
use crate::error::CliError;

pub fn run(_args: &DecryptArgs) -> Result<(), CliError> {
    Err(CliError::user("`decrypt` is not implemented yet"))
}
