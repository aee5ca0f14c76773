//! `/api/v1/cli/...`: the CLI's JSON API.

pub mod device;
pub mod tokens;

use actix_web::web;

/// Routes under `/api/v1/cli`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/auth/device/start",
        web::post().to(device::start_device_session),
    )
    .route(
        "/auth/device/poll",
        web::get().to(device::poll_device_session_by_query),
    )
    .route(
        "/auth/device/poll",
        web::post().to(device::poll_device_session),
    )
    .route(
        "/auth/device/complete",
        web::post().to(device::complete_device_session),
    )
    .route(
        "/auth/device/exchange",
        web::post().to(device::exchange_device_session),
    )
    .route(
        "/auth/refresh",
        web::post().to(device::refresh_access_token),
    )
    .route(
        "/auth/device/cancel",
        web::post().to(device::cancel_device_session),
    )
    .route("/auth/logout", web::post().to(tokens::logout_api_token))
    .route("/whoami", web::get().to(tokens::whoami))
    .route("/tokens", web::get().to(tokens::list_api_tokens))
    .route("/tokens/revoke", web::post().to(tokens::revoke_api_token))
    .default_service(web::to(api_not_found));
}

async fn api_not_found() -> Result<actix_web::HttpResponse, crate::error::AppError> {
    Err(crate::error::AppError::NotFound(
        "This API route (check the method and path in docs/API.md)".to_owned(),
    ))
}
