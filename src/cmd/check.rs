//! `blindtuner check FILE`: diagnostics only.

use super::load_spec;
use crate::cli::SpecArgs;
use crate::error::CliError;
use std::collections::BTreeMap;

pub fn run(args: &SpecArgs) -> Result<(), CliError> {
    let (_src, spec) = load_spec(args, &BTreeMap::new())?;
    eprintln!("{}: ok (model `{}`)", args.file.display(), spec.name);
    Ok(())
}
