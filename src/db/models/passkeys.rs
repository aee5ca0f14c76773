//! `passkeys`: the WebAuthn credentials registered to accounts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::passkeys;

/// A registered passkey, read and written whole.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = passkeys, check_for_backend(diesel::pg::Pg))]
pub struct PasskeyRow {
    /// Row id (in the settings page's links).
    pub id: Uuid,
    /// The account it signs in.
    pub user_id: Uuid,
    /// What the person called it.
    pub name: String,
    /// The WebAuthn credential id, raw.
    pub credential_id: Vec<u8>,
    /// webauthn-rs's `Passkey`, serialised.
    pub passkey: serde_json::Value,
    /// The highest signature counter seen.
    pub counter: i64,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Latest sign-in or step-up with it.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Records a new passkey; a credential id registered before (to any
/// account) is a unique violation.
pub fn insert(conn: &mut PgConnection, row: &PasskeyRow) -> QueryResult<()> {
    super::insert_into(conn, passkeys::table, row)
}

/// An account's passkeys, oldest first.
pub fn for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)
}

/// How many passkeys an account has.
pub fn count_for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<i64> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

/// Which of `user_ids` have at least one passkey.
pub fn users_with_passkeys(conn: &mut PgConnection, user_ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    passkeys::table
        .filter(passkeys::user_id.eq_any(user_ids))
        .select(passkeys::user_id)
        .distinct()
        .load(conn)
}

/// The passkey with this credential id, locked until the transaction ends
/// (two assertions with one passkey update its counter one after the other).
pub fn lock_by_credential_id(
    conn: &mut PgConnection,
    credential_id: &[u8],
) -> QueryResult<Option<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(PasskeyRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Notes a verified assertion: the updated credential, its counter, the time.
pub fn record_use(
    conn: &mut PgConnection,
    id: Uuid,
    passkey: &serde_json::Value,
    counter: i64,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(passkeys::table.find(id))
        .set((
            passkeys::passkey.eq(passkey),
            passkeys::counter.eq(counter),
            passkeys::last_used_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Renames one of an account's passkeys; how many rows changed (0: not theirs).
pub fn rename(conn: &mut PgConnection, id: Uuid, user_id: Uuid, name: &str) -> QueryResult<usize> {
    diesel::update(
        passkeys::table
            .filter(passkeys::id.eq(id))
            .filter(passkeys::user_id.eq(user_id)),
    )
    .set(passkeys::name.eq(name))
    .execute(conn)
}

/// Deletes one of an account's passkeys, returning it (`None`: not theirs).
pub fn delete(conn: &mut PgConnection, id: Uuid, user_id: Uuid) -> QueryResult<Option<PasskeyRow>> {
    diesel::delete(
        passkeys::table
            .filter(passkeys::id.eq(id))
            .filter(passkeys::user_id.eq(user_id)),
    )
    .returning(PasskeyRow::as_returning())
    .get_result(conn)
    .optional()
}

/// Deletes every passkey of an account, returning them.
pub fn delete_all_for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<PasskeyRow>> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id)))
        .returning(PasskeyRow::as_returning())
        .get_results(conn)
}
