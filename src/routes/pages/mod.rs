//! Server-rendered pages (Askama), the helpers they share, and the HTML
//! error page.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod home;
pub mod tokens;

use actix_web::error::InternalError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use chrono::{DateTime, Utc};

use crate::auth::extractors::current_user;
use crate::auth::session::TypedSession;
use crate::db::models::users::User;
use crate::error::AppError;
use crate::startup::{AppState, MAX_BODY_BYTES};

/// The stylesheet, compiled in so the binary is self-contained.
const APP_CSS: &str = include_str!("../../../static/css/app.css");

/// Page routes. Each resource answers form and query errors with an HTML
/// page rather than the API's JSON.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page("/").route(web::get().to(home::home)))
        .service(
            page("/login")
                .route(web::get().to(auth::login_form))
                .route(web::post().to(auth::login)),
        )
        .service(page("/logout").route(web::post().to(auth::logout)))
        .service(
            page("/signup")
                .route(web::get().to(auth::signup_form))
                .route(web::post().to(auth::signup)),
        )
        .service(
            page("/cli/login")
                .route(web::get().to(cli::approval_form))
                .route(web::post().to(cli::decide)),
        )
        .service(
            page("/cli/device")
                .route(web::get().to(cli::code_form))
                .route(web::post().to(cli::enter_code)),
        )
        .service(page("/settings/tokens").route(web::get().to(tokens::list_tokens)))
        .service(
            page("/settings/tokens/alerts/dismiss").route(web::post().to(tokens::dismiss_alerts)),
        )
        .service(
            page("/settings/tokens/{id}/revoke")
                .route(web::get().to(tokens::revoke_form))
                .route(web::post().to(tokens::revoke)),
        )
        .service(page("/admin").route(web::get().to(admin::admin_home)))
        .service(page("/admin/tokens").route(web::get().to(admin::list_tokens)))
        .service(
            page("/admin/tokens/{id}/revoke")
                .route(web::get().to(admin::revoke_form))
                .route(web::post().to(admin::revoke)),
        )
        .service(page("/admin/events").route(web::get().to(admin::list_events)))
        .route("/static/css/app.css", web::get().to(stylesheet));
}

/// A page resource whose form and query extractors fail with HTML pages.
fn page(path: &str) -> actix_web::Resource {
    web::resource(path)
        .app_data(page_form_config())
        .app_data(page_query_config())
}

fn page_form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req| {
            let app_err = AppError::from_form_error(&err, MAX_BODY_BYTES);
            InternalError::from_response(err, PageError(app_err).error_response()).into()
        })
}

fn page_query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let app_err = AppError::bad_request(
            "invalid_query",
            "The address of this page is not valid. Check the link and try again.",
        );
        InternalError::from_response(err, PageError(app_err).error_response()).into()
    })
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

/// The signed-in account looking at a page, with the session's CSRF token.
pub struct Viewer {
    /// The account.
    pub user: User,
    /// The session's CSRF token, for every form on the page.
    pub csrf_token: String,
}

impl Viewer {
    /// The navigation bar for this account.
    pub fn nav(&self) -> Option<Nav> {
        Some(Nav {
            email: self.user.email.clone(),
            is_admin: self.user.is_admin(),
            csrf_token: self.csrf_token.clone(),
        })
    }
}

/// The signed-in viewer, or `Err` with a 303 to the sign-in form that comes
/// back to `back_to` (a path on this site) afterwards.
pub async fn viewer_or_sign_in(
    session: &TypedSession,
    state: &AppState,
    back_to: &str,
) -> Result<Result<Viewer, HttpResponse>, PageError> {
    match current_user(session, state).await? {
        Some(user) => Ok(Ok(Viewer {
            user,
            csrf_token: session.csrf_token()?,
        })),
        None => Ok(Err(sign_in_first(back_to))),
    }
}

/// A 303 to `/login?redirect=<back_to>`, the target percent-encoded so its
/// own query survives (`/cli/login?code=X` → `/cli/login%3Fcode%3DX`).
pub fn sign_in_first(back_to: &str) -> HttpResponse {
    auth::see_other(&format!("/login?redirect={}", encode_component(back_to)))
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode_component(text: &str) -> String {
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

/// A time as pages show it: `2026-11-25 14:03 UTC`.
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional time, or `fallback` when there is none.
pub fn utc_or(t: Option<DateTime<Utc>>, fallback: &str) -> String {
    t.map_or_else(|| fallback.to_owned(), utc)
}

/// Offset pagination for lists: page `number` (from 1) of `size` rows.
#[derive(Debug, Clone)]
pub struct Pager {
    /// Current page, from 1.
    pub number: u32,
    /// Rows per page.
    pub size: u32,
    /// Whether a later page has rows.
    pub has_next: bool,
    /// The list's path and query without `page`, e.g. `/admin/events?`.
    base: String,
}

/// Highest page number accepted (keeps offsets far from overflow).
const MAX_PAGE: u32 = 1_000_000;

impl Pager {
    /// Parses `?page=`: absent is 1; anything but a whole number from 1 is a 400.
    pub fn parse(raw: Option<&str>, size: u32, base: String) -> Result<Self, PageError> {
        let number = match raw.map(str::trim).filter(|r| !r.is_empty()) {
            None => 1,
            Some(r) => r
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    PageError(AppError::bad_request(
                        "invalid_page",
                        "The page number must be a whole number from 1.",
                    ))
                })?,
        };
        Ok(Self {
            number,
            size,
            has_next: false,
            base,
        })
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        i64::from(self.number - 1) * i64::from(self.size)
    }

    /// Rows to fetch: one more than a page, to learn whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Keeps one page of `rows` and remembers whether there were more.
    pub fn take<T>(&mut self, mut rows: Vec<T>) -> Vec<T> {
        let size = self.size as usize;
        self.has_next = rows.len() > size;
        rows.truncate(size);
        rows
    }

    /// Link to the previous page, if any.
    pub fn prev_href(&self) -> Option<String> {
        (self.number > 1).then(|| format!("{}page={}", self.base, self.number - 1))
    }

    /// Link to the next page, if any.
    pub fn next_href(&self) -> Option<String> {
        self.has_next
            .then(|| format!("{}page={}", self.base, self.number + 1))
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
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
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

    #[test]
    fn times_are_utc_to_the_minute() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T14:03:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(utc(t), "2026-11-25 14:03 UTC");
        assert_eq!(utc_or(None, "never"), "never");
    }

    #[test]
    fn pager_parses_and_links() {
        let mut p = Pager::parse(Some("2"), 50, "/admin/events?".into()).unwrap();
        assert_eq!(p.offset(), 50);
        assert_eq!(p.fetch(), 51);
        let rows = p.take((0..51).collect::<Vec<_>>());
        assert_eq!(rows.len(), 50);
        assert_eq!(p.next_href().as_deref(), Some("/admin/events?page=3"));
        assert_eq!(p.prev_href().as_deref(), Some("/admin/events?page=1"));
        let first = Pager::parse(None, 50, "/x?".into()).unwrap();
        assert_eq!(first.number, 1);
        assert_eq!(first.prev_href(), None);
        for bad in ["0", "-1", "x", "99999999999"] {
            assert!(Pager::parse(Some(bad), 50, "/x?".into()).is_err(), "{bad}");
        }
    }
}
