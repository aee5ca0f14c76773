//! `users`: accounts that sign in through the browser.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::users;
use crate::domain::Role;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// An account row. `Debug` leaves out the password hash.
#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    /// Account id.
    pub id: Uuid,
    /// Sign-in email, as typed at creation.
    pub email: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Set when the account may no longer sign in or use tokens.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Whether an admin or an OpenID provider vouched for the email (not
    /// so for an account made at sign-up); single sign-on links only
    /// accounts whose email is verified.
    pub email_verified: bool,
}

crate::crypto::redacted_debug!(User { id, email, role });

impl User {
    /// Whether the account has the admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A new account.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Fresh id.
    pub id: Uuid,
    /// Email as typed.
    pub email: &'a str,
    /// bcrypt hash.
    pub password_hash: &'a str,
    /// What the account may do.
    pub role: Role,
    /// Whether an admin or an OpenID provider vouched for the email.
    pub email_verified: bool,
}

/// Inserts an account; a duplicate email (any case) is a unique violation.
pub fn insert(conn: &mut PgConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
}

/// The account with this email, compared case-insensitively (uses the
/// `lower(email)` unique index).
pub fn find_by_email(conn: &mut PgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::email).eq(lower(email)))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The account with this id.
pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Locks the account row until the transaction ends, serialising token
/// minting per account so the per-user limit holds under concurrency.
pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<User> {
    users::table
        .find(id)
        .select(User::as_select())
        .for_update()
        .first(conn)
}

/// Accounts whose email contains `search` (any case; all when empty), by
/// email, one page of `limit` after `offset`.
pub fn search(
    conn: &mut PgConnection,
    search: &str,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<User>> {
    let pattern = format!(
        "%{}%",
        search
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    users::table
        .filter(lower(users::email).like(pattern))
        .order(users::email.asc())
        .limit(limit)
        .offset(offset)
        .select(User::as_select())
        .load(conn)
}

/// Locks every enabled admin but `except` and counts them: the guard that
/// keeps one enabled admin, safe against two admins demoting each other at
/// once.
pub fn lock_other_enabled_admins(conn: &mut PgConnection, except: Uuid) -> QueryResult<usize> {
    users::table
        .filter(users::role.eq(Role::Admin))
        .filter(users::disabled_at.is_null())
        .filter(users::id.ne(except))
        .select(users::id)
        .for_update()
        .load::<Uuid>(conn)
        .map(|ids| ids.len())
}

/// A change to one account.
#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct Changes<'a> {
    /// New password hash.
    pub password_hash: Option<&'a str>,
    /// New role.
    pub role: Option<Role>,
    /// `Some(Some(t))` disables, `Some(None)` enables.
    pub disabled_at: Option<Option<DateTime<Utc>>>,
}

/// Applies `changes` to the account.
pub fn update(conn: &mut PgConnection, id: Uuid, changes: &Changes<'_>) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(conn)
}
