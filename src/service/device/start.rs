//! Starting a device login: validate what the client asked for, then hand
//! the session to the start writer, which inserts every session queued
//! meanwhile, each with its audit event, in one statement and one commit
//! (group commit).
//!
//! The writer takes everything queued when its previous statement is done,
//! so an idle server adds no wait, and under load the sessions arriving
//! during one commit share the next. Each caller waits at most
//! `DATABASE_TIMEOUT_SEC` for its answer, then gets a 503, like any other
//! database work.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration as StdDuration;

use actix_web::web;
use chrono::{DateTime, Duration, Utc};
use envshield_api_types::ConfirmationMode;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

use super::policy;
use crate::config::{Config, DEVICE_CODE_GRANT};
use crate::db::models::device_sessions::{self, NewDeviceSession};
use crate::db::{self, Db};
use crate::domain::{Confirmation, DeviceCode, Flow, Role, UserCode};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// Attempts to draw a user code that is not already taken.
const USER_CODE_ATTEMPTS: usize = 5;
/// The most sessions one statement inserts.
const MAX_BATCH: usize = 256;
/// Starts waiting for the writer; past this, callers wait to queue.
const QUEUE: usize = 4096;

/// What the client sent to `start`, plus where it came from.
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
    /// How the token will be collected (`risk`: decided at approval).
    pub confirmation: Confirmation,
    /// Which API is starting it.
    pub flow: Flow,
    /// Thumbprint of the DPoP key the client proved at start: the pickup
    /// must prove the same key.
    pub dpop_jkt: Option<String>,
    /// The CLI's X25519 public key: the token is handed out sealed to it.
    pub handoff_key: Option<String>,
}

/// A started session: the codes are handed out once, here.
#[derive(Debug)]
pub struct Started {
    /// The session's id.
    pub id: Uuid,
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
    /// How the client collects the token: `poll` also when approving
    /// decides (`risk`); a poll then answers `confirmation_required` if
    /// the code is needed.
    pub confirmation: ConfirmationMode,
}

/// Starts a device login: validates the request (no database needed) and
/// has the start writer insert a PENDING session.
pub async fn start_session(
    state: &AppState,
    input: StartInput,
    now: DateTime<Utc>,
) -> Result<Started, AppError> {
    let config = &*state.config;
    let token_name = policy::token_name(input.token_name.as_deref(), now)?;
    let client = config.client(&input.client_id).ok_or_else(|| {
        AppError::bad_request(
            "invalid_client",
            format!("Unknown client `{}`.", input.client_id),
        )
    })?;
    if !client.allows_grant(DEVICE_CODE_GRANT) {
        return Err(AppError::bad_request(
            "unauthorized_client",
            "This client may not use the device login.",
        ));
    }
    if client.require_dpop && input.flow == Flow::V1 && input.dpop_jkt.is_none() {
        return Err(AppError::bad_request(
            "invalid_dpop_proof",
            "This client must prove a DPoP key (RFC 9449) when it starts a login: send a DPoP header.",
        ));
    }
    if let Some(key) = &input.handoff_key {
        envshield_api_types::handoff::check_public_key(key)
            .map_err(|e| AppError::bad_request("invalid_handoff_key", format!("{e}.")))?;
    }
    let scopes = policy::requested_scopes(input.scopes.as_deref(), &config.default_scopes, client)?;
    check_policy_admits(state, &input).await?;
    let ttl = Duration::from_std(config.device_code_ttl).map_err(AppError::internal)?;
    let session = NewSession {
        token_name: token_name.into_inner(),
        scopes: scopes.into_inner(),
        created_at: now,
        expires_at: now + ttl,
        client_ip: input.client_ip,
        user_agent: policy::user_agent(input.user_agent),
        poll_interval_sec: i32::try_from(config.device_code_interval_secs).unwrap_or(5),
        client_id: client.client_id.clone(),
        confirmation: input.confirmation,
        flow: input.flow,
        dpop_jkt: input.dpop_jkt,
        handoff_key: input.handoff_key,
    };
    let codes = state.starts.submit(session, config.db_timeout).await?;
    Ok(Started {
        id: codes.id,
        device_code: codes.device_code,
        user_code: codes.user_code,
        expires_at: codes.expires_at,
        interval_secs: config.device_code_interval_secs,
        token_name: codes.token_name,
        scopes: codes.scopes,
        confirmation: input.confirmation.into(),
    })
}

/// Refuses (403, recorded as `device_login_refused`) a start that
/// `DEVICE_LOGIN_POLICY` leaves no role to approve: every role is off, or
/// the requesting address is outside each enabled role's
/// `requestNetworks`.
async fn check_policy_admits(state: &AppState, input: &StartInput) -> Result<(), AppError> {
    let rules = &state.config.device_login_policy;
    let from = input.client_ip.parse::<IpAddr>().ok();
    if rules.some_role_admits(from) {
        return Ok(());
    }
    let any_enabled = Role::ALL
        .iter()
        .any(|r| rules.for_role(*r).is_none_or(|p| p.enabled));
    let (rule, message) = if any_enabled {
        (
            "requestNetworks",
            format!(
                "Your organisation's policy allows no device login from {}: it is outside every role's networks (rule requestNetworks). Sign in from an allowed network.",
                input.client_ip
            ),
        )
    } else {
        (
            "enabled",
            "Your organisation's policy turns device logins off for every role (rule enabled)."
                .to_owned(),
        )
    };
    let (ip, client_id) = (input.client_ip.clone(), input.client_id.clone());
    db::run(&state.pool, move |conn| {
        let event =
            Event::new(EventKind::DeviceLoginRefused, Severity::Medium, Some(&ip)).details(json!({
                "role": null,
                "rule": rule,
                "stage": "start",
                "requested_from": ip,
                "client_id": client_id,
            }));
        Ok(events::record(conn, event)?)
    })
    .await?;
    Err(AppError::forbidden(policy::POLICY_ERROR, message))
}

/// A validated session waiting for its codes and its row.
#[derive(Debug)]
struct NewSession {
    token_name: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    client_ip: String,
    user_agent: Option<String>,
    poll_interval_sec: i32,
    client_id: String,
    confirmation: Confirmation,
    flow: Flow,
    dpop_jkt: Option<String>,
    handoff_key: Option<String>,
}

/// What the writer hands back for a stored session.
#[derive(Debug)]
struct Stored {
    id: Uuid,
    device_code: DeviceCode,
    user_code: UserCode,
    expires_at: DateTime<Utc>,
    token_name: String,
    scopes: Vec<String>,
}

/// One start waiting for the writer.
struct Job {
    session: NewSession,
    answer: oneshot::Sender<Result<Stored, AppError>>,
}

/// Where `start` queues its sessions for the writer; one per instance,
/// held by [`AppState`].
#[derive(Clone)]
pub struct StartQueue {
    jobs: mpsc::Sender<Job>,
}

/// The writer's end of the [`StartQueue`], for [`write_starts`].
pub struct StartJobs {
    jobs: mpsc::Receiver<Job>,
}

impl StartQueue {
    /// A queue and the end the writer reads.
    pub fn new() -> (Self, StartJobs) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { jobs: tx }, StartJobs { jobs: rx })
    }

    /// Queues `session` and waits for it to be stored, at most `timeout`.
    async fn submit(&self, session: NewSession, timeout: StdDuration) -> Result<Stored, AppError> {
        let stopped = || AppError::Unavailable("the start writer is not running".into());
        let (answer, answered) = oneshot::channel();
        let stored = async {
            self.jobs
                .send(Job { session, answer })
                .await
                .map_err(|_| stopped())?;
            answered.await.map_err(|_| stopped())?
        };
        tokio::time::timeout(timeout, stored)
            .await
            .map_err(|_| AppError::Unavailable("timed out waiting for the database".into()))?
    }
}

/// The start writer: stores queued sessions, everything queued at once (at
/// most [`MAX_BATCH`]), one statement after another, until the queue closes.
/// Callers that gave up (timed out) are left out.
pub async fn write_starts(state: web::Data<AppState>, mut queue: StartJobs) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.jobs.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        jobs.retain(|job: &Job| !job.answer.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let span = tracing::info_span!("start_sessions", sessions = jobs.len());
        store_batch(&state, std::mem::take(&mut jobs))
            .instrument(span)
            .await;
    }
}

/// Stores one batch and answers each caller: its codes, or the batch's
/// error (a 503 for every caller when the database is unavailable).
async fn store_batch(state: &AppState, jobs: Vec<Job>) {
    let (sessions, answers): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .map(|job| (job.session, job.answer))
        .unzip();
    let stored = state
        .run(move |conn, cx| insert_sessions(conn, &cx.config, sessions))
        .await;
    match stored {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(batch_failure(&e)));
            }
        }
    }
}

/// The batch's failure as each of its callers gets it: a database outage
/// stays a 503; anything else is a 500 whose cause goes to the log only.
fn batch_failure(e: &AppError) -> AppError {
    match e {
        AppError::Unavailable(why) => AppError::Unavailable(why.clone()),
        other => AppError::internal(format!("storing started sessions failed: {other:?}")),
    }
}

/// Fresh identity of a session: its id and codes.
struct Drawn {
    id: Uuid,
    device_code: DeviceCode,
    user_code: UserCode,
    device_code_hash: [u8; 32],
    user_code_hash: [u8; 32],
}

impl Drawn {
    fn new(key: &[u8; 32]) -> Self {
        let (device_code, user_code) = (DeviceCode::generate(), UserCode::generate());
        Self {
            id: Uuid::new_v4(),
            device_code_hash: device_code.keyed_hash(key),
            user_code_hash: user_code.keyed_hash(key),
            device_code,
            user_code,
        }
    }
}

/// Inserts the sessions with fresh codes, in one statement; a session whose
/// user code was already taken draws again (only that one), up to
/// [`USER_CODE_ATTEMPTS`] times. Any statement failing fails the batch.
fn insert_sessions(
    conn: &mut Db<'_>,
    config: &Config,
    sessions: Vec<NewSession>,
) -> Result<Vec<Result<Stored, AppError>>, AppError> {
    let key = config.keys.code_hmac.expose_secret();
    let start = Event::new(EventKind::CliDeviceStart, Severity::Low, None);
    let start = events::row(&start);
    let mut drawn: Vec<Option<Drawn>> = sessions.iter().map(|_| None).collect();
    let mut todo: Vec<usize> = (0..sessions.len()).collect();
    for _ in 0..USER_CODE_ATTEMPTS {
        let fresh: Vec<Drawn> = todo.iter().map(|_| Drawn::new(key)).collect();
        let rows: Vec<NewDeviceSession<'_>> = todo
            .iter()
            .zip(&fresh)
            .map(|(&i, d)| {
                let s = &sessions[i];
                NewDeviceSession {
                    id: d.id,
                    device_code_hash: &d.device_code_hash,
                    user_code_hash: &d.user_code_hash,
                    token_name: &s.token_name,
                    scopes: &s.scopes,
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    client_ip: Some(&s.client_ip),
                    user_agent: s.user_agent.as_deref(),
                    poll_interval_sec: s.poll_interval_sec,
                    client_id: &s.client_id,
                    confirmation: s.confirmation,
                    flow: s.flow,
                    dpop_jkt: s.dpop_jkt.as_deref(),
                    handoff_key: s.handoff_key.as_deref(),
                }
            })
            .collect();
        // A single statement: committed once it returns.
        let inserted: HashSet<Uuid> =
            device_sessions::insert_started(conn, &rows, start.kind, start.severity)?
                .into_iter()
                .collect();
        drop(rows);
        let mut collided = Vec::new();
        for (i, d) in todo.into_iter().zip(fresh) {
            if inserted.contains(&d.id) {
                let s = &sessions[i];
                events::announce(
                    &Event::new(EventKind::CliDeviceStart, Severity::Low, Some(&s.client_ip))
                        .details(json!({ "session_id": d.id, "token_name": s.token_name })),
                );
                drawn[i] = Some(d);
            } else {
                // A live user code was drawn twice; this one draws again.
                collided.push(i);
            }
        }
        todo = collided;
        if todo.is_empty() {
            break;
        }
    }
    Ok(sessions
        .into_iter()
        .zip(drawn)
        .map(|(s, d)| {
            let d = d.ok_or_else(|| AppError::internal("could not draw a free user code"))?;
            Ok(Stored {
                id: d.id,
                device_code: d.device_code,
                user_code: d.user_code,
                expires_at: s.expires_at,
                token_name: s.token_name,
                scopes: s.scopes,
            })
        })
        .collect())
}
