//! `envshield whoami` (alias `status`): who the token belongs to.

use chrono::Utc;
use envshield_api_types::{TokenInfo, UserInfo};
use serde::Serialize;

use super::context::Context;
use super::credentials::{TokenSource, TOKEN_ENV};
use crate::error::CliError;
use crate::output::when;
use crate::secrets::{StoreKind, StoredAt};
use crate::text::one_line;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    signed_in: bool,
    profile: &'a str,
    api_url: &'a str,
    token_source: TokenSource,
    credentials: &'a StoredAt,
    /// The token is bound to this device's DPoP key.
    dpop_bound: bool,
    user: &'a UserInfo,
    token: &'a TokenInfo,
}

/// Runs `envshield whoami`. Fails (exit 1) when not signed in or when the
/// server no longer accepts the token. An expired access token is renewed
/// first when the profile holds a refresh token.
pub fn run(ctx: &Context) -> Result<(), CliError> {
    let config = ctx.load_config()?;
    let mut creds = ctx.credentials(&config)?;
    let client = ctx.client_for(&creds)?;
    let who = ctx
        .call(&mut creds, &client, |c, token| c.whoami(token))
        .map_err(|e| ctx.call_failed(&creds, e))?;
    let stored_at = match creds.source {
        TokenSource::Env => StoredAt {
            store: StoreKind::Env,
            location: format!("{TOKEN_ENV} (environment)"),
        },
        TokenSource::Config if creds.keyring.is_some() => StoredAt::keyring(),
        TokenSource::Config => StoredAt::file(&ctx.store.path()),
    };

    if ctx.out.is_json() {
        ctx.out.json_line(&Status {
            signed_in: true,
            profile: &ctx.profile,
            api_url: &creds.api_url,
            token_source: creds.source,
            credentials: &stored_at,
            dpop_bound: creds.is_dpop_bound(),
            user: &who.user,
            token: &who.token,
        });
        return Ok(());
    }

    let now = Utc::now();
    let scopes = if who.token.scopes.is_empty() {
        "(none)".to_string()
    } else {
        one_line(&who.token.scopes.join(", "))
    };
    let lines = [
        format!(
            "Signed in as {} ({})",
            one_line(&who.user.email),
            one_line(&who.user.role)
        ),
        format!("Server:     {}", creds.api_url),
        format!("Profile:    {}", ctx.profile),
        format!("Token:      {}", one_line(&who.token.name)),
        format!("Token id:   {}", who.token.id),
        format!("Scopes:     {scopes}"),
        format!("Created:    {}", when(Some(who.token.created_at), now, "")),
        format!("Expires:    {}", when(who.token.expires_at, now, "never")),
        format!("Last used:  {}", when(who.token.last_used_at, now, "never")),
        format!("Credentials: {stored_at}"),
        format!(
            "Binding:    {}",
            if creds.is_dpop_bound() {
                "Bound to this device's key (DPoP)"
            } else {
                "None (bearer token: works wherever it is copied)"
            }
        ),
    ];
    for line in lines {
        ctx.out.result(&line);
    }
    Ok(())
}
