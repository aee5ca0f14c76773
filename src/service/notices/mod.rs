//! Security notices outside the browser: a mail to the account and a signed
//! webhook, for new tokens, refresh-token reuse, password changes and new
//! passkeys.
//!
//! The notice is queued in `notice_outbox` in the transaction that records
//! its security event (see [`queue`], called by `events::record`), so a
//! change that is rolled back sends nothing and a request never waits for
//! a mail server. A worker started in `startup` ([`deliver`]) claims due
//! rows with `FOR UPDATE SKIP LOCKED` (several instances share the queue),
//! sends, and marks each sent or schedules a retry with exponential
//! backoff; after [`MAX_ATTEMPTS`] it gives up and keeps the row as failed.
//! It is woken right after a commit that queued something on this
//! instance, and looks again at least every [`IDLE`] otherwise.

pub mod mail;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::Notices;
use crate::db::models::notice_outbox::{self, Channels, Claimed, NewNotice, MAIL, WEBHOOK};
use crate::db::models::users;
use crate::db::{self, Db};
use crate::error::AppError;
use crate::service::events::{Event, EventKind};
use crate::service::AppState;

/// Attempts before a notice is given up on.
pub const MAX_ATTEMPTS: i32 = 8;
/// The wait before the first retry; it doubles with each attempt.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// The longest wait between two attempts.
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// How long a claimed notice is left to its worker before another may
/// take it (longer than any one send may last: a mail is a handful of SMTP
/// commands of at most 15 s each).
const LEASE: Duration = Duration::from_secs(300);
/// Notices claimed at once: one, so that the lease covers a single send.
/// Claimed together, the last of a batch would wait for the sends before
/// it, and behind a slow relay outlive its lease and go out twice.
const BATCH: i64 = 1;
/// The longest the worker sleeps without looking (for notices queued by
/// another instance or by the `users` command, and retries coming due).
pub const IDLE: Duration = Duration::from_secs(30);

/// The kinds of event that are told to the account's owner.
pub fn is_notice(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::CliTokenCreated
            | EventKind::RefreshTokenReused
            | EventKind::PasswordChanged
            | EventKind::PasswordReset
            | EventKind::PasskeyAdded
    )
}

/// The channels `notices` turns on; `None` when none is.
pub fn channels(notices: &Notices) -> Option<Arc<Channels>> {
    notices.enabled().then(|| {
        Arc::new(Channels {
            mail: notices.smtp.is_some(),
            webhook: notices.webhook.is_some(),
            wake: tokio::sync::Notify::new(),
        })
    })
}

/// What a notice tells, as queued and as posted to the webhook: never a
/// token, code or password (event details never hold one).
pub fn payload(event: &Event<'_>, email: &str, now: DateTime<Utc>) -> Value {
    json!({
        "id": Uuid::new_v4(),
        "kind": event.kind.as_str(),
        "severity": event.severity.as_str(),
        "time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "user": { "id": event.user_id, "email": email },
        "ip": event.ip,
        "token_id": event.token_id,
        "details": event.details,
    })
}

/// Queues the notices of `event` on the connection's channels, in its
/// transaction, and wakes the worker once that commits. Nothing when
/// notices are off, the kind is not told, or no account is concerned.
pub fn queue(conn: &mut Db<'_>, event: &Event<'_>) -> diesel::QueryResult<()> {
    if !is_notice(event.kind) {
        return Ok(());
    }
    let (Some(channels), Some(user_id)) = (conn.notices().cloned(), event.user_id) else {
        return Ok(());
    };
    let Some(user) = users::find(conn, user_id)? else {
        return Ok(());
    };
    let payload = payload(event, &user.email, Utc::now());
    let rows: Vec<NewNotice<'_>> = channels
        .names()
        .into_iter()
        .map(|channel| NewNotice {
            kind: event.kind.as_str(),
            channel,
            user_id: Some(user_id),
            recipient: (channel == MAIL).then_some(user.email.as_str()),
            payload: &payload,
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    notice_outbox::insert(conn, &rows)?;
    conn.after_commit(move || channels.wake.notify_one());
    Ok(())
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones.
pub fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(LONGEST_RETRY)
}

/// The senders of this instance.
pub struct Sender {
    mail: Option<mail::Mailer>,
    webhook: Option<webhook::Poster>,
    channels: Arc<Channels>,
    app_base: String,
}

impl Sender {
    /// Builds the senders the configuration turns on.
    pub fn new(config: &crate::config::Config, channels: Arc<Channels>) -> anyhow::Result<Self> {
        let notices = &config.notices;
        Ok(Self {
            mail: notices.smtp.as_ref().map(mail::Mailer::new).transpose()?,
            webhook: notices
                .webhook
                .as_ref()
                .map(webhook::Poster::new)
                .transpose()?,
            channels,
            app_base: config.app_base(),
        })
    }

    async fn send(&self, notice: &Claimed) -> Result<(), mail::SendError> {
        let off = || mail::SendError {
            message: format!("the {} channel is off on this instance", notice.channel),
            permanent: false,
        };
        match notice.channel.as_str() {
            MAIL => {
                let mailer = self.mail.as_ref().ok_or_else(off)?;
                let recipient = notice.recipient.as_deref().ok_or_else(|| mail::SendError {
                    message: "no recipient".to_owned(),
                    permanent: true,
                })?;
                mailer
                    .send(recipient, &mail::letter(&notice.payload, &self.app_base))
                    .await
            }
            WEBHOOK => {
                self.webhook
                    .as_ref()
                    .ok_or_else(off)?
                    .post(&notice.payload)
                    .await
            }
            other => Err(mail::SendError {
                message: format!("unknown channel {other}"),
                permanent: true,
            }),
        }
    }

    /// Sends every due notice; returns how long to sleep before the next
    /// falls due (at most [`IDLE`]).
    async fn deliver_due(&self, state: &AppState) -> Result<Duration, AppError> {
        let names = self.channels.names();
        loop {
            let now = Utc::now();
            let lease_until =
                now + chrono::Duration::from_std(LEASE).map_err(AppError::internal)?;
            let channels = names.clone();
            let claimed = db::run(&state.pool, move |conn| {
                Ok(notice_outbox::claim_due(
                    conn,
                    &channels,
                    now,
                    lease_until,
                    BATCH,
                )?)
            })
            .await?;
            let full = claimed.len() as i64 == BATCH;
            for notice in claimed {
                let result = self.send(&notice).await;
                settle(state, &notice, result).await?;
            }
            if !full {
                break;
            }
        }
        let channels = names.clone();
        let next = db::run(&state.pool, move |conn| {
            Ok(notice_outbox::next_due(conn, &channels)?)
        })
        .await?;
        Ok(match next {
            None => IDLE,
            Some(at) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE),
        })
    }
}

/// Records the outcome of one attempt, logs it and counts it.
async fn settle(
    state: &AppState,
    notice: &Claimed,
    result: Result<(), mail::SendError>,
) -> Result<(), AppError> {
    let channel: &'static str = if notice.channel == MAIL {
        MAIL
    } else {
        WEBHOOK
    };
    let id = notice.id;
    let now = Utc::now();
    match result {
        Ok(()) => {
            db::run(&state.pool, move |conn| {
                Ok(notice_outbox::mark_sent(conn, id, now)?)
            })
            .await?;
            crate::metrics::notice(channel, "sent");
            tracing::info!(notice_id = id, kind = %notice.kind, channel, attempt = notice.attempts, "security notice sent");
        }
        Err(e) => {
            let give_up = e.permanent || notice.attempts >= MAX_ATTEMPTS;
            let wait = backoff(notice.attempts);
            let retry_at = (!give_up)
                .then(|| chrono::Duration::from_std(wait).ok().map(|d| now + d))
                .flatten();
            let message = e.message.clone();
            db::run(&state.pool, move |conn| {
                Ok(notice_outbox::mark_failed_attempt(
                    conn, id, &message, retry_at, now,
                )?)
            })
            .await?;
            if retry_at.is_some() {
                crate::metrics::notice(channel, "retried");
                tracing::warn!(
                    notice_id = id,
                    kind = %notice.kind,
                    channel,
                    attempt = notice.attempts,
                    retry_in_secs = wait.as_secs(),
                    error = %e.message,
                    "security notice not sent; will retry"
                );
            } else {
                crate::metrics::notice(channel, "failed");
                tracing::error!(
                    notice_id = id,
                    kind = %notice.kind,
                    channel,
                    attempt = notice.attempts,
                    error = %e.message,
                    "security notice not sent; given up (kept in notice_outbox as failed)"
                );
            }
        }
    }
    Ok(())
}

/// Deletes notices sent more than `keep_sent` ago, and those given up on
/// before the audit retention (`SECURITY_EVENT_RETENTION_DAYS`); returns how
/// many.
pub async fn purge(
    state: &AppState,
    now: DateTime<Utc>,
    keep_sent: chrono::Duration,
) -> Result<usize, AppError> {
    let failed_before = state
        .config
        .security_event_retention_days
        .and_then(|days| chrono::Duration::try_days(i64::from(days)))
        .and_then(|keep| now.checked_sub_signed(keep));
    let sent_before = now - keep_sent;
    db::run(&state.pool, move |conn| {
        Ok(notice_outbox::purge(conn, sent_before, failed_before)?)
    })
    .await
}

/// The delivery worker: sends due notices, then sleeps until woken by a
/// commit that queued one, or until the next falls due (at most [`IDLE`]).
pub async fn deliver(state: web::Data<AppState>, sender: Sender) {
    if let Some(mail) = &sender.mail {
        tracing::info!(server = %mail.server, "security notices by mail");
    }
    if let Some(hook) = &sender.webhook {
        tracing::info!(host = %hook.host, "security notices by webhook");
    }
    loop {
        let wait = match sender.deliver_due(&state).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = ?e, "delivering security notices failed; will retry");
                IDLE
            }
        };
        tokio::select! {
            () = sender.channels.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::events::Severity;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(7), Duration::from_secs(1920));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
    }

    #[test]
    fn only_account_notices_are_told() {
        assert!(is_notice(EventKind::CliTokenCreated));
        assert!(is_notice(EventKind::RefreshTokenReused));
        assert!(is_notice(EventKind::PasswordChanged));
        assert!(is_notice(EventKind::PasswordReset));
        assert!(is_notice(EventKind::PasskeyAdded));
        assert!(!is_notice(EventKind::LoginFailed));
        assert!(!is_notice(EventKind::CliDeviceStart));
    }

    #[test]
    fn a_passkey_event_makes_a_payload_and_a_mail() {
        let user = Uuid::new_v4();
        let event = Event::new(EventKind::PasskeyAdded, Severity::Medium, Some("192.0.2.8"))
            .user(user)
            .details(json!({ "name": "Laptop Touch ID" }));
        let now = "2026-11-30T06:00:00Z".parse().unwrap();
        let p = payload(&event, "ada@example.com", now);
        assert_eq!(p["kind"], "passkey_added");
        assert_eq!(p["time"], "2026-11-30T06:00:00Z");
        assert_eq!(p["user"]["id"], json!(user));
        assert_eq!(p["user"]["email"], "ada@example.com");
        assert_eq!(p["ip"], "192.0.2.8");
        let l = mail::letter(&p, "https://auth.example.com");
        assert_eq!(l.subject, "A passkey was added to your EnvShield account");
        assert!(l.body.contains("Laptop Touch ID"), "{}", l.body);
        assert!(l.body.contains("192.0.2.8"), "{}", l.body);
    }
}
