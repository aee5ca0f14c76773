//! Browser sessions held by the server: started at sign-in, checked on every
//! signed-in request, ended by signing out, from the sessions page, by a
//! password change or by disabling the account.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::auth::csrf;
use crate::crypto::sha256;
use crate::db::models::user_sessions::{self, Ending, UserSession};
use crate::db::models::users::User;
use crate::db::{self, Db};
use crate::error::AppError;
use crate::service::device::policy;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// A signed-in browser: its session row and its (enabled) account.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session's id (not its secret).
    pub session_id: Uuid,
    /// The account.
    pub user: User,
}

/// Starts a session for `user_id` and returns the secret for the cookie.
pub async fn start(
    state: &AppState,
    user_id: Uuid,
    ip: IpAddr,
    user_agent: Option<String>,
) -> Result<String, AppError> {
    let secret = csrf::generate();
    let now = Utc::now();
    let ttl = Duration::from_std(state.config.session_ttl).map_err(AppError::internal)?;
    let row = UserSession {
        id: Uuid::new_v4(),
        user_id,
        secret_digest: sha256(secret.as_bytes()).to_vec(),
        created_at: now,
        last_seen_at: now,
        expires_at: now
            .checked_add_signed(ttl)
            .ok_or_else(|| AppError::internal("session lifetime overflows the calendar"))?,
        ended_at: None,
        ip: Some(ip.to_string()),
        user_agent: policy::user_agent(user_agent),
    };
    db::run(&state.pool, move |conn| {
        Ok(user_sessions::insert(conn, &row)?)
    })
    .await?;
    Ok(secret)
}

/// Starts a session for a sign-in, first ending the one this browser held
/// (a sign-in over another leaves nothing live behind).
pub async fn replace(
    state: &AppState,
    previous: Option<String>,
    user_id: Uuid,
    ip: IpAddr,
    user_agent: Option<String>,
) -> Result<String, AppError> {
    if let Some(previous) = previous {
        end_by_secret(state, previous).await?;
    }
    start(state, user_id, ip, user_agent).await
}

/// The live session holding this secret, with its enabled account; noted as
/// seen (at most once a minute).
pub async fn find(state: &AppState, secret: String) -> Result<Option<SignedIn>, AppError> {
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let digest = sha256(secret.as_bytes());
        let Some((session, user)) = user_sessions::find_live(conn, &digest, now)? else {
            return Ok(None);
        };
        if session.last_seen_at < now - Duration::minutes(1) {
            user_sessions::touch(conn, session.id, now)?;
        }
        Ok(Some(SignedIn {
            session_id: session.id,
            user,
        }))
    })
    .await
}

/// Ends the session holding this secret (signing out). Unknown or ended
/// secrets are fine: the cookie is cleared either way.
pub async fn end_by_secret(state: &AppState, secret: String) -> Result<(), AppError> {
    let Some(signed_in) = find(state, secret).await? else {
        return Ok(());
    };
    end(
        state,
        &signed_in.user,
        Ending::One(signed_in.session_id),
        None,
    )
    .await?;
    Ok(())
}

/// Ends `which` of the account's sessions and records it; how many ended.
pub async fn end(
    state: &AppState,
    user: &User,
    which: Ending,
    ip: Option<IpAddr>,
) -> Result<usize, AppError> {
    let user_id = user.id;
    db::run(&state.pool, move |conn| {
        conn.transaction(|conn| end_in(conn, user_id, which, ip, Utc::now()))
    })
    .await
}

/// [`end`] inside the caller's transaction.
pub fn end_in(
    conn: &mut Db<'_>,
    user_id: Uuid,
    which: Ending,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    let ended = user_sessions::end(conn, user_id, which, now)?;
    if ended > 0 {
        let ip = ip.map(|ip| ip.to_string());
        let scope = match which {
            Ending::One(id) => json!({ "session_id": id }),
            Ending::AllBut(id) => json!({ "all_but": id }),
            Ending::All => json!({ "all": true }),
        };
        events::record(
            conn,
            Event::new(EventKind::SessionsEnded, Severity::Low, ip.as_deref())
                .user(user_id)
                .details(json!({ "ended": ended, "which": scope })),
        )?;
    }
    Ok(ended)
}

/// The account's live sessions, newest first.
pub async fn list(state: &AppState, user_id: Uuid) -> Result<Vec<UserSession>, AppError> {
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        Ok(user_sessions::list_live(conn, user_id, now)?)
    })
    .await
}

/// Deletes sessions that ended or lapsed more than `keep` ago.
pub async fn purge(
    state: &AppState,
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<usize, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(user_sessions::delete_ended_before(conn, now - keep)?)
    })
    .await
}
