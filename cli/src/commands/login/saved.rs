//! How a sign-in is kept: the token saved (system keyring or config file),
//! the profile updated, and what is reported.

use chrono::{DateTime, Utc};
use envshield_api_types::UserInfo;
use serde::Serialize;
use uuid::Uuid;

use crate::api::ApiClient;
use crate::commands::context::Context;
use crate::config::{KeyringRef, Profile};
use crate::error::{profile_flag, CliError};
use crate::output::when;
use crate::secrets::{self, Keyring, SecretName, StorePreference, StoredAt, CREDENTIAL_STORE_ENV};
use crate::text::one_line;

use super::outcome::Approved;

/// A token that was saved, and what is known about it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignedIn {
    event: &'static str,
    profile: String,
    api_url: String,
    config_path: String,
    credentials: StoredAt,
    user: Option<UserInfo>,
    token: SavedToken,
}

/// What is known about a saved token, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SavedToken {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// A refresh token was saved with it: the CLI renews it by itself.
    pub refreshable: bool,
    /// Bound to this machine's DPoP key, saved with it.
    pub dpop_bound: bool,
}

/// Saves the token, and its refresh token or the absence of one: in a new
/// entry of the system keyring when one works (see [`place_in_keyring`]),
/// else in the config file; the profile then says where, in one atomic
/// write of the file (an older sign-in's secrets never survive a new one:
/// its keyring entry is deleted). Returns what to report.
pub(super) fn save(
    ctx: &Context,
    client: &ApiClient,
    token: &str,
    refresh_token: Option<&str>,
    saved: SavedToken,
    user: Option<UserInfo>,
) -> Result<SignedIn, CliError> {
    let api_url = client.base_url();
    let key = if saved.dpop_bound {
        let key = client.dpop_key().ok_or_else(|| {
            CliError::new(
                "client_error",
                "the token is bound to a DPoP key this sign-in does not hold. Report this as a bug.",
            )
        })?;
        Some(key.to_stored())
    } else {
        None
    };
    let entry = place_in_keyring(ctx, token, refresh_token, key.as_deref())?;
    let mut replaced = None;
    let written = ctx.update_config(|config| {
        let profile = config.profiles.entry(ctx.profile.clone()).or_default();
        replaced = profile.keyring.take();
        profile.api_url = Some(api_url.to_string());
        profile.token_id = Some(saved.id);
        profile.token_name = Some(saved.name.clone());
        profile.expires_at = saved.expires_at;
        profile.token_type = key
            .as_ref()
            .map(|_| crate::config::DPOP_TOKEN_TYPE.to_string());
        profile.secrets.clear();
        profile.keyring = entry.clone();
        if entry.is_some() {
            profile.token = None;
            profile.refresh_token = None;
        } else {
            profile.token = Some(token.to_string());
            profile.refresh_token = refresh_token.map(str::to_string);
            if let Some(key) = &key {
                profile
                    .secrets
                    .insert(SecretName::DpopPrivateKey.as_str().to_string(), key.clone());
            }
        }
    });
    if let Err(err) = written {
        if let Some(entry) = &entry {
            // Best effort: nothing refers to the new entry.
            let _ = secrets::erase_keyring(entry);
        }
        return Err(err);
    }
    if let Some(old) = replaced {
        if let Err(e) = secrets::erase_keyring(&old) {
            ctx.out.warn(&format!(
                "could not delete the previous sign-in of profile '{}' from the system keyring ({e}); remove the entries of service '{}', account '{}' with your keyring tool.",
                ctx.profile, old.service, old.account
            ));
        }
    }
    let path = ctx.store.path();
    Ok(SignedIn {
        event: "signed_in",
        profile: ctx.profile.clone(),
        api_url: api_url.to_string(),
        config_path: path.display().to_string(),
        credentials: if entry.is_some() {
            StoredAt::keyring()
        } else {
            StoredAt::file(&path)
        },
        user,
        token: saved,
    })
}

/// Writes the secrets into a new keyring entry, unless the file was chosen
/// (`--insecure-storage`, `ENVSHIELD_CREDENTIAL_STORE=file`). Where the
/// keyring cannot be used (no D-Bus session, no Secret Service, locked),
/// says so in one line and returns `None` (the file), or fails when the
/// keyring was required (`ENVSHIELD_CREDENTIAL_STORE=keyring`).
fn place_in_keyring(
    ctx: &Context,
    token: &str,
    refresh_token: Option<&str>,
    dpop_key: Option<&str>,
) -> Result<Option<KeyringRef>, CliError> {
    if ctx.credential_store == StorePreference::File {
        return Ok(None);
    }
    let entry = KeyringRef::new(&ctx.profile);
    let written = Keyring::set(&entry, SecretName::AccessToken, token)
        .and_then(|()| {
            refresh_token.map_or(Ok(()), |r| {
                Keyring::set(&entry, SecretName::RefreshToken, r)
            })
        })
        .and_then(|()| {
            dpop_key.map_or(Ok(()), |k| {
                Keyring::set(&entry, SecretName::DpopPrivateKey, k)
            })
        });
    let Err(e) = written else {
        return Ok(Some(entry));
    };
    // Best effort: a half-written entry is of no use.
    let _ = secrets::erase_keyring(&entry);
    let backend = Keyring::backend();
    if ctx.credential_store == StorePreference::Keyring {
        return Err(CliError::new(
            "keyring_unavailable",
            format!("the system keyring ({backend}) cannot be used ({e}), and {CREDENTIAL_STORE_ENV}=keyring requires it. Start or unlock the keyring, or set {CREDENTIAL_STORE_ENV}=file (or pass --insecure-storage) to keep the token in the config file."),
        ));
    }
    ctx.out.warn(&format!(
        "no usable system keyring ({backend}: {e}); keeping the token in {} (readable by you only) instead. Pass --insecure-storage or set {CREDENTIAL_STORE_ENV}=file to skip the keyring.",
        ctx.store.path().display()
    ));
    Ok(None)
}

/// Saves an approved token; when it cannot be saved, revokes it, so that
/// no token nobody holds lingers on the server.
pub(super) fn finish(
    ctx: &Context,
    client: &ApiClient,
    approved: Approved,
) -> Result<SignedIn, CliError> {
    let saved = SavedToken {
        id: approved.token_id,
        name: approved.token_name,
        scopes: approved.scopes,
        expires_at: approved.expires_at,
        refreshable: approved.refresh_token.is_some(),
        dpop_bound: client.dpop_key().is_some()
            && approved
                .token_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(crate::config::DPOP_TOKEN_TYPE)),
    };
    let refresh_token = approved.refresh_token.as_deref();
    // Who approved it is asked only after saving: the sign-in stands
    // without it.
    let signed_in =
        save(ctx, client, &approved.token, refresh_token, saved, None).map_err(|err| {
            let hint = if client.logout(&approved.token).is_ok() {
                "The new token was revoked on the server; fix this and run `envshield login` again."
            } else {
                "The new token could not be revoked either; revoke it in the web UI."
            };
            err.with_hint(hint)
        })?;
    let user = client.whoami(&approved.token).ok().map(|w| w.user);
    Ok(SignedIn { user, ..signed_in })
}

/// Tells the person (or the `--json` reader) about the saved token, and
/// about the token it replaced, which still works.
pub(super) fn report(ctx: &Context, signed_in: &SignedIn, previous: Option<&Profile>) {
    if ctx.out.is_json() {
        ctx.out.json_line(signed_in);
        return;
    }
    let who = signed_in
        .user
        .as_ref()
        .map(|u| format!(" as {}", one_line(&u.email)))
        .unwrap_or_default();
    ctx.out.result(&format!(
        "Signed in{who} to {} (profile '{}').",
        signed_in.api_url, signed_in.profile
    ));
    ctx.out.result(&format!(
        "Token \"{}\" saved in the {}; it expires: {}{}.",
        one_line(&signed_in.token.name),
        signed_in.credentials,
        when(signed_in.token.expires_at, Utc::now(), "never"),
        if signed_in.token.refreshable {
            ", and is renewed automatically with the refresh token saved next to it"
        } else {
            ""
        }
    ));
    if signed_in.token.dpop_bound {
        ctx.out.result(
            "The token is bound to this device's key (DPoP): it works only together with the key saved next to it.",
        );
    }
    if let Some(old) = previous.and_then(|p| p.token_id.filter(|_| p.has_credentials())) {
        if old != signed_in.token.id {
            ctx.out.note(&format!(
                "The profile's previous token ({old}) was replaced but still works until it expires; revoke it with `envshield tokens revoke {old}{}` if you no longer need it.",
                profile_flag(&signed_in.profile)
            ));
        }
    }
}
