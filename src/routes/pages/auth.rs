//! Browser sign-in and sign-out.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::auth::extractors::current_user;
use crate::auth::password::MIN_PASSWORD_CHARS;
use crate::auth::session::TypedSession;
use crate::db::{self, models::users};
use crate::domain::Email;
use crate::error::AppError;
use crate::rate_limit::{client_ip, Limit};
use crate::routes::enforce_limit;
use crate::routes::pages::{render, Nav, PageError};
use crate::service::accounts;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::startup::AppState;

/// The one message for every failed sign-in: no hint whether the email exists.
const SIGN_IN_FAILED: &str = "Incorrect email or password.";

/// Where to go after sign-in: only a path on this site, never another host
/// (`//evil.example`, `/\evil.example` and absolute URLs are refused).
pub fn safe_redirect(target: Option<&str>) -> Option<String> {
    let t = target?.trim();
    let ok = t.starts_with('/')
        && !t.starts_with("//")
        && !t.starts_with("/\\")
        && !t.chars().any(|c| c.is_control() || c == '\\')
        && t.len() <= 2048;
    ok.then(|| t.to_owned())
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    nav: Option<Nav>,
    csrf_token: String,
    redirect: Option<String>,
    email: String,
    error: Option<String>,
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    redirect: Option<String>,
}

/// `GET /login`: the form (or straight on, when already signed in).
pub async fn login_form(
    session: actix_session::Session,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let redirect = safe_redirect(query.redirect.as_deref());
    if current_user(&session, &state).await?.is_some() {
        return Ok(see_other(redirect.as_deref().unwrap_or("/")));
    }
    render(
        StatusCode::OK,
        &LoginPage {
            nav: None,
            csrf_token: session.csrf_token()?,
            redirect,
            email: String::new(),
            error: None,
        },
    )
}

/// Fields of the sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: SecretString,
    csrf_token: String,
    redirect: Option<String>,
}

/// `POST /login`.
pub async fn login(
    req: HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let ip = client_ip(&req, &state.config.trusted_proxies);
    enforce_limit(&state, Limit::Login, ip).await?;
    let form = form.into_inner();
    session.verify_csrf(&form.csrf_token)?;
    let redirect = safe_redirect(form.redirect.as_deref());
    if let Err(retry_after_secs) = state.limiters.check_login_account(&form.email) {
        tracing::warn!("sign-in attempts for one account over the limit");
        return Err(AppError::RateLimited { retry_after_secs }.into());
    }

    let email = form.email.trim().to_owned();
    let lookup = email.clone();
    let found = db::run(&state.pool, move |conn| {
        Ok(users::find_by_email(conn, &lookup)?)
    })
    .await?;
    let dummy = state.dummy_hash.clone();
    let password = form.password;
    let user = {
        let _slot = state
            .bcrypt_slots
            .acquire()
            .await
            .map_err(AppError::internal)?;
        web::block(move || accounts::check_password(found, &password, &dummy))
            .await
            .map_err(AppError::from)?
    };

    let ip_text = ip.to_string();
    let Some(user) = user else {
        let ip_log = ip_text.clone();
        db::run(&state.pool, move |conn| {
            events::record(
                conn,
                Event::new(EventKind::LoginFailed, Severity::Low, Some(&ip_log))
                    .details(json!({ "reason": "bad_credentials" })),
            )?;
            Ok(())
        })
        .await?;
        return render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                nav: None,
                csrf_token: session.csrf_token()?,
                redirect,
                email,
                error: Some(SIGN_IN_FAILED.to_owned()),
            },
        );
    };
    session.sign_in(user.id, Utc::now())?;
    let user_id = user.id;
    db::run(&state.pool, move |conn| {
        events::record(
            conn,
            Event::new(EventKind::LoginSucceeded, Severity::Low, Some(&ip_text)).user(user_id),
        )?;
        Ok(())
    })
    .await?;
    Ok(see_other(redirect.as_deref().unwrap_or("/")))
}

/// Fields of the sign-out form.
#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout`.
pub async fn logout(
    session: actix_session::Session,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    session.verify_csrf(&form.csrf_token)?;
    session.sign_out();
    Ok(see_other("/login"))
}

/// A 303 to a path on this site.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::safe_redirect;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            safe_redirect(Some("/cli/login?code=BCDF-GHJK")).as_deref(),
            Some("/cli/login?code=BCDF-GHJK")
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_redirect(Some(bad)), None, "{bad}");
        }
        assert_eq!(safe_redirect(None), None);
    }
}

#[derive(Template)]
#[template(path = "auth/signup.html")]
struct SignupPage {
    nav: Option<Nav>,
    csrf_token: String,
    email: String,
    error: Option<String>,
    min_password: usize,
}

fn signup_enabled(state: &AppState) -> Result<(), PageError> {
    if state.config.allow_signup {
        Ok(())
    } else {
        Err(AppError::NotFound("This page".to_owned()).into())
    }
}

/// `GET /signup` (only when `ALLOW_SIGNUP=true`).
pub async fn signup_form(
    session: actix_session::Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    signup_enabled(&state)?;
    let session = TypedSession(session);
    render(
        StatusCode::OK,
        &SignupPage {
            nav: None,
            csrf_token: session.csrf_token()?,
            email: String::new(),
            error: None,
            min_password: MIN_PASSWORD_CHARS,
        },
    )
}

/// Fields of the sign-up form.
#[derive(Deserialize)]
pub struct SignupForm {
    email: String,
    password: SecretString,
    password_confirm: SecretString,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /signup`: creates a `user` account and signs it in.
pub async fn signup(
    req: HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
    form: web::Form<SignupForm>,
) -> Result<HttpResponse, PageError> {
    signup_enabled(&state)?;
    let session = TypedSession(session);
    let ip = client_ip(&req, &state.config.trusted_proxies);
    enforce_limit(&state, Limit::Login, ip).await?;
    let form = form.into_inner();
    session.verify_csrf(&form.csrf_token)?;
    let typed = form.email.trim().to_owned();
    let again = |error: String| -> Result<HttpResponse, PageError> {
        render(
            StatusCode::BAD_REQUEST,
            &SignupPage {
                nav: None,
                csrf_token: session.csrf_token()?,
                email: typed.clone(),
                error: Some(error),
                min_password: MIN_PASSWORD_CHARS,
            },
        )
    };
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(message) => return again(message),
    };
    if !crate::crypto::ct_eq(
        form.password.expose_secret().as_bytes(),
        form.password_confirm.expose_secret().as_bytes(),
    ) {
        return again("The two passwords do not match.".to_owned());
    }
    let cost = state.config.bcrypt_cost;
    let password = form.password;
    let hashed = {
        let _slot = state
            .bcrypt_slots
            .acquire()
            .await
            .map_err(AppError::internal)?;
        web::block(move || accounts::hash_new_password(&password, cost))
            .await
            .map_err(AppError::from)?
    };
    let hash = match hashed {
        Ok(h) => h,
        Err(e @ AppError::BadRequest { .. }) => return again(e.public_message()),
        Err(e) => return Err(e.into()),
    };
    let created = db::run(&state.pool, move |conn| {
        accounts::insert_user(conn, &email, &hash, "user")
    })
    .await;
    let user = match created {
        Ok(u) => u,
        Err(e @ AppError::Conflict { .. }) => return again(e.public_message()),
        Err(e) => return Err(e.into()),
    };
    session.sign_in(user.id, Utc::now())?;
    Ok(see_other("/"))
}
