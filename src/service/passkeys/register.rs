//! Registering a passkey from the settings page. A passkey signs in and
//! passes the approval step-up on its own, so adding one asks for more than
//! the session cookie: the current password, or, for an account without
//! one its owner knows, a sign-in within [`RECENT_SIGN_IN`]
//! ([`RegistrationCheck`]).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyRegistration, RegisterPublicKeyCredential,
};

use crate::auth::password;
use crate::db;
use crate::db::models::passkeys::{self, PasskeyRow};
use crate::db::models::users::User;
use crate::db::models::{user_identities, user_sessions, webauthn_ceremonies};
use crate::domain::CeremonyPurpose;
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::{accounts, limits, AppState};

use super::*;

/// How long after signing in a browser session of an account without a
/// password may add a passkey.
pub const RECENT_SIGN_IN: Duration = Duration::minutes(10);

/// What proves, besides the session cookie, that the person adding a
/// passkey is the account's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationCheck {
    /// The account's current password, typed again.
    Password,
    /// A sign-in within [`RECENT_SIGN_IN`] by this browser session.
    RecentSignIn,
}

impl RegistrationCheck {
    /// The check for an account: its password while password sign-in is on
    /// and no single sign-on identity is linked to it; otherwise (a server
    /// without password sign-in, or an account single sign-on made or
    /// linked, whose password its owner may not know) a recent sign-in.
    pub fn for_account(password_login: bool, linked_identities: usize) -> Self {
        if password_login && linked_identities == 0 {
            Self::Password
        } else {
            Self::RecentSignIn
        }
    }
}

/// Whether a session that signed in at `signed_in_at` did so within
/// [`RECENT_SIGN_IN`] of `now` (a time slightly ahead, from an instance
/// whose clock runs fast, counts as now).
pub fn signed_in_recently(signed_in_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - signed_in_at <= RECENT_SIGN_IN
}

/// The check adding a passkey to `user_id`'s account takes.
fn check_for(
    conn: &mut Db<'_>,
    password_login: bool,
    user_id: Uuid,
) -> Result<RegistrationCheck, AppError> {
    let identities = user_identities::for_user(conn, user_id)?.len();
    Ok(RegistrationCheck::for_account(password_login, identities))
}

/// The check adding a passkey to `user_id`'s account takes (what the
/// settings page asks for).
pub async fn registration_check(
    state: &AppState,
    user_id: Uuid,
) -> Result<RegistrationCheck, AppError> {
    let password_login = state.config.password_login;
    db::run(&state.pool, move |conn| {
        check_for(conn, password_login, user_id)
    })
    .await
}

/// Checks that the person adding a passkey is the account's owner: the
/// typed `password` (counted against the account's sign-in limits like
/// `/login`, a wrong one recorded as `login_failed`), or a recent sign-in.
/// A 403 that says what to do when not.
async fn prove_owner(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    typed: Option<SecretString>,
    ip: IpAddr,
) -> Result<(), AppError> {
    let (password_login, user_id, now) = (state.config.password_login, user.id, Utc::now());
    let (check, signed_in_at) = db::run(&state.pool, move |conn| {
        let check = check_for(conn, password_login, user_id)?;
        // When this browser session signed in (sessions are new at every
        // sign-in); `None` once it is no longer live.
        let signed_in_at = user_sessions::list_live(conn, user_id, now)?
            .into_iter()
            .find(|s| s.id == session_id)
            .map(|s| s.created_at);
        Ok((check, signed_in_at))
    })
    .await?;
    match check {
        RegistrationCheck::RecentSignIn => {
            if signed_in_at.is_some_and(|at| signed_in_recently(at, now)) {
                Ok(())
            } else {
                Err(AppError::forbidden(
                    "sign_in_again",
                    format!(
                        "To add a passkey, you must have signed in within the last {} minutes. Sign in again, then add it.",
                        RECENT_SIGN_IN.num_minutes()
                    ),
                ))
            }
        }
        RegistrationCheck::Password => {
            let Some(typed) = typed.filter(|p| !p.expose_secret().is_empty()) else {
                return Err(AppError::forbidden(
                    "password_required",
                    "Type your current password to add a passkey.",
                ));
            };
            let hold = limits::check_sign_in(state, &user.email, ip).await?;
            tokio::time::sleep(hold).await;
            let hash = user.password_hash.clone();
            let right =
                accounts::bcrypt(state, move || password::verify_password(&typed, &hash)).await?;
            if right {
                return Ok(());
            }
            db::run(&state.pool, move |conn| {
                let ip = ip.to_string();
                let event = Event::new(EventKind::LoginFailed, Severity::Medium, Some(&ip))
                    .user(user_id)
                    .details(json!({
                        "reason": "wrong_password",
                        "method": "password",
                        "during": "add_passkey",
                    }));
                Ok(events::record(conn, event)?)
            })
            .await?;
            Err(AppError::forbidden(
                "wrong_password",
                "That is not your current password, so no passkey was started. Type it again.",
            ))
        }
    }
}

/// Starts registering a passkey named `name` for the signed-in `user`, once
/// the person proved it is them ([`RegistrationCheck`]; `password` is what
/// they typed, if anything): the options for `navigator.credentials.create()`
/// (a discoverable credential, user verification required; the account's
/// passkeys excluded) and the ceremony's id.
pub async fn start_registration(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    name: String,
    password: Option<SecretString>,
    ip: IpAddr,
) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    prove_owner(state, user, session_id, password, ip).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_with_a_password_it_knows_types_it() {
        assert_eq!(
            RegistrationCheck::for_account(true, 0),
            RegistrationCheck::Password
        );
    }

    #[test]
    fn an_account_without_a_known_password_needs_a_recent_sign_in() {
        // Single sign-on linked or made the account, or passwords are off.
        assert_eq!(
            RegistrationCheck::for_account(true, 1),
            RegistrationCheck::RecentSignIn
        );
        assert_eq!(
            RegistrationCheck::for_account(false, 0),
            RegistrationCheck::RecentSignIn
        );
        assert_eq!(
            RegistrationCheck::for_account(false, 2),
            RegistrationCheck::RecentSignIn
        );
    }

    #[test]
    fn recent_means_within_ten_minutes_of_signing_in() {
        let now = Utc::now();
        assert!(signed_in_recently(now, now));
        assert!(signed_in_recently(now - Duration::minutes(9), now));
        assert!(signed_in_recently(now - RECENT_SIGN_IN, now));
        assert!(!signed_in_recently(
            now - RECENT_SIGN_IN - Duration::seconds(1),
            now
        ));
        assert!(!signed_in_recently(now - Duration::hours(5), now));
        assert!(signed_in_recently(now + Duration::seconds(2), now));
    }
}
