//! `user_identities`: which upstream (provider, subject) signs in which account.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::user_identities;

/// A linked upstream identity.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = user_identities, check_for_backend(diesel::pg::Pg))]
pub struct UserIdentity {
    /// Row id.
    pub id: Uuid,
    /// The provider's id in `OIDC_PROVIDERS`.
    pub provider: String,
    /// The provider's `sub` for the person.
    pub subject: String,
    /// The account it signs in.
    pub user_id: Uuid,
    /// The verified email that made the link.
    pub email_at_link: String,
    /// When the link was made.
    pub created_at: DateTime<Utc>,
    /// The latest sign-in through it.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// The identity for this provider and subject, locked until the
/// transaction ends (two sign-ins of one person serialise here).
pub fn find_for_update(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> QueryResult<Option<UserIdentity>> {
    user_identities::table
        .filter(user_identities::provider.eq(provider))
        .filter(user_identities::subject.eq(subject))
        .select(UserIdentity::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Whether the provider and subject are linked to an account.
pub fn exists(conn: &mut PgConnection, provider: &str, subject: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        user_identities::table
            .filter(user_identities::provider.eq(provider))
            .filter(user_identities::subject.eq(subject)),
    ))
    .get_result(conn)
}

/// Records a new link; a second link of the same (provider, subject) is a
/// unique violation.
pub fn insert(conn: &mut PgConnection, identity: &UserIdentity) -> QueryResult<()> {
    super::insert_into(conn, user_identities::table, identity)
}

/// Notes a sign-in through the identity.
pub fn touch(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(user_identities::table.find(id))
        .set(user_identities::last_sign_in_at.eq(now))
        .execute(conn)
        .map(|_| ())
}

/// The identities linked to an account, oldest first.
pub fn for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<UserIdentity>> {
    user_identities::table
        .filter(user_identities::user_id.eq(user_id))
        .order(user_identities::created_at.asc())
        .select(UserIdentity::as_select())
        .load(conn)
}
