//! API tokens: deciding whether a Bearer token is live, listing and
//! revoking.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use diesel::PgConnection;
use envshield_api_types::{TokenStatus, TokenSummary};
use serde_json::json;
use uuid::Uuid;

use crate::auth::dpop::Invalid;
use crate::config::CLI_CLIENT_ID;
use crate::db::models::api_tokens::{self, ApiToken};
pub use crate::db::models::api_tokens::{Authenticated, TokenFilter};
use crate::db::models::revocation::{self, Revoked, Target};
use crate::db::models::users::User;
use crate::db::{self, Db};
use crate::domain::PlainToken;
use crate::error::AppError;
use crate::realtime::Realtime;
use crate::service::dpop;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// Why a Bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>` or `DPoP <token>` in readable text.
    NotBearer,
    /// Not a token of ours (wrong prefix, length or checksum).
    Malformed,
    /// A real token past its expiry (clients with a refresh token refresh).
    Expired,
    /// Unknown, revoked, or of a disabled account.
    Invalid,
    /// A DPoP-bound token sent as a plain Bearer token.
    BoundToKey,
    /// The `DPoP` scheme with a token that is not bound to a key.
    NotBound,
    /// A bound token with a proof made by another key.
    WrongKey,
    /// An unbound token of a client that must use DPoP.
    DpopRequired,
    /// The DPoP proof failed a check; the message names it.
    Proof(Invalid),
}

/// The two schemes a token may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// Whether the `Authorization` header carries a live token, and, for a
/// DPoP-bound token, whether the request proves the key (RFC 9449 §7): the
/// one place that decides. A token authenticated in the last moment (at
/// most `BEARER_CACHE_MS`) is answered from memory; revocations empty that
/// cache (see `realtime::tokens`).
pub async fn authenticate_bearer(
    state: &AppState,
    authorization: Option<&str>,
    proof: &dpop::Request,
) -> Result<Result<Authenticated, Refusal>, AppError> {
    let Some(raw) = authorization else {
        return Ok(Err(Refusal::Missing));
    };
    let (scheme, value) = raw.split_once(' ').unwrap_or((raw, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Ok(Err(Refusal::NotBearer));
    };
    let value = value.trim();
    let Some(token) = PlainToken::parse(&state.config.api_token_prefix, value) else {
        return Ok(Err(Refusal::Malformed));
    };
    let auth = match live_token(state, token).await? {
        Ok(auth) => auth,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let bound = auth.token.dpop_jkt.as_deref();
    match (scheme, bound) {
        (Scheme::Bearer, Some(_)) => Ok(Err(Refusal::BoundToKey)),
        (Scheme::Bearer, None) if client_requires_dpop(state, &auth) => {
            Ok(Err(Refusal::DpopRequired))
        }
        (Scheme::Bearer, None) => Ok(Ok(auth)),
        (Scheme::Dpop, None) => Ok(Err(Refusal::NotBound)),
        (Scheme::Dpop, Some(jkt)) => {
            let checked =
                dpop::check(&state.config, proof, Some(value), Utc::now()).unwrap_or(Err(Invalid(
                    "The DPoP scheme needs a DPoP header with a proof of the token's key.",
                )));
            let proof = match checked {
                Ok(p) => p,
                Err(invalid) => return Ok(Err(Refusal::Proof(invalid))),
            };
            if !crate::crypto::ct_eq(proof.jkt.as_bytes(), jkt.as_bytes()) {
                return Ok(Err(Refusal::WrongKey));
            }
            Ok(dpop::accept_once_alone(state, &proof)
                .await?
                .map(|()| auth)
                .map_err(Refusal::Proof))
        }
    }
}

fn client_requires_dpop(state: &AppState, auth: &Authenticated) -> bool {
    let client = auth.token.client_id.as_deref().unwrap_or(CLI_CLIENT_ID);
    state.config.client(client).is_some_and(|c| c.require_dpop)
}

/// The live token `token` names, from the cache or PostgreSQL.
async fn live_token(
    state: &AppState,
    token: PlainToken,
) -> Result<Result<Authenticated, Refusal>, AppError> {
    let digest = token.digest();
    let cache = &state.realtime.tokens;
    let now = Utc::now();
    if let Some(hit) = cache.get(&digest, std::time::Instant::now()) {
        if still_fresh(&hit, now) {
            return Ok(Ok(hit));
        }
    }
    let generation = cache.generation();
    let found = db::run(&state.pool, move |conn| authenticate(conn, &token, now)).await?;
    Ok(match found {
        Authentication::Valid(a) => {
            cache.insert(digest, generation, (*a).clone(), std::time::Instant::now());
            Ok(*a)
        }
        Authentication::Expired => Err(Refusal::Expired),
        Authentication::Invalid => Err(Refusal::Invalid),
    })
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

/// Tokens as the API and pages list them, newest first; `owner` limits to
/// one account, `current` marks the token making the request.
pub async fn list_tokens(
    state: &AppState,
    owner: Option<Uuid>,
    current: Option<Uuid>,
) -> Result<Vec<TokenSummary>, AppError> {
    let now = Utc::now();
    let rows = db::run(&state.pool, move |conn| Ok(api_tokens::list(conn, owner)?)).await?;
    Ok(rows
        .into_iter()
        .map(|(t, email)| summary(t, email, current, now))
        .collect())
}

fn summary(t: ApiToken, email: String, current: Option<Uuid>, now: DateTime<Utc>) -> TokenSummary {
    TokenSummary {
        status: status_of(&t, now),
        current: Some(t.id) == current,
        dpop_bound: t.dpop_jkt.is_some(),
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

/// Every account's tokens whose owner's email contains `email_contains`
/// and whose status is `status` (the admin list): `limit` rows from
/// `offset`, newest first.
pub async fn list_all_tokens(
    state: &AppState,
    email_contains: String,
    status: Option<TokenStatus>,
    offset: i64,
    limit: i64,
) -> Result<Vec<TokenSummary>, AppError> {
    let now = Utc::now();
    let rows = db::run(&state.pool, move |conn| {
        let filter = TokenFilter {
            email_contains: Some(email_contains.as_str()),
            status,
        };
        Ok(api_tokens::list_filtered(conn, filter, now, offset, limit)?)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, email)| summary(t, email, None, now))
        .collect())
}

/// Revokes `target` (a token and its refresh family, or a family), and
/// tells this instance's token cache once the revocation commits. Every
/// revoke path goes through here.
pub fn revoke_tokens(
    conn: &mut Db<'_>,
    realtime: &Arc<Realtime>,
    target: Target<'_>,
    now: DateTime<Utc>,
) -> Result<Revoked, AppError> {
    let revoked = revocation::revoke(conn, target, now)?;
    announce(conn, realtime, &revoked);
    Ok(revoked)
}

/// Tells this instance's token cache, once the current work commits, that
/// `revoked` ended tokens.
pub fn announce(conn: &mut Db<'_>, realtime: &Arc<Realtime>, revoked: &Revoked) {
    if !revoked.is_empty() {
        let realtime = realtime.clone();
        conn.after_commit(move || realtime.tokens_revoked());
    }
}

/// Records that `token` was revoked, with `details` of how.
pub fn record_revoked(
    conn: &mut Db<'_>,
    token: &ApiToken,
    client_ip: &str,
    details: serde_json::Value,
) -> Result<(), AppError> {
    events::record(
        conn,
        Event::new(
            EventKind::CliTokenRevoked,
            Severity::Medium,
            Some(client_ip),
        )
        .user(token.user_id)
        .token(token.id)
        .details(details),
    )?;
    Ok(())
}

/// Whose tokens an account may act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only its own (the settings pages, even for an admin).
    Own,
    /// Its own, or any account's for an admin.
    AnyIfAdmin,
}

impl Reach {
    fn allows(self, actor: &User, owner: Uuid) -> bool {
        owner == actor.id || (self == Self::AnyIfAdmin && actor.is_admin())
    }
}

/// One token as `actor` may see it. Someone else's token is "not found",
/// as in [`revoke`], so ids cannot be probed.
pub async fn find_token(
    state: &AppState,
    actor: User,
    token_id: Uuid,
    reach: Reach,
) -> Result<TokenSummary, AppError> {
    let not_found = || AppError::NotFound("The token".to_owned());
    let found = db::run(&state.pool, move |conn| {
        Ok(api_tokens::find_with_email(conn, token_id)?)
    })
    .await?;
    let (token, email) = found.ok_or_else(not_found)?;
    if !reach.allows(&actor, token.user_id) {
        return Err(not_found());
    }
    Ok(summary(token, email, None, Utc::now()))
}

/// Revokes `token_id` (and its refresh family) on behalf of `actor`, as
/// far as `reach` allows. Revoking an already revoked token succeeds (and
/// finishes a half-revoked family); someone else's token is "not found" so
/// ids cannot be probed.
pub async fn revoke_token(
    state: &AppState,
    actor: User,
    token_id: Uuid,
    reach: Reach,
    client_ip: String,
) -> Result<(), AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let (realtime, actor, client_ip) = (&cx.realtime, &actor, client_ip.as_str());
            let not_found = || AppError::NotFound("The token".to_owned());
            let token = api_tokens::find(conn, token_id)?.ok_or_else(not_found)?;
            if !reach.allows(actor, token.user_id) {
                return Err(not_found());
            }
            conn.transaction(|conn| {
                let revoked = revoke_tokens(conn, realtime, Target::Tokens(&[token_id]), now)?;
                if let Some(token) = revoked.token(token_id) {
                    let details = json!({
                        "token_name": token.name,
                        "revoked_by": actor.id,
                        "by_admin": token.user_id != actor.id,
                    });
                    record_revoked(conn, token, client_ip, details)?;
                }
                Ok(())
            })
        })
        .await
}
