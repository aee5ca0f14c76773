//! Server-rendered pages (Askama), and the HTML error page.

pub mod auth;
pub mod home;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

/// The stylesheet, compiled in so the binary is self-contained.
const APP_CSS: &str = include_str!("../../../static/css/app.css");

/// Page routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home))
        .route("/login", web::get().to(auth::login_form))
        .route("/login", web::post().to(auth::login))
        .route("/logout", web::post().to(auth::logout))
        .route("/static/css/app.css", web::get().to(stylesheet));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(APP_CSS)
}

/// Renders a template as a full HTML response.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Result<HttpResponse, PageError> {
    let html = page
        .render()
        .map_err(|e| PageError(AppError::internal(e)))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// An [`AppError`] answered as an HTML page instead of JSON.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub AppError);

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self.0, "page request failed");
        }
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let message = self.0.public_message();
        let html = ErrorPage {
            title,
            message: &message,
        }
        .render()
        .unwrap_or_else(|_| message.clone());
        let mut response = HttpResponse::build(status);
        response
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"));
        if let AppError::RateLimited { retry_after_secs } = &self.0 {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if matches!(self.0, AppError::Unavailable(_)) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.body(html)
    }
}

/// Unknown paths: JSON under `/api`, an HTML page elsewhere.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = AppError::NotFound("This page".to_owned());
    if req.path().starts_with("/api/") {
        err.error_response()
    } else {
        PageError(err).error_response()
    }
}
