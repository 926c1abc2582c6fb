//! The one error type of the CLI, rendered in one place.

use blindtuner_compiler::diag::{self, Diagnostic};

pub enum CliError {
    /// Diagnostics about a spec file (rendered with source snippets).
    Diagnostics { file: String, source: String, diags: Vec<Diagnostic> },
    /// Any other user-facing error (bad data, unreadable file, ...): exit 1.
    User(String),
}

impl CliError {
    pub fn user(msg: impl Into<String>) -> CliError {
        CliError::User(msg.into())
    }
    pub fn exit_code(&self) -> u8 {
        1
    }
    pub fn render(&self, color: bool) -> String {
        match self {
            CliError::Diagnostics { file, source, diags } => diag::render(file, source, diags, color),
            CliError::User(m) => format!("error: {m}\n"),
        }
    }
}

/// File errors already name the file and the problem.
impl From<blindtuner_runtime::tfhe::files::FileError> for CliError {
    fn from(e: blindtuner_runtime::tfhe::files::FileError) -> CliError {
        CliError::User(e.to_string())
    }
}

/// CSV errors already name the file and the line.
impl From<blindtuner_runtime::data::DataError> for CliError {
    fn from(e: blindtuner_runtime::data::DataError) -> CliError {
        CliError::User(e.to_string())
    }
}
