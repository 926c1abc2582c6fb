//! `blindtuner`: the command-line driver. All compiler work happens in the
//! `blindtuner-compiler` crate (pure) and all execution in `blindtuner-runtime`;
//! this crate reads files, calls them, and prints.

mod cli;
mod cmd;
mod error;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let color = cmd::use_color(cli.color);
    match cmd::dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.render(color));
            ExitCode::from(e.exit_code())
        }
    }
}
