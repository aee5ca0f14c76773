//! DPoP proofs already accepted (`dpop_proofs`): the `jti` replay check
//! shared by every instance.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::dpop_proofs as dp;

/// Records a proof; `false` when it was already recorded (a replay).
pub fn remember(
    conn: &mut PgConnection,
    replay_id: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::insert_into(dp::table)
        .values((dp::replay_id.eq(replay_id), dp::expires_at.eq(expires_at)))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n == 1)
}

/// [`remember`] as a transaction of its own that commits without waiting
/// for a WAL flush: a crash of PostgreSQL may forget proofs of its last
/// moments, and those are refused anyway once their `iat` is five minutes old.
pub fn remember_alone(
    conn: &mut PgConnection,
    replay_id: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(conn)?;
        remember(conn, replay_id, expires_at)
    })
}

/// Deletes proofs too old to be accepted again; returns how many.
pub fn purge(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(dp::table.filter(dp::expires_at.lt(now))).execute(conn)
}
