//! What a handler declares it takes, checked before it runs: the client
//! address, the signed-in viewer of a page (or the admin), the signed-in
//! user of a JSON call, a Bearer token, and a form whose CSRF token matches.
//!
//! - here: the request's body as a JSON object, the client address, the
//!   user agent;
//! - [`session`]: everything a browser session proves (pages, forms, the
//!   JSON calls of signed-in pages, code entry, same-origin checks);
//! - [`bearer`]: API tokens and DPoP proofs.

mod bearer;
mod session;

pub use bearer::{dpop_request, BearerAuth, DpopProof};
pub use session::{
    admin_only, Admin, CodeEntrant, CodeEntry, CsrfForm, FormPage, MaybeViewer, PageForm,
    SameOrigin, SignedInForm, SignedInUser, Viewer,
};
pub(crate) use session::{csrf_only_form, page_form};

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::rate_limit::client_ip;
use crate::service::AppState;

const REALM: &str = "envshield";

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>>>>;

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state is not registered"))
}

/// A JSON body that is an object (`{…}`), read into `T`. `serde` would
/// also read a struct from an array (`[null, null]` is a valid empty start
/// request to it); an API body is an object, so anything else is refused.
/// Errors match the JSON configuration's: 415 for another content type,
/// 413 past the body cap, 400 `invalid_body` otherwise.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = Boxed<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        use actix_web::{mime, HttpMessage};
        let is_json = req.mime_type().ok().flatten().is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(AppError::UnsupportedMediaType {
                    expected: "JSON (application/json)",
                }
                .into());
            }
            let bytes = bytes.await?;
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{') {
                return Err(AppError::bad_request(
                    "invalid_body",
                    "The body must be a JSON object ({...}) with the fields in docs/API.md.",
                )
                .into());
            }
            serde_json::from_slice(&bytes).map(JsonObject).map_err(|e| {
                AppError::bad_request("invalid_body", format!("The JSON body is invalid: {e}."))
                    .into()
            })
        })
    }
}

/// The client's address: the peer, or what a trusted proxy forwarded.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequest for ClientIp {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state_of(req).map(|s| Self(client_ip(req, &s.config.trusted_proxies))))
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The request's `User-Agent`, when it is text.
#[derive(Debug, Clone)]
pub struct UserAgent(pub Option<String>);

impl FromRequest for UserAgent {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(user_agent(req))))
    }
}

/// The request's `User-Agent`, if it is text.
pub(crate) fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
