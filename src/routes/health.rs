//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db;
use crate::error::AppError;
use crate::service::AppState;

/// Liveness
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    responses((status = 200, description = "The process is up.", body = crate::routes::openapi::Health))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness
// 503 while the database does not answer.
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "ready",
    responses((status = 200, description = "The database answers.", body = crate::routes::openapi::Health))
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    db::run(&state.pool, |conn| Ok(db::ping(conn)?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "database": "ok" })))
}
