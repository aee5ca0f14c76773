//! `user_sessions`: browser sessions, held by the server so they can be
//! ended. The cookie carries a random secret; only its digest is stored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::models::users::User;
use crate::db::schema::{user_sessions, users};

/// A browser session row, read and written whole.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = user_sessions, check_for_backend(diesel::pg::Pg))]
pub struct UserSession {
    /// Session id (shown on the sessions page; not the secret).
    pub id: Uuid,
    /// The signed-in account.
    pub user_id: Uuid,
    /// SHA-256 of the cookie's secret.
    pub secret_digest: Vec<u8>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last request, to the minute.
    pub last_seen_at: DateTime<Utc>,
    /// The sign-in lapses then, however active.
    pub expires_at: DateTime<Utc>,
    /// Set when signed out or ended from elsewhere.
    pub ended_at: Option<DateTime<Utc>>,
    /// Address it signed in from.
    pub ip: Option<String>,
    /// Browser's `User-Agent`, as reported.
    pub user_agent: Option<String>,
}

/// Records a new session.
pub fn insert(conn: &mut PgConnection, session: &UserSession) -> QueryResult<()> {
    super::insert_into(conn, user_sessions::table, session)
}

/// The live session with this secret digest and its enabled account.
pub fn find_live(
    conn: &mut PgConnection,
    digest: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<(UserSession, User)>> {
    user_sessions::table
        .inner_join(users::table)
        .filter(user_sessions::secret_digest.eq(digest))
        .filter(user_sessions::ended_at.is_null())
        .filter(user_sessions::expires_at.gt(now))
        .filter(users::disabled_at.is_null())
        .select((UserSession::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Notes activity, at most once a minute per session.
pub fn touch(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(user_sessions::table.find(id))
        .filter(user_sessions::last_seen_at.lt(now - chrono::Duration::minutes(1)))
        .set(user_sessions::last_seen_at.eq(now))
        .execute(conn)
        .map(|_| ())
}

/// An account's live sessions, newest first.
pub fn list_live(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Vec<UserSession>> {
    user_sessions::table
        .filter(user_sessions::user_id.eq(user_id))
        .filter(user_sessions::ended_at.is_null())
        .filter(user_sessions::expires_at.gt(now))
        .order(user_sessions::created_at.desc())
        .select(UserSession::as_select())
        .load(conn)
}

/// Which of an account's live sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Ending {
    /// This one.
    One(Uuid),
    /// Every one but this.
    AllBut(Uuid),
    /// Every one.
    All,
}

/// Ends the chosen live sessions of `user_id`; how many ended.
pub fn end(
    conn: &mut PgConnection,
    user_id: Uuid,
    which: Ending,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let live = user_sessions::table
        .filter(user_sessions::user_id.eq(user_id))
        .filter(user_sessions::ended_at.is_null());
    let set = user_sessions::ended_at.eq(now);
    match which {
        Ending::One(id) => diesel::update(live.filter(user_sessions::id.eq(id)))
            .set(set)
            .execute(conn),
        Ending::AllBut(id) => diesel::update(live.filter(user_sessions::id.ne(id)))
            .set(set)
            .execute(conn),
        Ending::All => diesel::update(live).set(set).execute(conn),
    }
}

/// Deletes sessions that ended or lapsed before `cutoff`.
pub fn delete_ended_before(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(
        user_sessions::table.filter(
            user_sessions::expires_at
                .lt(cutoff)
                .or(user_sessions::ended_at.lt(cutoff)),
        ),
    )
    .execute(conn)
}
