//! `DPoP-Nonce` (RFC 9449 §8): under `DPOP_NONCE`, every answer to a
//! request that carried a DPoP proof names the nonce to use next, so a
//! client refused with `use_dpop_nonce` can sign again at once.

use std::future::Future;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web;

use crate::routes::metrics::{around, Chain};
use crate::service::dpop;
use crate::service::AppState;

/// The response header that carries the nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Adds `DPoP-Nonce` to the answer of a request with a `DPoP` header.
pub fn add_nonce<S: Chain<B>, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static {
    let nonce = req
        .headers()
        .contains_key("dpop")
        .then(|| req.app_data::<web::Data<AppState>>())
        .flatten()
        .and_then(|state| dpop::current_nonce(&state.config, chrono::Utc::now()));
    around(req, srv, move |res| {
        if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            res.headers_mut().insert(DPOP_NONCE, value);
        }
    })
}
