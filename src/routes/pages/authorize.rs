//! `/oauth/authorize`: the consent page of the authorization-code grant
//! (RFC 6749 §4.1, PKCE, loopback redirects), with the same choices as the
//! CLI approval page (scopes to narrow, lifetime).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::cli::{expiry_choices, ExpiryChoice, ScopeChoice};
use crate::error::AppError;
use crate::routes::extract::{page_form, ClientIp, FormPage, MaybeViewer, SignedInForm, Viewer};
use crate::routes::pages::{render, see_other, Nav, PageError};
use crate::service::authorize::{self, AuthorizeRequest, ConsentInput, RequestError};
use crate::state::AppState;

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
    scopes: Vec<ScopeChoice>,
    expiry: Vec<ExpiryChoice>,
    error: Option<String>,
}

impl ConsentPage {
    fn new(
        viewer: &Viewer,
        request: &AuthorizeRequest,
        params: &HashMap<String, String>,
        ip: &ClientIp,
        state: &AppState,
        chosen: Option<&ConsentForm>,
        error: Option<String>,
    ) -> Self {
        let redirect = &request.redirect_uri;
        Self {
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
            scopes: ScopeChoice::list(
                request.scopes.as_slice(),
                chosen.map(|c| c.scopes.as_slice()),
                &state.config,
            ),
            expiry: expiry_choices(
                state.config.api_token_ttl_days,
                chosen.and_then(|c| c.expires_in_days().ok().flatten()),
            ),
            error,
        }
    }
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
    let page = ConsentPage::new(&viewer, &request, &params, &ip, &state, None, None);
    render(StatusCode::OK, &page)
}

/// The consent form: the carried request, the decision, the narrowed
/// scopes (repeated) and the lifetime.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "Vec<(String, String)>")]
pub struct ConsentForm {
    params: HashMap<String, String>,
    decision: Option<String>,
    scopes: Vec<String>,
    expires_in_days: Option<String>,
    csrf_token: String,
}

impl From<Vec<(String, String)>> for ConsentForm {
    fn from(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "decision" => form.decision = Some(value),
                "scopes" => form.scopes.push(value),
                "expires_in_days" => form.expires_in_days = Some(value),
                "csrf_token" => form.csrf_token = value,
                k if CARRIED.contains(&k) => {
                    form.params.insert(key, value);
                }
                _ => {}
            }
        }
        form
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

impl ConsentForm {
    fn expires_in_days(&self) -> Result<Option<u32>, AppError> {
        match self.expires_in_days.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(d) => d.parse::<u32>().map(Some).map_err(|_| {
                AppError::bad_request("invalid_expiry", "Pick an expiry from the list.")
            }),
        }
    }

    fn approve(&self) -> Result<bool, AppError> {
        match self.decision.as_deref() {
            Some("approve") if self.scopes.is_empty() => Err(AppError::bad_request(
                "invalid_scope",
                "Keep at least one scope ticked, or choose Deny.",
            )),
            Some("approve") => Ok(true),
            Some("deny") => Ok(false),
            _ => Err(AppError::bad_request(
                "invalid_decision",
                "Choose Approve or Deny.",
            )),
        }
    }
}

/// `POST /oauth/authorize`: Approve or Deny; the browser goes back to the
/// client with a code or an error.
#[tracing::instrument(name = "authorize", skip_all)]
pub async fn consent(
    ip: ClientIp,
    state: web::Data<AppState>,
    posted: SignedInForm<ConsentForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    let request = match authorize::parse_request(&state.config, &form.params, chrono::Utc::now()) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let choice = form.approve().and_then(|approve| {
        let days = if approve {
            form.expires_in_days()?
        } else {
            None
        };
        Ok((approve, days))
    });
    let outcome = match choice {
        Ok((approve, expires_in_days)) => {
            let input = ConsentInput {
                request: request.clone(),
                approve,
                scopes: approve.then(|| form.scopes.clone()),
                expires_in_days,
                approver: viewer.user.clone(),
                client_ip: ip.to_string(),
            };
            authorize::consent(&state, input).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(url) => Ok(see_other(url.as_str())),
        // A choice the server refused: the form again, with the reason.
        Err(e @ (AppError::BadRequest { .. } | AppError::Forbidden { .. })) => {
            let error = Some(e.public_message());
            let page = ConsentPage::new(
                &viewer,
                &request,
                &form.params,
                &ip,
                &state,
                Some(&form),
                error,
            );
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => Err(PageError(e)),
    }
}
