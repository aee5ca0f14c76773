//! Accounts: creation, sign-up, and password sign-in.

use std::net::IpAddr;

use diesel::PgConnection;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::auth::password;
use crate::db::{
    self,
    models::user_sessions::{self, Ending},
    models::users::{self, NewUser, User},
};
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// Who, if anyone, vouched for a new account's email address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailOrigin {
    /// An admin made the account, or an OpenID provider verified the
    /// address: the email is verified.
    Vouched,
    /// Typed at sign-up by whoever filled in the form: unverified, so single
    /// sign-on never links the account.
    SignUp,
}

impl EmailOrigin {
    fn verified(self) -> bool {
        self == Self::Vouched
    }
}

/// Creates an account made by an admin (`envshield-server users create`),
/// so with a verified email, with the role spelled `role` (`user` or
/// `admin`); the password is hashed here, so call off the async workers.
pub fn create_user(
    conn: &mut PgConnection,
    email: &Email,
    password: &SecretString,
    role: &str,
    bcrypt_cost: u32,
) -> Result<User, AppError> {
    let role = Role::parse(role).ok_or_else(|| {
        AppError::bad_request("invalid_role", "The role must be `user` or `admin`.")
    })?;
    let hash = hash_new_password(password, bcrypt_cost)?;
    insert_user(conn, email, &hash, role, EmailOrigin::Vouched)
}

/// Checks the password rules and hashes it (slow: run it on the blocking
/// pool without holding a database connection).
pub fn hash_new_password(password: &SecretString, bcrypt_cost: u32) -> Result<String, AppError> {
    password::validate_new_password(password)
        .map_err(|m| AppError::bad_request("invalid_password", m))?;
    password::hash_password(password, bcrypt_cost)
}

/// Inserts an account whose password is already hashed.
pub fn insert_user(
    conn: &mut PgConnection,
    email: &Email,
    hash: &str,
    role: Role,
    origin: EmailOrigin,
) -> Result<User, AppError> {
    users::insert(
        conn,
        &NewUser {
            id: Uuid::new_v4(),
            email: email.as_str(),
            password_hash: hash,
            role,
            email_verified: origin.verified(),
        },
    )
    .map_err(|e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => AppError::conflict("email_taken", "An account with this email already exists."),
        other => other.into(),
    })
}

/// Checks a password against the account found for the email (if any).
/// Unknown emails are checked against a dummy hash so both failures take the
/// same time and get the same answer. Slow by design: run it on the blocking
/// pool, without holding a database connection.
pub fn check_password(
    user: Option<User>,
    password: &SecretString,
    dummy_hash: &str,
) -> Option<User> {
    let hash = user
        .as_ref()
        .map_or(dummy_hash, |u| u.password_hash.as_str());
    let ok = password::verify_password(password, hash);
    user.filter(|u| ok && u.disabled_at.is_none())
}

/// Runs bcrypt work off the async workers, at most half the cores at once,
/// so a burst of sign-ins cannot take every core from polls and Bearer
/// checks.
pub(crate) async fn bcrypt<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let _slot = state
        .bcrypt_slots
        .acquire()
        .await
        .map_err(AppError::internal)?;
    crate::telemetry::blocking(work).await
}

/// A browser sign-in attempt: the account, or `None` for a wrong email or
/// password (the same answer, in the same time). Attempts per account are
/// limited across all addresses; every outcome is an audit event.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: SecretString,
    client_ip: IpAddr,
) -> Result<Option<User>, AppError> {
    match crate::service::limits::check_sign_in(state, email, client_ip).await {
        Err(e @ AppError::RateLimited { .. }) => {
            tracing::warn!("sign-in attempts for one account from one network over the limit");
            return Err(e);
        }
        Err(e) => return Err(e),
        Ok(hold) if !hold.is_zero() => {
            tracing::warn!("sign-in attempts for one account over its ceiling; slowing down");
            tokio::time::sleep(hold).await;
        }
        Ok(_) => {}
    }
    let lookup = email.trim().to_owned();
    let found = db::run(&state.pool, move |conn| {
        Ok(users::find_by_email(conn, &lookup)?)
    })
    .await?
    .filter(|u| crate::service::limits::same_account(email, &u.email));
    let tried = found.as_ref().map(|u| u.id);
    let dummy = state.dummy_hash.clone();
    let user = bcrypt(state, move || check_password(found, &password, &dummy)).await?;
    let signed_in = user.as_ref().map(|u| u.id);
    db::run(&state.pool, move |conn| {
        let client_ip = client_ip.to_string();
        let ip = Some(client_ip.as_str());
        let event = match signed_in {
            Some(id) => Event::new(EventKind::LoginSucceeded, Severity::Low, ip).user(id),
            // The account tried, when it exists, so its owner and admins
            // see attempts on it.
            None => Event::new(EventKind::LoginFailed, Severity::Low, ip)
                .about(tried, None)
                .details(json!({ "reason": "bad_credentials" })),
        };
        events::record(conn, event)?;
        Ok(())
    })
    .await?;
    Ok(user)
}

/// Why a sign-up was refused, for the person to fix on the form.
#[derive(Debug)]
pub enum SignUpRefused {
    /// The email, or a password rule, with the sentence to show.
    Invalid(String),
    /// An account with this email exists.
    Taken(String),
}

/// Creates a `user` account from the sign-up form, its email unverified.
pub async fn sign_up(
    state: &AppState,
    email: &str,
    password: SecretString,
    password_again: &SecretString,
) -> Result<Result<User, SignUpRefused>, AppError> {
    let email = match Email::parse(email) {
        Ok(e) => e,
        Err(message) => return Ok(Err(SignUpRefused::Invalid(message))),
    };
    // Both are the person's own input: nothing secret to time.
    if password.expose_secret() != password_again.expose_secret() {
        return Ok(Err(SignUpRefused::Invalid(
            "The two passwords do not match.".to_owned(),
        )));
    }
    let cost = state.config.bcrypt_cost;
    let hash = match bcrypt(state, move || hash_new_password(&password, cost)).await? {
        Ok(h) => h,
        Err(e @ AppError::BadRequest { .. }) => {
            return Ok(Err(SignUpRefused::Invalid(e.public_message())))
        }
        Err(e) => return Err(e),
    };
    let created = db::run(&state.pool, move |conn| {
        insert_user(conn, &email, &hash, Role::User, EmailOrigin::SignUp)
    })
    .await;
    match created {
        Ok(u) => Ok(Ok(u)),
        Err(e @ AppError::Conflict { .. }) => Ok(Err(SignUpRefused::Taken(e.public_message()))),
        Err(e) => Err(e),
    }
}

/// Why a password change was refused, to show on the form.
#[derive(Debug)]
pub struct PasswordRefused(pub String);

/// Changes a signed-in person's password: the current one must match
/// (attempts count toward the account's sign-in limit), the new one is typed
/// twice and follows the sign-up rules. Every other session ends.
pub async fn change_password(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    current: SecretString,
    new: SecretString,
    again: &SecretString,
    client_ip: IpAddr,
) -> Result<Result<(), PasswordRefused>, AppError> {
    let refuse = |m: &str| Ok(Err(PasswordRefused(m.to_owned())));
    if new.expose_secret() != again.expose_secret() {
        return refuse("The two new passwords do not match.");
    }
    if let Err(m) = password::validate_new_password(&new) {
        return refuse(&m);
    }
    let hold = crate::service::limits::check_sign_in(state, &user.email, client_ip).await?;
    tokio::time::sleep(hold).await;
    let (hash, cost) = (user.password_hash.clone(), state.config.bcrypt_cost);
    let new_hash = bcrypt(state, move || {
        if password::verify_password(&current, &hash) {
            password::hash_password(&new, cost).map(Some)
        } else {
            Ok(None)
        }
    })
    .await??;
    let Some(new_hash) = new_hash else {
        return refuse("Your current password is not right.");
    };
    let user_id = user.id;
    db::run(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let now = chrono::Utc::now();
            let changes = users::Changes {
                password_hash: Some(&new_hash),
                ..users::Changes::default()
            };
            users::update(conn, user_id, &changes)?;
            let ended = user_sessions::end(conn, user_id, Ending::AllBut(session_id), now)?;
            let ip = client_ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasswordChanged, Severity::Medium, Some(&ip))
                    .user(user_id)
                    .details(json!({ "other_sessions_ended": ended })),
            )?;
            Ok(())
        })
    })
    .await?;
    Ok(Ok(()))
}
