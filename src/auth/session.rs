//! The browser session, a typed wrapper over actix-session.

use actix_session::Session;

use crate::error::AppError;

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "envshield_session";

/// The session secret: a random value whose digest names the server-side
/// session row (`user_sessions`).
const SECRET_KEY: &str = "sid";
const CSRF_KEY: &str = "csrf";
/// A sign-in started at an OpenID Connect provider and not yet come back:
/// its `state`, `nonce` and PKCE verifier. The cookie is encrypted, so the
/// browser holds it without being able to read or change it.
const OIDC_PENDING_KEY: &str = "oidc";
/// The WebAuthn ceremony (passkey registration, sign-in or step-up) this
/// browser started and has not answered yet: only its id; the challenge
/// itself is kept in PostgreSQL.
const PASSKEY_CEREMONY_KEY: &str = "webauthn";

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
    /// Signs in with a server-side session's secret: a fresh cookie (new
    /// CSRF token) so nothing from before sign-in carries over.
    pub fn sign_in(&self, secret: &str) -> Result<(), AppError> {
        self.0.renew();
        self.0.remove(CSRF_KEY);
        self.0.remove(OIDC_PENDING_KEY);
        self.0.remove(PASSKEY_CEREMONY_KEY);
        self.0.insert(SECRET_KEY, secret).map_err(session_err)
    }

    /// Remembers the sign-in just sent to a provider (one at a time: a new
    /// one replaces the last).
    pub fn set_oidc_pending<T: serde::Serialize>(&self, pending: &T) -> Result<(), AppError> {
        self.0
            .insert(OIDC_PENDING_KEY, pending)
            .map_err(session_err)
    }

    /// Takes the pending provider sign-in out of the cookie: whatever
    /// the callback then does, it cannot be used a second time.
    pub fn take_oidc_pending<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.0.remove_as::<T>(OIDC_PENDING_KEY).and_then(Result::ok)
    }

    /// Remembers the passkey ceremony this browser just started (one at a
    /// time: a new one replaces the last).
    pub fn set_passkey_ceremony(&self, id: uuid::Uuid) -> Result<(), AppError> {
        self.0.insert(PASSKEY_CEREMONY_KEY, id).map_err(session_err)
    }

    /// Takes the pending passkey ceremony's id out of the cookie.
    pub fn take_passkey_ceremony(&self) -> Option<uuid::Uuid> {
        self.0
            .remove_as::<uuid::Uuid>(PASSKEY_CEREMONY_KEY)
            .and_then(Result::ok)
    }

    /// The server-side session's secret, if this browser signed in.
    pub fn secret(&self) -> Option<String> {
        self.0.get::<String>(SECRET_KEY).ok().flatten()
    }

    /// Clears the cookie (the caller ends the server-side session).
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
