//! Passkeys (WebAuthn, through webauthn-rs): registering one from the
//! settings page, signing in with one (username-less: the authenticator
//! names the account), proving it is you again to approve a CLI login
//! (step-up), renaming and removing them, and an admin removing them all.
//!
//! Every ceremony keeps its state (the challenge) in PostgreSQL, in
//! `webauthn_ceremonies`, so any instance can finish what another started;
//! the browser holds only the ceremony's id, in its encrypted session
//! cookie. The answer deletes the row first: each challenge is answered
//! once, within [`CEREMONY_TTL`].

mod manage;
mod register;
mod sign_in;
mod step_up_assertion;

pub use manage::{
    accounts_with_passkeys, count, list, purge, remove, remove_all, remove_all_in, rename,
};
pub use register::{
    finish_registration, registration_check, start_registration, RegistrationCheck, RECENT_SIGN_IN,
};
pub use sign_in::{finish_sign_in, start_sign_in};
pub use step_up_assertion::{finish_step_up, start_step_up};

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, RequestChallengeResponse, Url, Webauthn, WebauthnBuilder,
    WebauthnError, WebauthnResult,
};

use crate::config::Config;
use crate::db::models::passkeys::{self, PasskeyRow};
use crate::db::models::webauthn_ceremonies::{self, Ceremony};
use crate::db::Db;
use crate::domain::{check_name, CeremonyPurpose, NameProblem};
use crate::error::AppError;
use crate::service::AppState;

/// How long a challenge may be answered.
pub const CEREMONY_TTL: Duration = Duration::minutes(5);
/// Passkeys one account may register (each is offered on every step-up).
pub const MAX_PASSKEYS_PER_ACCOUNT: i64 = 20;
/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The relying party's name, shown by some authenticators.
const RP_NAME: &str = "EnvShield";

/// The relying party of `APP_URL`: its host is the RP id, its origin the
/// only origin accepted. `None` when the host is an IP address, which
/// WebAuthn does not allow (browsers refuse it too): passkeys are then off.
pub fn relying_party(config: &Config) -> Option<Webauthn> {
    let origin: &Url = &config.app_url;
    let Some(rp_id) = origin.domain() else {
        tracing::warn!(
            app_url = %config.app_base(),
            "passkeys are off: APP_URL names an IP address, and WebAuthn needs a host name (use http://localhost:PORT locally)"
        );
        return None;
    };
    match WebauthnBuilder::new(rp_id, origin).and_then(|b| {
        b.rp_name(RP_NAME)
            .timeout(CEREMONY_TTL.to_std().unwrap_or_default())
            .build()
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys are off: APP_URL cannot be a WebAuthn relying party");
            None
        }
    }
}

fn unavailable() -> AppError {
    AppError::conflict(
        "passkeys_unavailable",
        "Passkeys are not available on this server: its APP_URL must name a host, not an IP address.",
    )
}

/// The relying party, or why passkeys are off.
fn webauthn(state: &AppState) -> Result<Arc<Webauthn>, AppError> {
    state.webauthn.clone().ok_or_else(unavailable)
}

/// Whether this server offers passkeys at all.
pub fn available(state: &AppState) -> bool {
    state.webauthn.is_some()
}

/// A passkey's name as typed: trimmed, 1 to [`MAX_NAME_CHARS`] characters,
/// no control or invisible formatting characters.
pub fn parse_name(raw: &str) -> Result<String, String> {
    match check_name(raw, MAX_NAME_CHARS) {
        Ok(name) => Ok(name.to_owned()),
        Err(NameProblem::Empty) => {
            Err("Give the passkey a name, like \"Laptop\" or \"Phone\".".to_owned())
        }
        Err(NameProblem::TooLong) => Err(format!(
            "The name can be at most {MAX_NAME_CHARS} characters."
        )),
        Err(NameProblem::Control | NameProblem::Format) => {
            Err("The name cannot contain control or invisible characters.".to_owned())
        }
    }
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::internal(e)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(value).map_err(internal)
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    serde_json::from_value(value).map_err(internal)
}

/// The answer for a ceremony that cannot be finished: none started in this
/// browser, already answered, expired, or started by another session.
fn start_again() -> AppError {
    AppError::bad_request(
        "ceremony_expired",
        "This passkey request has expired or was already used. Start again.",
    )
}

/// Takes the ceremony `id` for `purpose` and checks it is live and, for a
/// signed-in purpose, that it belongs to this account and browser session.
fn take_ceremony(
    conn: &mut Db<'_>,
    id: Uuid,
    purpose: CeremonyPurpose,
    owner: Option<(Uuid, Uuid)>,
    now: DateTime<Utc>,
) -> Result<Ceremony, AppError> {
    let ceremony = webauthn_ceremonies::take(conn, id, purpose)?.ok_or_else(start_again)?;
    let owner_ok = match owner {
        Some((user_id, session_id)) => {
            ceremony.user_id == Some(user_id) && ceremony.user_session_id == Some(session_id)
        }
        None => ceremony.user_id.is_none(),
    };
    if ceremony.expires_at <= now || !owner_ok {
        return Err(start_again());
    }
    Ok(ceremony)
}

/// A new ceremony row for `purpose`, expiring [`CEREMONY_TTL`] from `now`.
fn ceremony(purpose: CeremonyPurpose, state: serde_json::Value, now: DateTime<Utc>) -> Ceremony {
    Ceremony {
        id: Uuid::new_v4(),
        purpose,
        user_id: None,
        user_session_id: None,
        device_session_id: None,
        passkey_name: None,
        state,
        created_at: now,
        expires_at: now + CEREMONY_TTL,
        authorization_request: None,
    }
}

/// The request options as the page passes them to the browser: a modal
/// request started by a click, not conditional mediation.
fn request_options(options: &RequestChallengeResponse) -> Result<serde_json::Value, AppError> {
    let mut value = to_json(options)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("mediation");
    }
    Ok(value)
}

// ------------------------------------------------------- assertion checks

/// Why an assertion was refused (the audit log's `reason`).
pub type Refusal = &'static str;

/// Checks an assertion with `verify` against the locked passkey `row`,
/// refuses a signature counter that did not grow (a cloned
/// authenticator), and stores the updated credential and counter.
fn check_assertion(
    conn: &mut Db<'_>,
    row: &PasskeyRow,
    verify: impl FnOnce(&Passkey) -> WebauthnResult<AuthenticationResult>,
    now: DateTime<Utc>,
) -> Result<Result<(), Refusal>, AppError> {
    let mut passkey: Passkey = from_json(row.passkey.clone())?;
    let result = match verify(&passkey) {
        Ok(result) => result,
        Err(WebauthnError::CredentialPossibleCompromise) => return Ok(Err("counter_regression")),
        Err(e) => {
            tracing::info!(error = %e, "passkey assertion refused");
            return Ok(Err("assertion_invalid"));
        }
    };
    let counter = i64::from(result.counter());
    // WebAuthn §7.2 step 22: a counter that is used must grow. The stored
    // column is checked too: the ceremony's copy of the credential may be
    // older than an assertion finished meanwhile.
    if (counter > 0 || row.counter > 0) && counter <= row.counter {
        return Ok(Err("counter_regression"));
    }
    passkey.update_credential(&result);
    passkeys::record_use(conn, row.id, &to_json(&passkey)?, counter, now)?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Laptop ").unwrap(), "Laptop");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
        assert_eq!(parse_name(&"é".repeat(64)).unwrap().chars().count(), 64);
        assert!(parse_name("a\u{202e}b").is_err(), "no bidi overrides");
        assert!(parse_name("a\nb").is_err());
    }
}
