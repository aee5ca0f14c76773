//! `envshield login`: the device flow (start, show the code, open the
//! browser, poll until approved; or, in paste mode, read the confirmation
//! code the browser shows and exchange it for the token), or saving a token
//! given with `--token` / `--with-token` after checking it with the server.

mod backoff;
mod device;
#[cfg(test)]
mod fixtures;
mod outcome;
mod paste;
mod wait;
mod with_token;

pub use backoff::{HARD_TIMEOUT, MAX_RETRIES};
pub use device::{default_token_name, CODE_PROMPT};
pub use outcome::{Approved, WaitEnd};
pub use paste::{confirm_with_code, normalize_code, Line, PasteEvent, Rejection};
pub use wait::{wait_for_approval, Progress, WaitOptions};

use super::context::Context;
use crate::cli::LoginArgs;
use crate::error::CliError;
use crate::secrets::StorePreference;

/// Runs `envshield login`.
pub fn run(ctx: &Context, args: &LoginArgs) -> Result<(), CliError> {
    let chosen;
    let ctx = if args.insecure_storage {
        chosen = Context {
            credential_store: StorePreference::File,
            ..ctx.clone()
        };
        &chosen
    } else {
        ctx
    };
    // Read the config first: a broken file must stop us before a token is
    // minted that could not be saved.
    let config = ctx.load_config()?;
    let previous = config.profiles.get(&ctx.profile).cloned();
    let api_url = ctx.api_url(previous.as_ref().and_then(|p| p.api_url.as_deref()))?;
    let client = ctx.client(&api_url)?;

    let signed_in = if let Some(token) = &args.token {
        with_token::login_with_token(ctx, &client, token.trim())?
    } else if args.with_token {
        let token = with_token::read_token_from_stdin()?;
        with_token::login_with_token(ctx, &client, &token)?
    } else {
        device::login_with_browser(ctx, &client, args)?
    };

    outcome::report(ctx, &signed_in, previous.as_ref());
    Ok(())
}
