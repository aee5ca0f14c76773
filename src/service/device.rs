//! The device login (RFC 8628) as one state machine, shared by the v1 JSON
//! API, the approval pages and the OAuth endpoints.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use crate::config::Config;
use crate::crypto;
use crate::db::models::users::User;
use crate::db::models::{api_tokens, device_sessions, refresh_tokens, users};
use crate::domain::{
    ConfirmationCode, DeviceCode, PlainToken, Scopes, SessionStatus, TokenName, UserCode,
};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::grants;
use crate::service::pacing::{PendingCache, PendingRow, PollPacer};
use envshield_api_types::ConfirmationMode;

/// Longest user agent kept.
const MAX_USER_AGENT_CHARS: usize = 256;
/// Attempts to draw a user code that is not already taken.
const USER_CODE_ATTEMPTS: usize = 5;

/// What the CLI sent to `start`, plus where it came from.
#[derive(Debug)]
pub struct StartInput {
    /// Requested token name.
    pub token_name: Option<String>,
    /// Requested scopes.
    pub scopes: Option<Vec<String>>,
    /// Client IP.
    pub client_ip: String,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Registered client asking.
    pub client_id: String,
    /// How the token will be collected.
    pub confirmation: ConfirmationMode,
    /// `v1` or `oauth`: which API is starting it.
    pub flow: &'static str,
}

/// A started session: the codes are handed out once, here.
#[derive(Debug)]
pub struct Started {
    /// The CLI's polling secret.
    pub device_code: DeviceCode,
    /// The code the person compares.
    pub user_code: UserCode,
    /// End of life.
    pub expires_at: DateTime<Utc>,
    /// Seconds between polls.
    pub interval_secs: u32,
    /// Token name.
    pub token_name: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// How the token will be collected.
    pub confirmation: ConfirmationMode,
}

fn confirmation_str(mode: ConfirmationMode) -> &'static str {
    match mode {
        ConfirmationMode::Poll => "poll",
        ConfirmationMode::Paste => "paste",
    }
}

/// Validates the request and inserts a PENDING session.
pub fn start(
    conn: &mut PgConnection,
    config: &Config,
    input: StartInput,
    now: DateTime<Utc>,
) -> Result<Started, AppError> {
    let token_name = match input.token_name.as_deref() {
        Some(n) => {
            TokenName::parse(n).map_err(|m| AppError::bad_request("invalid_token_name", m))?
        }
        None => TokenName::parse(&format!("CLI Token - {}", now.format("%Y-%m-%d")))
            .map_err(|m| AppError::bad_request("invalid_token_name", m))?,
    };
    let client = config.client(&input.client_id).ok_or_else(|| {
        AppError::bad_request(
            "invalid_client",
            format!("Unknown client `{}`.", input.client_id),
        )
    })?;
    if !client.allows_grant(crate::config::DEVICE_CODE_GRANT) {
        return Err(AppError::bad_request(
            "unauthorized_client",
            "This client may not use the device login.",
        ));
    }
    let requested = match input.scopes.as_deref() {
        Some(s) => s.to_vec(),
        None => config
            .default_scopes
            .iter()
            .filter(|s| client.scopes.contains(s))
            .cloned()
            .collect(),
    };
    let scopes = Scopes::parse(&requested, &client.scopes)
        .map_err(|m| AppError::bad_request("invalid_scope", m))?;
    let user_agent: Option<String> = input.user_agent.map(|ua| {
        ua.chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT_CHARS)
            .collect()
    });
    let ttl = Duration::from_std(config.device_code_ttl).map_err(AppError::internal)?;
    let expires_at = now + ttl;
    let key = config.keys.code_hmac.expose_secret();
    let interval = i32::try_from(config.device_code_interval_secs).unwrap_or(5);

    for _ in 0..USER_CODE_ATTEMPTS {
        let id = Uuid::new_v4();
        let device_code = DeviceCode::generate();
        let user_code = UserCode::generate();
        // The session and its audit event: one statement, one commit.
        let event = events::logged(
            Event::new(
                EventKind::CliDeviceStart,
                Severity::Low,
                Some(&input.client_ip),
            )
            .details(json!({ "session_id": id, "token_name": token_name.as_str() })),
        );
        let inserted = device_sessions::insert_with_event(
            conn,
            &device_sessions::NewDeviceSession {
                id,
                device_code_hash: &device_code.keyed_hash(key),
                user_code_hash: &user_code.keyed_hash(key),
                token_name: token_name.as_str(),
                scopes: scopes.as_slice(),
                created_at: now,
                expires_at,
                client_ip: Some(&input.client_ip),
                user_agent: user_agent.as_deref(),
                poll_interval_sec: interval,
                client_id: &client.client_id,
                confirmation: confirmation_str(input.confirmation),
                flow: input.flow,
            },
            &event,
        );
        match inserted {
            Ok(()) => {
                return Ok(Started {
                    device_code,
                    user_code,
                    expires_at,
                    interval_secs: config.device_code_interval_secs,
                    token_name: token_name.into_inner(),
                    scopes: scopes.into_inner(),
                    confirmation: input.confirmation,
                });
            }
            // A live user code was drawn twice; draw again.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::internal("could not draw a free user code"))
}

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
    },
    /// Approved in paste mode: only `exchange` with the code releases the token.
    ConfirmationRequired,
    /// Denied in the browser.
    Denied,
    /// Expired, cancelled or already used.
    Expired,
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
}

/// A poll answered from memory: the session was read as pending moments ago
/// and no change was notified since.
#[derive(Debug)]
pub struct CachedPoll {
    /// Pending or slow_down.
    pub outcome: PollOutcome,
    /// A grown interval to store: `(session id, seconds)`.
    pub raise: Option<(Uuid, i32)>,
}

/// Answers a counted poll of a cached pending session without the
/// database, or `None` when only PostgreSQL can answer.
pub fn poll_cached(
    cache: &PendingCache,
    pacer: &PollPacer,
    device_code_hash: &[u8; 32],
    client_id: Option<&str>,
    now: DateTime<Utc>,
) -> Option<CachedPoll> {
    let row = cache.get(device_code_hash, std::time::Instant::now())?;
    if row.expires_at <= now || client_id.is_some_and(|c| c != row.client_id) {
        return None;
    }
    let pace = pacer.poll(row.session_id, row.interval_secs, std::time::Instant::now());
    let interval_secs = u32::try_from(pace.interval_secs).unwrap_or(1);
    Some(CachedPoll {
        outcome: if pace.too_fast {
            PollOutcome::SlowDown { interval_secs }
        } else {
            PollOutcome::Pending { interval_secs }
        },
        raise: (pace.interval_secs > row.interval_secs)
            .then_some((row.session_id, pace.interval_secs)),
    })
}

/// One poll. A pending session costs one indexed lookup and no write
/// (pacing is in memory; only a grown interval is stored), and is cached
/// for the next polls.
pub fn poll(
    conn: &mut PgConnection,
    config: &Config,
    pacer: &PollPacer,
    cache: &PendingCache,
    device_code: &DeviceCode,
    poller: Poller<'_>,
    now: DateTime<Utc>,
) -> Result<PollOutcome, AppError> {
    let Poller {
        client_id,
        client_ip,
        counted,
    } = poller;
    let hash = device_code.keyed_hash(config.keys.code_hmac.expose_secret());
    let ticket = cache.ticket(&hash);
    let Some(session) = device_sessions::find_by_device_hash(conn, &hash)? else {
        return Ok(PollOutcome::Unknown);
    };
    if !crypto::ct_eq(&session.device_code_hash, &hash)
        || client_id.is_some_and(|c| c != session.client_id)
    {
        return Ok(PollOutcome::Unknown);
    }
    let status = session.status();
    if status.is_live() && session.expires_at <= now {
        return Ok(PollOutcome::Expired);
    }
    if status == SessionStatus::Pending {
        if let Some(ticket) = ticket {
            let row = PendingRow {
                session_id: session.id,
                client_id: session.client_id.clone(),
                expires_at: session.expires_at,
                interval_secs: session.poll_interval_sec,
            };
            cache.insert(hash, ticket, row, std::time::Instant::now());
        }
    }
    if status == SessionStatus::Pending && counted {
        return poll_pending(conn, pacer, &session, now);
    }
    if status != SessionStatus::Pending {
        pacer.forget(session.id);
    }
    settled(conn, config, &session, client_ip, now)
}

/// The answer for a session that is no longer pending.
fn settled(
    conn: &mut PgConnection,
    config: &Config,
    session: &device_sessions::DeviceSession,
    client_ip: &str,
    now: DateTime<Utc>,
) -> Result<PollOutcome, AppError> {
    match session.status() {
        SessionStatus::Pending => Ok(PollOutcome::Pending {
            interval_secs: u32::try_from(session.poll_interval_sec).unwrap_or(1),
        }),
        SessionStatus::Approved if session.confirmation == "paste" => {
            Ok(PollOutcome::ConfirmationRequired)
        }
        SessionStatus::Approved => match device_sessions::consume(conn, session.id, now, "poll")? {
            Some((sealed, token_id)) => deliver(conn, config, session.id, &sealed, token_id),
            None => {
                record_reuse(conn, session, client_ip)?;
                Ok(PollOutcome::Expired)
            }
        },
        SessionStatus::Consumed => {
            record_reuse(conn, session, client_ip)?;
            Ok(PollOutcome::Expired)
        }
        SessionStatus::Denied => Ok(PollOutcome::Denied),
        SessionStatus::Cancelled | SessionStatus::Expired => Ok(PollOutcome::Expired),
    }
}

/// Stores an interval grown by a poll answered from the cache.
pub fn store_interval(
    conn: &mut PgConnection,
    session_id: Uuid,
    interval_secs: i32,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    device_sessions::raise_interval(conn, session_id, now, interval_secs)?;
    Ok(())
}

fn poll_pending(
    conn: &mut PgConnection,
    pacer: &PollPacer,
    session: &device_sessions::DeviceSession,
    now: DateTime<Utc>,
) -> Result<PollOutcome, AppError> {
    let pace = pacer.poll(
        session.id,
        session.poll_interval_sec,
        std::time::Instant::now(),
    );
    let too_fast = pace.too_fast;
    if pace.interval_secs > session.poll_interval_sec {
        // Other instances and the OAuth endpoint must keep the grown
        // interval too; it grows at most a dozen times per session.
        device_sessions::raise_interval(conn, session.id, now, pace.interval_secs)?;
    }
    let interval_secs = u32::try_from(pace.interval_secs).unwrap_or(1);
    Ok(if too_fast {
        PollOutcome::SlowDown { interval_secs }
    } else {
        PollOutcome::Pending { interval_secs }
    })
}

fn deliver(
    conn: &mut PgConnection,
    config: &Config,
    session_id: Uuid,
    sealed: &[u8],
    token_id: Uuid,
) -> Result<PollOutcome, AppError> {
    let plain = config
        .keys
        .seal
        .open(session_id.as_bytes(), sealed)
        .map_err(AppError::internal)?;
    let plain = String::from_utf8(plain).map_err(AppError::internal)?;
    let (token, refresh) = grants::parse_payload(config, &plain)
        .ok_or_else(|| AppError::internal("sealed token has an unexpected shape"))?;
    let row = api_tokens::find(conn, token_id)?
        .ok_or_else(|| AppError::internal("minted token row is missing"))?;
    Ok(PollOutcome::Approved {
        token,
        token_id,
        token_name: row.name,
        scopes: row.scopes,
        expires_at: row.expires_at,
        refresh,
    })
}

fn record_reuse(
    conn: &mut PgConnection,
    session: &device_sessions::DeviceSession,
    client_ip: &str,
) -> Result<(), AppError> {
    let mut event = Event::new(
        EventKind::CliDeviceCodeReused,
        Severity::High,
        Some(client_ip),
    )
    .details(json!({
        "session_id": session.id,
        "reason": "an already consumed device code was polled again; it may have leaked",
    }));
    event.user_id = session.user_id;
    event.token_id = session.token_id;
    events::record(conn, event)?;
    Ok(())
}

/// What the browser decided, and who decided it.
#[derive(Debug)]
pub struct CompleteInput {
    /// The code from the terminal.
    pub user_code: UserCode,
    /// Approve or deny.
    pub approve: bool,
    /// Narrowed scopes (a subset of those asked for).
    pub scopes: Option<Vec<String>>,
    /// Shorter lifetime, in days.
    pub expires_in_days: Option<u32>,
    /// The signed-in account deciding.
    pub approver: User,
    /// Browser IP.
    pub client_ip: String,
}

/// The result of a decision.
#[derive(Debug, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// A token is waiting for the CLI (or was already: `already` is true).
    Approved {
        /// The minted token.
        token_id: Uuid,
        /// The same account had already approved it.
        already: bool,
        /// Paste mode: the code to show the person (only on the first approval).
        confirmation_code: Option<String>,
    },
    /// Refused.
    Denied,
}

/// The answer for a code that names no live request.
pub fn expired_request() -> AppError {
    AppError::Gone {
        code: "expired_token",
        message:
            "This CLI login request has expired or does not exist. Run `envshield login` again."
                .to_owned(),
    }
}

/// Approves or denies a live request, under a row lock so concurrent
/// decisions queue and exactly one token is ever minted.
pub fn complete(
    conn: &mut PgConnection,
    config: &Config,
    cache: &PendingCache,
    input: CompleteInput,
    now: DateTime<Utc>,
) -> Result<CompleteOutcome, AppError> {
    let hash = input
        .user_code
        .keyed_hash(config.keys.code_hmac.expose_secret());
    let mut decided: Option<Vec<u8>> = None;
    let outcome = conn.transaction(|conn| {
        let session = device_sessions::lock_live_by_user_hash(conn, &hash, now)?
            .ok_or_else(expired_request)?;
        decided = Some(session.device_code_hash.clone());
        let approver = &input.approver;
        if session.status() == SessionStatus::Approved {
            return match (session.user_id, session.token_id) {
                (Some(uid), Some(token_id)) if uid == approver.id && input.approve => {
                    Ok(CompleteOutcome::Approved {
                        token_id,
                        already: true,
                        confirmation_code: None,
                    })
                }
                (Some(uid), _) if uid == approver.id => Err(AppError::conflict(
                    "already_approved",
                    "You already approved this request. Revoke the token in your token settings if you did not mean to.",
                )),
                _ => Err(AppError::forbidden(
                    "approved_by_another_account",
                    "This CLI login request was already approved by another account.",
                )),
            };
        }
        if !input.approve {
            device_sessions::deny(conn, session.id, approver.id)?;
            crate::notify::notify_change(conn, &session.device_code_hash)?;
            events::record(
                conn,
                Event::new(EventKind::CliDeviceDenied, Severity::Medium, Some(&input.client_ip))
                    .user(approver.id)
                    .details(json!({ "session_id": session.id })),
            )?;
            return Ok(CompleteOutcome::Denied);
        }
        approve(conn, config, &session, &input, now)
    });
    // Committed (or rolled back): this instance's polls read it again at
    // once; the NOTIFY tells the other instances.
    if let Some(key) = decided
        .as_deref()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
    {
        cache.evict(&key);
    }
    outcome
}

fn approve(
    conn: &mut PgConnection,
    config: &Config,
    session: &device_sessions::DeviceSession,
    input: &CompleteInput,
    now: DateTime<Utc>,
) -> Result<CompleteOutcome, AppError> {
    let requested = Scopes::parse(&session.scopes, &config.scope_catalogue)
        .map_err(|m| AppError::bad_request("invalid_scope", m))?;
    let granted = match &input.scopes {
        None => requested,
        Some(chosen) => {
            let chosen = Scopes::parse(chosen, &config.scope_catalogue)
                .map_err(|m| AppError::bad_request("invalid_scope", m))?;
            if !chosen.is_subset_of(&requested) {
                return Err(AppError::bad_request(
                    "invalid_scope",
                    format!(
                        "You can only remove scopes from this request, not add them. It asked for: {}.",
                        requested.as_slice().join(", ")
                    ),
                ));
            }
            chosen
        }
    };
    let days = match (input.expires_in_days, config.api_token_ttl_days) {
        (Some(0), _) => {
            return Err(AppError::bad_request(
                "invalid_expiry",
                "The token must live at least one day.",
            ))
        }
        (Some(d), Some(max)) if d > max => {
            return Err(AppError::bad_request(
                "invalid_expiry",
                format!("The token can live at most {max} days."),
            ))
        }
        (Some(d), _) => Some(d),
        (None, max) => max,
    };
    let expires_at = days.map(|d| now + Duration::days(i64::from(d)));

    let approver = users::lock(conn, input.approver.id)?;
    if !config.token_roles.contains(&approver.role) {
        return Err(AppError::forbidden(
            "role_not_allowed",
            format!(
                "Accounts with the `{}` role may not create API tokens.",
                approver.role
            ),
        ));
    }
    if let Some(scope) = granted
        .as_slice()
        .iter()
        .find(|s| !config.role_may_grant(&approver.role, s))
    {
        return Err(AppError::forbidden(
            "scope_not_allowed",
            format!(
                "Your account may not grant the `{scope}` scope. Untick it, or ask an admin to approve."
            ),
        ));
    }
    let active = api_tokens::count_active_for_user(conn, approver.id, now)?
        + refresh_tokens::count_live_families(conn, approver.id, now)?;
    let max = i64::from(config.max_api_tokens_per_user);
    if active >= max {
        return Err(AppError::conflict(
            "token_limit_reached",
            format!(
                "You already have {max} active tokens, the most allowed. Revoke one in your token settings (/settings/tokens) or with `envshield tokens revoke <id>`, then approve again."
            ),
        ));
    }

    let client = config
        .client(&session.client_id)
        .ok_or_else(|| AppError::internal("session of an unregistered client"))?;
    let issued = grants::issue(
        conn,
        config,
        &grants::Grant {
            policy: config.token_policy(client, &session.flow),
            client_id: &session.client_id,
            user_id: approver.id,
            name: &session.token_name,
            scopes: granted.as_slice(),
            api_token_expires_at: expires_at,
            family: None,
            source: "device",
        },
        now,
    )?;
    let token_id = issued.access_id;
    let sealed = config
        .keys
        .seal
        .seal(
            session.id.as_bytes(),
            grants::sealed_payload(&issued).as_bytes(),
        )
        .map_err(AppError::internal)?;
    let code_key = config.keys.code_hmac.expose_secret();
    let confirmation_code = (session.confirmation == "paste").then(ConfirmationCode::generate);
    let code_hash = confirmation_code.as_ref().map(|c| c.keyed_hash(code_key));
    if device_sessions::approve(
        conn,
        session.id,
        approver.id,
        token_id,
        &sealed,
        code_hash.as_ref().map(|h| h.as_slice()),
        now,
    )? != 1
    {
        return Err(expired_request());
    }
    crate::notify::notify_change(conn, &session.device_code_hash)?;
    events::record(
        conn,
        Event::new(
            EventKind::CliDeviceApproved,
            Severity::Medium,
            Some(&input.client_ip),
        )
        .user(approver.id)
        .token(token_id)
        .details(json!({
            "session_id": session.id,
            "requested_from": session.client_ip,
            "client_id": session.client_id,
        })),
    )?;
    events::record(
        conn,
        Event::new(
            EventKind::CliTokenCreated,
            Severity::Medium,
            Some(&input.client_ip),
        )
        .user(approver.id)
        .token(token_id)
        .details(json!({
            "token_name": session.token_name,
            "scopes": granted.as_slice(),
            "requested_from": session.client_ip,
        })),
    )?;
    Ok(CompleteOutcome::Approved {
        token_id,
        already: false,
        confirmation_code: confirmation_code.map(|c| c.display()),
    })
}

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

/// Revokes a token and, for an access token, its whole refresh family.
fn revoke_with_family(
    conn: &mut PgConnection,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    api_tokens::revoke(conn, token_id, now)?;
    if let Some(family) = api_tokens::find(conn, token_id)?.and_then(|t| t.family_id) {
        refresh_tokens::revoke_family(conn, family, now)?;
        api_tokens::revoke_family(conn, family, now)?;
    }
    Ok(())
}

/// Paste mode's pickup: releases the token only with the confirmation code
/// shown in the approving browser. Wrong codes are counted; too many cancel
/// the session and revoke its token.
pub fn exchange(
    conn: &mut PgConnection,
    config: &Config,
    device_code: &DeviceCode,
    confirmation: &str,
    client_ip: &str,
    now: DateTime<Utc>,
) -> Result<ExchangeOutcome, AppError> {
    let key = config.keys.code_hmac.expose_secret();
    let hash = device_code.keyed_hash(key);
    let presented = ConfirmationCode::parse(confirmation);
    conn.transaction(|conn| {
        let Some(session) = device_sessions::lock_by_device_hash(conn, &hash)? else {
            return Ok(ExchangeOutcome::Expired);
        };
        let status = session.status();
        if status.is_live() && session.expires_at <= now {
            return Ok(ExchangeOutcome::Expired);
        }
        match status {
            SessionStatus::Pending => return Ok(ExchangeOutcome::Pending),
            SessionStatus::Denied => return Ok(ExchangeOutcome::Denied),
            SessionStatus::Approved if session.confirmation == "paste" => {}
            _ => return Ok(ExchangeOutcome::Expired),
        }
        let matches = match (&presented, &session.confirmation_code_hash) {
            (Some(code), Some(stored)) => crypto::ct_eq(&code.keyed_hash(key), stored),
            _ => false,
        };
        if matches {
            return match device_sessions::consume(conn, session.id, now, "paste")? {
                Some((sealed, token_id)) => Ok(ExchangeOutcome::Delivered(deliver(
                    conn, config, session.id, &sealed, token_id,
                )?)),
                None => Ok(ExchangeOutcome::Expired),
            };
        }
        let failures = device_sessions::add_confirmation_failure(conn, session.id)?;
        let mut event = Event::new(
            EventKind::ConfirmationFailed,
            Severity::Medium,
            Some(client_ip),
        )
        .details(json!({ "session_id": session.id, "failures": failures }));
        event.user_id = session.user_id;
        event.token_id = session.token_id;
        events::record(conn, event)?;
        if failures >= MAX_CONFIRMATION_FAILURES {
            device_sessions::cancel(conn, &hash)?;
            if let Some(token_id) = session.token_id {
                revoke_with_family(conn, token_id, now)?;
            }
            return Ok(ExchangeOutcome::Expired);
        }
        Ok(ExchangeOutcome::WrongCode {
            attempts_left: MAX_CONFIRMATION_FAILURES - failures,
        })
    })
}

/// The CLI gave up: cancel the session, and revoke a token minted for it
/// that was never picked up.
pub fn cancel(
    conn: &mut PgConnection,
    config: &Config,
    cache: &PendingCache,
    device_code: &DeviceCode,
    client_ip: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let hash = device_code.keyed_hash(config.keys.code_hmac.expose_secret());
    let cancelled = conn.transaction(|conn| {
        let Some(session) = device_sessions::cancel(conn, &hash)? else {
            return Ok(false);
        };
        crate::notify::notify_change(conn, &hash)?;
        if let Some(token_id) = session.token_id {
            revoke_with_family(conn, token_id, now)?;
        }
        let mut event = Event::new(
            EventKind::CliDeviceCancelled,
            Severity::Low,
            Some(client_ip),
        )
        .details(json!({ "session_id": session.id }));
        event.user_id = session.user_id;
        event.token_id = session.token_id;
        events::record(conn, event)?;
        Ok(true)
    });
    cache.evict(&hash);
    cancelled
}

/// What the approval page shows about a request.
#[derive(Debug)]
pub struct RequestView {
    /// Session id.
    pub id: Uuid,
    /// Where it stands, with expiry applied.
    pub status: SessionStatus,
    /// Approver, once decided.
    pub user_id: Option<Uuid>,
    /// Token name.
    pub token_name: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Requesting IP.
    pub client_ip: Option<String>,
    /// Requesting user agent.
    pub user_agent: Option<String>,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Looks a request up by user code for display; expiry applied.
pub fn find_request(
    conn: &mut PgConnection,
    config: &Config,
    user_code: &UserCode,
    now: DateTime<Utc>,
) -> Result<Option<RequestView>, AppError> {
    let hash = user_code.keyed_hash(config.keys.code_hmac.expose_secret());
    Ok(device_sessions::find_by_user_hash(conn, &hash)?.map(|s| {
        let mut status = s.status();
        if status.is_live() && s.expires_at <= now {
            status = SessionStatus::Expired;
        }
        RequestView {
            id: s.id,
            status,
            user_id: s.user_id,
            token_name: s.token_name,
            scopes: s.scopes,
            client_ip: s.client_ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }))
}

/// Background purge: expire due sessions (wiping sealed tokens) and delete
/// sessions that ended more than `keep` ago.
pub fn purge(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<(usize, usize), AppError> {
    let expired = device_sessions::expire_due(conn, now)?;
    let deleted = device_sessions::delete_ended_before(conn, now - keep)?;
    Ok((expired, deleted))
}
