//! Revoking tokens: the one statement sequence every revoke path uses
//! (own tokens, admins, `/oauth/revoke`, logout, device cancel, refresh
//! reuse, expiry of uncollected approvals).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::models::api_tokens::ApiToken;
use crate::db::schema::{api_tokens, refresh_tokens};

/// What to revoke. Naming a token that belongs to a refresh family revokes
/// the whole family: the sign-in is over.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// These access or API tokens, and the families of those that have one.
    Tokens(&'a [Uuid]),
    /// Every access and refresh token of this family.
    Family(Uuid),
}

/// What a revocation ended. Once the transaction has committed, the
/// instance's token cache must hear of it (`Realtime::tokens_revoked`), so
/// it stops serving cached authentications of these tokens at once.
#[derive(Debug, Default)]
pub struct Revoked {
    /// Access and API tokens that were live and are revoked now.
    pub tokens: Vec<ApiToken>,
    /// Refresh tokens revoked now.
    pub refresh_tokens: usize,
}

impl Revoked {
    /// Whether nothing was live to revoke.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.refresh_tokens == 0
    }

    /// The newly revoked token with this id, if it was live.
    pub fn token(&self, id: Uuid) -> Option<&ApiToken> {
        self.tokens.iter().find(|t| t.id == id)
    }
}

/// Revokes `target` in one transaction (a savepoint inside the caller's).
/// A family that is already half revoked is finished; tokens already
/// revoked keep their first revocation time.
#[must_use = "tell the realtime caches once the transaction commits"]
pub fn revoke(
    conn: &mut PgConnection,
    target: Target<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Revoked> {
    let (ids, families): (&[Uuid], Vec<Uuid>) = match target {
        Target::Tokens(ids) => (ids, Vec::new()),
        Target::Family(family) => (&[], vec![family]),
    };
    revoke_grants(conn, ids, families, now)
}

/// Revokes the account's live tokens and refresh families whose scopes
/// `keep` refuses: every one when an account is disabled, those its new role
/// may no longer hold when its role changes.
#[must_use = "tell the realtime caches once the transaction commits"]
pub fn revoke_account_grants(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
    keep: impl Fn(&[String]) -> bool,
) -> QueryResult<Revoked> {
    let tokens: Vec<(Uuid, Vec<String>)> = api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::revoked_at.is_null())
        .select((api_tokens::id, api_tokens::scopes))
        .load(conn)?;
    let families: Vec<(Uuid, Vec<String>)> = refresh_tokens::table
        .filter(refresh_tokens::user_id.eq(user_id))
        .filter(refresh_tokens::revoked_at.is_null())
        .select((refresh_tokens::family_id, refresh_tokens::scopes))
        .load(conn)?;
    let refused = |(id, scopes): (Uuid, Vec<String>)| (!keep(&scopes)).then_some(id);
    let ids: Vec<Uuid> = tokens.into_iter().filter_map(refused).collect();
    let families: Vec<Uuid> = families.into_iter().filter_map(refused).collect();
    revoke_grants(conn, &ids, families, now)
}

/// Revokes these tokens, their families and these families, in one
/// savepoint.
fn revoke_grants(
    conn: &mut PgConnection,
    ids: &[Uuid],
    mut families: Vec<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<Revoked> {
    conn.transaction(|conn| {
        if !ids.is_empty() {
            families.extend(
                api_tokens::table
                    .filter(api_tokens::id.eq_any(ids))
                    .filter(api_tokens::family_id.is_not_null())
                    .select(api_tokens::family_id.assume_not_null())
                    .load::<Uuid>(conn)?,
            );
        }
        families.sort_unstable();
        families.dedup();
        let tokens = diesel::update(
            api_tokens::table
                .filter(
                    api_tokens::id
                        .eq_any(ids)
                        .or(api_tokens::family_id.eq_any(&families)),
                )
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(now))
        .returning(ApiToken::as_returning())
        .get_results(conn)?;
        let refresh_tokens = if families.is_empty() {
            0
        } else {
            diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::family_id.eq_any(&families))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set((
                refresh_tokens::revoked_at.eq(now),
                refresh_tokens::successor_sealed.eq(None::<Vec<u8>>),
            ))
            .execute(conn)?
        };
        Ok(Revoked {
            tokens,
            refresh_tokens,
        })
    })
}
