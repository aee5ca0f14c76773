//! `/settings/sessions` and `/settings/password`: where you are signed in,
//! ending sessions, and changing your password.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::password::MIN_PASSWORD_CHARS;
use crate::auth::session::TypedSession;
use crate::db::models::user_sessions::{Ending, UserSession};
use crate::error::AppError;
use crate::routes::extract::{csrf_only_form, page_form, ClientIp, SignedInForm, Viewer};
use crate::routes::pages::{render, see_other, utc, Nav, PageError};
use crate::service::accounts::{self, PasswordRefused};
use crate::service::sessions;
use crate::service::AppState;

const SESSIONS_PATH: &str = "/settings/sessions";
const PASSWORD_PATH: &str = "/settings/password";

/// A session as the list shows it.
pub struct SessionRow {
    session: UserSession,
    /// Whether it is the browser looking at the list.
    pub current: bool,
}

impl SessionRow {
    /// Session id, for the End form.
    pub fn id(&self) -> String {
        self.session.id.to_string()
    }

    /// "Firefox on Linux", from the reported user agent.
    pub fn browser(&self) -> String {
        browser_label(self.session.user_agent.as_deref())
    }

    /// The user agent as reported, or a dash.
    pub fn user_agent(&self) -> &str {
        self.session.user_agent.as_deref().unwrap_or("—")
    }

    /// Sign-in address.
    pub fn ip(&self) -> &str {
        self.session.ip.as_deref().unwrap_or("an unknown address")
    }

    /// Sign-in time.
    pub fn started(&self) -> String {
        utc(self.session.created_at)
    }

    /// Last activity, to the minute.
    pub fn last_seen(&self) -> String {
        utc(self.session.last_seen_at)
    }
}

/// A short name for a browser from its `User-Agent`: which browser, on
/// which system, as it claims to be.
pub fn browser_label(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or_default();
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find(|(marker, _)| ua.contains(marker))
    .map_or("Unknown browser", |(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "account/sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    csrf_token: String,
    sessions: Vec<SessionRow>,
    notice: Option<&'static str>,
}

/// Query of the sessions page.
#[derive(Debug, Deserialize)]
pub struct SessionsQuery {
    ended: Option<String>,
}

/// `GET /settings/sessions`.
pub async fn list_sessions(
    viewer: Viewer,
    state: web::Data<AppState>,
    query: web::Query<SessionsQuery>,
) -> Result<HttpResponse, PageError> {
    let list = sessions::list(&state, viewer.user.id).await?;
    let current = viewer.session_id;
    render(
        StatusCode::OK,
        &SessionsPage {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            sessions: list
                .into_iter()
                .map(|session| SessionRow {
                    current: session.id == current,
                    session,
                })
                .collect(),
            notice: query
                .ended
                .is_some()
                .then_some("Session ended. That browser must sign in again."),
        },
    )
}

csrf_only_form!(
    /// A button on the sessions page.
    SessionsForm,
    back_to = SESSIONS_PATH
);

/// `POST /settings/sessions/{id}/end`: ends one of your sessions; ending
/// this one signs you out.
pub async fn end_session(
    ip: ClientIp,
    state: web::Data<AppState>,
    path: web::Path<String>,
    cookie: TypedSession,
    posted: SignedInForm<SessionsForm>,
) -> Result<HttpResponse, PageError> {
    let not_found = || PageError(AppError::NotFound("The session".to_owned()));
    let id = Uuid::parse_str(&path).map_err(|_| not_found())?;
    let viewer = posted.viewer;
    let ended = sessions::end(&state, &viewer.user, Ending::One(id), Some(ip.0)).await?;
    if ended == 0 {
        return Err(not_found());
    }
    if id == viewer.session_id {
        cookie.sign_out();
        return Ok(see_other("/login"));
    }
    Ok(see_other(&format!("{SESSIONS_PATH}?ended=1")))
}

/// `POST /settings/sessions/end-all`: signs out every browser, this one too.
pub async fn end_all_sessions(
    ip: ClientIp,
    state: web::Data<AppState>,
    cookie: TypedSession,
    posted: SignedInForm<SessionsForm>,
) -> Result<HttpResponse, PageError> {
    sessions::end(&state, &posted.viewer.user, Ending::All, Some(ip.0)).await?;
    cookie.sign_out();
    Ok(see_other("/login"))
}

#[derive(Template)]
#[template(path = "account/password.html")]
struct PasswordPage {
    nav: Option<Nav>,
    csrf_token: String,
    email: String,
    min_password: usize,
    notice: Option<&'static str>,
    error: Option<String>,
}

impl PasswordPage {
    fn of(viewer: Viewer, notice: Option<&'static str>, error: Option<String>) -> Self {
        Self {
            nav: viewer.nav(),
            email: viewer.user.email,
            csrf_token: viewer.csrf_token,
            min_password: MIN_PASSWORD_CHARS,
            notice,
            error,
        }
    }
}

/// Query of the password page.
#[derive(Debug, Deserialize)]
pub struct PasswordQuery {
    changed: Option<String>,
}

/// `GET /settings/password`.
pub async fn password_form(
    viewer: Viewer,
    query: web::Query<PasswordQuery>,
) -> Result<HttpResponse, PageError> {
    let notice = query
        .changed
        .is_some()
        .then_some("Password changed. Every other session was signed out.");
    render(StatusCode::OK, &PasswordPage::of(viewer, notice, None))
}

/// Fields of the password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
    new_password_confirm: SecretString,
    #[serde(default)]
    csrf_token: String,
}

page_form!(PasswordForm, back_to = PASSWORD_PATH);

/// `POST /settings/password`.
pub async fn change_password(
    ip: ClientIp,
    state: web::Data<AppState>,
    posted: SignedInForm<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    let outcome = accounts::change_password(
        &state,
        &viewer.user,
        viewer.session_id,
        form.current_password,
        form.new_password,
        &form.new_password_confirm,
        ip.0,
    )
    .await?;
    match outcome {
        Ok(()) => Ok(see_other(&format!("{PASSWORD_PATH}?changed=1"))),
        Err(PasswordRefused(message)) => render(
            StatusCode::BAD_REQUEST,
            &PasswordPage::of(viewer, None, Some(message)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::browser_label;

    #[test]
    fn browsers_are_named_from_their_user_agent() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(browser_label(Some(firefox)), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(browser_label(Some(chrome)), "Chrome on macOS");
        let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(browser_label(Some(phone)), "Safari on iOS");
        assert_eq!(browser_label(None), "Unknown browser");
    }
}
