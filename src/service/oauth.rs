//! RFC 7009 revocation and RFC 7662 introspection over every kind of token.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use envshield_api_types::IntrospectionResponse;
use serde_json::json;

use crate::config::{Config, CLI_CLIENT_ID};
use crate::db::models::revocation::Target;
use crate::db::models::{api_tokens, refresh_tokens, users};
use crate::db::{self, Db};
use crate::domain::PlainToken;
use crate::error::AppError;
use crate::realtime::Realtime;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::tokens;
use crate::state::AppState;

/// Which kind of token to try first (RFC 7009 §2.1 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// `access_token` (also long-lived API tokens).
    Access,
    /// `refresh_token`.
    Refresh,
}

impl Hint {
    /// Reads a hint; unknown values are ignored, as RFC 7009 allows.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("refresh_token") => Self::Refresh,
            _ => Self::Access,
        }
    }
}

fn order(hint: Hint) -> [Hint; 2] {
    match hint {
        Hint::Access => [Hint::Access, Hint::Refresh],
        Hint::Refresh => [Hint::Refresh, Hint::Access],
    }
}

/// RFC 7009: revokes `presented` if it is a token issued to `client_id`.
pub async fn revoke_presented(
    state: &AppState,
    client_id: String,
    presented: String,
    hint: Hint,
    client_ip: String,
) -> Result<(), AppError> {
    let config = state.config.clone();
    let realtime = state.realtime.clone();
    db::run(&state.pool, move |conn| {
        revoke(
            conn,
            &config,
            &realtime,
            &client_id,
            &presented,
            hint,
            &client_ip,
            Utc::now(),
        )
    })
    .await
}

/// Revokes `presented` if it is a token issued to `client_id`. Unknown
/// tokens, and tokens of other clients, are left alone without saying so
/// (RFC 7009 answers 200 either way, so nothing can be probed).
#[expect(clippy::too_many_arguments, reason = "one per fact of the request")]
pub fn revoke(
    conn: &mut Db<'_>,
    config: &Config,
    realtime: &Arc<Realtime>,
    client_id: &str,
    presented: &str,
    hint: Hint,
    client_ip: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    for kind in order(hint) {
        match kind {
            Hint::Access => {
                let Some(token) = PlainToken::parse(&config.api_token_prefix, presented) else {
                    continue;
                };
                let Some((row, _)) = api_tokens::find_by_digest(conn, &token.digest())? else {
                    continue;
                };
                if row.client_id.as_deref().unwrap_or(CLI_CLIENT_ID) != client_id {
                    return Ok(());
                }
                return conn.transaction(|conn| {
                    let revoked =
                        tokens::revoke_tokens(conn, realtime, Target::Tokens(&[row.id]), now)?;
                    if let Some(token) = revoked.token(row.id) {
                        let details = json!({ "token_name": token.name, "via": "oauth_revoke" });
                        tokens::record_revoked(conn, token, client_ip, details)?;
                    }
                    Ok(())
                });
            }
            Hint::Refresh => {
                let Some(token) = PlainToken::parse(&config.refresh_token_prefix, presented) else {
                    continue;
                };
                let Some(row) = refresh_tokens::find_by_digest(conn, &token.digest())? else {
                    continue;
                };
                if row.client_id != client_id {
                    return Ok(());
                }
                return conn.transaction(|conn| {
                    tokens::revoke_tokens(conn, realtime, Target::Family(row.family_id), now)?;
                    events::record(
                        conn,
                        Event::new(
                            EventKind::CliTokenRevoked,
                            Severity::Medium,
                            Some(client_ip),
                        )
                        .user(row.user_id)
                        .details(json!({ "family_id": row.family_id, "via": "oauth_revoke" })),
                    )?;
                    Ok(())
                });
            }
        }
    }
    Ok(())
}

/// RFC 7662: the claims of `presented` if it is live.
pub async fn introspect_presented(
    state: &AppState,
    presented: String,
    hint: Hint,
) -> Result<IntrospectionResponse, AppError> {
    let config = state.config.clone();
    db::run(&state.pool, move |conn| {
        introspect(conn, &config, &presented, hint, Utc::now())
    })
    .await
}

/// RFC 7662 introspection: the token's claims if it is live, else
/// `{"active": false}`.
pub fn introspect(
    conn: &mut PgConnection,
    config: &Config,
    presented: &str,
    hint: Hint,
    now: DateTime<Utc>,
) -> Result<IntrospectionResponse, AppError> {
    let inactive = IntrospectionResponse::inactive();
    for kind in order(hint) {
        match kind {
            Hint::Access => {
                let Some(token) = PlainToken::parse(&config.api_token_prefix, presented) else {
                    continue;
                };
                let Some((row, user)) = api_tokens::find_by_digest(conn, &token.digest())? else {
                    continue;
                };
                if !row.is_active(now) || user.disabled_at.is_some() {
                    return Ok(inactive);
                }
                return Ok(IntrospectionResponse {
                    active: true,
                    token_type: Some("Bearer".to_owned()),
                    scope: Some(row.scopes.join(" ")),
                    client_id: Some(row.client_id.as_deref().unwrap_or(CLI_CLIENT_ID).to_owned()),
                    username: Some(user.email),
                    sub: Some(user.id),
                    iat: Some(row.created_at.timestamp()),
                    exp: row.expires_at.map(|exp| exp.timestamp()),
                    jti: Some(row.id),
                    iss: Some(config.app_base()),
                });
            }
            Hint::Refresh => {
                let Some(token) = PlainToken::parse(&config.refresh_token_prefix, presented) else {
                    continue;
                };
                let Some(row) = refresh_tokens::find_by_digest(conn, &token.digest())? else {
                    continue;
                };
                let user = users::find(conn, row.user_id)?;
                let live = row.used_at.is_none()
                    && row.revoked_at.is_none()
                    && now < row.idle_expires_at
                    && now < row.family_expires_at
                    && user.as_ref().is_some_and(|u| u.disabled_at.is_none());
                let Some(user) = user.filter(|_| live) else {
                    return Ok(inactive);
                };
                return Ok(IntrospectionResponse {
                    active: true,
                    token_type: Some("refresh_token".to_owned()),
                    scope: Some(row.scopes.join(" ")),
                    client_id: Some(row.client_id),
                    username: Some(user.email),
                    sub: Some(user.id),
                    iat: Some(row.created_at.timestamp()),
                    exp: Some(row.idle_expires_at.min(row.family_expires_at).timestamp()),
                    jti: None,
                    iss: Some(config.app_base()),
                });
            }
        }
    }
    Ok(inactive)
}
