//! `api_tokens`: minted tokens, stored as SHA-256 digests only.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::models::users::User;
use crate::db::schema::{api_tokens, users};
use crate::domain::TokenSource;

/// How stale `last_used_at` may get before a request refreshes it.
pub const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

/// A token row (never the plaintext).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg))]
pub struct ApiToken {
    /// Token id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Name given at creation.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// SHA-256 of the plaintext.
    pub token_digest: Vec<u8>,
    /// Prefix and last four characters.
    pub token_hint: String,
    /// Mint time.
    pub created_at: DateTime<Utc>,
    /// Last use, at minute granularity.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry; `None` never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// How it was minted.
    pub source: TokenSource,
    /// OAuth client it was issued to.
    pub client_id: Option<String>,
    /// Refresh family of a short-lived access token.
    pub family_id: Option<Uuid>,
    /// Thumbprint of the DPoP key it is bound to (`cnf.jkt`); `None` for a
    /// Bearer token.
    pub dpop_jkt: Option<String>,
}

/// A live token and its enabled owner: what a Bearer check establishes.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The account.
    pub user: User,
    /// The token used.
    pub token: ApiToken,
}

impl ApiToken {
    /// Whether the token works at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A token to insert.
#[derive(Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    /// Fresh id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Name.
    pub name: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// SHA-256 of the plaintext.
    pub token_digest: &'a [u8],
    /// Prefix and last four.
    pub token_hint: &'a str,
    /// Mint time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// How it was minted.
    pub source: TokenSource,
    /// OAuth client it is issued to.
    pub client_id: Option<&'a str>,
    /// Refresh family, for access tokens.
    pub family_id: Option<Uuid>,
    /// Thumbprint of the DPoP key it is bound to.
    pub dpop_jkt: Option<&'a str>,
}

/// Inserts a token.
pub fn insert(conn: &mut PgConnection, new: &NewApiToken<'_>) -> QueryResult<ApiToken> {
    diesel::insert_into(api_tokens::table)
        .values(new)
        .returning(ApiToken::as_returning())
        .get_result(conn)
}

/// The live token with this digest and its enabled owner: one lookup on the
/// unique digest index, with revocation and expiry filtered in SQL.
pub fn find_active_by_digest(
    conn: &mut PgConnection,
    digest: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<(ApiToken, User)>> {
    api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_digest.eq(digest))
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now)),
        )
        .filter(users::disabled_at.is_null())
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// The token with this digest and its owner, whatever its state (for
/// telling an expired token apart, introspection and revocation).
pub fn find_by_digest(
    conn: &mut PgConnection,
    digest: &[u8],
) -> QueryResult<Option<(ApiToken, User)>> {
    api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_digest.eq(digest))
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Sets `last_used_at` unless it is already fresher than the granularity,
/// so most authenticated requests write nothing.
pub fn touch_last_used(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        api_tokens::table.filter(api_tokens::id.eq(id)).filter(
            api_tokens::last_used_at
                .is_null()
                .or(api_tokens::last_used_at.lt(now - LAST_USED_GRANULARITY)),
        ),
    )
    .set(api_tokens::last_used_at.eq(now))
    .execute(conn)
}

/// Active long-lived tokens of an account (for the per-user limit; access
/// tokens of refresh families are counted by family instead).
pub fn count_active_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::family_id.is_null())
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)
}

/// Tokens with their owner's email, newest first; all accounts when `user_id` is `None`.
pub fn list(
    conn: &mut PgConnection,
    user_id: Option<Uuid>,
) -> QueryResult<Vec<(ApiToken, String)>> {
    let mut query = api_tokens::table
        .inner_join(users::table)
        .select((ApiToken::as_select(), users::email))
        .order(api_tokens::created_at.desc())
        .into_boxed();
    if let Some(uid) = user_id {
        query = query.filter(api_tokens::user_id.eq(uid));
    }
    query.load(conn)
}

/// The token with this id.
pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<ApiToken>> {
    api_tokens::table
        .find(id)
        .select(ApiToken::as_select())
        .first(conn)
        .optional()
}

/// Which tokens the admin list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenFilter<'a> {
    /// Only owners whose email contains this, ignoring case.
    pub email_contains: Option<&'a str>,
    /// Only tokens in this state.
    pub status: Option<envshield_api_types::TokenStatus>,
}

/// Escapes `LIKE` wildcards so the text matches literally.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Tokens of every account matching `filter`, newest first, with the owner's
/// email: `limit` rows from `offset`.
pub fn list_filtered(
    conn: &mut PgConnection,
    filter: TokenFilter<'_>,
    now: DateTime<Utc>,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<(ApiToken, String)>> {
    use envshield_api_types::TokenStatus;
    let mut query = api_tokens::table
        .inner_join(users::table)
        .select((ApiToken::as_select(), users::email))
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .into_boxed();
    if let Some(text) = filter.email_contains.filter(|t| !t.is_empty()) {
        query = query.filter(users::email.ilike(format!("%{}%", like_literal(text))));
    }
    query = match filter.status {
        None => query,
        Some(TokenStatus::Revoked) => query.filter(api_tokens::revoked_at.is_not_null()),
        Some(TokenStatus::Expired) => query
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.le(now)),
        Some(TokenStatus::Active) => query.filter(api_tokens::revoked_at.is_null()).filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now)),
        ),
    };
    query.offset(offset).limit(limit).load(conn)
}

/// The token with this id and its owner's email.
pub fn find_with_email(
    conn: &mut PgConnection,
    id: Uuid,
) -> QueryResult<Option<(ApiToken, String)>> {
    api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::id.eq(id))
        .select((ApiToken::as_select(), users::email))
        .first(conn)
        .optional()
}

/// The name of a refresh family's first access token.
pub fn family_name(conn: &mut PgConnection, family_id: Uuid) -> QueryResult<Option<String>> {
    api_tokens::table
        .filter(api_tokens::family_id.eq(family_id))
        .order(api_tokens::created_at.asc())
        .select(api_tokens::name)
        .first(conn)
        .optional()
}

/// Binds a minted token, and the refresh tokens of its family, to a DPoP
/// key (at pickup, when the client proved the key).
pub fn bind_to_key(conn: &mut PgConnection, id: Uuid, jkt: &str) -> QueryResult<()> {
    let family: Option<Option<Uuid>> = diesel::update(api_tokens::table.find(id))
        .set(api_tokens::dpop_jkt.eq(jkt))
        .returning(api_tokens::family_id)
        .get_result(conn)
        .optional()?;
    if let Some(Some(family)) = family {
        use crate::db::schema::refresh_tokens as rt;
        diesel::update(rt::table.filter(rt::family_id.eq(family)))
            .set(rt::dpop_jkt.eq(jkt))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::like_literal;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_literal("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(like_literal("dev@example.com"), "dev@example.com");
    }
}
