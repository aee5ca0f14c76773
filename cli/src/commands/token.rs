//! `envshield token`: print the token in use, for scripts.

use serde::Serialize;

use super::context::Context;
use super::credentials::{missing_from_keyring, saved_secret, TokenSource};
use crate::error::CliError;
use crate::secrets::SecretName;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Printed<'a> {
    token: &'a str,
    source: TokenSource,
    profile: &'a str,
}

/// Runs `envshield token`: `ENVSHIELD_TOKEN` when set, else the profile's
/// saved token (from the config file or the keyring), on stdout. No server
/// call. Fails (exit 1) when there is none.
pub fn run(ctx: &Context) -> Result<(), CliError> {
    let (token, source) = match &ctx.env_token {
        Some(token) => (token.clone(), TokenSource::Env),
        None => {
            // From the file or the keyring, wherever the profile keeps it.
            let config = ctx.load_config()?;
            let profile = config
                .profiles
                .get(&ctx.profile)
                .filter(|p| p.has_credentials())
                .ok_or_else(|| CliError::not_signed_in(&ctx.profile))?;
            let token = saved_secret(&ctx.profile, profile, SecretName::AccessToken)?
                .ok_or_else(|| missing_from_keyring(&ctx.profile, profile))?;
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
