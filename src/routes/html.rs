//! How pages answer: a rendered template, a redirect, the sign-in
//! redirect, and every error as a styled HTML page.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

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

/// What the navigation bar of `base.html` needs about the signed-in account.
#[derive(Debug, Clone)]
pub struct Nav {
    /// Signed-in email.
    pub email: String,
    /// Whether to show the Admin link.
    pub is_admin: bool,
    /// For the sign-out form.
    pub csrf_token: String,
}

/// A 303 to `/login?redirect=<back_to>`, the target percent-encoded so its
/// own query survives (`/cli/login?code=X` → `/cli/login%3Fcode%3DX`).
/// The start page is where a sign-in goes by default, so it needs no
/// `redirect`.
pub fn sign_in_first(back_to: &str) -> HttpResponse {
    if back_to == "/" {
        return see_other("/login");
    }
    see_other(&format!("/login?redirect={}", encode_component(back_to)))
}

/// A 303 to a path on this site.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request's path and query, to come back to after signing in.
pub fn path_and_query(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Option<Nav>,
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// An [`AppError`] answered as an HTML page instead of JSON.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub AppError);

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            AppError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            _ => self.0.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::SignInRequired { back_to } = &self.0 {
            return sign_in_first(back_to);
        }
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self.0, "page request failed");
        }
        let title = match status {
            StatusCode::BAD_REQUEST => "That did not work",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::CONFLICT => "Already done",
            StatusCode::GONE => "No longer available",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
            StatusCode::BAD_GATEWAY => "Sign-in provider unavailable",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let message = self.0.public_message();
        let html = ErrorPage {
            nav: None,
            status: status.as_u16(),
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
        if matches!(self.0, AppError::Unavailable(_) | AppError::Upstream(_)) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.body(html)
    }
}

/// Unknown paths: JSON under `/api`, an HTML page elsewhere.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    answer(&req, AppError::NotFound("This page".to_owned()))
}

/// `err` as JSON for the API, the OAuth endpoints and the probes, a page
/// elsewhere.
fn answer(req: &HttpRequest, err: AppError) -> HttpResponse {
    let path = req.path();
    if ["/api/", "/oauth/", "/.well-known/", "/health"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        err.error_response()
    } else {
        PageError(err).error_response()
    }
}

/// Errors actix answers itself, before any handler, with an empty or
/// plain-text body (a method the address does not take, a body over the
/// cap read as raw bytes, a body that cannot be read): said again in JSON
/// or as a page, like every other error.
pub fn framework_error<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let ours = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    let err = match res.status() {
        _ if ours => None,
        StatusCode::METHOD_NOT_ALLOWED => Some(AppError::MethodNotAllowed),
        StatusCode::PAYLOAD_TOO_LARGE => Some(AppError::PayloadTooLarge {
            limit: crate::routes::MAX_BODY_BYTES,
        }),
        StatusCode::BAD_REQUEST => Some(AppError::bad_request(
            "invalid_request",
            "The request could not be read. Check its body and headers.",
        )),
        _ => None,
    };
    let Some(err) = err else {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    };
    // The 405 names the methods the address takes (RFC 9110 §15.5.6).
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut response = answer(&req, err);
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    let res = actix_web::dev::ServiceResponse::new(req, response).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_redirect_keeps_the_query_of_the_target() {
        let r = sign_in_first("/cli/login?code=BCDF-GHJK");
        assert_eq!(
            r.headers().get(header::LOCATION).unwrap(),
            "/login?redirect=/cli/login%3Fcode%3DBCDF-GHJK"
        );
        assert_eq!(encode_component("/a b&c#d"), "/a%20b%26c%23d");
    }

    #[test]
    fn error_pages_are_styled_html_with_a_title_per_status() {
        let body = |e: AppError| {
            let r = PageError(e).error_response();
            let status = r.status();
            let ct = r.headers().get(header::CONTENT_TYPE).unwrap().to_owned();
            let retry = r.headers().get(header::RETRY_AFTER).cloned();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let bytes = rt
                .block_on(actix_web::body::to_bytes(r.into_body()))
                .unwrap();
            (
                status,
                ct,
                retry,
                String::from_utf8(bytes.to_vec()).unwrap(),
            )
        };
        let cases = [
            (
                AppError::forbidden("x", "Nope."),
                403,
                "Not allowed",
                "Nope.",
            ),
            (
                AppError::NotFound("This page".into()),
                404,
                "Page not found",
                "This page was not found.",
            ),
            (
                AppError::RateLimited {
                    retry_after_secs: 7,
                },
                429,
                "Too many attempts",
                "Try again in 7 seconds.",
            ),
            (
                AppError::internal("relation users does not exist"),
                500,
                "Something went wrong",
                "It has been logged",
            ),
        ];
        for (err, code, title, text) in cases {
            let (status, ct, retry, html) = body(err);
            assert_eq!(status.as_u16(), code);
            assert!(ct.to_str().unwrap().starts_with("text/html"));
            assert!(html.contains(&format!("<h1>{title}</h1>")), "{html}");
            assert!(html.contains(&format!("Error {code}")), "{html}");
            assert!(html.contains(text), "{html}");
            assert!(html.contains("/static/css/app.css"));
            assert!(!html.contains("relation users"), "no internals");
            assert_eq!(retry.is_some(), code == 429);
        }
    }
}
