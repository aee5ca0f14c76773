//! `/settings/tokens`: your tokens, revoking one, and the new-token alerts.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use envshield_api_types::{TokenStatus, TokenSummary};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::AppError;
use crate::routes::extract::{csrf_only_form, page_form, ClientIp, SignedInForm, Viewer};
use crate::routes::pages::{render, see_other, utc, utc_or, Nav, PageError};
use crate::service::audit::{self, NewTokenAlert};
use crate::service::tokens::{self, Reach};
use crate::service::AppState;

const LIST_PATH: &str = "/settings/tokens";

/// A token as the lists show it.
pub struct TokenRow(pub TokenSummary);

impl TokenRow {
    /// Token id, for links.
    pub fn id(&self) -> String {
        self.0.id.to_string()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Prefix and last four characters.
    pub fn hint(&self) -> &str {
        &self.0.hint
    }

    /// Bound to a DPoP key held by the client that picked it up.
    pub fn bound(&self) -> bool {
        self.0.dpop_bound
    }

    /// Owner's email.
    pub fn owner(&self) -> &str {
        &self.0.user_email
    }

    /// Scopes, comma-separated.
    pub fn scopes(&self) -> String {
        self.0.scopes.join(", ")
    }

    /// Mint time.
    pub fn created(&self) -> String {
        utc(self.0.created_at)
    }

    /// Last use, or "never".
    pub fn last_used(&self) -> String {
        utc_or(self.0.last_used_at, "never")
    }

    /// Expiry, or "never".
    pub fn expires(&self) -> String {
        utc_or(self.0.expires_at, "never")
    }

    /// `active`, `expired` or `revoked` (also the badge's CSS modifier).
    pub fn status(&self) -> &'static str {
        match self.0.status {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
        }
    }

    /// Revocation time, if revoked.
    pub fn revoked(&self) -> Option<String> {
        self.0.revoked_at.map(utc)
    }

    /// Whether revoking still changes anything.
    pub fn revocable(&self) -> bool {
        self.0.status != TokenStatus::Revoked
    }
}

/// A new-token alert as the banner shows it.
pub struct AlertRow(NewTokenAlert);

impl AlertRow {
    /// The token's name.
    pub fn name(&self) -> &str {
        &self.0.token_name
    }

    /// When it was minted.
    pub fn when(&self) -> String {
        utc(self.0.created_at)
    }

    /// The approving browser's IP.
    pub fn ip(&self) -> &str {
        self.0.ip.as_deref().unwrap_or("an unknown address")
    }

    /// Where the login request came from.
    pub fn requested_from(&self) -> &str {
        self.0
            .requested_from
            .as_deref()
            .unwrap_or("an unknown address")
    }

    /// The requesting client, as it described itself.
    pub fn client(&self) -> &str {
        self.0.client.as_deref().unwrap_or("an unnamed client")
    }
}

#[derive(Template)]
#[template(path = "tokens/list.html")]
struct TokensPage {
    nav: Option<Nav>,
    csrf_token: String,
    tokens: Vec<TokenRow>,
    alerts: Vec<AlertRow>,
    notice: Option<&'static str>,
}

impl TokensPage {
    /// Dismissing covers the alerts shown, not one that arrives meanwhile.
    fn alerts_up_to(&self) -> i64 {
        self.alerts.iter().map(|a| a.0.id).max().unwrap_or(0)
    }
}

/// Query of the token list.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    revoked: Option<String>,
}

/// `GET /settings/tokens`.
pub async fn list_tokens(
    viewer: Viewer,
    state: web::Data<AppState>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let user_id = viewer.user.id;
    let list = tokens::list_tokens(&state, Some(user_id), None).await?;
    let alerts = audit::new_token_alerts(&state, user_id).await?;
    render(
        StatusCode::OK,
        &TokensPage {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            tokens: list.into_iter().map(TokenRow).collect(),
            alerts: alerts.into_iter().map(AlertRow).collect(),
            notice: query
                .revoked
                .is_some()
                .then_some("Token revoked. Anything still using it is now refused."),
        },
    )
}

/// The confirmation step before revoking, for owners and admins alike.
#[derive(Template)]
#[template(path = "tokens/revoke.html")]
pub struct RevokePage {
    /// Navigation.
    pub nav: Option<Nav>,
    /// For the form.
    pub csrf_token: String,
    /// The token.
    pub token: TokenRow,
    /// Where the form posts.
    pub action: String,
    /// Where "Cancel" goes.
    pub back: String,
    /// Extra hidden fields carried through (an admin's list filters).
    pub hidden: Vec<(String, String)>,
    /// Whether to name the owner (admin view).
    pub show_owner: bool,
}

/// A path segment that must be a token id; anything else is "not found".
pub fn parse_token_id(raw: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw).map_err(|_| PageError(AppError::NotFound("The token".to_owned())))
}

/// `GET /settings/tokens/{id}/revoke`: are you sure?
pub async fn revoke_form(
    viewer: Viewer,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let token_id = parse_token_id(&path)?;
    let token = tokens::find_token(&state, viewer.user.clone(), token_id, Reach::Own).await?;
    render(
        StatusCode::OK,
        &RevokePage {
            nav: viewer.nav(),
            csrf_token: viewer.csrf_token,
            action: format!("{LIST_PATH}/{token_id}/revoke"),
            back: LIST_PATH.to_owned(),
            token: TokenRow(token),
            hidden: Vec::new(),
            show_owner: false,
        },
    )
}

csrf_only_form!(
    /// A button on the token list.
    ListForm,
    back_to = LIST_PATH
);

/// `POST /settings/tokens/{id}/revoke`: your own token, even for an admin.
#[tracing::instrument(name = "revoke_own_token", skip_all)]
pub async fn revoke(
    ip: ClientIp,
    state: web::Data<AppState>,
    path: web::Path<String>,
    posted: SignedInForm<ListForm>,
) -> Result<HttpResponse, PageError> {
    let token_id = parse_token_id(&path)?;
    let user = posted.viewer.user;
    tokens::revoke_token(&state, user, token_id, Reach::Own, ip.to_string()).await?;
    Ok(see_other(&format!("{LIST_PATH}?revoked=1")))
}

/// Fields of the Dismiss form.
#[derive(Debug, Deserialize)]
pub struct DismissForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    up_to: String,
}

page_form!(DismissForm, back_to = LIST_PATH);

/// `POST /settings/tokens/alerts/dismiss`: hides the new-token banner.
pub async fn dismiss_alerts(
    state: web::Data<AppState>,
    posted: SignedInForm<DismissForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    let up_to = form.up_to.trim().parse::<i64>().map_err(|_| {
        PageError(AppError::bad_request(
            "invalid_form",
            "The form could not be read. Reload the page and try again.",
        ))
    })?;
    audit::dismiss_new_token_alerts(&state, viewer.user.id, up_to).await?;
    Ok(see_other(LIST_PATH))
}
