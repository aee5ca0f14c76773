//! `security_events`: the audit trail.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{security_events, users};

/// A recorded event.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = security_events, check_for_backend(diesel::pg::Pg))]
pub struct SecurityEvent {
    /// Sequence number.
    pub id: i64,
    /// What happened, e.g. `cli_token_created`.
    pub kind: String,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Account concerned.
    pub user_id: Option<Uuid>,
    /// Token concerned.
    pub token_id: Option<Uuid>,
    /// Client IP.
    pub ip: Option<String>,
    /// Extra facts (never secrets).
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When the account owner dismissed it.
    pub seen_at: Option<DateTime<Utc>>,
}

/// An event to record.
#[derive(Insertable, Debug)]
#[diesel(table_name = security_events)]
pub struct NewSecurityEvent<'a> {
    /// What happened.
    pub kind: &'a str,
    /// `low`, `medium` or `high`.
    pub severity: &'a str,
    /// Account concerned.
    pub user_id: Option<Uuid>,
    /// Token concerned.
    pub token_id: Option<Uuid>,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Extra facts (never secrets).
    pub details: serde_json::Value,
}

/// Records an event.
pub fn insert(conn: &mut PgConnection, event: &NewSecurityEvent<'_>) -> QueryResult<()> {
    super::insert_into(conn, security_events::table, event)
}

/// Unseen events of one kind for one account, newest first, at most `limit`
/// (served by the partial index `security_events_unseen_idx`).
pub fn unseen_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: &str,
    limit: i64,
) -> QueryResult<Vec<SecurityEvent>> {
    security_events::table
        .filter(security_events::user_id.eq(user_id))
        .filter(security_events::kind.eq(kind))
        .filter(security_events::seen_at.is_null())
        .select(SecurityEvent::as_select())
        .order(security_events::id.desc())
        .limit(limit)
        .load(conn)
}

/// Marks the account's unseen events of one kind up to id `up_to` as seen,
/// so an alert that arrived after the page was shown stays unseen.
pub fn mark_seen(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: &str,
    up_to: i64,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        security_events::table
            .filter(security_events::user_id.eq(user_id))
            .filter(security_events::kind.eq(kind))
            .filter(security_events::seen_at.is_null())
            .filter(security_events::id.le(up_to)),
    )
    .set(security_events::seen_at.eq(now))
    .execute(conn)
}

/// A slice of the log, newest first, with the account's email when there is one.
pub fn list_with_email(
    conn: &mut PgConnection,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<(SecurityEvent, Option<String>)>> {
    security_events::table
        .left_join(users::table)
        .select((SecurityEvent::as_select(), users::email.nullable()))
        .order((
            security_events::created_at.desc(),
            security_events::id.desc(),
        ))
        .offset(offset)
        .limit(limit)
        .load(conn)
}

/// Deletes events recorded before `before`; returns how many.
pub fn delete_before(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(security_events::table.filter(security_events::created_at.lt(before)))
        .execute(conn)
}
