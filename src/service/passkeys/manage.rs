//! An account's passkeys: listing, renaming, removing, an admin removing
//! them all, and the purge of expired ceremonies.

use std::collections::HashSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::db::models::passkeys::{self, PasskeyRow};
use crate::db::models::users;
use crate::db::models::webauthn_ceremonies;
use crate::db::{self, Db};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::users::Actor;
use crate::service::AppState;

/// An account's passkeys, oldest first.
pub async fn list(state: &AppState, user_id: Uuid) -> Result<Vec<PasskeyRow>, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(passkeys::for_user(conn, user_id)?)
    })
    .await
}

/// How many passkeys an account has.
pub async fn count(state: &AppState, user_id: Uuid) -> Result<i64, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(passkeys::count_for_user(conn, user_id)?)
    })
    .await
}

/// Which of these accounts have at least one passkey.
pub async fn accounts_with_passkeys(
    state: &AppState,
    ids: Vec<Uuid>,
) -> Result<HashSet<Uuid>, AppError> {
    db::run(&state.pool, move |conn| {
        Ok(passkeys::users_with_passkeys(conn, &ids)?
            .into_iter()
            .collect())
    })
    .await
}

fn not_found() -> AppError {
    AppError::NotFound("The passkey".to_owned())
}

/// Renames one of the account's passkeys (404 for any other).
pub async fn rename(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    name: String,
) -> Result<(), AppError> {
    let renamed = db::run(&state.pool, move |conn| {
        Ok(passkeys::rename(conn, id, user_id, &name)?)
    })
    .await?;
    if renamed == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// Removes one of the account's passkeys (404 for any other).
pub async fn remove(state: &AppState, user_id: Uuid, id: Uuid, ip: IpAddr) -> Result<(), AppError> {
    db::run(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let row = passkeys::delete(conn, id, user_id)?.ok_or_else(not_found)?;
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasskeyRemoved, Severity::Medium, Some(&ip))
                    .user(user_id)
                    .details(json!({
                        "by": user_id,
                        "passkey_id": row.id,
                        "name": row.name,
                    })),
            )?;
            Ok(())
        })
    })
    .await
}

/// Removes every passkey of account `target` (recovery, by an admin or an
/// operator), recorded as one event naming who did it; how many went.
pub fn remove_all_in(conn: &mut Db<'_>, actor: &Actor, target: Uuid) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        users::find(conn, target)?.ok_or_else(|| AppError::NotFound("The account".to_owned()))?;
        let removed = passkeys::delete_all_for_user(conn, target)?;
        if !removed.is_empty() {
            let names: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
            events::record(
                conn,
                Event::new(
                    EventKind::PasskeyRemoved,
                    Severity::Medium,
                    actor.ip.as_deref(),
                )
                .user(target)
                .details(json!({
                    "by": actor.by(),
                    "removed": removed.len(),
                    "names": names,
                })),
            )?;
        }
        Ok(removed.len())
    })
}

/// [`remove_all_in`] for a request.
pub async fn remove_all(state: &AppState, actor: Actor, target: Uuid) -> Result<usize, AppError> {
    db::run(&state.pool, move |conn| remove_all_in(conn, &actor, target)).await
}

/// Deletes expired ceremonies and step-up proofs.
pub async fn purge(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    db::run(&state.pool, move |conn| {
        let ceremonies = webauthn_ceremonies::delete_expired(conn, now)?;
        let proofs = crate::db::models::step_up_proofs::delete_expired(conn, now)?;
        Ok(ceremonies + proofs)
    })
    .await
}
