//! `envshield`, the command-line client of EnvShield Auth: signs a person in
//! through the browser (device flow) and manages the API token it gets.
//!
//! `main.rs` only parses the command line and calls [`run`].

pub mod api;
pub mod browser;
pub mod cli;
pub mod clipboard;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod qr;
pub mod secrets;
pub mod spinner;
pub mod text;

#[cfg(test)]
mod test_support;

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::commands::{Context, TOKEN_ENV};
use crate::config::ConfigStore;
use crate::error::CliError;
use crate::output::Output;
use crate::secrets::{StorePreference, CREDENTIAL_STORE_ENV};

/// Runs a parsed command line and reports its failure, if any, in the
/// chosen output mode. Returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let out = Output::new(cli.json);
    match dispatch(cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::from(err.exit_code)
        }
    }
}

fn dispatch(cli: Cli, out: &Output) -> Result<(), CliError> {
    // Built only for the commands that need it: printing completions must
    // work even where no config folder can be found.
    let context = || -> Result<Context, CliError> {
        Ok(Context {
            out: out.clone(),
            profile: cli.profile.clone(),
            api_url_flag: cli.api_url.clone(),
            api_url_env: non_empty_env(api::API_URL_ENV),
            env_token: non_empty_env(TOKEN_ENV).map(|t| t.trim().to_string()),
            store: ConfigStore::from_env()?,
            credential_store: StorePreference::parse(
                std::env::var(CREDENTIAL_STORE_ENV).ok().as_deref(),
            )
            .map_err(|m| CliError::new("invalid_credential_store", m))?,
        })
    };
    match &cli.command {
        Command::Completions(args) => {
            let mut command = Cli::command();
            clap_complete::generate(
                args.shell,
                &mut command,
                "envshield",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Login(args) => commands::login::run(&context()?, args),
        Command::Whoami => commands::whoami::run(&context()?),
        Command::Logout(args) => commands::logout::run(&context()?, args),
        Command::Tokens(args) => commands::tokens::run(&context()?, args.command.as_ref()),
        Command::Token => commands::token::run(&context()?),
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
