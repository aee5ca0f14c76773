//! A client polling for its token (RFC 8628 §3.4–3.5): from the pending
//! cache when it can, from PostgreSQL otherwise, held until a change when
//! the client asks to wait; and the sealed token opened for the one poll
//! that consumes it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use envshield_api_types::handoff::{self, HandoffPayload, SealedToken};

use crate::auth::dpop::{Invalid, Proof};
use crate::config::Config;
use crate::db::models::revocation::Target;
use crate::db::models::{api_tokens, device_sessions};
use crate::db::{self, Db};
use crate::domain::{Confirmation, DeviceCode, Flow, PlainToken, SessionStatus};
use crate::error::AppError;
use crate::realtime::{PendingRow, Realtime};
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::{dpop, grants, tokens};
use crate::service::{AppState, Context};

/// Every answer a poll can get.
#[derive(Debug)]
pub enum PollOutcome {
    /// Nobody decided yet.
    Pending {
        /// Seconds to wait.
        interval_secs: u32,
    },
    /// Polled too fast; the interval grew.
    SlowDown {
        /// New interval.
        interval_secs: u32,
    },
    /// Approved: the token, handed out exactly once.
    Approved {
        /// Plaintext token.
        token: PlainToken,
        /// Token id.
        token_id: Uuid,
        /// Token name.
        token_name: String,
        /// Granted scopes.
        scopes: Vec<String>,
        /// Token expiry.
        expires_at: Option<DateTime<Utc>>,
        /// Refresh token, for `access_refresh` clients.
        refresh: Option<PlainToken>,
        /// Thumbprint of the DPoP key the token is bound to.
        dpop_jkt: Option<String>,
        /// The tokens sealed to the CLI's handoff key, when it sent one:
        /// then only this leaves the server.
        sealed: Option<Box<SealedToken>>,
    },
    /// Approved, but the poll did not prove the key the login must be
    /// picked up with: nothing was handed out.
    KeyRefused(Invalid),
    /// Approved in paste mode: only `exchange` with the code releases the token.
    ConfirmationRequired,
    /// Denied in the browser.
    Denied,
    /// Expired, cancelled or already used.
    Expired,
    /// A login sealed to a handoff key whose token was already collected
    /// with this device code: the token was revoked (see `record_reuse`).
    AlreadyCollected,
    /// No session has this device code.
    Unknown,
}

/// Who is polling, and whether the poll counts toward pacing.
#[derive(Debug, Clone, Copy)]
pub struct Poller<'a> {
    /// The client the device code must belong to (OAuth), if checked.
    pub client_id: Option<&'a str>,
    /// Client IP, for audit events.
    pub client_ip: &'a str,
    /// False for the re-read after a long-poll wake-up, which is the
    /// server's doing, not the client polling early.
    pub counted: bool,
    /// The poll's DPoP proof, checked but for replay.
    pub proof: Option<&'a Proof>,
}

/// A v1 poll that may wait up to `wait` for a change (long poll). Waits
/// only while the listener is up: without it nothing would wake the poll,
/// so it answers at once and the client polls again. Woken, it reads its
/// session again; still pending (the listener came back, which says only
/// that a change may have been missed), it waits on until its deadline,
/// unless the instance is draining.
pub async fn poll_and_wait(
    state: &AppState,
    code: DeviceCode,
    client_ip: String,
    proof: Option<Proof>,
    wait: Option<Duration>,
) -> Result<PollOutcome, AppError> {
    let Some(wait) = wait.filter(|w| !w.is_zero() && state.realtime.may_wait()) else {
        return Box::pin(counted_poll(state, code, None, client_ip, proof)).await;
    };
    let deadline = tokio::time::Instant::now() + wait;
    let hash = code.keyed_hash(state.config.keys.code_hmac.expose_secret());
    let subscription = state.realtime.subscribe(&hash);
    let mut first = true;
    loop {
        // Armed before reading, so a change committed between the read and
        // the wait still wakes this request.
        let woken = subscription.notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // Boxed, so the state of the read is freed before the wait and a
        // held poll keeps only what it needs (10,000 may be waiting at once).
        let outcome = if first {
            let (code, ip, proof) = (code.clone(), client_ip.clone(), proof.clone());
            Box::pin(counted_poll(state, code, None, ip, proof)).await?
        } else {
            let (code, client_ip, proof) = (code.clone(), client_ip.clone(), proof.clone());
            Box::pin(state.run(move |conn, cx| {
                let poller = Poller {
                    client_id: None,
                    client_ip: &client_ip,
                    counted: false,
                    proof: proof.as_ref(),
                };
                poll(conn, cx, &code, poller, Utc::now())
            }))
            .await?
        };
        first = false;
        let PollOutcome::Pending { interval_secs } = outcome else {
            return Ok(outcome);
        };
        if !state.realtime.may_wait() {
            return Ok(outcome);
        }
        // Holds no database connection while waiting.
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return Ok(PollOutcome::Pending { interval_secs });
        }
    }
}

/// A poll by the client (v1 or OAuth): answered from the pending cache when
/// it can, with no blocking work; from PostgreSQL otherwise.
pub async fn counted_poll(
    state: &AppState,
    code: DeviceCode,
    client_id: Option<String>,
    client_ip: String,
    proof: Option<Proof>,
) -> Result<PollOutcome, AppError> {
    let now = Utc::now();
    let hash = code.keyed_hash(state.config.keys.code_hmac.expose_secret());
    if let Some(outcome) = poll_cached(&state.realtime, &hash, client_id.as_deref(), now) {
        return Ok(outcome);
    }
    state
        .run(move |conn, cx| {
            let poller = Poller {
                client_id: client_id.as_deref(),
                client_ip: &client_ip,
                counted: true,
                proof: proof.as_ref(),
            };
            poll(conn, cx, &code, poller, now)
        })
        .await
}

/// Answers a counted poll of a cached pending session without the
/// database (pending or slow_down: the session was read as pending moments
/// ago and no change was notified since), or `None` when only PostgreSQL
/// can answer.
fn poll_cached(
    realtime: &Realtime,
    device_code_hash: &[u8; 32],
    client_id: Option<&str>,
    now: DateTime<Utc>,
) -> Option<PollOutcome> {
    let row = realtime
        .pending
        .get(device_code_hash, std::time::Instant::now())?;
    if row.expires_at <= now || !readable(client_id, &row.client_id, row.flow) {
        return None;
    }
    let pace = realtime
        .pacer
        .poll(row.session_id, row.interval_secs, std::time::Instant::now());
    Some(paced(pace.interval_secs, pace.too_fast))
}

/// Whether a poll may read a login of `client` started through `flow`. A v1
/// poll (`poller` `None`) reads any; an OAuth poll, which names its client,
/// reads only that client's logins started at `/oauth/device_authorization`:
/// a v1 login's token may be sealed to the CLI's handoff key, and the token
/// endpoint would hand it out in the clear.
fn readable(poller: Option<&str>, client: &str, flow: Flow) -> bool {
    poller.is_none_or(|c| c == client && flow == Flow::OAuth)
}

/// Stores every poll interval that grew on this instance since the last
/// call, in one statement (see [`crate::realtime::PollPacer`]); returns how
/// many sessions it wrote. Growth that could not be stored is kept for the
/// next call.
pub async fn store_grown_intervals(state: &AppState) -> Result<usize, AppError> {
    let grown = state.realtime.pacer.take_grown();
    if grown.is_empty() {
        return Ok(0);
    }
    let (now, now_instant) = (Utc::now(), std::time::Instant::now());
    let rows: Vec<(Uuid, i32, DateTime<Utc>)> = grown
        .iter()
        .map(|g| {
            let ago = chrono::Duration::from_std(now_instant.saturating_duration_since(g.at))
                .unwrap_or(chrono::Duration::zero());
            (g.session_id, g.interval_secs, now - ago)
        })
        .collect();
    let stored = db::run(&state.pool, move |conn| {
        Ok(device_sessions::raise_intervals(conn, &rows)?)
    })
    .await;
    if stored.is_err() {
        state.realtime.pacer.give_back(grown);
    }
    stored
}

/// Pending, or slow_down when the client polled too fast.
fn paced(interval_secs: i32, too_fast: bool) -> PollOutcome {
    let interval_secs = u32::try_from(interval_secs).unwrap_or(1);
    if too_fast {
        PollOutcome::SlowDown { interval_secs }
    } else {
        PollOutcome::Pending { interval_secs }
    }
}

/// One poll read from PostgreSQL. A pending session costs one indexed
/// lookup and no write (pacing is in memory, and a grown interval is stored
/// later, off the request path), and is cached for the next polls.
pub fn poll(
    conn: &mut Db<'_>,
    cx: &Context,
    device_code: &DeviceCode,
    poller: Poller<'_>,
    now: DateTime<Utc>,
) -> Result<PollOutcome, AppError> {
    let (config, realtime) = (&*cx.config, &cx.realtime);
    let Poller {
        client_id,
        client_ip,
        counted,
        proof,
    } = poller;
    let hash = device_code.keyed_hash(config.keys.code_hmac.expose_secret());
    let ticket = realtime.pending.ticket(&hash);
    let Some(session) = device_sessions::find_by_device_hash(conn, &hash)? else {
        return Ok(PollOutcome::Unknown);
    };
    if !readable(client_id, &session.client_id, session.flow) {
        return Ok(PollOutcome::Unknown);
    }
    let status = session.status;
    if status.is_live() && session.expires_at <= now {
        return Ok(PollOutcome::Expired);
    }
    if status == SessionStatus::Pending {
        if let Some(ticket) = ticket {
            let row = PendingRow {
                session_id: session.id,
                client_id: session.client_id.clone(),
                flow: session.flow,
                expires_at: session.expires_at,
                interval_secs: session.poll_interval_sec,
            };
            realtime
                .pending
                .insert(hash, ticket, row, std::time::Instant::now());
        }
        if counted {
            let pace = realtime.pacer.poll(
                session.id,
                session.poll_interval_sec,
                std::time::Instant::now(),
            );
            return Ok(paced(pace.interval_secs, pace.too_fast));
        }
    } else {
        realtime.pacer.forget(session.id);
    }
    settled(conn, cx, &session, client_ip, proof, now)
}

/// The answer for a session read from PostgreSQL and not paced.
fn settled(
    conn: &mut Db<'_>,
    cx: &Context,
    session: &device_sessions::DeviceSession,
    client_ip: &str,
    proof: Option<&Proof>,
    now: DateTime<Utc>,
) -> Result<PollOutcome, AppError> {
    let (config, realtime) = (&*cx.config, &cx.realtime);
    match session.status {
        SessionStatus::Pending => Ok(PollOutcome::Pending {
            interval_secs: u32::try_from(session.poll_interval_sec).unwrap_or(1),
        }),
        // Anything but poll (a `risk` login is decided by approving).
        SessionStatus::Approved if session.confirmation != Confirmation::Poll => {
            Ok(PollOutcome::ConfirmationRequired)
        }
        SessionStatus::Approved => {
            let pickup = Pickup {
                session,
                proof,
                client_ip,
                confirmation: Confirmation::Poll,
            };
            match pick_up(conn, config, &pickup, now)? {
                Some(outcome) => Ok(outcome),
                None => {
                    record_reuse(conn, realtime, session, client_ip)?;
                    Ok(reused(session))
                }
            }
        }
        SessionStatus::Consumed => {
            record_reuse(conn, realtime, session, client_ip)?;
            Ok(reused(session))
        }
        SessionStatus::Denied => Ok(PollOutcome::Denied),
        SessionStatus::Cancelled | SessionStatus::Expired => Ok(PollOutcome::Expired),
    }
}

/// The one request that may take an approved session's token.
pub(super) struct Pickup<'a> {
    /// The session, as read.
    pub session: &'a device_sessions::DeviceSession,
    /// The request's DPoP proof, checked but for replay.
    pub proof: Option<&'a Proof>,
    /// Client IP, for audit events.
    pub client_ip: &'a str,
    /// How this pickup collects the token.
    pub confirmation: Confirmation,
}

/// Hands an approved session's token to `pickup`, in one transaction:
/// the key check (a session started with a DPoP key needs a proof by that
/// key, and the token is bound to the key proved), the proof's replay check,
/// the consuming update, the binding. `None` when the token was already
/// taken.
pub(super) fn pick_up(
    conn: &mut Db<'_>,
    config: &Config,
    pickup: &Pickup<'_>,
    now: DateTime<Utc>,
) -> Result<Option<PollOutcome>, AppError> {
    let session = pickup.session;
    let requires = config
        .client(&session.client_id)
        .is_some_and(|c| c.require_dpop);
    if let Err(refused) = pickup_key(session.dpop_jkt.as_deref(), pickup.proof, requires) {
        if session.dpop_jkt.is_some() {
            record_key_refused(conn, session, pickup.client_ip, refused)?;
        }
        return Ok(Some(PollOutcome::KeyRefused(refused)));
    }
    conn.transaction(|conn| {
        if let Some(proof) = pickup.proof {
            if let Err(replayed) = dpop::accept_once(conn, proof)? {
                return Ok(Some(PollOutcome::KeyRefused(replayed)));
            }
        }
        let Some((sealed, token_id)) =
            device_sessions::consume(conn, session.id, now, pickup.confirmation)?
        else {
            return Ok(None);
        };
        let jkt = pickup.proof.map(|p| p.jkt.clone());
        if let Some(jkt) = &jkt {
            api_tokens::bind_to_key(conn, token_id, jkt)?;
        }
        let handoff = session.handoff_key.as_deref();
        deliver(conn, config, session.id, &sealed, token_id, jkt, handoff).map(Some)
    })
}

/// Whether the pickup proves the key the session was started with.
fn pickup_key(bound: Option<&str>, proof: Option<&Proof>, required: bool) -> Result<(), Invalid> {
    match (bound, proof) {
        (Some(_), None) => Err(Invalid(
            "This login was started with a DPoP key: send a DPoP proof made by that key to collect the token.",
        )),
        (Some(jkt), Some(p)) if !crate::crypto::ct_eq(jkt.as_bytes(), p.jkt.as_bytes()) => Err(Invalid(
            "The DPoP proof was made by another key than the one that started this login.",
        )),
        (None, None) if required => Err(Invalid(
            "This client must send a DPoP proof (RFC 9449) to collect its token.",
        )),
        _ => Ok(()),
    }
}

/// Records a pickup of a DPoP-bound login without its key: the device code
/// is in other hands.
fn record_key_refused(
    conn: &mut Db<'_>,
    session: &device_sessions::DeviceSession,
    client_ip: &str,
    refused: Invalid,
) -> Result<(), AppError> {
    events::record(
        conn,
        Event::new(
            EventKind::DpopPickupRefused,
            Severity::High,
            Some(client_ip),
        )
        .about(session.user_id, session.token_id)
        .details(json!({
            "session_id": session.id,
            "reason": refused.0,
        })),
    )?;
    Ok(())
}

/// Opens the sealed token of a consumed session.
fn deliver(
    conn: &mut Db<'_>,
    config: &Config,
    session_id: Uuid,
    sealed: &[u8],
    token_id: Uuid,
    dpop_jkt: Option<String>,
    handoff_key: Option<&str>,
) -> Result<PollOutcome, AppError> {
    let (token, refresh) = grants::open_sealed(config, session_id, sealed)?;
    let row = api_tokens::find(conn, token_id)?
        .ok_or_else(|| AppError::internal("minted token row is missing"))?;
    let sealed = match handoff_key {
        None => None,
        Some(key) => {
            let payload = HandoffPayload {
                token: token.expose().to_owned(),
                refresh_token: refresh.as_ref().map(|r| r.expose().to_owned()),
            };
            Some(Box::new(
                handoff::seal(key, session_id, &payload).map_err(AppError::internal)?,
            ))
        }
    };
    Ok(PollOutcome::Approved {
        token,
        token_id,
        token_name: row.name,
        scopes: row.scopes,
        expires_at: row.expires_at,
        refresh,
        dpop_jkt,
        sealed,
    })
}

/// The answer to a pickup that came after the token was collected: a
/// sealed login's owner learns that its token was collected with its
/// device code and revoked; any other poller, that the request is over.
fn reused(session: &device_sessions::DeviceSession) -> PollOutcome {
    if session.handoff_key.is_some() {
        PollOutcome::AlreadyCollected
    } else {
        PollOutcome::Expired
    }
}

/// Records that a consumed device code was polled again: once per session
/// (late and losing polls of one code would otherwise flood the log).
fn record_reuse(
    conn: &mut Db<'_>,
    realtime: &Arc<Realtime>,
    session: &device_sessions::DeviceSession,
    client_ip: &str,
) -> Result<(), AppError> {
    conn.transaction(|conn| {
        if !device_sessions::first_reuse(conn, session.id, Utc::now())? {
            return Ok(());
        }
        // A sealed handoff picked up by someone else is ciphertext to them
        // and lost to its owner: the token serves nobody, so it ends.
        if let (Some(_), Some(token_id)) = (&session.handoff_key, session.token_id) {
            tokens::revoke_tokens(conn, realtime, Target::Tokens(&[token_id]), Utc::now())?;
        }
        events::record(
            conn,
            Event::new(
                EventKind::CliDeviceCodeReused,
                Severity::High,
                Some(client_ip),
            )
            .about(session.user_id, session.token_id)
            .details(json!({
                "session_id": session.id,
                "reason": "an already consumed device code was polled again; it may have leaked",
            })),
        )?;
        Ok(())
    })
}
