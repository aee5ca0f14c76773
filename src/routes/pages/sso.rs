//! Sign-in through an upstream OpenID Connect provider:
//! `GET /auth/oidc/{id}/start` sends the browser to the provider,
//! `GET /auth/oidc/{id}/callback` takes it back and starts a session.
//! The callback's query (`code`, `state`) is never logged: request spans
//! record the path only (see `telemetry`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::session::TypedSession;
use crate::config::OidcProvider;
use crate::error::AppError;
use crate::routes::extract::{ClientIp, UserAgent};
use crate::routes::html::encode_component;
use crate::routes::pages::auth::{safe_redirect, start_session};
use crate::routes::pages::{see_other, PageError};
use crate::service::sso::{self, oidc::MAX_REDIRECT_LEN, Pending, Refused};
use crate::service::AppState;

/// The start link of a provider's button, carrying the sign-in page's
/// `redirect` (already checked to be a same-site path).
pub fn start_href(id: &str, redirect: Option<&str>) -> String {
    match redirect {
        Some(r) => format!("/auth/oidc/{id}/start?redirect={}", encode_component(r)),
        None => format!("/auth/oidc/{id}/start"),
    }
}

fn provider<'a>(state: &'a AppState, id: &str) -> Result<&'a OidcProvider, PageError> {
    state
        .config
        .oidc_provider(id)
        .ok_or_else(|| PageError(AppError::NotFound("This sign-in provider".to_owned())))
}

/// Query of the start link.
#[derive(Debug, Deserialize)]
pub struct StartQuery {
    redirect: Option<String>,
}

/// `GET /auth/oidc/{id}/start`: a 303 to the provider's authorization
/// page; the `state`, `nonce` and PKCE verifier stay in the encrypted
/// session cookie until the callback.
pub async fn start_sign_in(
    ip: ClientIp,
    state: web::Data<AppState>,
    session: TypedSession,
    path: web::Path<String>,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, PageError> {
    let provider = provider(&state, &path)?;
    // Same rule as the password form; a longer one would not fit the cookie.
    let redirect = safe_redirect(query.redirect.as_deref()).filter(|r| r.len() <= MAX_REDIRECT_LEN);
    let (url, pending) = match state.oidc.begin(provider, redirect).await {
        Ok(begun) => begun,
        Err(refused) => {
            sso::record_refused(&state, &provider.id, refused.reason, ip.0).await?;
            return Err(PageError(refused.error));
        }
    };
    session.set_oidc_pending(&pending)?;
    Ok(see_other(url.as_str()))
}

/// Query of the callback: the authorization response (RFC 6749 §4.1.2,
/// RFC 9207's `iss`).
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// `GET /auth/oidc/{id}/callback`: checks the answer against the pending
/// sign-in (taken out of the cookie first, so a replay finds none),
/// redeems the code, verifies the ID token, finds or links the account and
/// signs it in with a fresh session, then goes on to the saved `redirect`.
pub async fn finish_sign_in(
    ip: ClientIp,
    ua: UserAgent,
    state: web::Data<AppState>,
    session: TypedSession,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, PageError> {
    let provider = provider(&state, &path)?;
    let pending: Option<Pending> = session.take_oidc_pending();
    let checked = match check_callback(provider, pending, query.into_inner()) {
        Ok((pending, code)) => state
            .oidc
            .finish(provider, pending.clone(), code)
            .await
            .map(|id| (pending, id)),
        Err(refused) => Err(refused),
    };
    let refused = match checked {
        Ok((pending, identity)) => match sso::sign_in(&state, provider, identity, ip.0).await? {
            Ok(user) => {
                start_session(&state, &session, user.id, ip, ua).await?;
                return Ok(see_other(pending.redirect.as_deref().unwrap_or("/")));
            }
            Err(refused) => refused,
        },
        Err(refused) => refused,
    };
    sso::record_refused(&state, &provider.id, refused.reason, ip.0).await?;
    Err(PageError(refused.error))
}

/// The pending sign-in and the code, when the callback answers it.
fn check_callback(
    provider: &OidcProvider,
    pending: Option<Pending>,
    query: CallbackQuery,
) -> Result<(Pending, String), Refused> {
    let start_again = |reason| {
        Refused::bad_request(
            reason,
            "This sign-in link has expired, was already used, or was not started in this browser. Start again from the sign-in page.",
        )
    };
    let Some(pending) = pending else {
        return Err(start_again("no_pending_sign_in"));
    };
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| pending.state_matches(s));
    if pending.provider != provider.id || !state_ok {
        return Err(start_again("state_mismatch"));
    }
    if pending.expired(chrono::Utc::now()) {
        return Err(start_again("expired"));
    }
    if let Some(error) = query.error {
        // The provider's error code, shown only when it is a plain code.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(Refused::forbidden(
            "provider_error",
            format!(
                "{} did not sign you in ({code}). Start again from the sign-in page.",
                provider.name
            ),
        ));
    }
    // RFC 9207: an answer naming another issuer is a mix-up.
    if query
        .iss
        .as_deref()
        .is_some_and(|iss| iss != provider.issuer)
    {
        return Err(start_again("wrong_issuer"));
    }
    match query.code.filter(|c| !c.is_empty()) {
        Some(code) => Ok((pending, code)),
        None => Err(start_again("missing_code")),
    }
}
