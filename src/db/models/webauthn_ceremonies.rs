//! `webauthn_ceremonies`: a WebAuthn challenge waiting for its answer, with
//! the server-side state that verifies it. Taken once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::webauthn_ceremonies;
use crate::domain::CeremonyPurpose;

/// A ceremony in progress.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = webauthn_ceremonies, check_for_backend(diesel::pg::Pg))]
pub struct Ceremony {
    /// Its id, kept in the browser's encrypted session cookie.
    pub id: Uuid,
    /// Registration, sign-in or step-up.
    pub purpose: CeremonyPurpose,
    /// The signed-in account (none for a sign-in).
    pub user_id: Option<Uuid>,
    /// The browser session that started it (none for a sign-in).
    pub user_session_id: Option<Uuid>,
    /// Step-up: the CLI login request it approves, or
    pub device_session_id: Option<Uuid>,
    /// Registration: the new passkey's name.
    pub passkey_name: Option<String>,
    /// webauthn-rs's registration or authentication state.
    pub state: serde_json::Value,
    /// When the challenge was made.
    pub created_at: DateTime<Utc>,
    /// After this the answer is refused.
    pub expires_at: DateTime<Utc>,
    /// Step-up: the `/oauth/authorize` request it approves (a digest).
    pub authorization_request: Option<Vec<u8>>,
}

/// Records a ceremony.
pub fn insert(conn: &mut PgConnection, ceremony: &Ceremony) -> QueryResult<()> {
    super::insert_into(conn, webauthn_ceremonies::table, ceremony)
}

/// Deletes the ceremony with this id and purpose and returns it, expired or
/// not (the caller checks): whatever the answer, the challenge is spent.
pub fn take(
    conn: &mut PgConnection,
    id: Uuid,
    purpose: CeremonyPurpose,
) -> QueryResult<Option<Ceremony>> {
    diesel::delete(
        webauthn_ceremonies::table
            .filter(webauthn_ceremonies::id.eq(id))
            .filter(webauthn_ceremonies::purpose.eq(purpose)),
    )
    .returning(Ceremony::as_returning())
    .get_result(conn)
    .optional()
}

/// Deletes ceremonies that expired before `now`.
pub fn delete_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.lt(now)))
        .execute(conn)
}
