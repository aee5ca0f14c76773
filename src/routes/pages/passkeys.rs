//! Passkeys in the browser: `/settings/passkeys` (list, rename, remove),
//! and the JSON endpoints `static/js/passkeys.js` calls for each WebAuthn
//! ceremony: registering (settings), signing in (`/login`) and the approval
//! step-up (`/cli/login` and the consent page of `/oauth/authorize`). Each ceremony is a `start` (options for the
//! browser; the ceremony's id goes into the encrypted session cookie) and
//! a `finish` (the browser's answer). Every one of them checks `Origin`
//! (`SameOrigin`, the CSRF defence of cookie-authenticated JSON) and takes
//! only `application/json`; all but sign-in need a signed-in session, and
//! registering also the current password or a recent sign-in (the cookie
//! alone adds no passkey).

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use crate::auth::session::TypedSession;
use crate::db::models::passkeys::PasskeyRow;
use crate::domain::{SessionStatus, UserCode};
use crate::error::AppError;
use crate::routes::extract::{
    csrf_only_form, page_form, ClientIp, CodeEntry, JsonObject, SameOrigin, SignedInForm,
    SignedInUser, UserAgent, Viewer,
};
use crate::routes::pages::auth::{safe_redirect, start_session};
use crate::routes::pages::{render, see_other, utc, utc_or, Nav, PageError};
use crate::service::authorize::{self, RequestError};
use crate::service::passkeys::RegistrationCheck;
use crate::service::step_up::Subject;
use crate::service::AppState;
use crate::service::{device, passkeys};

const PASSKEYS_PATH: &str = "/settings/passkeys";

/// A passkey as the settings page shows it.
pub struct PasskeyItem {
    /// Row id, for the forms.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Registration time.
    pub created: String,
    /// Latest use, or "never".
    pub last_used: String,
}

impl From<PasskeyRow> for PasskeyItem {
    fn from(row: PasskeyRow) -> Self {
        Self {
            id: row.id.to_string(),
            name: row.name,
            created: utc(row.created_at),
            last_used: utc_or(row.last_used_at, "never"),
        }
    }
}

#[derive(Template)]
#[template(path = "account/passkeys.html")]
struct PasskeysPage {
    nav: Option<Nav>,
    csrf_token: String,
    passkeys: Vec<PasskeyItem>,
    /// Whether this server offers passkeys (`APP_URL` names a host).
    available: bool,
    /// What adding a passkey asks for besides the session.
    check: RegistrationCheck,
    notice: Option<&'static str>,
    error: Option<String>,
}

impl PasskeysPage {
    async fn of(
        state: &AppState,
        viewer: Viewer,
        notice: Option<&'static str>,
        error: Option<String>,
    ) -> Result<Self, PageError> {
        let rows = passkeys::list(state, viewer.user.id).await?;
        let check = passkeys::registration_check(state, viewer.user.id).await?;
        Ok(Self {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            passkeys: rows.into_iter().map(PasskeyItem::from).collect(),
            available: passkeys::available(state),
            check,
            notice,
            error,
        })
    }

    /// Whether the add form asks for the current password.
    fn asks_password(&self) -> bool {
        self.check == RegistrationCheck::Password
    }

    /// How recent a sign-in must be to add a passkey without a password.
    fn recent_minutes(&self) -> i64 {
        passkeys::RECENT_SIGN_IN.num_minutes()
    }
}

/// Query of the passkeys page: what was just done.
#[derive(Debug, Deserialize)]
pub struct PasskeysQuery {
    done: Option<String>,
}

/// `GET /settings/passkeys`.
pub async fn list_passkeys(
    viewer: Viewer,
    state: web::Data<AppState>,
    query: web::Query<PasskeysQuery>,
) -> Result<HttpResponse, PageError> {
    let notice = match query.done.as_deref() {
        Some("added") => Some("Passkey added. You can sign in with it now."),
        Some("renamed") => Some("Passkey renamed."),
        Some("removed") => Some("Passkey removed. It can no longer sign in to this account."),
        _ => None,
    };
    let page = PasskeysPage::of(&state, viewer, notice, None).await?;
    render(StatusCode::OK, &page)
}

fn passkey_id(raw: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw).map_err(|_| PageError(AppError::NotFound("The passkey".to_owned())))
}

/// Fields of a passkey's rename form.
#[derive(Debug, Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf_token: String,
}

page_form!(RenameForm, back_to = PASSKEYS_PATH);

/// `POST /settings/passkeys/{id}/rename`.
pub async fn rename_passkey(
    state: web::Data<AppState>,
    path: web::Path<String>,
    posted: SignedInForm<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    let id = passkey_id(&path)?;
    match passkeys::parse_name(&form.name) {
        Ok(name) => {
            passkeys::rename(&state, viewer.user.id, id, name).await?;
            Ok(see_other(&format!("{PASSKEYS_PATH}?done=renamed")))
        }
        Err(message) => {
            let page = PasskeysPage::of(&state, viewer, None, Some(message)).await?;
            render(StatusCode::BAD_REQUEST, &page)
        }
    }
}

csrf_only_form!(
    /// A passkey's Remove button.
    RemoveForm,
    back_to = PASSKEYS_PATH
);

/// `POST /settings/passkeys/{id}/remove`.
pub async fn remove_passkey(
    ip: ClientIp,
    state: web::Data<AppState>,
    path: web::Path<String>,
    posted: SignedInForm<RemoveForm>,
) -> Result<HttpResponse, PageError> {
    let id = passkey_id(&path)?;
    passkeys::remove(&state, posted.viewer.user.id, id, ip.0).await?;
    Ok(see_other(&format!("{PASSKEYS_PATH}?done=removed")))
}

/// A ceremony's JSON answer, never cached.
fn no_store_json(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Answers a started ceremony: its id goes into the session cookie, the
/// WebAuthn options to the browser.
fn started(
    session: &TypedSession,
    (id, options): (Uuid, serde_json::Value),
) -> Result<HttpResponse, AppError> {
    session.set_passkey_ceremony(id)?;
    Ok(no_store_json(options))
}

/// The ceremony this browser started, from its session cookie.
fn pending_ceremony(session: &TypedSession) -> Result<Uuid, AppError> {
    session.take_passkey_ceremony().ok_or_else(|| {
        AppError::bad_request(
            "ceremony_expired",
            "No passkey request is waiting in this browser. Start again.",
        )
    })
}

/// Body of `POST /settings/passkeys/register/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterStart {
    name: String,
    /// The account's current password, when it has one its owner knows.
    #[serde(default)]
    password: Option<SecretString>,
}

/// `POST /settings/passkeys/register/start`: the options for
/// `navigator.credentials.create()`, once the person proved it is them
/// (the current password, or a recent sign-in for an account without one).
pub async fn register_start(
    _: SameOrigin,
    SignedInUser(user, session_id): SignedInUser,
    session: TypedSession,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: JsonObject<RegisterStart>,
) -> Result<HttpResponse, AppError> {
    let RegisterStart { name, password } = body.into_inner();
    let name = passkeys::parse_name(&name)
        .map_err(|m| AppError::bad_request("invalid_passkey_name", m))?;
    started(
        &session,
        passkeys::start_registration(&state, &user, session_id, name, password, ip.0).await?,
    )
}

/// Body of `POST /settings/passkeys/register/finish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    credential: RegisterPublicKeyCredential,
}

/// `POST /settings/passkeys/register/finish`: stores the new passkey.
pub async fn register_finish(
    _: SameOrigin,
    SignedInUser(user, session_id): SignedInUser,
    session: TypedSession,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: JsonObject<RegisterFinish>,
) -> Result<HttpResponse, AppError> {
    let ceremony = pending_ceremony(&session)?;
    let credential = body.into_inner().credential;
    let row = passkeys::finish_registration(&state, &user, session_id, ceremony, credential, ip.0)
        .await?;
    Ok(no_store_json(json!({ "id": row.id, "name": row.name })))
}

/// `POST /login/passkey/start`: options for `navigator.credentials.get()`
/// that name no account (the authenticator offers its passkeys).
pub async fn sign_in_start(
    _: SameOrigin,
    session: TypedSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    started(&session, passkeys::start_sign_in(&state).await?)
}

/// Body of `POST /login/passkey/finish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInFinish {
    credential: PublicKeyCredential,
    /// Where to go afterwards (a path on this site), as `/login?redirect=`.
    #[serde(default)]
    redirect: Option<String>,
}

/// `POST /login/passkey/finish`: signs the browser in like the password
/// form does (a fresh server-side session), and says where to go.
pub async fn sign_in_finish(
    _: SameOrigin,
    session: TypedSession,
    ip: ClientIp,
    ua: UserAgent,
    state: web::Data<AppState>,
    body: JsonObject<SignInFinish>,
) -> Result<HttpResponse, AppError> {
    let ceremony = pending_ceremony(&session)?;
    let SignInFinish {
        credential,
        redirect,
    } = body.into_inner();
    let user = match passkeys::finish_sign_in(&state, ceremony, credential, ip.0).await? {
        Ok(user) => user,
        // One answer for every refusal: nothing learnt about accounts.
        Err(_) => {
            return Err(AppError::Unauthorized {
                code: "passkey_not_accepted",
                message: "That passkey was not accepted. Use a passkey you added to your account, or sign in with your email and password.".to_owned(),
                challenge: None,
            })
        }
    };
    start_session(&state, &session, user.id, ip, ua).await?;
    let redirect = safe_redirect(redirect.as_deref()).unwrap_or_else(|| "/".to_owned());
    Ok(no_store_json(json!({ "redirect": redirect })))
}

/// Body of `POST /cli/login/step-up/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpStart {
    code: String,
}

/// `POST /cli/login/step-up/start`: options for an assertion with one of
/// the account's passkeys, to approve the request with `code`.
pub async fn step_up_start(
    _: SameOrigin,
    CodeEntry(SignedInUser(user, session_id)): CodeEntry<SignedInUser>,
    session: TypedSession,
    state: web::Data<AppState>,
    body: JsonObject<StepUpStart>,
) -> Result<HttpResponse, AppError> {
    let code = UserCode::parse(&body.code).ok_or_else(|| {
        AppError::bad_request(
            "invalid_user_code",
            "code must be the 8-letter code shown in the terminal, like BCDF-GHJK.",
        )
    })?;
    let request = device::find_request(&state, &code)
        .await?
        .filter(|r| r.status == SessionStatus::Pending)
        .ok_or_else(device::expired_request)?;
    let subject = Subject::DeviceLogin(request.id);
    started(
        &session,
        passkeys::start_step_up(&state, &user, session_id, subject).await?,
    )
}

/// Body of `POST /oauth/authorize/step-up/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeStepUpStart {
    /// The authorization request's parameters, as the consent form carries them.
    params: HashMap<String, String>,
}

/// `POST /oauth/authorize/step-up/start`: options for an assertion with one
/// of the account's passkeys, to approve the authorization request `params`.
pub async fn authorize_step_up_start(
    _: SameOrigin,
    SignedInUser(user, session_id): SignedInUser,
    session: TypedSession,
    state: web::Data<AppState>,
    body: JsonObject<AuthorizeStepUpStart>,
) -> Result<HttpResponse, AppError> {
    let request =
        authorize::parse_request(&state.config, &body.params, Utc::now()).map_err(|e| match e {
            RequestError::Page(e) => e,
            RequestError::Redirect(_) => AppError::bad_request(
                "invalid_request",
                "This authorization request is not valid: start the sign-in from the tool again.",
            ),
        })?;
    let subject = request.step_up_subject();
    started(
        &session,
        passkeys::start_step_up(&state, &user, session_id, subject).await?,
    )
}

/// Body of `POST /cli/login/step-up/finish` and `/oauth/authorize/step-up/finish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpFinish {
    credential: PublicKeyCredential,
}

/// `POST /cli/login/step-up/finish` and `/oauth/authorize/step-up/finish`:
/// checks the assertion and answers the proof the approval form carries
/// (`step_up_proof`), good for the request the ceremony was started for.
pub async fn step_up_finish(
    _: SameOrigin,
    SignedInUser(user, session_id): SignedInUser,
    session: TypedSession,
    ip: ClientIp,
    state: web::Data<AppState>,
    body: JsonObject<StepUpFinish>,
) -> Result<HttpResponse, AppError> {
    let ceremony = pending_ceremony(&session)?;
    let credential = body.into_inner().credential;
    match passkeys::finish_step_up(&state, &user, session_id, ceremony, credential, ip.0).await? {
        Ok(proof) => Ok(no_store_json(json!({ "stepUpProof": proof }))),
        Err(_) => Err(AppError::forbidden(
            "step_up_failed",
            "That passkey was not accepted. Use one of the passkeys on your account, then approve again.",
        )),
    }
}
