//! `notice_outbox`: security notices waiting to be sent (mail, webhook).
//!
//! Rows are written in the transaction that records the security event, and
//! claimed by the delivery worker with `FOR UPDATE SKIP LOCKED`, so several
//! instances share the queue without sending a notice twice at once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz};
use uuid::Uuid;

use crate::db::schema::notice_outbox;

/// Where notices go on this instance, and who to wake once one is queued.
/// Handed to every unit of work through the pool (see [`crate::db::Db`]).
#[derive(Debug, Default)]
pub struct Channels {
    /// `SMTP_URL` is set: mail the account.
    pub mail: bool,
    /// `SECURITY_WEBHOOK_URL` is set: post to the webhook.
    pub webhook: bool,
    /// Woken after a commit that queued notices, so they leave at once.
    pub wake: tokio::sync::Notify,
}

impl Channels {
    /// The channel names that are on.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.mail {
            names.push(MAIL);
        }
        if self.webhook {
            names.push(WEBHOOK);
        }
        names
    }
}

/// The mail channel's name.
pub const MAIL: &str = "mail";
/// The webhook channel's name.
pub const WEBHOOK: &str = "webhook";

/// A notice to queue.
#[derive(Insertable, Debug)]
#[diesel(table_name = notice_outbox)]
pub struct NewNotice<'a> {
    /// The security event's kind.
    pub kind: &'a str,
    /// `mail` or `webhook`.
    pub channel: &'a str,
    /// Account concerned.
    pub user_id: Option<Uuid>,
    /// The mail recipient.
    pub recipient: Option<&'a str>,
    /// What to tell (never a secret).
    pub payload: &'a serde_json::Value,
}

/// A notice claimed for sending.
#[derive(QueryableByName, Debug, Clone)]
pub struct Claimed {
    /// Row id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The security event's kind.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// `mail` or `webhook`.
    #[diesel(sql_type = Text)]
    pub channel: String,
    /// The mail recipient.
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub recipient: Option<String>,
    /// What to tell.
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub payload: serde_json::Value,
    /// This attempt's number (1 for the first).
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// Queues notices.
pub fn insert(conn: &mut PgConnection, notices: &[NewNotice<'_>]) -> QueryResult<()> {
    super::insert_into(conn, notice_outbox::table, notices)
}

/// Claims at most `limit` due notices of `channels`: counts the attempt and
/// moves the due time to `lease_until`, so another worker leaves them alone
/// while this one sends, and takes them again if this one dies.
pub fn claim_due(
    conn: &mut PgConnection,
    channels: &[&str],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "UPDATE notice_outbox SET attempts = attempts + 1, next_attempt_at = $3 \
         WHERE id IN (SELECT id FROM notice_outbox \
                      WHERE sent_at IS NULL AND failed_at IS NULL \
                        AND next_attempt_at <= $2 AND channel = ANY($1) \
                      ORDER BY next_attempt_at LIMIT $4 \
                      FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, channel, recipient, payload, attempts",
    )
    .bind::<Array<Text>, _>(channels)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(lease_until)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// Marks a notice sent.
pub fn mark_sent(conn: &mut PgConnection, id: i64, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(notice_outbox::table.find(id))
        .set((
            notice_outbox::sent_at.eq(now),
            notice_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

/// Records a failed attempt, to be tried again at `retry_at`, or given up
/// on (`retry_at` is `None`).
pub fn mark_failed_attempt(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let target = notice_outbox::table.find(id);
    match retry_at {
        Some(at) => diesel::update(target)
            .set((
                notice_outbox::last_error.eq(error),
                notice_outbox::next_attempt_at.eq(at),
            ))
            .execute(conn),
        None => diesel::update(target)
            .set((
                notice_outbox::last_error.eq(error),
                notice_outbox::failed_at.eq(now),
            ))
            .execute(conn),
    }
}

/// When the next notice of `channels` falls due, if any is waiting.
pub fn next_due(conn: &mut PgConnection, channels: &[&str]) -> QueryResult<Option<DateTime<Utc>>> {
    notice_outbox::table
        .filter(notice_outbox::sent_at.is_null())
        .filter(notice_outbox::failed_at.is_null())
        .filter(notice_outbox::channel.eq_any(channels))
        .select(diesel::dsl::min(notice_outbox::next_attempt_at))
        .first(conn)
}

/// Deletes notices sent before `sent_before`, and those given up on before
/// `failed_before`; returns how many.
pub fn purge(
    conn: &mut PgConnection,
    sent_before: DateTime<Utc>,
    failed_before: Option<DateTime<Utc>>,
) -> QueryResult<usize> {
    let mut deleted =
        diesel::delete(notice_outbox::table.filter(notice_outbox::sent_at.lt(sent_before)))
            .execute(conn)?;
    if let Some(before) = failed_before {
        deleted += diesel::delete(notice_outbox::table.filter(notice_outbox::failed_at.lt(before)))
            .execute(conn)?;
    }
    Ok(deleted)
}
