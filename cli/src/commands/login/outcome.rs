//! How a sign-in ends: with a token, saved and reported, or with a
//! [`WaitEnd`] that becomes the error for the person.

use std::fmt;

use chrono::{DateTime, Utc};
use envshield_api_types::{PollDeviceResponse, UserInfo};
use serde::Serialize;
use uuid::Uuid;

use super::backoff::{Stop, HARD_TIMEOUT, MAX_RETRIES};
use super::handoff::{Handoff, Refused};
use crate::api::{ApiClient, ApiError};
use crate::commands::context::Context;
use crate::config::{KeyringRef, Profile};
use crate::error::{profile_flag, CliError};
use crate::output::when;
use crate::secrets::{self, Keyring, SecretName, StorePreference, StoredAt, CREDENTIAL_STORE_ENV};
use crate::text::{in_parentheses, one_line, redacted, REDACTED};

/// The token handed out on approval.
#[derive(Clone, PartialEq, Eq)]
pub struct Approved {
    /// The token in plaintext.
    pub token: String,
    /// Its id.
    pub token_id: Uuid,
    /// Its name.
    pub token_name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The refresh token, for short-lived access tokens.
    pub refresh_token: Option<String>,
    /// `DPoP` when the token is bound to the key that picked it up.
    pub token_type: Option<String>,
}

// Neither token ever appears in debug output.
impl fmt::Debug for Approved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approved")
            .field("token", &REDACTED)
            .field("refresh_token", &redacted(self.refresh_token.as_ref()))
            .field("token_id", &self.token_id)
            .field("token_name", &self.token_name)
            .finish_non_exhaustive()
    }
}

/// What a poll or an exchange answered, with the token of an approval
/// taken out in one place.
#[derive(Debug)]
pub(super) enum Answer {
    /// Approved: the token.
    Approved(Approved),
    /// Not decided yet; poll again after this many seconds.
    Pending(u64),
    /// Poll less often: every this many seconds.
    SlowDown(u64),
    /// Approved, but the token is released only for the confirmation code;
    /// the server's message.
    ConfirmationRequired(String),
    /// Denied; the server's message.
    Denied(String),
    /// Expired or unknown; the server's message.
    Expired(String),
    /// Someone else collected the token with this login's device code;
    /// the server revoked it.
    Collected,
    /// Approved, but the token did not come sealed to this login's key.
    Refused {
        /// Why.
        refused: Refused,
        /// The token's id, to report.
        token_id: Uuid,
    },
}

impl Answer {
    /// Reads a poll's or an exchange's answer; an approval's token is taken
    /// only sealed to this login's `handoff` key.
    pub(super) fn read(answer: PollDeviceResponse, handoff: &Handoff) -> Self {
        match answer {
            PollDeviceResponse::Approved {
                token,
                token_id,
                token_name,
                scopes,
                expires_at,
                refresh_token,
                token_type,
                sealed_token,
            } => {
                // A refresh token in the clear is as bad as a token.
                let clear = token.or(refresh_token);
                match handoff.open(clear, sealed_token.as_ref()) {
                    Ok(payload) => Self::Approved(Approved {
                        token: payload.token,
                        token_id,
                        token_name,
                        scopes,
                        expires_at,
                        refresh_token: payload.refresh_token,
                        token_type,
                    }),
                    Err(refused) => Self::Refused { refused, token_id },
                }
            }
            PollDeviceResponse::Pending { poll_interval } => Self::Pending(poll_interval),
            PollDeviceResponse::SlowDown { poll_interval, .. } => Self::SlowDown(poll_interval),
            PollDeviceResponse::ConfirmationRequired { message } => {
                Self::ConfirmationRequired(message)
            }
            PollDeviceResponse::Denied { message, .. } => Self::Denied(message),
            PollDeviceResponse::Expired { error, .. } if error == DEVICE_CODE_REUSED => {
                Self::Collected
            }
            PollDeviceResponse::Expired { message, .. } => Self::Expired(message),
        }
    }
}

/// The error code of a sealed login whose token someone already collected
/// with its device code (the server revoked the token).
pub const DEVICE_CODE_REUSED: &str = "device_code_reused";

/// Ends a login whose approval was refused (see [`Refused`]): a token that
/// came in the clear is revoked at once (best effort), since nothing will
/// use it.
pub(super) fn refuse(client: &ApiClient, refused: Refused, token_id: Uuid) -> WaitEnd {
    match refused {
        Refused::InTheClear(token) => WaitEnd::HandoffRefused {
            why: "the token came in the clear although this sign-in asked for it sealed to its key"
                .to_owned(),
            token_id,
            revoked: client.logout(&token).is_ok(),
        },
        Refused::DoesNotOpen(why) => WaitEnd::HandoffRefused {
            why: format!("the sealed token does not open: {why}"),
            token_id,
            revoked: false,
        },
    }
}

/// Why waiting ended without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// The person denied the request; the server's message.
    Denied(String),
    /// The request expired or is unknown; the server's message.
    Expired(String),
    /// Paste mode: the request ended before the token was exchanged (too
    /// many wrong codes, expired, cancelled); the server's message.
    Ended(String),
    /// The request was approved, but the token is only released for the
    /// confirmation code shown in the browser; the server's message.
    ConfirmationRequired(String),
    /// Paste mode: standard input ended without a code.
    NoCode {
        /// The server required paste mode (`--paste` was not given).
        required_by_server: bool,
    },
    /// Someone else collected the token with this login's device code, and
    /// the server revoked it.
    Collected {
        /// A poll of this CLI had failed on the way before, so the lost
        /// answer may have been its own pickup.
        after_a_lost_answer: bool,
    },
    /// The approval's token was not sealed to this login's key: refused.
    HandoffRefused {
        /// What was wrong, for the person.
        why: String,
        /// The token's id.
        token_id: Uuid,
        /// The token (sent in the clear) was revoked.
        revoked: bool,
    },
    /// [`HARD_TIMEOUT`] passed.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
    /// The server or network failed for good.
    Failed(ApiError),
}

impl From<Stop> for WaitEnd {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Interrupted => Self::Interrupted,
            Stop::TimedOut => Self::TimedOut,
        }
    }
}

impl WaitEnd {
    /// The request is of no use any more and should be cancelled on the
    /// server (it would otherwise stay pending until it expires).
    pub(super) fn abandons_the_request(&self) -> bool {
        matches!(
            self,
            Self::Interrupted | Self::TimedOut | Self::NoCode { .. }
        )
    }

    /// The error for the person; `paste` says whether the sign-in used
    /// paste mode, so the advice repeats it.
    pub(super) fn into_error(self, ctx: &Context, paste: bool) -> CliError {
        let flag = profile_flag(&ctx.profile);
        let paste_flag = if paste { " --paste" } else { "" };
        let again = format!("Run `envshield login{paste_flag}{flag}` to try again.");
        let ended = |code: &str, how: &str, said: &str| {
            CliError::new(
                code,
                format!("the sign-in request {how}{}. {again}", in_parentheses(said)),
            )
        };
        match self {
            Self::Denied(m) => ended("access_denied", "was denied in the browser", &m),
            Self::Expired(m) => ended("expired_token", "expired before it was approved", &m),
            Self::Ended(m) => ended("expired_token", "is no longer valid", &m),
            Self::ConfirmationRequired(m) => CliError::new(
                "confirmation_required",
                format!(
                    "the request was approved, but the server releases the token only for the confirmation code shown in the browser{}. Run `envshield login --paste{flag}` and type the code.",
                    in_parentheses(&m)
                ),
            ),
            Self::NoCode { required_by_server: true } => CliError::new(
                "confirmation_required",
                format!(
                    "the server requires the confirmation code shown in the browser, but standard input is not a terminal and held no code. Rerun with `envshield login --paste{flag}` in a terminal, or write the code to its standard input after approving (e.g. a pipe); the request was cancelled."
                ),
            ),
            Self::NoCode { required_by_server: false } => CliError::new(
                "confirmation_required",
                format!(
                    "standard input ended before a confirmation code was read; the request was cancelled. Run `envshield login --paste{flag}` in a terminal, or write the code shown in the browser to its standard input after approving."
                ),
            ),
            Self::Collected { after_a_lost_answer } => CliError::new(
                DEVICE_CODE_REUSED,
                format!(
                    "someone else collected this sign-in with its device code, so the server revoked the token; nothing was saved.{} Run `envshield login{paste_flag}{flag}` again and never share the code or this terminal's output; if it happens again, something on this machine or its network (a proxy, a log of API traffic) is leaking the device code.",
                    if after_a_lost_answer {
                        " (A poll had failed on the way before: it may have been this computer's own pickup whose answer was lost.)"
                    } else {
                        ""
                    }
                ),
            ),
            Self::HandoffRefused {
                why,
                token_id,
                revoked,
            } => CliError::new(
                "handoff_refused",
                format!(
                    "refused the token: {why}. The answer was not made by the server for this sign-in (a proxy or a look-alike server may have altered it); nothing was saved. {} Check --api-url and the network path, then run `envshield login{paste_flag}{flag}` again.",
                    if revoked {
                        "The token was revoked.".to_owned()
                    } else {
                        format!("Revoke token {token_id} in the web UI (/settings/tokens).")
                    }
                ),
            ),
            Self::TimedOut => CliError::new(
                "login_timeout",
                format!(
                    "gave up after waiting {} minutes for approval. {again}",
                    HARD_TIMEOUT.as_secs() / 60
                ),
            ),
            Self::Interrupted => CliError::interrupted("sign-in cancelled; nothing was saved."),
            Self::Failed(err) => {
                let transient = err.is_transient();
                let e = CliError::from(err);
                if transient {
                    CliError::new(
                        e.code,
                        format!("lost the server while waiting for approval, after {MAX_RETRIES} retries: {}", e.message),
                    )
                } else {
                    e
                }
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::context;

    #[test]
    fn paste_ends_become_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let forced = WaitEnd::NoCode {
            required_by_server: true,
        }
        .into_error(&ctx, true);
        assert_eq!(forced.code, "confirmation_required");
        assert!(
            forced.message.contains("envshield login --paste"),
            "{}",
            forced.message
        );
        assert!(
            forced.message.contains("standard input"),
            "{}",
            forced.message
        );
        let ended = WaitEnd::Ended("Too many wrong codes.".into()).into_error(&ctx, true);
        assert_eq!(ended.code, "expired_token");
        assert_eq!(
            ended.message,
            "the sign-in request is no longer valid (Too many wrong codes). Run `envshield login --paste` to try again."
        );
    }

    #[test]
    fn a_collected_or_tampered_handoff_becomes_a_security_error() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let e = WaitEnd::Collected {
            after_a_lost_answer: false,
        }
        .into_error(&ctx, false);
        assert_eq!(e.code, "device_code_reused");
        assert_eq!(e.exit_code, 1);
        assert!(
            e.message.starts_with(
                "someone else collected this sign-in with its device code, so the server revoked the token; nothing was saved. Run `envshield login` again and never share the code"
            ),
            "{}",
            e.message
        );
        let lost = WaitEnd::Collected {
            after_a_lost_answer: true,
        }
        .into_error(&ctx, false);
        assert!(lost.message.contains("own pickup"), "{}", lost.message);

        let token_id = Uuid::from_u128(7);
        let e = WaitEnd::HandoffRefused {
            why: "the sealed token does not open: x".into(),
            token_id,
            revoked: false,
        }
        .into_error(&ctx, true);
        assert_eq!(e.code, "handoff_refused");
        assert_eq!(e.exit_code, 1);
        assert!(e.message.contains(&token_id.to_string()), "{}", e.message);
        assert!(
            e.message.contains("envshield login --paste"),
            "{}",
            e.message
        );
        let e = WaitEnd::HandoffRefused {
            why: "in the clear".into(),
            token_id,
            revoked: true,
        }
        .into_error(&ctx, false);
        assert!(
            e.message.contains("The token was revoked."),
            "{}",
            e.message
        );
    }

    #[test]
    fn wait_ends_become_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let e = WaitEnd::Interrupted.into_error(&ctx, false);
        assert_eq!(e.exit_code, 130);
        let e = WaitEnd::Denied("Denied.".into()).into_error(&ctx, false);
        assert_eq!(e.code, "access_denied");
        assert_eq!(
            e.message,
            "the sign-in request was denied in the browser (Denied). Run `envshield login` to try again."
        );
        assert_eq!(
            WaitEnd::TimedOut.into_error(&ctx, false).code,
            "login_timeout"
        );
        assert_eq!(
            WaitEnd::Expired(String::new()).into_error(&ctx, false).code,
            "expired_token"
        );
    }
}
