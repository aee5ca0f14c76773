//! `envshield token`: print the token in use, for scripts.

use serde::Serialize;

use super::context::Context;
use super::credentials::TokenSource;
use crate::error::CliError;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Printed<'a> {
    token: &'a str,
    source: TokenSource,
    profile: &'a str,
}

/// Runs `envshield token`: `ENVSHIELD_TOKEN` when set, else the profile's
/// saved token, on stdout. No server call. Fails (exit 1) when there is none.
pub fn run(ctx: &Context) -> Result<(), CliError> {
    let (token, source) = match &ctx.env_token {
        Some(token) => (token.clone(), TokenSource::Env),
        None => {
            let config = ctx.load_config()?;
            let token = config
                .profiles
                .get(&ctx.profile)
                .and_then(|p| p.token.clone())
                .ok_or_else(|| CliError::not_signed_in(&ctx.profile))?;
            (token, TokenSource::Config)
        }
    };
    if ctx.out.is_json() {
        ctx.out.json_line(&Printed {
            token: &token,
            source,
            profile: &ctx.profile,
        });
    } else {
        ctx.out.result(&token);
    }
    Ok(())
}
