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
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

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
