//! Authorization codes (`authorization_codes`): one per consent, redeemed
//! once at the token endpoint.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::models::revocation;
use crate::db::schema::authorization_codes as ac;

/// A stored code.
#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = ac, check_for_backend(diesel::pg::Pg))]
pub struct AuthorizationCode {
    /// Row id (also the sealed tokens' associated data).
    pub id: Uuid,
    /// HMAC of the code.
    pub code_hash: Vec<u8>,
    /// Client it was issued to.
    pub client_id: String,
    /// The account that consented.
    pub user_id: Uuid,
    /// Where the code was sent; the token request must name it again.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The token minted at consent.
    pub token_id: Uuid,
    /// The minted tokens, sealed, until redeemed.
    pub sealed_token: Option<Vec<u8>>,
    /// Key the token request must prove (RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    /// Consent time.
    pub created_at: DateTime<Utc>,
    /// End of life.
    pub expires_at: DateTime<Utc>,
    /// Redeemed or burned.
    pub used_at: Option<DateTime<Utc>>,
}

crate::crypto::redacted_debug!(AuthorizationCode {
    id,
    client_id,
    expires_at
});

/// A code to insert.
#[derive(Insertable)]
#[diesel(table_name = ac)]
pub struct NewAuthorizationCode<'a> {
    /// Fresh id.
    pub id: Uuid,
    /// HMAC of the code.
    pub code_hash: &'a [u8],
    /// Client.
    pub client_id: &'a str,
    /// Consenting account.
    pub user_id: Uuid,
    /// Redirect URI.
    pub redirect_uri: &'a str,
    /// PKCE challenge.
    pub code_challenge: &'a str,
    /// Minted token.
    pub token_id: Uuid,
    /// Sealed tokens.
    pub sealed_token: &'a [u8],
    /// Key to prove, if the request named one.
    pub dpop_jkt: Option<&'a str>,
    /// Consent time.
    pub created_at: DateTime<Utc>,
    /// End of life.
    pub expires_at: DateTime<Utc>,
}

/// Inserts a code.
pub fn insert(conn: &mut PgConnection, new: &NewAuthorizationCode<'_>) -> QueryResult<()> {
    super::insert_into(conn, ac::table, new)
}

/// The code with this hash, locked for the rest of the transaction.
pub fn lock_by_hash(
    conn: &mut PgConnection,
    hash: &[u8],
) -> QueryResult<Option<AuthorizationCode>> {
    ac::table
        .filter(ac::code_hash.eq(hash))
        .select(AuthorizationCode::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Marks a code used and wipes its sealed tokens.
pub fn spend(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(ac::table.find(id))
        .set((ac::used_at.eq(now), ac::sealed_token.eq(None::<Vec<u8>>)))
        .execute(conn)
}

/// Ends the codes that expired unredeemed: revokes what they issued (the
/// tokens were minted at consent) and wipes their sealed tokens, in one
/// transaction. A code presented later still answers "expired".
pub fn expire_unredeemed(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<revocation::Revoked> {
    conn.transaction(|conn| {
        let orphaned: Vec<(Uuid, Uuid)> = ac::table
            .filter(ac::used_at.is_null())
            .filter(ac::sealed_token.is_not_null())
            .filter(ac::expires_at.le(now))
            .select((ac::id, ac::token_id))
            .for_update()
            .load(conn)?;
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = orphaned.into_iter().unzip();
        let revoked = revocation::revoke(conn, revocation::Target::Tokens(&tokens), now)?;
        diesel::update(ac::table.filter(ac::id.eq_any(&ids)))
            .set(ac::sealed_token.eq(None::<Vec<u8>>))
            .execute(conn)?;
        Ok(revoked)
    })
}

/// Deletes codes that ended before `before`; returns how many.
pub fn purge(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(ac::table.filter(ac::expires_at.lt(before))).execute(conn)
}
