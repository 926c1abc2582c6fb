//! PLACEHOLDER: being written.

use crate::cli::EncryptArgs;
use crate::error::CliError;

pub fn run(_args: &EncryptArgs) -> Result<(), CliError> {
    Err(CliError::user("`encrypt` is not implemented yet"))
}
