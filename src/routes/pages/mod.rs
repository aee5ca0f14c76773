//! Server-rendered pages (Askama), the helpers they share, and the HTML
//! error page.

pub mod account;
pub mod admin;
mod approval;
pub mod auth;
pub mod authorize;
pub mod cli;
pub mod home;
pub mod passkeys;
pub mod sso;
pub mod tokens;
pub mod users;

use actix_web::error::InternalError;
use actix_web::http::header;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, ResponseError, Route};
use chrono::{DateTime, Utc};

use crate::error::AppError;
use crate::rate_limit::Limit;
pub use crate::routes::html::{path_and_query, render, see_other, sign_in_first, Nav, PageError};
use crate::routes::limit::RateLimit;
use crate::routes::MAX_BODY_BYTES;

/// The stylesheet, compiled in so the binary is self-contained.
const APP_CSS: &str = include_str!("../../../static/css/app.css");
/// The passkey ceremonies' script (the pages' CSP allows no inline script).
const PASSKEYS_JS: &str = include_str!("../../../static/js/passkeys.js");

/// Page routes, with their rate limits. Each resource answers form and
/// query errors with an HTML page rather than the API's JSON.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let login = || RateLimit::page(Limit::Login).posts();
    let complete = RateLimit::page(Limit::Complete);
    cfg.service(one_page("/", web::get(), home::home))
        .service(form_page("/login", auth::login_form, auth::login).wrap(login()))
        .service(one_page("/logout", web::post(), auth::logout))
        // Every start and callback is a sign-in attempt (and a call to the
        // provider), limited like the password form's posts.
        .service(
            one_page("/auth/oidc/{id}/start", web::get(), sso::start_sign_in)
                .wrap(RateLimit::page(Limit::Login)),
        )
        .service(
            one_page("/auth/oidc/{id}/callback", web::get(), sso::finish_sign_in)
                .wrap(RateLimit::page(Limit::Login)),
        )
        // Passkey sign-in: each start and finish counts as a sign-in attempt.
        .service(json_post("/login/passkey/start", passkeys::sign_in_start).wrap(login_json()))
        .service(json_post("/login/passkey/finish", passkeys::sign_in_finish).wrap(login_json()))
        .service(form_page("/signup", auth::signup_form, auth::signup).wrap(login()))
        // Each look-up of a code is a guess at a live one.
        .service(form_page("/cli/login", cli::approval_form, cli::decide).wrap(complete.clone()))
        .service(
            form_page("/cli/device", cli::code_form, cli::enter_code)
                .wrap(complete.clone().posts()),
        )
        // Each consent mints a token, like an approval.
        .service(
            form_page(
                "/oauth/authorize",
                authorize::consent_form,
                authorize::consent,
            )
            .wrap(complete.posts()),
        )
        .service(
            json_post("/cli/login/step-up/start", passkeys::step_up_start)
                .wrap(RateLimit::api(Limit::Complete)),
        )
        .service(
            json_post("/cli/login/step-up/finish", passkeys::step_up_finish)
                .wrap(RateLimit::api(Limit::Complete)),
        )
        .service(
            json_post(
                "/oauth/authorize/step-up/start",
                passkeys::authorize_step_up_start,
            )
            .wrap(RateLimit::api(Limit::Complete)),
        )
        .service(
            json_post("/oauth/authorize/step-up/finish", passkeys::step_up_finish)
                .wrap(RateLimit::api(Limit::Complete)),
        )
        .service(one_page(
            "/settings/tokens",
            web::get(),
            tokens::list_tokens,
        ))
        .service(one_page(
            "/settings/tokens/alerts/dismiss",
            web::post(),
            tokens::dismiss_alerts,
        ))
        .service(form_page(
            "/settings/tokens/{id}/revoke",
            tokens::revoke_form,
            tokens::revoke,
        ))
        .service(one_page(
            "/settings/sessions",
            web::get(),
            account::list_sessions,
        ))
        .service(one_page(
            "/settings/sessions/end-all",
            web::post(),
            account::end_all_sessions,
        ))
        .service(one_page(
            "/settings/sessions/{id}/end",
            web::post(),
            account::end_session,
        ))
        .service(
            form_page(
                "/settings/password",
                account::password_form,
                account::change_password,
            )
            .wrap(login()),
        )
        .service(one_page(
            "/settings/passkeys",
            web::get(),
            passkeys::list_passkeys,
        ))
        // Adding a passkey takes the current password: a guess at it.
        .service(
            json_post(
                "/settings/passkeys/register/start",
                passkeys::register_start,
            )
            .wrap(login_json()),
        )
        .service(json_post(
            "/settings/passkeys/register/finish",
            passkeys::register_finish,
        ))
        .service(one_page(
            "/settings/passkeys/{id}/rename",
            web::post(),
            passkeys::rename_passkey,
        ))
        .service(one_page(
            "/settings/passkeys/{id}/remove",
            web::post(),
            passkeys::remove_passkey,
        ))
        .service(one_page("/admin", web::get(), admin::admin_home))
        .service(form_page(
            "/admin/users",
            users::list_users,
            users::create_user,
        ))
        .service(form_page(
            "/admin/users/{id}/{action}",
            users::confirm_form,
            users::confirm,
        ))
        .service(one_page("/admin/tokens", web::get(), admin::list_tokens))
        .service(form_page(
            "/admin/tokens/{id}/revoke",
            admin::revoke_form,
            admin::revoke,
        ))
        .service(one_page("/admin/events", web::get(), admin::list_events))
        .route("/static/css/app.css", web::get().to(stylesheet))
        .route("/static/js/passkeys.js", web::get().to(passkeys_script));
}

/// The JSON endpoints a page's script posts to (the passkey ceremonies):
/// POST only, answered in JSON, errors included.
fn json_post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path).route(web::post().to(handler))
}

/// A JSON endpoint limited like sign-in.
fn login_json() -> RateLimit {
    RateLimit::api(Limit::Login)
}

/// A page resource whose form and query extractors fail with HTML pages.
fn page(path: &str) -> actix_web::Resource {
    web::resource(path)
        .app_data(page_form_config())
        .app_data(page_query_config())
}

/// A page that answers one method, `route`, with `handler`.
fn one_page<F, Args>(path: &str, route: Route, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    page(path).route(route.to(handler))
}

/// A page with a form: GET shows it, POST submits it.
fn form_page<G, GArgs, P, PArgs>(path: &str, get: G, post: P) -> actix_web::Resource
where
    G: Handler<GArgs>,
    GArgs: FromRequest + 'static,
    G::Output: Responder + 'static,
    P: Handler<PArgs>,
    PArgs: FromRequest + 'static,
    P::Output: Responder + 'static,
{
    one_page(path, web::get(), get).route(web::post().to(post))
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

async fn passkeys_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(PASSKEYS_JS)
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

#[cfg(test)]
mod tests {
    use super::*;

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
