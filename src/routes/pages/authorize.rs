//! `/oauth/authorize`: the consent page of the authorization-code grant
//! (RFC 6749 §4.1, PKCE, loopback redirects), with the same choices as the
//! CLI approval page (scopes to narrow, lifetime).

use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::Deserialize;

use super::approval::{
    expiry_choices, step_up_refusal, ApprovalChoice, ExpiryChoice, ScopeChoice, StepUpPrompt,
};
use crate::error::AppError;
use crate::routes::extract::{page_form, ClientIp, FormPage, MaybeViewer, SignedInForm, Viewer};
use crate::routes::pages::{render, see_other, Nav, PageError};
use crate::service::authorize::{
    self, AuthorizeRequest, ConsentInput, ConsentOutcome, RequestError,
};
use crate::service::device;
use crate::service::AppState;

/// The request parameters carried from the query into the form.
const CARRIED: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "token_name",
    "dpop_jkt",
];

#[derive(Template)]
#[template(path = "oauth/consent.html")]
struct ConsentPage {
    nav: Option<Nav>,
    csrf_token: String,
    email: String,
    client_id: String,
    token_name: String,
    redirect_host: String,
    browser_ip: String,
    hidden: Vec<(String, String)>,
    /// The names of the request's parameters, for the passkey script.
    carried: String,
    scopes: Vec<ScopeChoice>,
    expiry: Vec<ExpiryChoice>,
    error: Option<String>,
    step_up: Option<StepUpPrompt>,
}

impl ConsentPage {
    /// The page for `request`, with the step-up approving it needs, if any.
    async fn build(
        viewer: &Viewer,
        request: &AuthorizeRequest,
        params: &HashMap<String, String>,
        ip: &ClientIp,
        state: &AppState,
        chosen: Option<&ApprovalChoice>,
        error: Option<String>,
    ) -> Result<Self, PageError> {
        let chosen_scopes = chosen.map(ApprovalChoice::scopes);
        let chosen_days = chosen.and_then(ApprovalChoice::kept_expiry);
        let reasons = request.step_up_reasons(
            &state.config,
            viewer.user.role,
            ip.0,
            chosen_scopes,
            chosen_days,
        );
        let redirect = &request.redirect_uri;
        Ok(Self {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token.clone(),
            email: viewer.user.email.clone(),
            client_id: request.client_id.clone(),
            token_name: request.token_name.as_str().to_owned(),
            redirect_host: format!(
                "{}:{}",
                redirect.host_str().unwrap_or_default(),
                redirect.port().unwrap_or_default()
            ),
            browser_ip: ip.to_string(),
            hidden: CARRIED
                .iter()
                .filter_map(|k| params.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                .collect(),
            carried: CARRIED.join(" "),
            scopes: ScopeChoice::list(request.scopes.as_slice(), chosen_scopes, &state.config),
            expiry: expiry_choices(
                device::max_lifetime_days(&state.config, viewer.user.role),
                chosen_days,
            ),
            error,
            step_up: StepUpPrompt::for_reasons(state, viewer, &reasons).await?,
        })
    }
}

/// The consent page, whose form may lead to the client's loopback redirect:
/// browsers apply `form-action` to a form's redirects too, so the page's
/// policy names that one origin besides this site.
fn render_consent(
    status: StatusCode,
    page: &ConsentPage,
    request: &AuthorizeRequest,
) -> Result<HttpResponse, PageError> {
    let mut response = render(status, page)?;
    let origin = request.redirect_uri.origin().ascii_serialization();
    let policy = format!(
        "default-src 'self'; frame-ancestors 'none'; form-action 'self' {origin}; base-uri 'none'; object-src 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

/// The parameters of a query string, each at most once (RFC 6749 §3.1).
fn single_params(query: &str) -> Result<HashMap<String, String>, AppError> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(AppError::bad_request(
                "invalid_request",
                format!("The parameter `{k}` is given more than once."),
            ));
        }
    }
    Ok(params)
}

/// A request the client must hear about at its redirect URI, or a page.
fn refused(error: RequestError) -> Result<HttpResponse, PageError> {
    match error {
        RequestError::Page(e) => Err(PageError(e)),
        RequestError::Redirect(url) => Ok(see_other(url.as_str())),
    }
}

/// `GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&code_challenge=…`.
#[tracing::instrument(name = "authorize_form", skip_all)]
pub async fn consent_form(
    req: HttpRequest,
    viewer: MaybeViewer,
    ip: ClientIp,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let params = single_params(req.query_string())?;
    let request = match authorize::parse_request(&state.config, &params, chrono::Utc::now()) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let back_to = format!("/oauth/authorize?{}", req.query_string());
    let viewer = viewer.require(&back_to)?;
    let page = ConsentPage::build(&viewer, &request, &params, &ip, &state, None, None).await?;
    render_consent(StatusCode::OK, &page, &request)
}

/// The consent form: the carried request and the approval's choices.
#[derive(Debug, Deserialize)]
#[serde(from = "Vec<(String, String)>")]
pub struct ConsentForm {
    params: HashMap<String, String>,
    choice: ApprovalChoice,
    csrf_token: String,
}

impl From<Vec<(String, String)>> for ConsentForm {
    fn from(pairs: Vec<(String, String)>) -> Self {
        let mut params = HashMap::new();
        let (choice, csrf_token) = ApprovalChoice::read(pairs, |key, value| {
            if CARRIED.contains(&key.as_str()) {
                params.insert(key, value);
            }
        });
        Self {
            params,
            choice,
            csrf_token,
        }
    }
}

page_form!(ConsentForm);

impl FormPage for ConsentForm {
    /// The consent page of the same request.
    fn back_to(&self) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                CARRIED
                    .iter()
                    .filter_map(|k| self.params.get(*k).map(|v| (*k, v))),
            )
            .finish();
        format!("/oauth/authorize?{query}")
    }
}

/// `POST /oauth/authorize`: Approve or Deny; the browser goes back to the
/// client with a code or an error. An approval that `APPROVAL_STEP_UP` asks
/// a step-up for needs the proof the page's script earned with a passkey,
/// or the password typed into the form, as on `/cli/login`.
#[tracing::instrument(name = "authorize", skip_all)]
pub async fn consent(
    ip: ClientIp,
    state: web::Data<AppState>,
    posted: SignedInForm<ConsentForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { mut form, viewer } = posted;
    let request = match authorize::parse_request(&state.config, &form.params, chrono::Utc::now()) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let outcome = match decision(&state, &viewer, &request, &mut form, ip.0).await {
        Ok(input) => authorize::consent(&state, input).await,
        Err(e) => Err(e),
    };
    let (status, error) = match outcome {
        Ok(ConsentOutcome::Redirect(url)) => return Ok(see_other(url.as_str())),
        Ok(ConsentOutcome::StepUpRequired { problem }) => step_up_refusal(problem),
        Ok(ConsentOutcome::Refused(refusal)) => {
            let e = refusal.error();
            (e.status_code(), e.public_message())
        }
        // A choice the server refused: the form again, with the reason.
        Err(e @ (AppError::BadRequest { .. } | AppError::Forbidden { .. })) => {
            (e.status_code(), e.public_message())
        }
        Err(e) => return Err(PageError(e)),
    };
    let page = ConsentPage::build(
        &viewer,
        &request,
        &form.params,
        &ip,
        &state,
        Some(&form.choice),
        Some(error),
    )
    .await?;
    render_consent(status, &page, &request)
}

/// What the person decided, as the service takes it.
async fn decision(
    state: &AppState,
    viewer: &Viewer,
    request: &AuthorizeRequest,
    form: &mut ConsentForm,
    ip: IpAddr,
) -> Result<ConsentInput, AppError> {
    let subject = async { Ok(request.step_up_subject()) };
    form.choice
        .decided(state, viewer, request.clone(), subject, ip)
        .await
}
