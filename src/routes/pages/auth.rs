//! Browser sign-in and sign-out.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::password::MIN_PASSWORD_CHARS;
use crate::auth::session::TypedSession;
use crate::error::AppError;
use crate::routes::extract::{page_form, ClientIp, CsrfForm, MaybeViewer, UserAgent};
use crate::routes::pages::{render, see_other, sso, Nav, PageError};
use crate::service::accounts::{self, SignUpRefused};
use crate::service::sessions;
use crate::service::AppState;

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

/// Signs the browser in as `user_id`: a fresh server-side session
/// replaces the one the cookie named (if any), and the cookie is renewed.
pub(super) async fn start_session(
    state: &AppState,
    session: &TypedSession,
    user_id: Uuid,
    ip: ClientIp,
    ua: UserAgent,
) -> Result<(), AppError> {
    let secret = sessions::replace(state, session.secret(), user_id, ip.0, ua.0).await?;
    session.sign_in(&secret)
}

/// Said when a password reaches a server that signs in through providers only.
const PASSWORD_LOGIN_OFF: &str =
    "Password sign-in is turned off on this server. Use your company sign-in below.";

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    nav: Option<Nav>,
    csrf_token: String,
    redirect: Option<String>,
    email: String,
    error: Option<String>,
    /// Whether the email and password form is shown (`PASSWORD_LOGIN`).
    password_login: bool,
    /// A "Sign in with …" button per provider.
    providers: Vec<ProviderButton>,
    /// Whether "Sign in with a passkey" is offered.
    passkeys: bool,
}

/// A "Sign in with {name}" button.
struct ProviderButton {
    name: String,
    /// `/auth/oidc/{id}/start`, carrying the page's `redirect`.
    href: String,
}

impl LoginPage {
    fn new(
        state: &AppState,
        csrf_token: String,
        redirect: Option<String>,
        email: String,
        error: Option<String>,
    ) -> Self {
        let providers = state
            .config
            .oidc_providers
            .iter()
            .map(|p| ProviderButton {
                name: p.name.clone(),
                href: sso::start_href(&p.id, redirect.as_deref()),
            })
            .collect();
        Self {
            nav: None,
            csrf_token,
            redirect,
            email,
            error,
            password_login: state.config.password_login,
            providers,
            passkeys: crate::service::passkeys::available(state),
        }
    }
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    redirect: Option<String>,
}

/// `GET /login`: the form (or straight on, when already signed in).
pub async fn login_form(
    viewer: MaybeViewer,
    session: TypedSession,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let redirect = safe_redirect(query.redirect.as_deref());
    if viewer.0.is_some() {
        return Ok(see_other(redirect.as_deref().unwrap_or("/")));
    }
    let page = LoginPage::new(&state, session.csrf_token()?, redirect, String::new(), None);
    render(StatusCode::OK, &page)
}

/// Fields of the sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: SecretString,
    #[serde(default)]
    csrf_token: String,
    redirect: Option<String>,
}

/// `POST /login`. With `PASSWORD_LOGIN=false` every post is refused with
/// the reason, before anything else is looked at.
pub async fn login(
    ip: ClientIp,
    ua: UserAgent,
    state: web::Data<AppState>,
    session: TypedSession,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let redirect = safe_redirect(form.redirect.as_deref());
    if !state.config.password_login {
        let error = Some(PASSWORD_LOGIN_OFF.to_owned());
        let page = LoginPage::new(
            &state,
            session.csrf_token()?,
            redirect,
            String::new(),
            error,
        );
        return render(StatusCode::FORBIDDEN, &page);
    }
    session.verify_csrf(&form.csrf_token)?;
    let email = form.email.trim().to_owned();
    let Some(user) = accounts::sign_in(&state, &email, form.password, ip.0).await? else {
        let error = Some(SIGN_IN_FAILED.to_owned());
        let page = LoginPage::new(&state, session.csrf_token()?, redirect, email, error);
        return render(StatusCode::UNAUTHORIZED, &page);
    };
    start_session(&state, &session, user.id, ip, ua).await?;
    Ok(see_other(redirect.as_deref().unwrap_or("/")))
}

/// Fields of the sign-out form.
#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

page_form!(LogoutForm);

/// `POST /logout`: ends this session on the server, so a copy of the
/// cookie stops working too, and clears the cookie.
pub async fn logout(
    state: web::Data<AppState>,
    form: CsrfForm<LogoutForm>,
) -> Result<HttpResponse, PageError> {
    if let Some(secret) = form.session.secret() {
        sessions::end_by_secret(&state, secret).await?;
    }
    form.session.sign_out();
    Ok(see_other("/login"))
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

impl SignupPage {
    fn new(csrf_token: String, email: String, error: Option<String>) -> Self {
        Self {
            nav: None,
            csrf_token,
            email,
            error,
            min_password: MIN_PASSWORD_CHARS,
        }
    }
}

fn signup_enabled(state: &AppState) -> Result<(), PageError> {
    // Sign-up makes a password account: off with password sign-in.
    if state.config.allow_signup && state.config.password_login {
        Ok(())
    } else {
        Err(AppError::NotFound("This page".to_owned()).into())
    }
}

/// `GET /signup` (only when `ALLOW_SIGNUP=true`).
pub async fn signup_form(
    session: TypedSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    signup_enabled(&state)?;
    let page = SignupPage::new(session.csrf_token()?, String::new(), None);
    render(StatusCode::OK, &page)
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

page_form!(SignupForm);

/// `POST /signup`: creates a `user` account and signs it in.
pub async fn signup(
    ip: ClientIp,
    ua: UserAgent,
    state: web::Data<AppState>,
    form: CsrfForm<SignupForm>,
) -> Result<HttpResponse, PageError> {
    signup_enabled(&state)?;
    let CsrfForm { form, session } = form;
    let typed = form.email.trim().to_owned();
    let created =
        accounts::sign_up(&state, &form.email, form.password, &form.password_confirm).await?;
    let user = match created {
        Ok(user) => user,
        Err(SignUpRefused::Invalid(error) | SignUpRefused::Taken(error)) => {
            let page = SignupPage::new(session.csrf_token()?, typed, Some(error));
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    start_session(&state, &session, user.id, ip, ua).await?;
    Ok(see_other("/"))
}
