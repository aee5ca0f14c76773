//! The device login (RFC 8628) as one state machine, shared by the v1 JSON
//! API, the approval pages and the OAuth endpoints.
//!
//! - [`start`]: a client starts a login;
//! - [`poll`]: the client polls (from memory when it can), or waits;
//! - [`decide`]: a signed-in person looks the request up, approves or denies;
//! - [`pickup`]: the token leaves the server once; paste mode; cancel;
//! - [`policy`]: the rules that need no database (`DEVICE_LOGIN_POLICY`'s
//!   per-role rules among them).
//!
//! The step-up an approval may need is [`crate::service::step_up`].

mod decide;
mod pickup;
pub mod policy;
mod poll;
mod start;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

pub use decide::{
    decide, expired_request, find_request, lifetime_days, max_lifetime_days, record_policy_refusal,
    CompleteInput, CompleteOutcome, RequestView,
};
pub use pickup::{cancel_session, exchange_code, ExchangeOutcome, MAX_CONFIRMATION_FAILURES};
pub use poll::{counted_poll, poll, poll_and_wait, store_grown_intervals, PollOutcome, Poller};
pub use start::{start_session, write_starts, StartInput, StartJobs, StartQueue, Started};

use crate::db::{models::device_sessions, Db};
use crate::error::AppError;
use crate::rate_limit::Limit;
use crate::realtime::Realtime;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// Counts one look-up or decision of a user code by a signed-in account,
/// from whichever address: past `RATE_LIMIT_CODE_ENTRY_PER_ACCOUNT_PER_HOUR`
/// a 429, recorded (at most once a minute per client) as an audit event
/// naming the account.
pub async fn count_code_entry(
    state: &AppState,
    account: uuid::Uuid,
    ip: std::net::IpAddr,
) -> Result<(), AppError> {
    let Err(refused) = crate::service::limits::check_code_entry(state, account).await else {
        return Ok(());
    };
    let AppError::RateLimited { .. } = refused else {
        return Err(refused);
    };
    tracing::warn!("user-code entries by one account over the limit");
    if state.limiters.should_audit(Limit::Complete, ip) {
        crate::db::run(&state.pool, move |conn| {
            let ip = ip.to_string();
            let event = Event::new(EventKind::CliRateLimitExceeded, Severity::Medium, Some(&ip))
                .user(account)
                .details(serde_json::json!({ "endpoint": "code entry per account" }));
            Ok(events::record(conn, event)?)
        })
        .await?;
    }
    Err(refused)
}

/// Expires due sessions (wiping sealed tokens and revoking tokens nobody
/// collected) and deletes sessions that ended more than `keep` ago.
pub async fn purge(
    state: &AppState,
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<(usize, usize), AppError> {
    state
        .run(move |conn, cx| purge_due(conn, &cx.realtime, now, keep))
        .await
}

/// See [`purge`]; returns how many sessions expired and were deleted.
pub fn purge_due(
    conn: &mut Db<'_>,
    realtime: &Arc<Realtime>,
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<(usize, usize), AppError> {
    let (expired, revoked) = device_sessions::expire_due(conn, now)?;
    crate::service::tokens::announce(conn, realtime, &revoked);
    let deleted = device_sessions::delete_ended_before(conn, now - keep)?;
    Ok((expired, deleted))
}
