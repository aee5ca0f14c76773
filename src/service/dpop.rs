//! DPoP (RFC 9449) on this server: a request's proof checked against the
//! URL the client addressed, and each proof accepted once across every
//! instance (`jti`, in PostgreSQL).

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::auth::dpop::{self, Expected, Invalid, Proof};
use crate::config::Config;
use crate::db::models::dpop_proofs;
use crate::db::{self, Db};
use crate::error::AppError;
use crate::service::AppState;

/// The `DPoP` headers of a request, as read by the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// None sent.
    Absent,
    /// Exactly one, as text.
    One(String),
    /// More than one, or not text: refused (RFC 9449 §4.3, check 1).
    Unusable,
}

/// The request a proof must match.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `DPoP` header.
    pub header: Header,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
}

impl Request {
    /// Whether a proof was sent at all.
    pub fn present(&self) -> bool {
        self.header != Header::Absent
    }
}

/// Checks the proof of `request` (with `access_token` for `ath` on a
/// resource request), except for replay. `None` when no proof was sent.
pub fn check(
    config: &Config,
    request: &Request,
    access_token: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Result<Proof, Invalid>> {
    let value = match &request.header {
        Header::Absent => return None,
        Header::Unusable => {
            return Some(Err(Invalid(
                "Send exactly one DPoP header, a signed JWT in plain text.",
            )))
        }
        Header::One(v) => v,
    };
    let url = format!("{}{}", config.app_base(), request.path);
    let checked = dpop::verify(
        value,
        &Expected {
            method: &request.method,
            url: &url,
            access_token,
            now,
        },
    );
    Some(checked.and_then(|proof| {
        let nonce_ok = !config.dpop_nonce
            || proof.nonce.as_deref().is_some_and(|n| {
                dpop::nonce_is_current(config.keys.code_hmac.expose_secret(), n, now)
            });
        if nonce_ok {
            Ok(proof)
        } else {
            Err(dpop::USE_NONCE)
        }
    }))
}

/// The `DPoP-Nonce` to hand out now, under `DPOP_NONCE`.
pub fn current_nonce(config: &Config, now: DateTime<Utc>) -> Option<String> {
    config
        .dpop_nonce
        .then(|| dpop::nonce(config.keys.code_hmac.expose_secret(), now))
}

/// The refusal of a proof seen before.
pub const REPLAYED: Invalid =
    Invalid("This DPoP proof was already used; make a new one (jti) for every request.");

/// Accepts `proof` once: `Err` when another request (on any instance) used
/// it. For a check inside the caller's transaction.
pub fn accept_once(conn: &mut Db<'_>, proof: &Proof) -> Result<Result<(), Invalid>, AppError> {
    let fresh = dpop_proofs::remember(conn, &proof.replay_id, proof.remember_until)?;
    Ok(if fresh { Ok(()) } else { Err(REPLAYED) })
}

/// [`accept_once`] on a connection of its own, for a resource request.
pub async fn accept_once_alone(
    state: &AppState,
    proof: &Proof,
) -> Result<Result<(), Invalid>, AppError> {
    let (id, until) = (proof.replay_id, proof.remember_until);
    let fresh = db::run(&state.pool, move |conn| {
        Ok(dpop_proofs::remember_alone(conn, &id, until)?)
    })
    .await?;
    Ok(if fresh { Ok(()) } else { Err(REPLAYED) })
}

/// Forgets proofs too old to be accepted again; returns how many.
pub async fn purge(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    db::run(&state.pool, move |conn| Ok(dpop_proofs::purge(conn, now)?)).await
}
