//! `envshield`, the command-line client of EnvShield Auth.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    envshield::run(envshield::cli::Cli::parse())
}
