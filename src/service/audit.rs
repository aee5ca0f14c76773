//! Reading the audit trail: new-token alerts for their owner, and the
//! security event log for admins.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db;
use crate::service::AppState;

use crate::db::models::security_events::{self, SecurityEvent};
use crate::error::AppError;
use crate::service::events::EventKind;

/// Most new-token alerts shown at once.
const MAX_ALERTS: i64 = 50;

/// A token minted for the account that its owner has not dismissed yet.
#[derive(Debug, Clone)]
pub struct NewTokenAlert {
    /// Event id (dismissing goes up to the newest id shown).
    pub id: i64,
    /// The token's name.
    pub token_name: String,
    /// When it was minted.
    pub created_at: DateTime<Utc>,
    /// The IP of the browser that approved it.
    pub ip: Option<String>,
    /// The IP the login request came from: what a phished person needs to
    /// see, since it is not theirs.
    pub requested_from: Option<String>,
    /// The requesting client's user agent (as it reported itself), or its
    /// OAuth client id.
    pub client: Option<String>,
}

/// Unseen `cli_token_created` events of `user_id`, newest first.
pub async fn new_token_alerts(
    state: &AppState,
    user_id: Uuid,
) -> Result<Vec<NewTokenAlert>, AppError> {
    let kind = EventKind::CliTokenCreated.as_str();
    let rows = db::run(&state.pool, move |conn| {
        Ok(security_events::unseen_for_user(
            conn, user_id, kind, MAX_ALERTS,
        )?)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|e| {
            let text = |key: &str| {
                e.details
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            NewTokenAlert {
                id: e.id,
                token_name: text("token_name").unwrap_or_else(|| "(unnamed)".to_owned()),
                created_at: e.created_at,
                requested_from: text("requested_from"),
                client: text("user_agent").or_else(|| text("client_id")),
                ip: e.ip,
            }
        })
        .collect())
}

/// Dismisses the account's new-token alerts up to event id `up_to`;
/// returns how many.
pub async fn dismiss_new_token_alerts(
    state: &AppState,
    user_id: Uuid,
    up_to: i64,
) -> Result<usize, AppError> {
    let kind = EventKind::CliTokenCreated.as_str();
    db::run(&state.pool, move |conn| {
        Ok(security_events::mark_seen(
            conn,
            user_id,
            kind,
            up_to,
            Utc::now(),
        )?)
    })
    .await
}

/// A logged event with the email of the account it concerns.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// The row.
    pub event: SecurityEvent,
    /// Its account's email, if it names one.
    pub user_email: Option<String>,
}

/// `limit` events from `offset`, newest first.
pub async fn list_events(
    state: &AppState,
    offset: i64,
    limit: i64,
) -> Result<Vec<LoggedEvent>, AppError> {
    let rows = db::run(&state.pool, move |conn| {
        Ok(security_events::list_with_email(conn, offset, limit)?)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(event, user_email)| LoggedEvent { event, user_email })
        .collect())
}

/// Deletes audit events past `SECURITY_EVENT_RETENTION_DAYS`, so the table
/// cannot grow without bound; returns how many.
pub async fn purge_events(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    let Some(days) = state.config.security_event_retention_days else {
        return Ok(0);
    };
    let Some(before) =
        chrono::Duration::try_days(i64::from(days)).and_then(|keep| now.checked_sub_signed(keep))
    else {
        return Ok(0);
    };
    db::run(&state.pool, move |conn| {
        Ok(security_events::delete_before(conn, before)?)
    })
    .await
}
