//! The browser half of the device login: the approval page (`/cli/login`)
//! and typing the code by hand (`/cli/device`, RFC 8628's
//! `verification_uri`).

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;
use serde::Deserialize;

use crate::config::Config;
use crate::domain::{SessionStatus, UserCode};
use crate::error::AppError;
use crate::routes::extract::{
    page_form, ClientIp, CodeEntry, FormPage, MaybeViewer, SignedInForm, Viewer,
};
use crate::routes::pages::approval::{
    expiry_choices, step_up_refusal, ApprovalChoice, ExpiryChoice, ScopeChoice, StepUpPrompt,
    STEP_UP_FAILED,
};
use crate::routes::pages::{render, see_other, utc, Nav, PageError};
use crate::service::device::{self, policy, CompleteInput, CompleteOutcome, RequestView};
use crate::service::step_up::Subject;
use crate::service::AppState;

/// What `/cli/device` says about any code it cannot use: the same words for
/// malformed, unknown and expired codes, so guesses learn nothing.
const WRONG_CODE: &str = "That code is not valid or has expired. Check the code in your terminal.";

/// Where the approval page for `code` lives.
fn approval_path(code: &UserCode) -> String {
    format!("/cli/login?code={}", code.display())
}

/// "Invalid CLI login request" (400) or "…has expired" (410).
#[derive(Template)]
#[template(path = "cli/ended.html")]
struct EndedPage {
    nav: Option<Nav>,
    invalid: bool,
}

impl EndedPage {
    fn invalid(nav: Option<Nav>) -> Result<HttpResponse, PageError> {
        render(StatusCode::BAD_REQUEST, &Self { nav, invalid: true })
    }

    fn expired(nav: Option<Nav>) -> Result<HttpResponse, PageError> {
        render(
            StatusCode::GONE,
            &Self {
                nav,
                invalid: false,
            },
        )
    }
}

/// The page after a decision.
#[derive(Template)]
#[template(path = "cli/result.html")]
struct ResultPage {
    nav: Option<Nav>,
    approved: bool,
    /// Paste mode: the code to type into the terminal (shown once).
    confirmation_code: Option<String>,
    /// Why the code is needed, in words.
    paste_reasons: Vec<String>,
}

impl ResultPage {
    fn approved(
        nav: Option<Nav>,
        confirmation_code: Option<String>,
        paste_reasons: Vec<String>,
    ) -> Result<HttpResponse, PageError> {
        let page = Self {
            nav,
            approved: true,
            confirmation_code,
            paste_reasons,
        };
        render(StatusCode::OK, &page)
    }

    fn denied(nav: Option<Nav>) -> Result<HttpResponse, PageError> {
        let page = Self {
            nav,
            approved: false,
            confirmation_code: None,
            paste_reasons: Vec::new(),
        };
        render(StatusCode::OK, &page)
    }
}

/// What a previous submission chose, to keep it when the form comes back
/// with an error, and that error.
#[derive(Default)]
struct Chosen {
    scopes: Option<Vec<String>>,
    expires_in_days: Option<u32>,
    error: Option<String>,
}

/// The confirmation page of a pending request.
#[derive(Template)]
#[template(path = "cli/confirm.html")]
struct ConfirmPage {
    nav: Option<Nav>,
    csrf_token: String,
    email: String,
    code: String,
    token_name: String,
    scopes: Vec<ScopeChoice>,
    expiry: Vec<ExpiryChoice>,
    requester_ip: Option<String>,
    user_agent: Option<String>,
    asked_at: String,
    expires_at: String,
    other_network: Option<String>,
    error: Option<String>,
    step_up: Option<StepUpPrompt>,
    /// Why approving would show a paste-back code, in words.
    paste_reasons: Vec<String>,
}

impl ConfirmPage {
    /// The page for `request`, with the step-up it needs, if any.
    async fn build(
        state: &AppState,
        viewer: &Viewer,
        code: &UserCode,
        request: RequestView,
        browser_ip: IpAddr,
        chosen: Chosen,
    ) -> Result<Self, PageError> {
        let allowed = request.scopes_allowed(&state.config, viewer.user.role);
        let reasons = request.step_up_reasons(
            &state.config,
            viewer.user.role,
            browser_ip,
            Some(chosen.scopes.as_deref().unwrap_or(&allowed)),
            chosen.expires_in_days,
        );
        let step_up = StepUpPrompt::for_reasons(state, viewer, &reasons).await?;
        let mut page = Self::new(viewer, code, request, browser_ip, &state.config, chosen);
        page.step_up = step_up;
        Ok(page)
    }

    fn new(
        viewer: &Viewer,
        code: &UserCode,
        request: RequestView,
        browser_ip: IpAddr,
        config: &Config,
        chosen: Chosen,
    ) -> Self {
        let role = viewer.user.role;
        let mut scopes = ScopeChoice::list(&request.scopes, chosen.scopes.as_deref(), config);
        let allowed = request.scopes_allowed(config, role);
        for s in scopes.iter_mut().filter(|s| !allowed.contains(&s.name)) {
            (s.allowed, s.checked) = (false, false);
        }
        let refusal = request.policy_refusal(config, role, browser_ip);
        let granted = chosen.scopes.as_deref().unwrap_or(&allowed);
        let paste_reasons = request.paste_reasons(config, browser_ip, Some(granted));
        let other_network = request
            .client_ip
            .as_deref()
            .filter(|ip| !policy::same_network(Some(ip), browser_ip))
            .map(str::to_owned);
        Self {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token.clone(),
            email: viewer.user.email.clone(),
            code: code.display(),
            token_name: request.token_name,
            scopes,
            expiry: expiry_choices(
                device::max_lifetime_days(config, role),
                chosen.expires_in_days,
            ),
            requester_ip: request.client_ip,
            user_agent: request.user_agent.filter(|ua| !ua.trim().is_empty()),
            asked_at: utc(request.created_at),
            expires_at: utc(request.expires_at),
            other_network,
            error: chosen.error.or(refusal.map(|r| r.message)),
            step_up: None,
            paste_reasons,
        }
    }
}

fn approved_by_another_account() -> PageError {
    PageError(AppError::forbidden(
        "approved_by_another_account",
        "This CLI login request was already approved by another account.",
    ))
}

/// Query of `GET /cli/login`.
#[derive(Debug, Deserialize)]
pub struct ApprovalQuery {
    code: Option<String>,
}

/// `GET /cli/login?code=XXXX-XXXX`: the approval page, in whatever state
/// the request is.
#[tracing::instrument(name = "approval_form", skip_all)]
pub async fn approval_form(
    CodeEntry(viewer): CodeEntry<MaybeViewer>,
    ip: ClientIp,
    state: web::Data<AppState>,
    query: web::Query<ApprovalQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(code) = query.code.as_deref().and_then(UserCode::parse) else {
        return EndedPage::invalid(viewer.nav());
    };
    let viewer = viewer.require(&approval_path(&code))?;
    let Some(request) = device::find_request(&state, &code).await? else {
        return EndedPage::expired(viewer.nav());
    };
    match request.status {
        SessionStatus::Pending => {
            let chosen = Chosen::default();
            let page = ConfirmPage::build(&state, &viewer, &code, request, ip.0, chosen).await?;
            render(StatusCode::OK, &page)
        }
        SessionStatus::Approved if request.user_id == Some(viewer.user.id) => {
            ResultPage::approved(viewer.nav(), None, Vec::new())
        }
        SessionStatus::Approved => Err(approved_by_another_account()),
        _ => EndedPage::expired(viewer.nav()),
    }
}

/// The approval form's fields: the code and the approval's choices.
#[derive(Debug, Deserialize)]
#[serde(from = "Vec<(String, String)>")]
pub struct DecisionForm {
    code: Option<String>,
    choice: ApprovalChoice,
    csrf_token: String,
}

impl From<Vec<(String, String)>> for DecisionForm {
    fn from(pairs: Vec<(String, String)>) -> Self {
        let mut code = None;
        let (choice, csrf_token) = ApprovalChoice::read(pairs, |key, value| {
            if key == "code" {
                code = Some(value);
            }
        });
        Self {
            code,
            choice,
            csrf_token,
        }
    }
}

page_form!(DecisionForm);

impl FormPage for DecisionForm {
    /// The approval page of the code, or the code-entry form without one.
    fn back_to(&self) -> String {
        self.user_code()
            .map_or_else(|| "/cli/device".to_owned(), |c| approval_path(&c))
    }
}

impl DecisionForm {
    fn user_code(&self) -> Option<UserCode> {
        self.code.as_deref().and_then(UserCode::parse)
    }
}

/// `POST /cli/login`: Approve or Deny, then the result page. An approval
/// that `APPROVAL_STEP_UP` asks a step-up for needs the proof the page's
/// script earned with a passkey, or the password typed into the form
/// (accounts without a passkey); without one it is refused (403, the page
/// again with why) and recorded as `step_up_failed`.
#[tracing::instrument(name = "decide", skip_all)]
pub async fn decide(
    ip: ClientIp,
    state: web::Data<AppState>,
    CodeEntry(posted): CodeEntry<SignedInForm<DecisionForm>>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { mut form, viewer } = posted;
    let Some(code) = form.user_code() else {
        return EndedPage::invalid(None);
    };
    let outcome = match decision(&state, &viewer, &code, &mut form, ip.0).await {
        Ok(input) => device::decide(&state, input).await,
        Err(e) => Err(e),
    };
    let (status, message) = match outcome {
        Ok(CompleteOutcome::Approved {
            confirmation_code,
            paste_reasons,
            ..
        }) => return ResultPage::approved(viewer.nav(), confirmation_code, paste_reasons),
        Ok(CompleteOutcome::Denied) => return ResultPage::denied(viewer.nav()),
        Ok(CompleteOutcome::StepUpRequired { problem, .. }) => step_up_refusal(problem),
        Err(AppError::Gone { .. }) => return EndedPage::expired(viewer.nav()),
        // A choice the server refused, or a step-up password it did not
        // take: the form again, with the reason.
        Err(
            e @ (AppError::BadRequest { .. }
            | AppError::Forbidden {
                code: STEP_UP_FAILED,
                ..
            }),
        ) => (e.status_code(), e.public_message()),
        Err(e) => return Err(PageError(e)),
    };
    form_again(&state, &viewer, &code, ip.0, &form, status, message).await
}

/// What the person decided, as the service takes it. Earning a step-up
/// with the typed password needs the request still pending (a 410 when it
/// is not).
async fn decision(
    state: &AppState,
    viewer: &Viewer,
    code: &UserCode,
    form: &mut DecisionForm,
    ip: IpAddr,
) -> Result<CompleteInput, AppError> {
    let subject = async {
        let request = device::find_request(state, code)
            .await?
            .filter(|r| r.status == SessionStatus::Pending)
            .ok_or_else(device::expired_request)?;
        Ok(Subject::DeviceLogin(request.id))
    };
    form.choice
        .decided(state, viewer, code.clone(), subject, ip)
        .await
}

/// The approval form again, with what was chosen and why it came back;
/// the request's end page when it is no longer pending.
async fn form_again(
    state: &AppState,
    viewer: &Viewer,
    code: &UserCode,
    ip: IpAddr,
    form: &DecisionForm,
    status: StatusCode,
    message: String,
) -> Result<HttpResponse, PageError> {
    match device::find_request(state, code).await? {
        Some(request) if request.status == SessionStatus::Pending => {
            let chosen = Chosen {
                scopes: Some(form.choice.scopes().to_vec()),
                expires_in_days: form.choice.kept_expiry(),
                error: Some(message),
            };
            let page = ConfirmPage::build(state, viewer, code, request, ip, chosen).await?;
            render(status, &page)
        }
        _ => EndedPage::expired(viewer.nav()),
    }
}

/// Typing the code from the terminal.
#[derive(Template)]
#[template(path = "cli/device.html")]
struct CodeEntryPage {
    nav: Option<Nav>,
    csrf_token: String,
    code: String,
    error: Option<&'static str>,
}

/// `GET /cli/device`: the form.
pub async fn code_form(viewer: Viewer) -> Result<HttpResponse, PageError> {
    render(
        StatusCode::OK,
        &CodeEntryPage {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            code: String::new(),
            error: None,
        },
    )
}

/// Fields of the code form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
}

page_form!(CodeForm, back_to = "/cli/device");

/// `POST /cli/device`: a live code goes on to its approval page; anything
/// else gets the form back with one message. Every attempt counts against
/// the client's rate limit, so live codes cannot be found by guessing.
#[tracing::instrument(name = "enter_code", skip_all)]
pub async fn enter_code(
    state: web::Data<AppState>,
    CodeEntry(posted): CodeEntry<SignedInForm<CodeForm>>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    if let Some(code) = UserCode::parse(&form.code) {
        let live = device::find_request(&state, &code).await?.is_some_and(|r| {
            r.status == SessionStatus::Pending
                || (r.status == SessionStatus::Approved && r.user_id == Some(viewer.user.id))
        });
        if live {
            return Ok(see_other(&approval_path(&code)));
        }
    }
    let typed: String = form.code.chars().take(32).collect();
    render(
        StatusCode::BAD_REQUEST,
        &CodeEntryPage {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            code: typed,
            error: Some(WRONG_CODE),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_form_collects_repeated_scopes() {
        let f = DecisionForm::from(vec![
            ("code".into(), "BCDF-GHJK".into()),
            ("decision".into(), "approve".into()),
            ("scopes".into(), "envs:read".into()),
            ("scopes".into(), "tokens:read".into()),
            ("expires_in_days".into(), "30".into()),
            ("csrf_token".into(), "t".into()),
        ]);
        assert_eq!(
            f.user_code().map(|c| c.display()).as_deref(),
            Some("BCDF-GHJK")
        );
        assert_eq!(f.csrf_token, "t");
        assert_eq!(f.choice.scopes(), ["envs:read", "tokens:read"]);
        assert_eq!(f.choice.kept_expiry(), Some(30));
        let bad = DecisionForm::from(vec![("decision".into(), "maybe".into())]);
        assert_eq!(bad.choice.kept_expiry(), None);
    }
}
