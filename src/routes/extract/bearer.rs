//! Extractors for API calls: a live token (`Authorization: Bearer`, or
//! `DPoP` with a proof) and the DPoP proof of a token request.

use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use crate::auth::dpop::{Invalid, Proof};
use crate::error::AppError;
use crate::service::dpop;
use crate::service::tokens::{self, Authenticated, Refusal};
use crate::service::AppState;

use super::{state_of, Boxed, REALM};

/// A request carrying a live API token: `Authorization: Bearer <token>`, or
/// `Authorization: DPoP <token>` with a proof of the key a bound token names.
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
            challenge: Some(if self.0.token.dpop_jkt.is_some() {
                let algs = crate::auth::dpop::ALGORITHMS.join(" ");
                format!("DPoP algs=\"{algs}\", error=\"insufficient_scope\", scope=\"{scope}\"")
            } else {
                format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\"")
            }),
        })
    }
}

fn invalid_token(message: &str) -> AppError {
    AppError::Unauthorized {
        code: "invalid_token",
        message: message.to_owned(),
        challenge: Some(format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{message}\""
        )),
    }
}

/// A refusal of a DPoP request (RFC 9449 §7.1): the `DPoP` challenge with
/// the algorithms accepted.
fn dpop_refusal(code: &'static str, message: &str) -> AppError {
    let algs = crate::auth::dpop::ALGORITHMS.join(" ");
    AppError::Unauthorized {
        code,
        message: message.to_owned(),
        challenge: Some(format!(
            "DPoP algs=\"{algs}\", error=\"{code}\", error_description=\"{message}\""
        )),
    }
}

/// The `DPoP` headers of a request and what a proof must match.
pub fn dpop_request(req: &HttpRequest) -> dpop::Request {
    let mut values = req.headers().get_all("dpop");
    let header = match (values.next(), values.next()) {
        (None, _) => dpop::Header::Absent,
        (Some(v), None) => match v.to_str() {
            Ok(text) => dpop::Header::One(text.to_owned()),
            Err(_) => dpop::Header::Unusable,
        },
        (Some(_), Some(_)) => dpop::Header::Unusable,
    };
    dpop::Request {
        header,
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
    }
}

/// The request's DPoP proof (RFC 9449) on an endpoint that issues or hands
/// out tokens, checked but for replay (which the pickup checks in its own
/// transaction): `None` when no proof was sent. A bad proof is a 400
/// `invalid_dpop_proof`.
#[derive(Debug, Clone)]
pub struct DpopProof(pub Option<Proof>);

impl DpopProof {
    /// The proof of `req`, or why it was refused.
    pub fn of(req: &HttpRequest) -> Result<Option<Proof>, Invalid> {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return Ok(None);
        };
        dpop::check(&state.config, &dpop_request(req), None, chrono::Utc::now()).transpose()
    }

    /// The key's thumbprint, when a proof was sent.
    pub fn jkt(&self) -> Option<String> {
        self.0.as_ref().map(|p| p.jkt.clone())
    }
}

impl FromRequest for DpopProof {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            Self::of(req)
                .map(DpopProof)
                .map_err(|invalid| AppError::bad_request(invalid.code(), invalid.0)),
        )
    }
}

/// The answer for each reason a Bearer token is refused.
fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Missing => AppError::Unauthorized {
            code: "missing_token",
            message: "Send an API token as `Authorization: Bearer <token>`. Run `envshield login` to get one.".to_owned(),
            challenge: Some(format!("Bearer realm=\"{REALM}\"")),
        },
        Refusal::NotBearer => invalid_token(
            "Use the Bearer scheme (`Authorization: Bearer <token>`), or DPoP for a DPoP-bound token.",
        ),
        Refusal::Malformed => {
            invalid_token("The token is malformed. Check that it was copied whole.")
        }
        Refusal::Expired => AppError::Unauthorized {
            code: "token_expired",
            message: "The token has expired. Refresh it, or run `envshield login` again.".to_owned(),
            challenge: Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"The token has expired.\""
            )),
        },
        Refusal::Invalid => invalid_token(
            "The token is invalid or revoked. Run `envshield login` to get a new one.",
        ),
        Refusal::BoundToKey => dpop_refusal(
            "invalid_token",
            "This token is bound to a DPoP key: send it as `Authorization: DPoP <token>` with a DPoP proof made by that key.",
        ),
        Refusal::NotBound => invalid_token(
            "This token is not bound to a DPoP key: send it as `Authorization: Bearer <token>`.",
        ),
        Refusal::WrongKey => dpop_refusal(
            "invalid_token",
            "The DPoP proof was made by another key than the one this token is bound to.",
        ),
        Refusal::DpopRequired => dpop_refusal(
            "invalid_token",
            "This client's tokens must be bound to a DPoP key. Run `envshield login` again to get a bound token.",
        ),
        Refusal::Proof(invalid) => dpop_refusal(invalid.code(), invalid.0),
    }
}

impl FromRequest for BearerAuth {
    type Error = AppError;
    type Future = Boxed<Self, AppError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let proof = dpop_request(req);
        Box::pin(async move {
            let header = match header {
                Some(Err(_)) => {
                    return Err(invalid_token("The Authorization header is not valid text."))
                }
                Some(Ok(v)) => Some(v),
                None => None,
            };
            let state = state?;
            tokens::authenticate_bearer(&state, header.as_deref(), &proof)
                .await?
                .map(BearerAuth)
                .map_err(refused)
        })
    }
}
