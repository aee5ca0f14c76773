//! `/admin/*`: every account's tokens and the security event log (admins only).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use envshield_api_types::TokenStatus;
use serde::Deserialize;

use crate::auth::session::TypedSession;
use crate::db;
use crate::error::AppError;
use crate::rate_limit::client_ip;
use crate::routes::pages::auth::see_other;
use crate::routes::pages::tokens::{parse_token_id, RevokePage, TokenRow};
use crate::routes::pages::{
    path_and_query, render, utc, viewer_or_sign_in, Nav, PageError, Pager, Viewer,
};
use crate::service::audit::{self, LoggedEvent};
use crate::service::tokens::{self, TokenFilter};
use crate::startup::AppState;

/// Rows per page of the admin lists.
const PAGE_SIZE: u32 = 50;
const TOKENS_PATH: &str = "/admin/tokens";
const EVENTS_PATH: &str = "/admin/events";

/// The signed-in admin; a 303 to sign in when signed out, 403 for anyone else.
async fn admin_or_sign_in(
    session: &TypedSession,
    state: &AppState,
    back_to: &str,
) -> Result<Result<Viewer, HttpResponse>, PageError> {
    let viewer = viewer_or_sign_in(session, state, back_to).await?;
    if let Ok(v) = &viewer {
        if !v.user.is_admin() {
            return Err(PageError(AppError::forbidden(
                "admin_only",
                "This page is for admins only. Ask an admin if you need something here.",
            )));
        }
    }
    Ok(viewer)
}

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
    req: HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
    query: web::Query<TokenFilterQuery>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let viewer = match admin_or_sign_in(&session, &state, &path_and_query(&req)).await? {
        Ok(v) => v,
        Err(sign_in) => return Ok(sign_in),
    };
    let query = query.into_inner();
    let status = query.status()?;
    let mut pager = Pager::parse(
        query.page.as_deref(),
        PAGE_SIZE,
        query.with_filters(TOKENS_PATH),
    )?;
    let email = query.email().to_owned();
    let (offset, fetch) = (pager.offset(), pager.fetch());
    let needle = email.clone();
    let rows = db::run(&state.pool, move |conn| {
        let filter = TokenFilter {
            email_contains: Some(needle.as_str()),
            status,
        };
        tokens::list_filtered(conn, filter, Utc::now(), offset, fetch)
    })
    .await?;
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
    req: HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TokenFilterQuery>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let viewer = match admin_or_sign_in(&session, &state, &path_and_query(&req)).await? {
        Ok(v) => v,
        Err(sign_in) => return Ok(sign_in),
    };
    let token_id = parse_token_id(&path)?;
    let user = viewer.user.clone();
    let token = db::run(&state.pool, move |conn| {
        tokens::find_visible(conn, &user, token_id, Utc::now())
    })
    .await?;
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

/// `POST /admin/tokens/{id}/revoke`: revokes any account's token.
#[tracing::instrument(name = "admin_revoke_token", skip_all)]
pub async fn revoke(
    req: HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<AdminRevokeForm>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let form = form.into_inner();
    session.verify_csrf(&form.csrf_token)?;
    let viewer = match admin_or_sign_in(&session, &state, TOKENS_PATH).await? {
        Ok(v) => v,
        Err(sign_in) => return Ok(sign_in),
    };
    let token_id = parse_token_id(&path)?;
    let ip = client_ip(&req, &state.config.trusted_proxies).to_string();
    let actor = viewer.user;
    db::run(&state.pool, move |conn| {
        tokens::revoke(conn, &actor, token_id, &ip, Utc::now())
    })
    .await?;
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
    req: HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let viewer = match admin_or_sign_in(&session, &state, &path_and_query(&req)).await? {
        Ok(v) => v,
        Err(sign_in) => return Ok(sign_in),
    };
    let mut pager = Pager::parse(query.page.as_deref(), PAGE_SIZE, format!("{EVENTS_PATH}?"))?;
    let (offset, fetch) = (pager.offset(), pager.fetch());
    let rows = db::run(&state.pool, move |conn| {
        audit::list_events(conn, offset, fetch)
    })
    .await?;
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
