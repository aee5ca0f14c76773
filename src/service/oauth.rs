//! RFC 7009 revocation and RFC 7662 introspection over every kind of token.

use chrono::Utc;
use diesel::PgConnection;
use envshield_api_types::oauth::TokenConfirmation;
use envshield_api_types::IntrospectionResponse;
use serde_json::json;

use crate::config::{Config, CLI_CLIENT_ID};
use crate::db::models::api_tokens::{self, ApiToken};
use crate::db::models::refresh_tokens::{self, RefreshToken};
use crate::db::models::revocation::Target;
use crate::db::models::users::{self, User};
use crate::domain::PlainToken;
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::tokens;
use crate::service::AppState;

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

/// A presented token, found by its digest.
enum Presented {
    /// An access or API token, and its owner.
    Access(ApiToken, User),
    /// A refresh token.
    Refresh(RefreshToken),
}

/// Looks `presented` up as the kind `hint` names first, then as the other.
fn find_presented(
    conn: &mut PgConnection,
    config: &Config,
    presented: &str,
    hint: Hint,
) -> Result<Option<Presented>, AppError> {
    for kind in order(hint) {
        let found = match kind {
            Hint::Access => match PlainToken::parse(&config.api_token_prefix, presented) {
                Some(token) => api_tokens::find_by_digest(conn, &token.digest())?
                    .map(|(row, user)| Presented::Access(row, user)),
                None => None,
            },
            Hint::Refresh => match PlainToken::parse(&config.refresh_token_prefix, presented) {
                Some(token) => {
                    refresh_tokens::find_by_digest(conn, &token.digest())?.map(Presented::Refresh)
                }
                None => None,
            },
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// RFC 7009: revokes `presented` if it is a token issued to `client_id`, a
/// refresh token with its whole family. Unknown tokens, and tokens of other
/// clients, are left alone without saying so (RFC 7009 answers 200 either
/// way, so nothing can be probed).
pub async fn revoke_presented(
    state: &AppState,
    client_id: String,
    presented: String,
    hint: Hint,
    client_ip: String,
) -> Result<(), AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let Some(found) = find_presented(conn, &cx.config, &presented, hint)? else {
                return Ok(());
            };
            let ip = client_ip.as_str();
            conn.transaction(|conn| match found {
                Presented::Access(row, _)
                    if row.client_id.as_deref().unwrap_or(CLI_CLIENT_ID) == client_id =>
                {
                    let target = Target::Tokens(&[row.id]);
                    let revoked = tokens::revoke_tokens(conn, &cx.realtime, target, now)?;
                    if let Some(token) = revoked.token(row.id) {
                        let details = json!({ "token_name": token.name, "via": "oauth_revoke" });
                        tokens::record_revoked(conn, token, ip, details)?;
                    }
                    Ok(())
                }
                Presented::Refresh(row) if row.client_id == client_id => {
                    let target = Target::Family(row.family_id);
                    tokens::revoke_tokens(conn, &cx.realtime, target, now)?;
                    let details = json!({ "family_id": row.family_id, "via": "oauth_revoke" });
                    let event = Event::new(EventKind::CliTokenRevoked, Severity::Medium, Some(ip));
                    events::record(conn, event.user(row.user_id).details(details))?;
                    Ok(())
                }
                // Another client's token.
                _ => Ok(()),
            })
        })
        .await
}

/// RFC 7662 introspection: the claims of `presented` if it is live, else
/// `{"active": false}`.
pub async fn introspect_presented(
    state: &AppState,
    presented: String,
    hint: Hint,
) -> Result<IntrospectionResponse, AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let config = &*cx.config;
            let inactive = IntrospectionResponse::inactive();
            Ok(match find_presented(conn, config, &presented, hint)? {
                None => inactive,
                Some(Presented::Access(row, user)) => {
                    if !row.is_active(now) || user.disabled_at.is_some() {
                        return Ok(inactive);
                    }
                    IntrospectionResponse {
                        active: true,
                        token_type: Some(
                            crate::service::grants::token_type(row.dpop_jkt.as_deref()).to_owned(),
                        ),
                        cnf: row.dpop_jkt.clone().map(|jkt| TokenConfirmation { jkt }),
                        scope: Some(row.scopes.join(" ")),
                        client_id: Some(
                            row.client_id.as_deref().unwrap_or(CLI_CLIENT_ID).to_owned(),
                        ),
                        username: Some(user.email),
                        sub: Some(user.id),
                        iat: Some(row.created_at.timestamp()),
                        exp: row.expires_at.map(|exp| exp.timestamp()),
                        jti: Some(row.id),
                        iss: Some(config.app_base()),
                    }
                }
                Some(Presented::Refresh(row)) => {
                    let user = users::find(conn, row.user_id)?;
                    let live = row.used_at.is_none()
                        && row.revoked_at.is_none()
                        && now < row.idle_expires_at
                        && now < row.family_expires_at;
                    let Some(user) = user.filter(|u| live && u.disabled_at.is_none()) else {
                        return Ok(inactive);
                    };
                    IntrospectionResponse {
                        active: true,
                        token_type: Some("refresh_token".to_owned()),
                        cnf: row.dpop_jkt.clone().map(|jkt| TokenConfirmation { jkt }),
                        scope: Some(row.scopes.join(" ")),
                        client_id: Some(row.client_id),
                        username: Some(user.email),
                        sub: Some(user.id),
                        iat: Some(row.created_at.timestamp()),
                        exp: Some(row.idle_expires_at.min(row.family_expires_at).timestamp()),
                        jti: None,
                        iss: Some(config.app_base()),
                    }
                }
            })
        })
        .await
}
