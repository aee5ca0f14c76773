//! The CLI's side once a person decided, besides polling: paste mode's
//! exchange of the confirmation code, and cancelling.

use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::json;

use super::decide::changed;
use super::poll::{pick_up, Pickup, PollOutcome};
use crate::auth::dpop::Proof;
use crate::crypto;
use crate::db::models::device_sessions;
use crate::db::models::revocation::Target;
use crate::domain::{Confirmation, ConfirmationCode, DeviceCode, SessionStatus};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::tokens;
use crate::service::AppState;

/// Wrong paste-back codes allowed before the session is cancelled.
pub const MAX_CONFIRMATION_FAILURES: i32 = 5;

/// What `exchange` answers.
#[derive(Debug)]
pub enum ExchangeOutcome {
    /// The right code: the token, once.
    Delivered(PollOutcome),
    /// Not approved yet.
    Pending,
    /// A wrong code; this many tries remain.
    WrongCode {
        /// Tries left before the session is cancelled.
        attempts_left: i32,
    },
    /// Denied in the browser.
    Denied,
    /// Unknown, expired, cancelled (also after too many wrong codes) or used.
    Expired,
}

/// Paste mode's pickup: releases the token only with the confirmation code shown in the
/// approving browser. Wrong codes are counted; too many cancel the session
/// and revoke its token.
pub async fn exchange_code(
    state: &AppState,
    device_code: DeviceCode,
    presented: ConfirmationCode,
    client_ip: String,
    proof: Option<Proof>,
) -> Result<ExchangeOutcome, AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let (device_code, client_ip) = (&device_code, client_ip.as_str());
            let (config, realtime) = (&*cx.config, &cx.realtime);
            let key = config.keys.code_hmac.expose_secret();
            let hash = device_code.keyed_hash(key);
            conn.transaction(|conn| {
                let Some(session) = device_sessions::lock_by_device_hash(conn, &hash)? else {
                    return Ok(ExchangeOutcome::Expired);
                };
                if session.status.is_live() && session.expires_at <= now {
                    return Ok(ExchangeOutcome::Expired);
                }
                match session.status {
                    SessionStatus::Pending => return Ok(ExchangeOutcome::Pending),
                    SessionStatus::Denied => return Ok(ExchangeOutcome::Denied),
                    SessionStatus::Approved if session.confirmation == Confirmation::Paste => {}
                    _ => return Ok(ExchangeOutcome::Expired),
                }
                let matches = session
                    .confirmation_code_hash
                    .as_ref()
                    .is_some_and(|stored| crypto::ct_eq(&presented.keyed_hash(key), stored));
                if matches {
                    let pickup = Pickup {
                        session: &session,
                        proof: proof.as_ref(),
                        client_ip,
                        confirmation: Confirmation::Paste,
                    };
                    return Ok(match pick_up(conn, config, &pickup, now)? {
                        Some(delivered) => ExchangeOutcome::Delivered(delivered),
                        None => ExchangeOutcome::Expired,
                    });
                }
                let failures = device_sessions::add_confirmation_failure(conn, session.id)?;
                events::record(
                    conn,
                    Event::new(
                        EventKind::ConfirmationFailed,
                        Severity::Medium,
                        Some(client_ip),
                    )
                    .about(session.user_id, session.token_id)
                    .details(json!({ "session_id": session.id, "failures": failures })),
                )?;
                if failures >= MAX_CONFIRMATION_FAILURES {
                    device_sessions::cancel(conn, &hash)?;
                    changed(conn, realtime, &hash)?;
                    if let Some(token_id) = session.token_id {
                        tokens::revoke_tokens(conn, realtime, Target::Tokens(&[token_id]), now)?;
                    }
                    return Ok(ExchangeOutcome::Expired);
                }
                Ok(ExchangeOutcome::WrongCode {
                    attempts_left: MAX_CONFIRMATION_FAILURES - failures,
                })
            })
        })
        .await
}

/// The CLI gave up (Ctrl-C): cancels the session and revokes a token
/// minted for it that was never picked up. `false` when it had ended.
pub async fn cancel_session(
    state: &AppState,
    device_code: DeviceCode,
    client_ip: String,
) -> Result<bool, AppError> {
    let now = Utc::now();
    state
        .run(move |conn, cx| {
            let (device_code, client_ip) = (&device_code, client_ip.as_str());
            let (config, realtime) = (&*cx.config, &cx.realtime);
            let hash = device_code.keyed_hash(config.keys.code_hmac.expose_secret());
            conn.transaction(|conn| {
                let Some(session) = device_sessions::cancel(conn, &hash)? else {
                    return Ok(false);
                };
                changed(conn, realtime, &hash)?;
                if let Some(token_id) = session.token_id {
                    tokens::revoke_tokens(conn, realtime, Target::Tokens(&[token_id]), now)?;
                }
                events::record(
                    conn,
                    Event::new(
                        EventKind::CliDeviceCancelled,
                        Severity::Low,
                        Some(client_ip),
                    )
                    .about(session.user_id, session.token_id)
                    .details(json!({ "session_id": session.id })),
                )?;
                Ok(true)
            })
        })
        .await
}
