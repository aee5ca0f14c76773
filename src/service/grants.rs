//! Issuing tokens for an approved grant, per the client's token policy:
//! one long-lived API token, or a short-lived access token with a rotating
//! refresh token (RFC 6749 §6, RFC 9700 §4.14 reuse detection).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use diesel::PgConnection;
use serde_json::json;
use uuid::Uuid;

use crate::auth::dpop::Proof;
use crate::config::{Config, TokenPolicy};
use crate::db::models::revocation::Target;
use crate::db::models::{api_tokens, refresh_tokens, users};
use crate::domain::{PlainToken, Scopes, TokenSource};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;
use crate::service::{device, dpop, tokens};

/// What a person decided on an approval page about `request` (a device
/// login's user code, or an authorization request), and who they are.
#[derive(Debug)]
pub struct Decision<R> {
    /// What is decided on.
    pub request: R,
    /// Approve or deny.
    pub approve: bool,
    /// Narrowed scopes (a subset of those asked for).
    pub scopes: Option<Vec<String>>,
    /// Shorter lifetime, in days.
    pub expires_in_days: Option<u32>,
    /// The signed-in account deciding.
    pub approver: users::User,
    /// The approver's browser session (a step-up proof is bound to it).
    pub approver_session: Uuid,
    /// Browser IP.
    pub client_ip: IpAddr,
    /// A passed step-up, when `APPROVAL_STEP_UP` asks for one.
    pub step_up_proof: Option<String>,
}

/// Tokens just minted; the plaintexts leave the process once.
#[derive(Debug)]
pub struct Issued {
    /// The (access or API) token.
    pub access: PlainToken,
    /// Its id.
    pub access_id: Uuid,
    /// The refresh token, for `access_refresh` clients.
    pub refresh: Option<PlainToken>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Access token expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Token name.
    pub name: String,
    /// Thumbprint of the DPoP key the tokens are bound to.
    pub dpop_jkt: Option<String>,
}

impl Issued {
    /// The plaintexts (the access token, then the refresh token if any,
    /// separated by a space) sealed under `SEAL_KEY`, bound to the row `id`
    /// that stores them; [`open_sealed`] reads them back.
    pub fn seal(&self, config: &Config, id: Uuid) -> Result<Vec<u8>, AppError> {
        let payload = match &self.refresh {
            Some(r) => format!("{} {}", self.access.expose(), r.expose()),
            None => self.access.expose().to_owned(),
        };
        config
            .keys
            .seal
            .seal(id.as_bytes(), payload.as_bytes())
            .map_err(AppError::internal)
    }

    /// `token_type`: `DPoP` for a bound token, else `Bearer`.
    pub fn token_type(&self) -> &'static str {
        token_type(self.dpop_jkt.as_deref())
    }
}

/// `token_type` of a token bound to `jkt`, or not.
pub fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    }
}

/// What to mint.
pub struct Grant<'a> {
    /// Client the tokens are issued to.
    pub client_id: &'a str,
    /// Owner.
    pub user_id: Uuid,
    /// Token name.
    pub name: &'a str,
    /// Granted scopes.
    pub scopes: &'a [String],
    /// Expiry of a long-lived API token.
    pub api_token_expires_at: Option<DateTime<Utc>>,
    /// An existing refresh family (rotation) with its absolute end.
    pub family: Option<(Uuid, DateTime<Utc>)>,
    /// How the token is minted.
    pub source: TokenSource,
    /// What to issue.
    pub policy: TokenPolicy,
    /// Thumbprint of the DPoP key to bind the tokens to.
    pub dpop_jkt: Option<&'a str>,
}

fn duration(d: std::time::Duration) -> Result<Duration, AppError> {
    Duration::from_std(d).map_err(AppError::internal)
}

/// Mints the tokens the client's policy calls for.
pub fn issue(
    conn: &mut PgConnection,
    config: &Config,
    grant: &Grant<'_>,
    now: DateTime<Utc>,
) -> Result<Issued, AppError> {
    let access = PlainToken::generate(&config.api_token_prefix);
    let access_id = Uuid::new_v4();
    let (expires_at, family) = match grant.policy {
        TokenPolicy::ApiToken => (grant.api_token_expires_at, None),
        TokenPolicy::AccessRefresh => {
            let family = grant.family.unwrap_or((
                Uuid::new_v4(),
                now + duration(config.refresh_token_absolute)?,
            ));
            (Some(now + duration(config.access_token_ttl)?), Some(family))
        }
    };
    api_tokens::insert(
        conn,
        &api_tokens::NewApiToken {
            id: access_id,
            user_id: grant.user_id,
            name: grant.name,
            scopes: grant.scopes,
            token_digest: &access.digest(),
            token_hint: &access.hint(&config.api_token_prefix),
            created_at: now,
            expires_at,
            source: grant.source,
            client_id: Some(grant.client_id),
            family_id: family.map(|f| f.0),
            dpop_jkt: grant.dpop_jkt,
        },
    )?;
    let refresh = match family {
        None => None,
        Some((family_id, family_expires_at)) => {
            let token = PlainToken::generate(&config.refresh_token_prefix);
            let idle = (now + duration(config.refresh_token_idle)?).min(family_expires_at);
            refresh_tokens::insert(
                conn,
                &refresh_tokens::NewRefreshToken {
                    id: Uuid::new_v4(),
                    family_id,
                    user_id: grant.user_id,
                    client_id: grant.client_id,
                    scopes: grant.scopes,
                    token_digest: &token.digest(),
                    created_at: now,
                    idle_expires_at: idle,
                    family_expires_at,
                    dpop_jkt: grant.dpop_jkt,
                },
            )?;
            Some(token)
        }
    };
    Ok(Issued {
        access,
        access_id,
        refresh,
        scopes: grant.scopes.to_vec(),
        expires_at,
        name: grant.name.to_owned(),
        dpop_jkt: grant.dpop_jkt.map(str::to_owned),
    })
}

/// The access token and, if any, the refresh token that [`Issued::seal`]
/// sealed for the row `id`.
pub fn open_sealed(
    config: &Config,
    id: Uuid,
    sealed: &[u8],
) -> Result<(PlainToken, Option<PlainToken>), AppError> {
    let plain = config
        .keys
        .seal
        .open(id.as_bytes(), sealed)
        .map_err(AppError::internal)?;
    let plain = String::from_utf8(plain).map_err(AppError::internal)?;
    let mut parts = plain.split(' ');
    let access = parts
        .next()
        .and_then(|a| PlainToken::parse(&config.api_token_prefix, a));
    let refresh = parts
        .next()
        .map(|r| PlainToken::parse(&config.refresh_token_prefix, r).ok_or(()))
        .transpose();
    match (access, refresh, parts.next()) {
        (Some(access), Ok(refresh), None) => Ok((access, refresh)),
        _ => Err(AppError::internal("sealed tokens have an unexpected shape")),
    }
}

/// Why a refresh was refused (RFC 6749 §5.2 codes).
#[derive(Debug, PartialEq, Eq)]
pub struct GrantError {
    /// `invalid_grant` or `invalid_scope`.
    pub code: &'static str,
    /// What happened, for a person.
    pub message: String,
}

fn invalid_proof(message: &str) -> GrantError {
    GrantError {
        code: "invalid_dpop_proof",
        message: message.to_owned(),
    }
}

fn invalid_grant(message: &str) -> GrantError {
    GrantError {
        code: "invalid_grant",
        message: message.to_owned(),
    }
}

/// Rotates a refresh token for `client_id` (any client when `None`, the v1
/// API): the presented one is spent, a new access token
/// and refresh token are issued in the same family. Presenting a spent token
/// again revokes the whole family and records a high-severity event.
///
/// A family bound to a DPoP key (RFC 9449 §5) needs `proof` from that key;
/// an unbound family refreshed with a proof is bound from then on.
pub async fn refresh_grant(
    state: &AppState,
    client_id: Option<String>,
    presented: String,
    scope: Option<Vec<String>>,
    proof: Option<Proof>,
    client_ip: String,
) -> Result<Result<Issued, GrantError>, AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
        let (client_id, presented) = (client_id.as_deref(), presented.as_str());
        let client_ip = client_ip.as_str();
            let (config, realtime) = (&*cx.config, &cx.realtime);
            let Some(token) = PlainToken::parse(&config.refresh_token_prefix, presented.trim()) else {
                return Ok(Err(invalid_grant("The refresh token is malformed.")));
            };
            // The transaction commits in every case: a detected reuse must leave the
            // family revoked even though the request is refused.
            conn.transaction(|conn| {
                let Some(row) = refresh_tokens::lock_by_digest(conn, &token.digest())? else {
                    return Ok(Err(invalid_grant("The refresh token is not valid.")));
                };
                if client_id.is_some_and(|c| c != row.client_id) {
                    return Ok(Err(invalid_grant(
                        "The refresh token was issued to another client.",
                    )));
                }
                if row.revoked_at.is_some() {
                    return Ok(Err(invalid_grant(
                        "The refresh token was revoked. Sign in again.",
                    )));
                }
                let requires = config.client(&row.client_id).is_some_and(|c| c.require_dpop);
                if let Err(refused) = proves_key(row.dpop_jkt.as_deref(), proof.as_ref(), requires)
                {
                    return Ok(Err(refused));
                }
                if let Some(proof) = &proof {
                    if let Err(replayed) = dpop::accept_once(conn, proof)? {
                        return Ok(Err(invalid_proof(replayed.0)));
                    }
                }
                let jkt = proof.as_ref().map(|p| p.jkt.as_str());
                if let Some(retried) = retry_within_grace(conn, config, &row, now)? {
                    return Ok(Ok(retried));
                }
                if row.used_at.is_some() {
                    tokens::revoke_tokens(conn, realtime, Target::Family(row.family_id), now)?;
                    events::record(
                        conn,
                        Event::new(
                            EventKind::RefreshTokenReused,
                            Severity::High,
                            Some(client_ip),
                        )
                        .user(row.user_id)
                        .details(json!({
                            "family_id": row.family_id,
                            "client_id": row.client_id,
                            "reason": "a spent refresh token was presented again; the family was revoked",
                        })),
                    )?;
                    return Ok(Err(invalid_grant(
                        "This refresh token was already used, so its sign-in was revoked. Sign in again.",
                    )));
                }
                if now >= row.idle_expires_at || now >= row.family_expires_at {
                    return Ok(Err(invalid_grant(
                        "The refresh token expired. Sign in again.",
                    )));
                }
                let Some(user) = users::find(conn, row.user_id)?.filter(|u| u.disabled_at.is_none())
                else {
                    tokens::revoke_tokens(conn, realtime, Target::Family(row.family_id), now)?;
                    return Ok(Err(invalid_grant("The account is disabled.")));
                };
                if config.client(&row.client_id).is_none() {
                    return Ok(Err(invalid_grant("The client is no longer registered.")));
                }
                let original =
                    Scopes::parse(&row.scopes, &config.scope_catalogue).map_err(AppError::internal)?;
                // The rules of today, not of the sign-in: a role that may no
                // longer hold these scopes ends the family.
                if device::policy::check_approver(config, user.role, &original).is_err() {
                    tokens::revoke_tokens(conn, realtime, Target::Family(row.family_id), now)?;
                    return Ok(Err(invalid_grant(
                        "The account's role no longer allows this sign-in. Sign in again.",
                    )));
                }
                let scopes = match scope {
                    None => original,
                    Some(asked) => match Scopes::parse(&asked, &config.scope_catalogue) {
                        Ok(s) if s.is_subset_of(&original) => s,
                        _ => {
                            return Ok(Err(GrantError {
                                code: "invalid_scope",
                                message: format!(
                                    "A refresh can only keep or narrow the scopes of the sign-in: {}.",
                                    original.as_slice().join(" ")
                                ),
                            }))
                        }
                    },
                };
                let name = api_tokens::family_name(conn, row.family_id)?
                    .unwrap_or_else(|| format!("{} access token", row.client_id));
                let issued = issue(
                    conn,
                    config,
                    &Grant {
                        client_id: &row.client_id,
                        user_id: row.user_id,
                        name: &name,
                        scopes: scopes.as_slice(),
                        api_token_expires_at: None,
                        family: Some((row.family_id, row.family_expires_at)),
                        source: TokenSource::OAuth,
                        policy: TokenPolicy::AccessRefresh,
                        dpop_jkt: jkt,
                    },
                    now,
                )?;
                // Without a grace window no retry is honoured, so nothing
                // is kept to answer one with.
                let successor = if config.refresh_reuse_grace.is_zero() {
                    None
                } else {
                    Some(issued.seal(config, row.id)?)
                };
                refresh_tokens::mark_used(conn, row.id, now, successor.as_deref())?;
                Ok(Ok(issued))
            })
        })
        .await
}

/// Whether a refresh of a family bound to `bound` may go on with `proof`
/// (already checked, replay aside).
fn proves_key(
    bound: Option<&str>,
    proof: Option<&Proof>,
    required: bool,
) -> Result<(), GrantError> {
    match (bound, proof) {
        (Some(_), None) => Err(invalid_proof(
            "This refresh token is bound to a DPoP key: send a DPoP proof made by that key.",
        )),
        (Some(jkt), Some(p)) if !crate::crypto::ct_eq(jkt.as_bytes(), p.jkt.as_bytes()) => Err(
            invalid_proof("The DPoP proof was made by another key than the one this refresh token is bound to."),
        ),
        (None, None) if required => Err(invalid_proof(
            "This client must send a DPoP proof (RFC 9449) with its token requests.",
        )),
        _ => Ok(()),
    }
}

/// A spent refresh token presented again within `REFRESH_TOKEN_REUSE_GRACE_SEC`
/// of its rotation, while its successor is still unspent and live: a retry
/// (a lost answer, racing requests), answered with the same successor pair,
/// so the family stays one. `None` otherwise: reuse detection decides.
fn retry_within_grace(
    conn: &mut PgConnection,
    config: &Config,
    row: &refresh_tokens::RefreshToken,
    now: DateTime<Utc>,
) -> Result<Option<Issued>, AppError> {
    let (Some(used_at), Some(sealed)) = (row.used_at, row.successor_sealed.as_deref()) else {
        return Ok(None);
    };
    // `now` was read when this request began, so a racer's may precede the
    // winner's `used_at`: that is inside the window too.
    if config.refresh_reuse_grace.is_zero() || now - used_at > duration(config.refresh_reuse_grace)?
    {
        return Ok(None);
    }
    let (access, Some(refresh)) = open_sealed(config, row.id, sealed)? else {
        return Err(AppError::internal(
            "sealed successor has an unexpected shape",
        ));
    };
    let successor_live = refresh_tokens::find_by_digest(conn, &refresh.digest())?
        .is_some_and(|r| r.used_at.is_none() && r.revoked_at.is_none());
    let access_row = api_tokens::find_by_digest(conn, &access.digest())?
        .map(|(token, _)| token)
        .filter(|t| t.revoked_at.is_none());
    let (true, Some(token)) = (successor_live, access_row) else {
        return Ok(None);
    };
    tracing::info!(family_id = %row.family_id, "refresh retried within the grace window; same successor returned");
    Ok(Some(Issued {
        access,
        access_id: token.id,
        refresh: Some(refresh),
        scopes: token.scopes,
        expires_at: token.expires_at,
        name: token.name,
        dpop_jkt: token.dpop_jkt,
    }))
}

/// Wipes sealed successors past the grace window.
pub async fn purge_successors(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    let cutoff = now - duration(state.config.refresh_reuse_grace)?;
    crate::db::run(&state.pool, move |conn| {
        Ok(refresh_tokens::wipe_successors_before(conn, cutoff)?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::device::policy::test_support::config;

    fn issued(config: &Config, refresh: bool) -> Issued {
        Issued {
            access: PlainToken::generate(&config.api_token_prefix),
            access_id: Uuid::new_v4(),
            refresh: refresh.then(|| PlainToken::generate(&config.refresh_token_prefix)),
            scopes: vec!["envs:read".into()],
            expires_at: None,
            name: "laptop".into(),
            dpop_jkt: None,
        }
    }

    #[test]
    fn sealed_tokens_open_only_for_their_row_and_as_they_were() {
        let config = config(&[]);
        let row = Uuid::new_v4();
        for refresh in [false, true] {
            let tokens = issued(&config, refresh);
            let sealed = tokens.seal(&config, row).unwrap();
            let (access, opened_refresh) = open_sealed(&config, row, &sealed).unwrap();
            assert_eq!(access.expose(), tokens.access.expose());
            assert_eq!(
                opened_refresh.as_ref().map(PlainToken::expose),
                tokens.refresh.as_ref().map(PlainToken::expose)
            );
            assert!(open_sealed(&config, Uuid::new_v4(), &sealed).is_err());
        }
        let odd = config
            .keys
            .seal
            .seal(row.as_bytes(), b"esh_not-a-token and more")
            .unwrap();
        assert!(open_sealed(&config, row, &odd).is_err());
    }
}
