//! `/admin/*`: every account's tokens and the security event log (admins only).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use envshield_api_types::TokenStatus;
use serde::Deserialize;

use crate::error::AppError;
use crate::routes::extract::{admin_only, page_form, Admin, ClientIp, SignedInForm};
use crate::routes::pages::tokens::{parse_token_id, RevokePage, TokenRow};
use crate::routes::pages::{render, see_other, utc, Nav, PageError, Pager};
use crate::service::audit::{self, LoggedEvent};
use crate::service::tokens::{self, Reach};
use crate::service::AppState;

/// Rows per page of the admin lists.
const PAGE_SIZE: u32 = 50;
const TOKENS_PATH: &str = "/admin/tokens";
const EVENTS_PATH: &str = "/admin/events";

/// `GET /admin`: on to the token list.
pub async fn admin_home() -> HttpResponse {
    see_other(TOKENS_PATH)
}

/// The admin token list's filters, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct TokenFilterQuery {
    #[serde(default)]
    email: String,
    #[serde(default)]
    status: String,
    page: Option<String>,
    revoked: Option<String>,
}

impl TokenFilterQuery {
    fn status(&self) -> Result<Option<TokenStatus>, PageError> {
        match self.status.trim() {
            "" => Ok(None),
            "active" => Ok(Some(TokenStatus::Active)),
            "expired" => Ok(Some(TokenStatus::Expired)),
            "revoked" => Ok(Some(TokenStatus::Revoked)),
            _ => Err(PageError(AppError::bad_request(
                "invalid_status",
                "Filter by status active, expired or revoked, or leave it empty.",
            ))),
        }
    }

    fn email(&self) -> &str {
        self.email.trim()
    }

    /// The filters (not the page) as a query string, empty when unfiltered.
    fn query_string(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if !self.email().is_empty() {
            q.append_pair("email", self.email());
        }
        if !self.status.trim().is_empty() {
            q.append_pair("status", self.status.trim());
        }
        q.finish()
    }

    /// `path` with the filters and room for one more parameter.
    fn with_filters(&self, path: &str) -> String {
        match self.query_string().as_str() {
            "" => format!("{path}?"),
            q => format!("{path}?{q}&"),
        }
    }

    /// The filters as hidden form fields.
    fn hidden_fields(&self) -> Vec<(String, String)> {
        [("email", self.email()), ("status", self.status.trim())]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// One option of the status filter.
struct StatusChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct AdminTokensPage {
    nav: Option<Nav>,
    tokens: Vec<TokenRow>,
    email: String,
    statuses: Vec<StatusChoice>,
    filtered: bool,
    filter_query: String,
    pager: Pager,
    notice: Option<&'static str>,
}

impl AdminTokensPage {
    /// Link to a token's revoke confirmation, keeping the filters.
    fn revoke_href(&self, token: &TokenRow) -> String {
        match self.filter_query.as_str() {
            "" => format!("{TOKENS_PATH}/{}/revoke", token.id()),
            q => format!("{TOKENS_PATH}/{}/revoke?{q}", token.id()),
        }
    }
}

/// `GET /admin/tokens?email=&status=&page=`.
pub async fn list_tokens(
    Admin(viewer): Admin,
    state: web::Data<AppState>,
    query: web::Query<TokenFilterQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let status = query.status()?;
    let mut pager = Pager::parse(
        query.page.as_deref(),
        PAGE_SIZE,
        query.with_filters(TOKENS_PATH),
    )?;
    let email = query.email().to_owned();
    let (offset, fetch) = (pager.offset(), pager.fetch());
    let rows = tokens::list_all_tokens(&state, email.clone(), status, offset, fetch).await?;
    let tokens = pager.take(rows).into_iter().map(TokenRow).collect();
    let statuses = [
        ("", "Any status"),
        ("active", "Active"),
        ("expired", "Expired"),
        ("revoked", "Revoked"),
    ]
    .into_iter()
    .map(|(value, label)| StatusChoice {
        value,
        label,
        selected: query.status.trim() == value,
    })
    .collect();
    render(
        StatusCode::OK,
        &AdminTokensPage {
            nav: viewer.nav(),
            tokens,
            filtered: !email.is_empty() || status.is_some(),
            email,
            statuses,
            filter_query: query.query_string(),
            pager,
            notice: query
                .revoked
                .is_some()
                .then_some("Token revoked. Anything still using it is now refused."),
        },
    )
}

/// `GET /admin/tokens/{id}/revoke`: are you sure?
pub async fn revoke_form(
    Admin(viewer): Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TokenFilterQuery>,
) -> Result<HttpResponse, PageError> {
    let token_id = parse_token_id(&path)?;
    let token =
        tokens::find_token(&state, viewer.user.clone(), token_id, Reach::AnyIfAdmin).await?;
    let back = match query.query_string().as_str() {
        "" => TOKENS_PATH.to_owned(),
        q => format!("{TOKENS_PATH}?{q}"),
    };
    render(
        StatusCode::OK,
        &RevokePage {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            token: TokenRow(token),
            action: format!("{TOKENS_PATH}/{token_id}/revoke"),
            back,
            hidden: query.hidden_fields(),
            show_owner: true,
        },
    )
}

/// Fields of the admin revoke form: the CSRF token and the list filters to
/// return to.
#[derive(Debug, Deserialize)]
pub struct AdminRevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    status: String,
}

page_form!(AdminRevokeForm, back_to = TOKENS_PATH);

/// `POST /admin/tokens/{id}/revoke`: revokes any account's token.
#[tracing::instrument(name = "admin_revoke_token", skip_all)]
pub async fn revoke(
    ip: ClientIp,
    state: web::Data<AppState>,
    path: web::Path<String>,
    posted: SignedInForm<AdminRevokeForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    let actor = admin_only(viewer)?.user;
    let token_id = parse_token_id(&path)?;
    tokens::revoke_token(&state, actor, token_id, Reach::AnyIfAdmin, ip.to_string()).await?;
    let back = TokenFilterQuery {
        email: form.email,
        status: form.status,
        ..TokenFilterQuery::default()
    };
    Ok(see_other(&format!(
        "{}revoked=1",
        back.with_filters(TOKENS_PATH)
    )))
}

/// A logged event as the table shows it.
struct EventRow(LoggedEvent);

impl EventRow {
    fn time(&self) -> String {
        utc(self.0.event.created_at)
    }

    fn kind(&self) -> &str {
        &self.0.event.kind
    }

    fn severity(&self) -> &str {
        &self.0.event.severity
    }

    fn email(&self) -> &str {
        self.0.user_email.as_deref().unwrap_or("—")
    }

    fn ip(&self) -> &str {
        self.0.event.ip.as_deref().unwrap_or("—")
    }

    /// The details as compact JSON, or a dash when there are none.
    fn details(&self) -> String {
        let d = &self.0.event.details;
        if d.is_null() || d.as_object().is_some_and(|o| o.is_empty()) {
            "—".to_owned()
        } else {
            d.to_string()
        }
    }
}

#[derive(Template)]
#[template(path = "admin/events.html")]
struct AdminEventsPage {
    nav: Option<Nav>,
    events: Vec<EventRow>,
    pager: Pager,
}

/// Query of the event log.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    page: Option<String>,
}

/// `GET /admin/events?page=N`: the security event log, newest first.
pub async fn list_events(
    Admin(viewer): Admin,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, PageError> {
    let mut pager = Pager::parse(query.page.as_deref(), PAGE_SIZE, format!("{EVENTS_PATH}?"))?;
    let (offset, fetch) = (pager.offset(), pager.fetch());
    let rows = audit::list_events(&state, offset, fetch).await?;
    let events = pager.take(rows).into_iter().map(EventRow).collect();
    render(
        StatusCode::OK,
        &AdminEventsPage {
            nav: viewer.nav(),
            events,
            pager,
        },
    )
}
