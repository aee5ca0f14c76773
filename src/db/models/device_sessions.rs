//! `cli_device_sessions`: one row per device login. Every state change is a
//! single conditional UPDATE on the expected status.

use chrono::{DateTime, Utc};
use diesel::dsl;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::models::revocation;
use crate::db::schema::cli_device_sessions as ds;
use crate::domain::{Confirmation, Flow, SessionStatus};

/// A device-session row. `Debug` leaves out the hashes and the sealed token.
#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = ds, check_for_backend(diesel::pg::Pg))]
pub struct DeviceSession {
    /// Row id (also the sealed token's associated data).
    pub id: Uuid,
    /// HMAC of the device code.
    pub device_code_hash: Vec<u8>,
    /// HMAC of the user code.
    pub user_code_hash: Vec<u8>,
    /// Where it stands (expiry not applied: see `expires_at`).
    pub status: SessionStatus,
    /// Approver or denier.
    pub user_id: Option<Uuid>,
    /// Token minted at approval.
    pub token_id: Option<Uuid>,
    /// Name for the token.
    pub token_name: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Sealed token while approved and not yet consumed.
    pub encrypted_token: Option<Vec<u8>>,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// End of life.
    pub expires_at: DateTime<Utc>,
    /// Approval time.
    pub approved_at: Option<DateTime<Utc>>,
    /// Pickup time.
    pub consumed_at: Option<DateTime<Utc>>,
    /// Requesting CLI's IP.
    pub client_ip: Option<String>,
    /// Requesting CLI's user agent.
    pub user_agent: Option<String>,
    /// Last poll.
    pub last_polled_at: Option<DateTime<Utc>>,
    /// Seconds the CLI must wait between polls.
    pub poll_interval_sec: i32,
    /// Registered client that started it.
    pub client_id: String,
    /// How the token is collected.
    pub confirmation: Confirmation,
    /// HMAC of the paste-back code, once approved in paste mode.
    pub confirmation_code_hash: Option<Vec<u8>>,
    /// Wrong paste-back codes so far.
    pub confirmation_failures: i32,
    /// Which API started it.
    pub flow: Flow,
    /// Thumbprint of the DPoP key that started it: the pickup must prove it.
    pub dpop_jkt: Option<String>,
    /// The CLI's X25519 public key: the token is handed out sealed to it.
    pub handoff_key: Option<String>,
}

crate::crypto::redacted_debug!(DeviceSession {
    id,
    status,
    expires_at
});

/// A session to insert.
#[derive(Insertable)]
#[diesel(table_name = ds)]
pub struct NewDeviceSession<'a> {
    /// Fresh id.
    pub id: Uuid,
    /// HMAC of the device code.
    pub device_code_hash: &'a [u8],
    /// HMAC of the user code.
    pub user_code_hash: &'a [u8],
    /// Token name.
    pub token_name: &'a str,
    /// Scopes asked for.
    pub scopes: &'a [String],
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// End of life.
    pub expires_at: DateTime<Utc>,
    /// Requesting IP.
    pub client_ip: Option<&'a str>,
    /// Requesting user agent.
    pub user_agent: Option<&'a str>,
    /// Initial poll interval.
    pub poll_interval_sec: i32,
    /// Registered client.
    pub client_id: &'a str,
    /// How the token will be collected.
    pub confirmation: Confirmation,
    /// Which API starts it.
    pub flow: Flow,
    /// Thumbprint of the DPoP key that proved possession at start.
    pub dpop_jkt: Option<&'a str>,
    /// The CLI's handoff key.
    pub handoff_key: Option<&'a str>,
}

/// Inserts sessions, each with its audit event (`event_kind`,
/// `event_severity`, the session's client IP, and its id and token name as
/// details), in one statement: one round trip and one commit for them all,
/// prepared once per pooled connection whatever their number. A session
/// whose codes or id are already taken is skipped, not an error; returns
/// the ids of those inserted, in no particular order.
pub fn insert_started(
    conn: &mut PgConnection,
    sessions: &[NewDeviceSession<'_>],
    event_kind: &str,
    event_severity: &str,
) -> QueryResult<Vec<Uuid>> {
    let scopes = sessions
        .iter()
        .map(|s| serde_json::to_string(s.scopes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    InsertStarted {
        ids: sessions.iter().map(|s| s.id).collect(),
        device_code_hashes: sessions.iter().map(|s| s.device_code_hash).collect(),
        user_code_hashes: sessions.iter().map(|s| s.user_code_hash).collect(),
        token_names: sessions.iter().map(|s| s.token_name).collect(),
        scopes,
        created_at: sessions.iter().map(|s| s.created_at).collect(),
        expires_at: sessions.iter().map(|s| s.expires_at).collect(),
        client_ips: sessions.iter().map(|s| s.client_ip).collect(),
        user_agents: sessions.iter().map(|s| s.user_agent).collect(),
        intervals: sessions.iter().map(|s| s.poll_interval_sec).collect(),
        client_ids: sessions.iter().map(|s| s.client_id).collect(),
        confirmations: sessions.iter().map(|s| s.confirmation.as_str()).collect(),
        flows: sessions.iter().map(|s| s.flow.as_str()).collect(),
        jkts: sessions.iter().map(|s| s.dpop_jkt).collect(),
        handoff_keys: sessions.iter().map(|s| s.handoff_key).collect(),
        event_kind,
        event_severity,
    }
    .load(conn)
}

/// The statement of [`insert_started`]: every column as one array, so its
/// text is the same for any number of sessions, and with a static query id
/// each connection prepares it once (Diesel never caches a `sql_query`).
/// Scopes travel as JSON, since a column of arrays of different lengths
/// cannot be one SQL array.
struct InsertStarted<'a> {
    ids: Vec<Uuid>,
    device_code_hashes: Vec<&'a [u8]>,
    user_code_hashes: Vec<&'a [u8]>,
    token_names: Vec<&'a str>,
    scopes: Vec<String>,
    created_at: Vec<DateTime<Utc>>,
    expires_at: Vec<DateTime<Utc>>,
    client_ips: Vec<Option<&'a str>>,
    user_agents: Vec<Option<&'a str>>,
    intervals: Vec<i32>,
    client_ids: Vec<&'a str>,
    confirmations: Vec<&'static str>,
    flows: Vec<&'static str>,
    jkts: Vec<Option<&'a str>>,
    handoff_keys: Vec<Option<&'a str>>,
    event_kind: &'a str,
    event_severity: &'a str,
}

/// The prepared-statement cache key of [`InsertStarted`].
struct InsertStartedId;

impl diesel::query_builder::QueryId for InsertStarted<'_> {
    type QueryId = InsertStartedId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for InsertStarted<'_> {
    type SqlType = diesel::sql_types::Uuid;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertStarted<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, Bytea, Int4, Nullable, Text, Timestamptz, Uuid};
        out.push_sql(
            "WITH s AS (INSERT INTO cli_device_sessions \
             (id, device_code_hash, user_code_hash, token_name, scopes, created_at, \
              expires_at, client_ip, user_agent, poll_interval_sec, client_id, \
              confirmation, flow, dpop_jkt, handoff_key) \
             SELECT r.id, r.dch, r.uch, r.name, \
                    ARRAY(SELECT e.v FROM jsonb_array_elements_text(r.scopes::jsonb) \
                          WITH ORDINALITY AS e (v, n) ORDER BY e.n), \
                    r.created_at, r.expires_at, r.ip, r.ua, r.secs, r.client, r.conf, r.flow, r.jkt, r.hk \
             FROM unnest(",
        );
        out.push_bind_param::<Array<Uuid>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bytea>, _>(&self.device_code_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bytea>, _>(&self.user_code_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.token_names)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.scopes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&self.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_ips)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.user_agents)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Int4>, _>(&self.intervals)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.client_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.confirmations)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.flows)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.jkts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.handoff_keys)?;
        out.push_sql(
            ") AS r (id, dch, uch, name, scopes, created_at, expires_at, ip, ua, secs, \
                     client, conf, flow, jkt, hk) \
             ON CONFLICT DO NOTHING \
             RETURNING id, client_ip, token_name), \
             e AS (INSERT INTO security_events (kind, severity, ip, details) \
             SELECT ",
        );
        out.push_bind_param::<Text, _>(&self.event_kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.event_severity)?;
        out.push_sql(
            ", s.client_ip, jsonb_build_object('session_id', s.id, 'token_name', s.token_name) \
             FROM s) \
             SELECT id FROM s",
        );
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for InsertStarted<'_> {}

/// The session with this device-code hash (one unique-index lookup).
pub fn find_by_device_hash(
    conn: &mut PgConnection,
    hash: &[u8],
) -> QueryResult<Option<DeviceSession>> {
    by_device_hash(conn, hash, false)
}

/// The session with this device-code hash, locked until the transaction ends.
pub fn lock_by_device_hash(
    conn: &mut PgConnection,
    hash: &[u8],
) -> QueryResult<Option<DeviceSession>> {
    by_device_hash(conn, hash, true)
}

/// The session with this device-code hash, `FOR UPDATE` when `lock`.
fn by_device_hash(
    conn: &mut PgConnection,
    hash: &[u8],
    lock: bool,
) -> QueryResult<Option<DeviceSession>> {
    let query = ds::table
        .filter(ds::device_code_hash.eq(hash))
        .select(DeviceSession::as_select());
    if lock {
        query.for_update().first(conn)
    } else {
        query.first(conn)
    }
    .optional()
}

/// The session with this user-code hash, whatever its state.
pub fn find_by_user_hash(
    conn: &mut PgConnection,
    hash: &[u8],
) -> QueryResult<Option<DeviceSession>> {
    ds::table
        .filter(ds::user_code_hash.eq(hash))
        .select(DeviceSession::as_select())
        .first(conn)
        .optional()
}

/// The live (pending or approved, unexpired) session with this user-code
/// hash, locked until the transaction ends so concurrent approvals queue.
pub fn lock_live_by_user_hash(
    conn: &mut PgConnection,
    hash: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<DeviceSession>> {
    ds::table
        .filter(ds::user_code_hash.eq(hash))
        .filter(ds::status.eq_any([SessionStatus::Pending, SessionStatus::Approved]))
        .filter(ds::expires_at.gt(now))
        .select(DeviceSession::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Stores grown poll intervals (after `slow_down`), `(session id, seconds,
/// when it grew)` each, in one statement, so every instance keeps them.
/// Never lowers an interval; sessions no longer pending are left alone.
///
/// Pacing is advisory (losing the last change on a crash is harmless), so
/// it commits without waiting for a WAL flush.
pub fn raise_intervals(
    conn: &mut PgConnection,
    grown: &[(Uuid, i32, DateTime<Utc>)],
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Int4, Text, Timestamptz};
    let ids: Vec<Uuid> = grown.iter().map(|g| g.0).collect();
    let secs: Vec<i32> = grown.iter().map(|g| g.1).collect();
    let at: Vec<DateTime<Utc>> = grown.iter().map(|g| g.2).collect();
    conn.transaction(|conn| {
        diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(conn)?;
        diesel::sql_query(
            "UPDATE cli_device_sessions s \
                SET poll_interval_sec = GREATEST(s.poll_interval_sec, g.secs), \
                    last_polled_at = g.at \
               FROM unnest($1, $2, $3) AS g (id, secs, at) \
              WHERE s.id = g.id AND s.status = $4",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<Array<Int4>, _>(secs)
        .bind::<Array<Timestamptz>, _>(at)
        .bind::<Text, _>(SessionStatus::Pending)
        .execute(conn)
    })
}

/// APPROVED → CONSUMED, wiping the sealed token, returning the row as it was
/// consumed (with the sealed token). Only one caller can ever win.
pub fn consume(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    confirmation: Confirmation,
) -> QueryResult<Option<(Vec<u8>, Uuid)>> {
    // UPDATE..RETURNING returns the new row, whose sealed token is already
    // NULL; a CTE reads the old value in the same statement.
    #[derive(QueryableByName)]
    struct Consumed {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        encrypted_token: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        token_id: Uuid,
    }
    let row: Option<Consumed> = diesel::sql_query(
        "WITH old AS ( \
             SELECT id, encrypted_token, token_id FROM cli_device_sessions \
             WHERE id = $1 AND status = $4 AND expires_at > $2 \
               AND encrypted_token IS NOT NULL AND token_id IS NOT NULL \
               AND confirmation = $3 \
             FOR UPDATE \
         ) \
         UPDATE cli_device_sessions s \
            SET status = $5, encrypted_token = NULL, consumed_at = $2 \
           FROM old WHERE s.id = old.id \
         RETURNING old.encrypted_token, old.token_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Text, _>(confirmation)
    .bind::<diesel::sql_types::Text, _>(SessionStatus::Approved)
    .bind::<diesel::sql_types::Text, _>(SessionStatus::Consumed)
    .get_result(conn)
    .optional()?;
    Ok(row.map(|r| (r.encrypted_token, r.token_id)))
}

/// The session `id` while it is still PENDING: what a decision updates.
fn while_pending(
    id: Uuid,
) -> dsl::Filter<dsl::FindBy<ds::table, ds::id, Uuid>, dsl::Eq<ds::status, SessionStatus>> {
    ds::table
        .filter(ds::id.eq(id))
        .filter(ds::status.eq(SessionStatus::Pending))
}

/// What an approval stores.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    /// The approver.
    pub user_id: Uuid,
    /// The minted token.
    pub token_id: Uuid,
    /// The token, sealed to the row.
    pub sealed: &'a [u8],
    /// How it is collected (`risk` is decided by now: `poll` or `paste`).
    pub confirmation: Confirmation,
    /// Paste mode: the keyed hash of the code shown in the browser.
    pub confirmation_code_hash: Option<&'a [u8]>,
}

/// PENDING → APPROVED with the minted token sealed in the row.
pub fn approve(
    conn: &mut PgConnection,
    id: Uuid,
    approval: &Approval<'_>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(while_pending(id))
        .set((
            ds::status.eq(SessionStatus::Approved),
            ds::confirmation.eq(approval.confirmation),
            ds::user_id.eq(approval.user_id),
            ds::token_id.eq(approval.token_id),
            ds::encrypted_token.eq(approval.sealed),
            ds::approved_at.eq(now),
            ds::confirmation_code_hash.eq(approval.confirmation_code_hash),
        ))
        .execute(conn)
}

/// Counts one wrong paste-back code; returns the new count.
pub fn add_confirmation_failure(conn: &mut PgConnection, id: Uuid) -> QueryResult<i32> {
    diesel::update(ds::table.filter(ds::id.eq(id)))
        .set(ds::confirmation_failures.eq(ds::confirmation_failures + 1))
        .returning(ds::confirmation_failures)
        .get_result(conn)
}

/// PENDING → DENIED.
pub fn deny(conn: &mut PgConnection, id: Uuid, user_id: Uuid) -> QueryResult<usize> {
    diesel::update(while_pending(id))
        .set((
            ds::status.eq(SessionStatus::Denied),
            ds::user_id.eq(user_id),
        ))
        .execute(conn)
}

/// PENDING | APPROVED → CANCELLED, wiping any sealed token; returns the row
/// as cancelled (its `token_id` names a minted token to revoke).
pub fn cancel(conn: &mut PgConnection, device_hash: &[u8]) -> QueryResult<Option<DeviceSession>> {
    diesel::update(
        ds::table
            .filter(ds::device_code_hash.eq(device_hash))
            .filter(ds::status.eq_any([SessionStatus::Pending, SessionStatus::Approved])),
    )
    .set((
        ds::status.eq(SessionStatus::Cancelled),
        ds::encrypted_token.eq(None::<Vec<u8>>),
    ))
    .returning(DeviceSession::as_returning())
    .get_result(conn)
    .optional()
}

/// Marks every live session past its expiry EXPIRED, wipes sealed tokens,
/// and revokes tokens minted for approvals nobody picked up (no one holds
/// their plaintext), with their refresh families. Returns how many sessions
/// expired, and what was revoked.
pub fn expire_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<(usize, revocation::Revoked)> {
    conn.transaction(|conn| {
        let orphaned: Vec<Uuid> = ds::table
            .filter(ds::status.eq(SessionStatus::Approved))
            .filter(ds::expires_at.le(now))
            .filter(ds::token_id.is_not_null())
            .select(ds::token_id.assume_not_null())
            .load(conn)?;
        let revoked = revocation::revoke(conn, revocation::Target::Tokens(&orphaned), now)?;
        let expired = diesel::update(
            ds::table
                .filter(ds::status.eq_any([SessionStatus::Pending, SessionStatus::Approved]))
                .filter(ds::expires_at.le(now)),
        )
        .set((
            ds::status.eq(SessionStatus::Expired),
            ds::encrypted_token.eq(None::<Vec<u8>>),
        ))
        .execute(conn)?;
        Ok((expired, revoked))
    })
}

/// Deletes sessions that ended before `before` (kept a while for audit).
pub fn delete_ended_before(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(ds::table.filter(ds::expires_at.lt(before))).execute(conn)
}

/// Notes that reuse of this session's consumed device code was recorded;
/// true only the first time, so it is recorded once per session.
pub fn first_reuse(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<bool> {
    diesel::update(ds::table.find(id).filter(ds::reuse_reported_at.is_null()))
        .set(ds::reuse_reported_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
}
