//! `envshield login`: the device flow (start, show the code, open the
//! browser, poll until approved; or, in paste mode, read the confirmation
//! code the browser shows and exchange it for the token), or saving a token
//! given with `--token` / `--with-token` after checking it with the server.

mod backoff;
mod device;
#[cfg(test)]
mod fixtures;
mod handoff;
mod loopback;
mod outcome;
mod paste;
mod saved;
mod wait;
mod with_token;

pub use backoff::{HARD_TIMEOUT, MAX_RETRIES};
pub use device::{default_token_name, CODE_PROMPT};
pub use handoff::{Handoff, OfferedKey};
pub use outcome::{Approved, WaitEnd};
pub use paste::{confirm_with_code, normalize_code, Line, PasteEvent, Rejection};
pub use wait::{wait_for_approval, Progress, WaitOptions};

use std::sync::Arc;

use envshield_api_types::dpop::DpopKey;

use super::context::Context;
use crate::cli::LoginArgs;
use crate::error::CliError;
use crate::secrets::StorePreference;
use crate::text::one_line;

/// Signs in with the browser on this machine coming back to a local
/// listener (no code to check), when that can work here: not asked for the
/// device flow (`--device`, `--no-browser`, `--paste`, `--qr`,
/// `--clipboard`), a browser can be expected (a display, no SSH), the
/// server offers the flow, and the browser opens. `None`: use the device
/// flow.
fn same_machine(
    ctx: &Context,
    client: &crate::api::ApiClient,
    args: &LoginArgs,
    name: &str,
) -> Result<Option<saved::SignedIn>, CliError> {
    let device_asked = args.device || args.no_browser || args.paste || args.qr || args.clipboard;
    if device_asked || !crate::browser::can_open_here() {
        return Ok(None);
    }
    let scopes = device::scopes(args);
    let prepared = match loopback::prepare(client, name, scopes.as_deref()) {
        Ok(p) => p,
        Err(loopback::Unavailable(why)) => {
            ctx.out.note(&format!(
                "Signing in with a code instead of a direct sign-in ({}).",
                one_line(&why)
            ));
            return Ok(None);
        }
    };
    if let Err(why) = crate::browser::open(prepared.authorize_url()) {
        ctx.out.note(&format!(
            "Could not open a browser ({}); signing in with a code instead.",
            one_line(&why)
        ));
        return Ok(None);
    }
    let interrupted = device::on_ctrl_c(ctx);
    loopback::finish_in_browser(ctx, client, prepared, true, &interrupted).map(Some)
}

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
        // A new key for every sign-in: the tokens it brings are bound to
        // it, and it is saved with them.
        let key = DpopKey::generate_p256().map_err(|e| {
            CliError::new(
                "client_error",
                format!("could not make a key for this sign-in ({e}). Report this as a bug."),
            )
        })?;
        let client = client.with_dpop(Some(Arc::new(key)));
        let name = device::token_name(args)?;
        match same_machine(ctx, &client, args, &name)? {
            Some(signed_in) => signed_in,
            None => device::login_with_browser(ctx, &client, args, name)?,
        }
    };

    saved::report(ctx, &signed_in, previous.as_ref());
    Ok(())
}
