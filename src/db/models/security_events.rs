//! `security_events`: the audit trail.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::security_events;

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
    diesel::insert_into(security_events::table)
        .values(event)
        .execute(conn)
        .map(|_| ())
}

/// Events of a kind, newest first (for tests and the admin log).
pub fn list_recent(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<SecurityEvent>> {
    security_events::table
        .select(SecurityEvent::as_select())
        .order(security_events::id.desc())
        .limit(limit)
        .load(conn)
}
