//! `envshield login --token` / `--with-token`: saving a token the person
//! already has, after checking it with the server.

use std::io::{self, BufRead, IsTerminal, Read};

use super::saved::{save, SavedToken, SignedIn};
use crate::api::{self, ApiClient};
use crate::commands::context::{with_server_message, Context};
use crate::error::CliError;

/// The token piped in (or typed, on a terminal), trimmed.
pub(super) fn read_token_from_stdin() -> Result<String, CliError> {
    let stdin = io::stdin();
    let mut text = String::new();
    let read = if stdin.is_terminal() {
        eprint!("Paste the token and press Enter: ");
        stdin.lock().read_line(&mut text)
    } else {
        stdin.lock().take(64 * 1024).read_to_string(&mut text)
    };
    read.map_err(|e| {
        CliError::new(
            "stdin_error",
            format!("could not read the token from standard input ({e}). Pipe the token in, e.g. `echo \"$TOKEN\" | envshield login --with-token`."),
        )
    })?;
    Ok(text.trim().to_string())
}

/// Checks `token` with the server (`whoami`) and saves it; nothing is
/// saved when the server does not take it.
pub(super) fn login_with_token(
    ctx: &Context,
    client: &ApiClient,
    token: &str,
) -> Result<SignedIn, CliError> {
    api::check_token_format(token).map_err(|reason| {
        CliError::new(
            "invalid_token_format",
            format!("that is not a valid token ({reason}). Pass the token exactly as it was shown when it was created; nothing was saved."),
        )
    })?;
    let who = client.whoami(token).map_err(|err| {
        if err.is_unauthorized() {
            let ours = format!("the server at {} refused the token", client.base_url());
            CliError::new(
                err.code(),
                format!(
                    "{}. Check the token, or run `envshield login` to sign in through the browser; nothing was saved.",
                    with_server_message(&ours, &err)
                ),
            )
        } else {
            CliError::from(err).with_hint("Nothing was saved.")
        }
    })?;
    let saved = SavedToken {
        id: who.token.id,
        name: who.token.name,
        scopes: who.token.scopes,
        expires_at: who.token.expires_at,
        refreshable: false,
        dpop_bound: false,
    };
    save(ctx, client, token, None, saved, Some(who.user))
}
