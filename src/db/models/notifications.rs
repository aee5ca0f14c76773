//! `NOTIFY` channels: how a committed change reaches every instance's
//! listener (see `realtime`).

use diesel::{PgConnection, RunQueryDsl};

/// The channel of device-session changes (payload: device-code hash, hex).
pub const DEVICE_CHANNEL: &str = "envshield_device";
/// The channel of token and account changes, sent by database triggers
/// (migration 000004; payload: token digest, hex, or `account`).
pub const TOKENS_CHANNEL: &str = "envshield_tokens";

/// Sends the change notification for a device session; PostgreSQL delivers
/// it at commit, and drops it on rollback.
pub fn device_session_changed(
    conn: &mut PgConnection,
    device_code_hash: &[u8],
) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(DEVICE_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(hex::encode(device_code_hash))
        .execute(conn)
        .map(|_| ())
}
