//! Accounts: creation and password sign-in.

use diesel::PgConnection;
use secrecy::SecretString;
use uuid::Uuid;

use crate::auth::password;
use crate::db::models::users::{self, NewUser, User};
use crate::domain::Email;
use crate::error::AppError;

/// Roles an account can have.
pub const ROLES: [&str; 2] = ["user", "admin"];

/// Creates an account; the password is hashed here, so call off the async workers.
pub fn create_user(
    conn: &mut PgConnection,
    email: &Email,
    password: &SecretString,
    role: &str,
    bcrypt_cost: u32,
) -> Result<User, AppError> {
    let hash = hash_new_password(password, bcrypt_cost)?;
    insert_user(conn, email, &hash, role)
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
    role: &str,
) -> Result<User, AppError> {
    if !ROLES.contains(&role) {
        return Err(AppError::bad_request(
            "invalid_role",
            "The role must be `user` or `admin`.",
        ));
    }
    users::insert(
        conn,
        &NewUser {
            id: Uuid::new_v4(),
            email: email.as_str(),
            password_hash: hash,
            role,
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
