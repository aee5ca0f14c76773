//! API tokens: authenticating a Bearer token, listing and revoking.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::PgConnection;
use envshield_api_types::{TokenStatus, TokenSummary};
use serde_json::json;
use uuid::Uuid;

pub use crate::db::models::api_tokens::TokenFilter;
use crate::db::models::api_tokens::{self, ApiToken};
use crate::db::models::refresh_tokens;
use crate::db::models::users::User;
use crate::domain::PlainToken;
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};

/// A request authenticated by a Bearer token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The account.
    pub user: User,
    /// The token used.
    pub token: ApiToken,
}

/// The result of checking a Bearer token.
#[derive(Debug)]
pub enum Authentication {
    /// A live token of an enabled account.
    Valid(Box<Authenticated>),
    /// A real token past its expiry (clients with a refresh token refresh).
    Expired,
    /// Unknown, revoked, or of a disabled account.
    Invalid,
}

/// Whether a cached authentication may still be served at `now`: the token
/// has not expired and its `last_used_at` needs no refresh yet.
pub fn still_fresh(auth: &Authenticated, now: DateTime<Utc>) -> bool {
    auth.token.expires_at.is_none_or(|e| e > now)
        && auth
            .token
            .last_used_at
            .is_some_and(|t| now - t < api_tokens::LAST_USED_GRANULARITY)
}

/// Looks the token up by digest (one indexed query) and refreshes
/// `last_used_at` at most once a minute. Only a failed lookup pays for a
/// second query, to tell an expired token apart.
pub fn authenticate(
    conn: &mut PgConnection,
    token: &PlainToken,
    now: DateTime<Utc>,
) -> Result<Authentication, AppError> {
    let digest = token.digest();
    let Some((token, user)) = api_tokens::find_active_by_digest(conn, &digest, now)? else {
        let expired = api_tokens::find_by_digest(conn, &digest)?.is_some_and(|(t, u)| {
            t.revoked_at.is_none()
                && u.disabled_at.is_none()
                && t.expires_at.is_some_and(|e| e <= now)
        });
        return Ok(if expired {
            Authentication::Expired
        } else {
            Authentication::Invalid
        });
    };
    let stale = token
        .last_used_at
        .is_none_or(|t| now - t >= api_tokens::LAST_USED_GRANULARITY);
    let mut token = token;
    if stale {
        // PostgreSQL keeps microseconds; answer with what is stored.
        let now = now.trunc_subsecs(6);
        api_tokens::touch_last_used(conn, token.id, now)?;
        token.last_used_at = Some(now);
    }
    Ok(Authentication::Valid(Box::new(Authenticated {
        user,
        token,
    })))
}

fn status_of(token: &ApiToken, now: DateTime<Utc>) -> TokenStatus {
    if token.revoked_at.is_some() {
        TokenStatus::Revoked
    } else if token.expires_at.is_some_and(|e| e <= now) {
        TokenStatus::Expired
    } else {
        TokenStatus::Active
    }
}

/// Tokens as the API and pages list them; `owner` limits to one account.
pub fn list(
    conn: &mut PgConnection,
    owner: Option<Uuid>,
    current: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<TokenSummary>, AppError> {
    Ok(api_tokens::list(conn, owner)?
        .into_iter()
        .map(|(t, email)| summary(t, email, current, now))
        .collect())
}

fn summary(t: ApiToken, email: String, current: Option<Uuid>, now: DateTime<Utc>) -> TokenSummary {
    TokenSummary {
        status: status_of(&t, now),
        current: Some(t.id) == current,
        id: t.id,
        user_id: t.user_id,
        user_email: email,
        name: t.name,
        hint: t.token_hint,
        scopes: t.scopes,
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    }
}

/// Every account's tokens matching `filter` (the admin list): `limit` rows
/// from `offset`, newest first.
pub fn list_filtered(
    conn: &mut PgConnection,
    filter: TokenFilter<'_>,
    now: DateTime<Utc>,
    offset: i64,
    limit: i64,
) -> Result<Vec<TokenSummary>, AppError> {
    Ok(api_tokens::list_filtered(conn, filter, now, offset, limit)?
        .into_iter()
        .map(|(t, email)| summary(t, email, None, now))
        .collect())
}

/// One token as `actor` may see it: their own, or any for admins. Someone
/// else's token is "not found", as in [`revoke`].
pub fn find_visible(
    conn: &mut PgConnection,
    actor: &User,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<TokenSummary, AppError> {
    let not_found = || AppError::NotFound("The token".to_owned());
    let (token, email) = api_tokens::find_with_email(conn, token_id)?.ok_or_else(not_found)?;
    if token.user_id != actor.id && !actor.is_admin() {
        return Err(not_found());
    }
    Ok(summary(token, email, None, now))
}

/// Revokes `token_id` on behalf of `actor` (its owner, or any admin).
/// Revoking an already revoked token succeeds; someone else's token is
/// "not found" so ids cannot be probed.
pub fn revoke(
    conn: &mut PgConnection,
    actor: &User,
    token_id: Uuid,
    client_ip: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let not_found = || AppError::NotFound("The token".to_owned());
    let token = api_tokens::find(conn, token_id)?.ok_or_else(not_found)?;
    if token.user_id != actor.id && !actor.is_admin() {
        return Err(not_found());
    }
    if let Some(revoked) = api_tokens::revoke(conn, token_id, now)? {
        // An access token ends its whole refresh family: the sign-in is over.
        if let Some(family) = revoked.family_id {
            refresh_tokens::revoke_family(conn, family, now)?;
            api_tokens::revoke_family(conn, family, now)?;
        }
        events::record(
            conn,
            Event::new(
                EventKind::CliTokenRevoked,
                Severity::Medium,
                Some(client_ip),
            )
            .user(revoked.user_id)
            .token(revoked.id)
            .details(json!({
                "token_name": revoked.name,
                "revoked_by": actor.id,
                "by_admin": revoked.user_id != actor.id,
            })),
        )?;
    }
    Ok(())
}
