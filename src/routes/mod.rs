//! The one route table: every path, its guards (extractors the handlers
//! declare) and its rate limits (`limit::RateLimit`, wrapped per resource).

pub mod api;
pub mod extract;
pub mod health;
pub mod html;
pub mod limit;
pub mod metrics;
pub mod nonce;
pub mod oauth;
pub mod openapi;
pub mod pages;

use actix_web::web;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/api/v1/cli").configure(api::v1::configure))
        .configure(oauth::configure)
        .service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(web::resource(openapi::OPENAPI_PATH).route(web::get().to(openapi::openapi_json)))
        .configure(pages::configure)
        .default_service(web::to(html::not_found));
}
