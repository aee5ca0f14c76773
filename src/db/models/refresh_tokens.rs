//! `refresh_tokens`: rotating refresh tokens, grouped in families.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::refresh_tokens as rt;

/// A refresh-token row (never the plaintext).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = rt, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    /// Row id.
    pub id: Uuid,
    /// Family: every token rotated from one login.
    pub family_id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Client it was issued to.
    pub client_id: String,
    /// Scopes of the grant.
    pub scopes: Vec<String>,
    /// SHA-256 of the plaintext.
    pub token_digest: Vec<u8>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expires if not used by then.
    pub idle_expires_at: DateTime<Utc>,
    /// The family ends then, used or not.
    pub family_expires_at: DateTime<Utc>,
    /// Set when rotated.
    pub used_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The successor pair, sealed, for retries within the grace window.
    pub successor_sealed: Option<Vec<u8>>,
    /// Thumbprint of the DPoP key it is bound to (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
}

/// A refresh token to insert.
#[derive(Insertable)]
#[diesel(table_name = rt)]
pub struct NewRefreshToken<'a> {
    /// Fresh id.
    pub id: Uuid,
    /// Family.
    pub family_id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Client.
    pub client_id: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// SHA-256 of the plaintext.
    pub token_digest: &'a [u8],
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Idle expiry.
    pub idle_expires_at: DateTime<Utc>,
    /// Family expiry.
    pub family_expires_at: DateTime<Utc>,
    /// Thumbprint of the DPoP key it is bound to.
    pub dpop_jkt: Option<&'a str>,
}

/// Inserts a refresh token.
pub fn insert(conn: &mut PgConnection, new: &NewRefreshToken<'_>) -> QueryResult<()> {
    super::insert_into(conn, rt::table, new)
}

/// The refresh token with this digest, locked until the transaction ends
/// (two concurrent refreshes with one token: one rotates, the other is reuse).
pub fn lock_by_digest(conn: &mut PgConnection, digest: &[u8]) -> QueryResult<Option<RefreshToken>> {
    rt::table
        .filter(rt::token_digest.eq(digest))
        .select(RefreshToken::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// The refresh token with this digest.
pub fn find_by_digest(conn: &mut PgConnection, digest: &[u8]) -> QueryResult<Option<RefreshToken>> {
    rt::table
        .filter(rt::token_digest.eq(digest))
        .select(RefreshToken::as_select())
        .first(conn)
        .optional()
}

/// Marks a token rotated, keeping its successor pair sealed for retries
/// (when there is a grace window).
pub fn mark_used(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    successor_sealed: Option<&[u8]>,
) -> QueryResult<usize> {
    diesel::update(
        rt::table
            .filter(rt::id.eq(id))
            .filter(rt::used_at.is_null()),
    )
    .set((
        rt::used_at.eq(now),
        rt::successor_sealed.eq(successor_sealed),
    ))
    .execute(conn)
}

/// Wipes sealed successors of tokens spent before `cutoff` (past the grace
/// window).
pub fn wipe_successors_before(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        rt::table
            .filter(rt::successor_sealed.is_not_null())
            .filter(rt::used_at.lt(cutoff)),
    )
    .set(rt::successor_sealed.eq(None::<Vec<u8>>))
    .execute(conn)
}

/// Live refresh families of an account (each counts as one token toward the
/// per-user limit). Rotation spends one token and adds one, so a live family
/// has exactly one unspent, unrevoked token.
pub fn count_live_families(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    rt::table
        .filter(rt::user_id.eq(user_id))
        .filter(rt::used_at.is_null())
        .filter(rt::revoked_at.is_null())
        .filter(rt::idle_expires_at.gt(now))
        .filter(rt::family_expires_at.gt(now))
        .count()
        .get_result(conn)
}
