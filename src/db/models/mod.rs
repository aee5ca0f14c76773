//! One module per table: row structs and the SQL that reads and writes them.

pub mod api_tokens;
pub mod authorization_codes;
pub mod device_sessions;
pub mod dpop_proofs;
pub mod notice_outbox;
pub mod notifications;
pub mod passkeys;
pub mod rate_limits;
pub mod refresh_tokens;
pub mod revocation;
pub mod security_events;
pub mod step_up_proofs;
pub mod user_identities;
pub mod user_sessions;
pub mod users;
pub mod webauthn_ceremonies;

use diesel::query_builder::InsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::{Insertable, PgConnection, QueryResult, RunQueryDsl, Table};

/// Inserts `values` (one row or several) into `table`.
fn insert_into<T, V>(conn: &mut PgConnection, table: T, values: V) -> QueryResult<()>
where
    T: Table,
    V: Insertable<T>,
    InsertStatement<T, V::Values>: ExecuteDsl<PgConnection>,
{
    diesel::insert_into(table)
        .values(values)
        .execute(conn)
        .map(|_| ())
}
