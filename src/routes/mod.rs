//! The one route table.

pub mod api;
pub mod health;
pub mod oauth;
pub mod pages;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/api/v1/cli").configure(api::v1::configure))
        .configure(oauth::configure)
        .route("/health", web::get().to(health::health))
        .route("/health/ready", web::get().to(health::ready))
        .configure(pages::configure)
        .default_service(web::to(pages::not_found));
}

/// Applies a rate limit for the client; a hit answers 429 and is written to
/// the audit log at most once a minute per client and endpoint.
pub(crate) async fn enforce_limit(
    state: &crate::startup::AppState,
    limit: crate::rate_limit::Limit,
    ip: std::net::IpAddr,
) -> Result<(), crate::error::AppError> {
    let Err(retry_after_secs) = state.limiters.check(limit, ip) else {
        return Ok(());
    };
    tracing::warn!(endpoint = limit.endpoint(), %ip, "rate limit exceeded");
    if state.limiters.should_audit(limit, ip) {
        // Boxed: the write is rare, and every handler that awaits this
        // function would otherwise carry its state, held polls included.
        Box::pin(record_limited(state, limit, ip)).await;
    }
    Err(crate::error::AppError::RateLimited { retry_after_secs })
}

/// Writes the audit event of a rate-limit hit; a failure is only logged.
async fn record_limited(
    state: &crate::startup::AppState,
    limit: crate::rate_limit::Limit,
    ip: std::net::IpAddr,
) {
    use crate::service::events::{self, Event, EventKind, Severity};
    let ip_text = ip.to_string();
    let recorded = crate::db::run(&state.pool, move |conn| {
        events::record(
            conn,
            Event::new(
                EventKind::CliRateLimitExceeded,
                Severity::Medium,
                Some(&ip_text),
            )
            .details(serde_json::json!({ "endpoint": limit.endpoint() })),
        )?;
        Ok(())
    })
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = ?e, "could not record the rate-limit event");
    }
}
