//! Extractors handlers declare to say who may call them.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use chrono::Utc;

use crate::auth::session::TypedSession;
use crate::db::{self, models::users::User};
use crate::domain::PlainToken;
use crate::error::AppError;
use crate::service::tokens::{self, Authenticated, Authentication};
use crate::startup::AppState;

const REALM: &str = "envshield";

fn invalid_token(message: &str) -> AppError {
    AppError::Unauthorized {
        code: "invalid_token",
        message: message.to_owned(),
        challenge: Some(format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{message}\""
        )),
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state is not registered"))
}

/// A request carrying a live API token: `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct BearerAuth(pub Authenticated);

impl BearerAuth {
    /// 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), AppError> {
        if self.0.token.scopes.iter().any(|s| s == scope) {
            return Ok(());
        }
        Err(AppError::Forbidden {
            code: "insufficient_scope",
            message: format!(
                "This token lacks the `{scope}` scope. Sign in again with `envshield login --scopes {scope}`."
            ),
            challenge: Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
        })
    }
}

impl FromRequest for BearerAuth {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let state = state?;
            let raw = match header {
                None => {
                    return Err(AppError::Unauthorized {
                        code: "missing_token",
                        message: "Send an API token as `Authorization: Bearer <token>`. Run `envshield login` to get one.".to_owned(),
                        challenge: Some(format!("Bearer realm=\"{REALM}\"")),
                    })
                }
                Some(Err(_)) => return Err(invalid_token("The Authorization header is not valid text.")),
                Some(Ok(v)) => v,
            };
            let (scheme, value) = raw.split_once(' ').unwrap_or((raw.as_str(), ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(invalid_token(
                    "Use the Bearer scheme: `Authorization: Bearer <token>`.",
                ));
            }
            let token = PlainToken::parse(&state.config.api_token_prefix, value.trim())
                .ok_or_else(|| {
                    invalid_token("The token is malformed. Check that it was copied whole.")
                })?;
            let digest = token.digest();
            let cache = &state.notifier.tokens;
            let now = Utc::now();
            if let Some(hit) = cache.get(&digest, std::time::Instant::now()) {
                if tokens::still_fresh(&hit, now) {
                    return Ok(BearerAuth(hit));
                }
            }
            let generation = cache.generation();
            let found = db::run(&state.pool, move |conn| {
                tokens::authenticate(conn, &token, now)
            })
            .await?;
            match found {
                Authentication::Valid(a) => {
                    cache.insert(digest, generation, (*a).clone(), std::time::Instant::now());
                    Ok(BearerAuth(*a))
                }
                Authentication::Expired => Err(AppError::Unauthorized {
                    code: "token_expired",
                    message: "The token has expired. Refresh it, or run `envshield login` again.".to_owned(),
                    challenge: Some(format!(
                        "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"The token has expired.\""
                    )),
                }),
                Authentication::Invalid => Err(invalid_token(
                    "The token is invalid or revoked. Run `envshield login` to get a new one.",
                )),
            }
        })
    }
}

/// The account signed in to this browser session, if any (and not disabled).
pub async fn current_user(
    session: &TypedSession,
    state: &AppState,
) -> Result<Option<User>, AppError> {
    let Some(user_id) = session.user_id(Utc::now(), state.config.session_ttl) else {
        return Ok(None);
    };
    let user = db::run(&state.pool, move |conn| {
        Ok(crate::db::models::users::find(conn, user_id)?)
    })
    .await?;
    Ok(user.filter(|u| u.disabled_at.is_none()))
}

/// A request from a signed-in browser session; 401 otherwise.
#[derive(Debug, Clone)]
pub struct SignedInUser(pub User);

impl FromRequest for SignedInUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let session = TypedSession(req.get_session());
        Box::pin(async move {
            let state = state?;
            current_user(&session, &state)
                .await?
                .map(SignedInUser)
                .ok_or_else(|| AppError::Unauthorized {
                    code: "not_signed_in",
                    message: "Sign in at /login first.".to_owned(),
                    challenge: None,
                })
        })
    }
}

/// 403 unless a cookie-authenticated call comes from `APP_URL`'s origin
/// (`Origin`, or `Referer` when a browser omits `Origin`).
pub fn require_same_origin(req: &HttpRequest, state: &AppState) -> Result<(), AppError> {
    let origin = state.config.app_origin();
    let headers = req.headers();
    let ok = match headers.get(header::ORIGIN) {
        Some(o) => o.to_str().is_ok_and(|o| o == origin),
        None => headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|r| r.origin().ascii_serialization() == origin),
    };
    if ok {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "cross_origin_request",
            "This call must come from the EnvShield web page itself. Approve the request on its page instead.",
        ))
    }
}
