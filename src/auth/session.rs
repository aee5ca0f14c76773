//! The browser session, a typed wrapper over actix-session.

use actix_session::Session;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::AppError;

const USER_ID_KEY: &str = "user_id";
const SIGNED_IN_AT_KEY: &str = "signed_in_at";
const CSRF_KEY: &str = "csrf";

/// Typed access to the session cookie's contents.
pub struct TypedSession(pub Session);

/// The session cookie could not be written: the cause goes to the log,
/// the person gets what to do.
fn session_err(e: impl std::fmt::Display) -> AppError {
    tracing::warn!(error = %e, "browser session could not be written");
    AppError::bad_request(
        "invalid_session",
        "Your browser session could not be read. Sign in again.",
    )
}

impl TypedSession {
    /// Signs `user_id` in: a fresh session (new id, new CSRF token) so nothing
    /// from before sign-in carries over.
    pub fn sign_in(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<(), AppError> {
        self.0.renew();
        self.0.remove(CSRF_KEY);
        self.0.insert(USER_ID_KEY, user_id).map_err(session_err)?;
        self.0
            .insert(SIGNED_IN_AT_KEY, now.timestamp())
            .map_err(session_err)
    }

    /// The signed-in account, if the sign-in is younger than `max_age`.
    pub fn user_id(&self, now: DateTime<Utc>, max_age: std::time::Duration) -> Option<Uuid> {
        let id = self.0.get::<Uuid>(USER_ID_KEY).ok().flatten()?;
        let at = self.0.get::<i64>(SIGNED_IN_AT_KEY).ok().flatten()?;
        let age = now.timestamp().saturating_sub(at);
        let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        (0..=max).contains(&age).then_some(id)
    }

    /// Ends the session and clears the cookie.
    pub fn sign_out(&self) {
        self.0.purge();
    }

    /// The session's CSRF token, created on first use.
    pub fn csrf_token(&self) -> Result<String, AppError> {
        if let Some(t) = self.0.get::<String>(CSRF_KEY).ok().flatten() {
            return Ok(t);
        }
        let token = super::csrf::generate();
        self.0.insert(CSRF_KEY, &token).map_err(session_err)?;
        Ok(token)
    }

    /// Checks a submitted CSRF token against the session's, in constant time.
    pub fn verify_csrf(&self, submitted: &str) -> Result<(), AppError> {
        let expected = self.0.get::<String>(CSRF_KEY).ok().flatten();
        match expected {
            Some(e) if super::csrf::matches(&e, submitted) => Ok(()),
            _ => Err(AppError::forbidden(
                "csrf_failed",
                "This form has expired or did not come from this site. Reload the page and try again.",
            )),
        }
    }
}
