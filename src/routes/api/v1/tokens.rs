//! Bearer-token endpoints: whoami, token list and revocation, logout.

use actix_web::{web, HttpResponse};
use envshield_api_types::{
    ErrorBody, RevokeTokenRequest, TokenInfo, TokenListResponse, UserInfo, WhoamiResponse,
};
use serde::Deserialize;

use crate::error::AppError;
use crate::routes::extract::{BearerAuth, ClientIp, JsonObject};
use crate::routes::openapi::Unauthenticated;
use crate::service::tokens::{self, Reach};
use crate::service::AppState;

/// The account and token behind a request
#[utoipa::path(
    get,
    path = "/api/v1/cli/whoami",
    operation_id = "whoami",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Who the token belongs to, and the token.", body = WhoamiResponse),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn whoami(auth: BearerAuth) -> HttpResponse {
    let a = auth.0;
    HttpResponse::Ok().json(WhoamiResponse {
        user: UserInfo {
            id: a.user.id,
            email: a.user.email,
            role: a.user.role.to_string(),
        },
        token: TokenInfo {
            id: a.token.id,
            name: a.token.name,
            scopes: a.token.scopes,
            created_at: a.token.created_at,
            expires_at: a.token.expires_at,
            last_used_at: a.token.last_used_at,
        },
    })
}

/// Query of the token list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    /// Admins: every account's tokens.
    #[serde(default)]
    all: bool,
}

/// List tokens
///
/// Your tokens, newest first; admins may add `all=true` for every account's. Scope `tokens:read`.
#[utoipa::path(
    get,
    path = "/api/v1/cli/tokens",
    operation_id = "listApiTokens",
    security(("bearer" = ["tokens:read"])),
    params(ListQuery),
    responses(
        (status = 200, description = "The tokens.", body = TokenListResponse),
        (status = 400, description = "Malformed query string.", body = ErrorBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "The token lacks `tokens:read`, or `all=true` from a non-admin.", body = ErrorBody),
    )
)]
pub async fn list_api_tokens(
    auth: BearerAuth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    auth.require_scope("tokens:read")?;
    if query.all && !auth.0.user.is_admin() {
        return Err(AppError::forbidden(
            "admin_only",
            "Only admins can list every account's tokens. Leave out `all=true`.",
        ));
    }
    let owner = (!query.all).then_some(auth.0.user.id);
    let current = auth.0.token.id;
    let list = tokens::list_tokens(&state, owner, Some(current)).await?;
    Ok(HttpResponse::Ok().json(TokenListResponse { tokens: list }))
}

/// Revoke a token
///
/// Your own token, or any token for admins. Scope `tokens:write`.
#[utoipa::path(
    post,
    path = "/api/v1/cli/tokens/revoke",
    operation_id = "revokeApiToken",
    security(("bearer" = ["tokens:write"])),
    request_body = RevokeTokenRequest,
    responses(
        (status = 204, description = "Revoked (or already revoked)."),
        (status = 400, description = "Malformed body.", body = ErrorBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "The token lacks `tokens:write`.", body = ErrorBody),
        (status = 404, description = "No token of yours has this id.", body = ErrorBody),
    )
)]
pub async fn revoke_api_token(
    ip: ClientIp,
    auth: BearerAuth,
    state: web::Data<AppState>,
    body: JsonObject<RevokeTokenRequest>,
) -> Result<HttpResponse, AppError> {
    auth.require_scope("tokens:write")?;
    tokens::revoke_token(
        &state,
        auth.0.user,
        body.token_id,
        Reach::AnyIfAdmin,
        ip.to_string(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revoke the token this request is made with
#[utoipa::path(
    post,
    path = "/api/v1/cli/auth/logout",
    operation_id = "logoutApiToken",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn logout_api_token(
    ip: ClientIp,
    auth: BearerAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let BearerAuth(auth) = auth;
    tokens::revoke_token(&state, auth.user, auth.token.id, Reach::Own, ip.to_string()).await?;
    Ok(HttpResponse::NoContent().finish())
}
