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

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Webauthn, WebauthnBuilder, WebauthnError, WebauthnResult,
};

use crate::config::Config;
use crate::db::models::passkeys::{self, PasskeyRow};
use crate::db::models::users::{self, User};
use crate::db::models::webauthn_ceremonies::{self, Ceremony};
use crate::db::{self, Db};
use crate::domain::{is_format_char, CeremonyPurpose, StepUpMethod};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::step_up::{self, Subject};
use crate::service::users::Actor;
use crate::state::AppState;

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
    let name = raw.trim();
    if name.is_empty() {
        return Err("Give the passkey a name, like \"Laptop\" or \"Phone\".".to_owned());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "The name can be at most {MAX_NAME_CHARS} characters."
        ));
    }
    if name.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err("The name cannot contain control or invisible characters.".to_owned());
    }
    Ok(name.to_owned())
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

// ---------------------------------------------------------------- register

/// Starts registering a passkey named `name` for the signed-in `user`: the
/// options for `navigator.credentials.create()` (a discoverable credential,
/// user verification required; the account's passkeys excluded) and the
/// ceremony's id.
pub async fn start_registration(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    name: String,
) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    let (user_id, email) = (user.id, user.email.clone());
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let existing = passkeys::for_user(conn, user_id)?;
        if existing.len() as i64 >= MAX_PASSKEYS_PER_ACCOUNT {
            return Err(AppError::conflict(
                "too_many_passkeys",
                format!(
                    "You have {MAX_PASSKEYS_PER_ACCOUNT} passkeys, the most allowed. Remove one you no longer use first."
                ),
            ));
        }
        let exclude = existing
            .into_iter()
            .map(|row| from_json::<Passkey>(row.passkey).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, registration) = webauthn
            .start_passkey_registration(user_id, &email, &email, Some(exclude))
            .map_err(internal)?;
        let mut row = ceremony(CeremonyPurpose::Register, to_json(&registration)?, now);
        row.user_id = Some(user_id);
        row.user_session_id = Some(session_id);
        row.passkey_name = Some(name);
        webauthn_ceremonies::insert(conn, &row)?;
        Ok((row.id, discoverable(&options)?))
    })
    .await
}

/// The creation options asking for a discoverable credential (a resident
/// key), so that the passkey can sign in without an email typed first.
/// webauthn-rs leaves residency to the authenticator; the server never
/// relies on it, so asking for more does not change what is verified.
fn discoverable(options: &CreationChallengeResponse) -> Result<serde_json::Value, AppError> {
    let mut value = to_json(options)?;
    let selection = &mut value["publicKey"]["authenticatorSelection"];
    if !selection.is_object() {
        *selection = json!({});
    }
    selection["residentKey"] = json!("required");
    selection["requireResidentKey"] = json!(true);
    selection["userVerification"] = json!("required");
    Ok(value)
}

/// Finishes a registration: verifies the browser's answer against the
/// ceremony this browser session started, and stores the passkey.
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    ceremony_id: Uuid,
    credential: RegisterPublicKeyCredential,
    ip: IpAddr,
) -> Result<PasskeyRow, AppError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id;
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        // Taken in a statement of its own: spent even if what follows fails.
        let ceremony = take_ceremony(
            conn,
            ceremony_id,
            CeremonyPurpose::Register,
            Some((user_id, session_id)),
            now,
        )?;
        conn.transaction(|conn| {
            let name = ceremony.passkey_name.clone().ok_or_else(start_again)?;
            let registration: PasskeyRegistration = from_json(ceremony.state)?;
            let passkey = match webauthn.finish_passkey_registration(&credential, &registration) {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(error = %e, "passkey registration refused");
                    return Err(AppError::bad_request(
                        "passkey_refused",
                        "Your browser's answer could not be verified, so no passkey was added. Try again.",
                    ));
                }
            };
            let row = PasskeyRow {
                id: Uuid::new_v4(),
                user_id,
                name,
                credential_id: passkey.cred_id().clone(),
                passkey: to_json(&passkey)?,
                counter: 0,
                created_at: now,
                last_used_at: None,
            };
            passkeys::insert(conn, &row).map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => AppError::conflict(
                    "passkey_exists",
                    "This passkey is already registered. Use it to sign in, or add another.",
                ),
                other => other.into(),
            })?;
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasskeyAdded, Severity::Medium, Some(&ip))
                    .user(user_id)
                    .details(json!({ "passkey_id": row.id, "name": row.name })),
            )?;
            Ok(row)
        })
    })
    .await
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

// ----------------------------------------------------------------- sign in

/// Starts a username-less sign-in: options for `navigator.credentials.get()`
/// with no credentials listed (the authenticator offers its passkeys for
/// this site), and the ceremony's id.
pub async fn start_sign_in(state: &AppState) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let (options, authentication) = webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let row = ceremony(CeremonyPurpose::SignIn, to_json(&authentication)?, now);
        webauthn_ceremonies::insert(conn, &row)?;
        Ok((row.id, request_options(&options)?))
    })
    .await
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

/// Finishes a passkey sign-in: the account the passkey belongs to, or why
/// it was refused. Every outcome is an audit event.
pub async fn finish_sign_in(
    state: &AppState,
    ceremony_id: Uuid,
    credential: PublicKeyCredential,
    ip: IpAddr,
) -> Result<Result<User, Refusal>, AppError> {
    let webauthn = webauthn(state)?;
    let now = Utc::now();
    let (outcome, about) = db::run(&state.pool, move |conn| {
        let ceremony = take_ceremony(conn, ceremony_id, CeremonyPurpose::SignIn, None, now)?;
        conn.transaction(|conn| {
            let authentication: DiscoverableAuthentication = from_json(ceremony.state)?;
            let Ok((user_id, credential_id)) =
                webauthn.identify_discoverable_authentication(&credential)
            else {
                return Ok((Err("no_user_handle"), None));
            };
            let Some(row) = passkeys::lock_by_credential_id(conn, credential_id)? else {
                return Ok((Err("unknown_passkey"), None));
            };
            if row.user_id != user_id {
                return Ok((Err("user_handle_mismatch"), Some(row.user_id)));
            }
            let user = users::find(conn, row.user_id)?.ok_or_else(start_again)?;
            if user.disabled_at.is_some() {
                return Ok((Err("account_disabled"), Some(user.id)));
            }
            let checked = check_assertion(
                conn,
                &row,
                |passkey| {
                    webauthn.finish_discoverable_authentication_v2(
                        &credential,
                        authentication,
                        passkey,
                    )
                },
                now,
            )?;
            if let Err(reason) = checked {
                return Ok((Err(reason), Some(user.id)));
            }
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasskeySignIn, Severity::Low, Some(&ip))
                    .user(user.id)
                    .details(json!({ "passkey_id": row.id, "name": row.name })),
            )?;
            Ok((Ok(user), None))
        })
    })
    .await?;
    if let Err(reason) = outcome {
        // Recorded apart: the transaction above kept nothing of a refusal
        // (the spent ceremony aside).
        db::run(&state.pool, move |conn| {
            let ip = ip.to_string();
            let event = Event::new(EventKind::LoginFailed, Severity::Low, Some(&ip))
                .about(about, None)
                .details(json!({ "method": "passkey", "reason": reason }));
            Ok(events::record(conn, event)?)
        })
        .await?;
    }
    Ok(outcome)
}

// ----------------------------------------------------------------- step-up

/// Starts a step-up with one of `user`'s passkeys, for approving `subject`
/// (checked open by the caller) from this browser session.
pub async fn start_step_up(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    subject: Subject,
) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id;
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let keys = passkeys::for_user(conn, user_id)?
            .into_iter()
            .map(|row| from_json::<Passkey>(row.passkey))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(AppError::conflict(
                "no_passkeys",
                "Your account has no passkey. Confirm with your password instead.",
            ));
        }
        let (options, authentication) = webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        let mut row = ceremony(CeremonyPurpose::StepUp, to_json(&authentication)?, now);
        row.user_id = Some(user_id);
        row.user_session_id = Some(session_id);
        (row.device_session_id, row.authorization_request) = subject.columns();
        webauthn_ceremonies::insert(conn, &row)?;
        Ok((row.id, request_options(&options)?))
    })
    .await
}

/// Finishes a step-up: verifies the assertion with one of the account's own
/// passkeys and returns a proof for the approval of that request, from
/// this browser session, within [`step_up::PROOF_TTL`]. A refusal is an
/// audit event (`step_up_failed`).
pub async fn finish_step_up(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    ceremony_id: Uuid,
    credential: PublicKeyCredential,
    ip: IpAddr,
) -> Result<Result<String, Refusal>, AppError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id;
    let now = Utc::now();
    let (outcome, subject) = db::run(&state.pool, move |conn| {
        let ceremony = take_ceremony(
            conn,
            ceremony_id,
            CeremonyPurpose::StepUp,
            Some((user_id, session_id)),
            now,
        )?;
        conn.transaction(|conn| {
            let subject = step_up::Subject::from_columns(
                ceremony.device_session_id,
                ceremony.authorization_request.as_deref(),
            )
            .ok_or_else(start_again)?;
            let authentication: PasskeyAuthentication = from_json(ceremony.state)?;
            let row = passkeys::lock_by_credential_id(conn, credential.get_credential_id())?;
            let Some(row) = row.filter(|r| r.user_id == user_id) else {
                return Ok((Err("not_your_passkey"), subject));
            };
            let checked = check_assertion(
                conn,
                &row,
                |_| webauthn.finish_passkey_authentication(&credential, &authentication),
                now,
            )?;
            if let Err(reason) = checked {
                return Ok((Err(reason), subject));
            }
            let proof = step_up::issue_proof(
                conn,
                user_id,
                session_id,
                subject,
                StepUpMethod::Passkey,
                now,
            )?;
            Ok((Ok(proof), subject))
        })
    })
    .await?;
    if let Err(reason) = outcome {
        step_up::record_failure(state, user_id, subject, "passkey", reason, ip).await?;
    }
    Ok(outcome)
}

// -------------------------------------------------------------- management

/// An account's passkeys, oldest first.
pub async fn list(state: &AppState, user_id: Uuid) -> Result<Vec<PasskeyRow>, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(passkeys::for_user(conn, user_id)?)
    })
    .await
}

/// How many passkeys an account has.
pub async fn count(state: &AppState, user_id: Uuid) -> Result<i64, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(passkeys::count_for_user(conn, user_id)?)
    })
    .await
}

/// Which of these accounts have at least one passkey.
pub async fn accounts_with_passkeys(
    state: &AppState,
    ids: Vec<Uuid>,
) -> Result<HashSet<Uuid>, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(passkeys::users_with_passkeys(conn, &ids)?
            .into_iter()
            .collect())
    })
    .await
}

fn not_found() -> AppError {
    AppError::NotFound("The passkey".to_owned())
}

/// Renames one of the account's passkeys (404 for any other).
pub async fn rename(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    name: String,
) -> Result<(), AppError> {
    let renamed = db::run(&state.pool, move |conn| {
        Ok(passkeys::rename(conn, id, user_id, &name)?)
    })
    .await?;
    if renamed == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// Removes one of the account's passkeys (404 for any other).
pub async fn remove(state: &AppState, user_id: Uuid, id: Uuid, ip: IpAddr) -> Result<(), AppError> {
    db::run(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let row = passkeys::delete(conn, id, user_id)?.ok_or_else(not_found)?;
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasskeyRemoved, Severity::Medium, Some(&ip))
                    .user(user_id)
                    .details(json!({
                        "by": user_id,
                        "passkey_id": row.id,
                        "name": row.name,
                    })),
            )?;
            Ok(())
        })
    })
    .await
}

/// Removes every passkey of account `target` (recovery, by an admin or an
/// operator), recorded as one event naming who did it; how many went.
pub fn remove_all_in(conn: &mut Db<'_>, actor: &Actor, target: Uuid) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        users::find(conn, target)?.ok_or_else(|| AppError::NotFound("The account".to_owned()))?;
        let removed = passkeys::delete_all_for_user(conn, target)?;
        if !removed.is_empty() {
            let names: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
            events::record(
                conn,
                Event::new(
                    EventKind::PasskeyRemoved,
                    Severity::Medium,
                    actor.ip.as_deref(),
                )
                .user(target)
                .details(json!({
                    "by": actor.by(),
                    "removed": removed.len(),
                    "names": names,
                })),
            )?;
        }
        Ok(removed.len())
    })
}

/// [`remove_all_in`] for a request.
pub async fn remove_all(state: &AppState, actor: Actor, target: Uuid) -> Result<usize, AppError> {
    db::run(&state.pool, move |conn| remove_all_in(conn, &actor, target)).await
}

/// Deletes expired ceremonies and step-up proofs.
pub async fn purge(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    db::run(&state.pool, move |conn| {
        let ceremonies = webauthn_ceremonies::delete_expired(conn, now)?;
        let proofs = crate::db::models::step_up_proofs::delete_expired(conn, now)?;
        Ok(ceremonies + proofs)
    })
    .await
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
