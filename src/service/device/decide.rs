//! The browser half: looking a request up by its user code, and approving
//! or denying it, under a row lock so exactly one token is ever minted. An
//! approval that `APPROVAL_STEP_UP` asks a step-up for consumes its proof
//! in the same transaction, or mints nothing.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use super::policy::{self, StepUpReason};
use crate::config::{Config, TokenPolicy};
use crate::db::models::notifications;
use crate::db::models::users::User;
use crate::db::models::{api_tokens, device_sessions, refresh_tokens, users};
use crate::db::{self, Db};
use crate::domain::{Confirmation, ConfirmationCode, Scopes, SessionStatus, TokenSource, UserCode};
use crate::error::AppError;
use crate::realtime::Realtime;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::{grants, step_up};
use crate::state::AppState;

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
    /// The approver's browser session (a step-up proof is bound to it).
    pub approver_session: Uuid,
    /// Browser IP.
    pub client_ip: IpAddr,
    /// A passed step-up, when `APPROVAL_STEP_UP` asks for one.
    pub step_up_proof: Option<String>,
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
    /// Not approved: `APPROVAL_STEP_UP` asks the approver to prove it is
    /// them again, for these reasons, and no fitting proof came along.
    /// Recorded as `step_up_failed`; nothing else changed.
    StepUpRequired {
        /// Why a step-up is asked for.
        reasons: Vec<StepUpReason>,
        /// What was wrong with the proof: `missing`, `unknown_or_used`,
        /// `expired`, `not_for_this_approval`.
        problem: &'static str,
    },
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
    /// What an approval would mint (for the lifetime step-up considers).
    pub token_policy: TokenPolicy,
}

impl RequestView {
    /// Why approving this request from `approver_ip` needs a step-up, with
    /// the scopes `granted` (all asked for when `None`) and the lifetime
    /// `chosen_days` (the default when `None`).
    pub fn step_up_reasons(
        &self,
        config: &Config,
        approver_ip: IpAddr,
        granted: Option<&[String]>,
        chosen_days: Option<u32>,
    ) -> Vec<StepUpReason> {
        policy::step_up_reasons(
            config,
            &policy::Approval {
                requested_from: self.client_ip.as_deref(),
                approver_ip,
                scopes: granted.unwrap_or(&self.scopes),
                lifetime_days: policy::granted_lifetime_days(
                    config,
                    self.token_policy,
                    chosen_days,
                ),
            },
        )
    }
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

/// Looks a request up by user code for display; expiry applied.
pub async fn find_request(
    state: &AppState,
    user_code: &UserCode,
) -> Result<Option<RequestView>, AppError> {
    let hash = user_code.keyed_hash(state.config.keys.code_hmac.expose_secret());
    let now = Utc::now();
    let found = db::run(&state.pool, move |conn| {
        Ok(device_sessions::find_by_user_hash(conn, &hash)?)
    })
    .await?;
    let config = &state.config;
    Ok(found.map(|s| RequestView {
        token_policy: config
            .client(&s.client_id)
            .map_or(TokenPolicy::ApiToken, |c| config.token_policy(c, s.flow)),
        id: s.id,
        status: if s.status.is_live() && s.expires_at <= now {
            SessionStatus::Expired
        } else {
            s.status
        },
        user_id: s.user_id,
        token_name: s.token_name,
        scopes: s.scopes,
        client_ip: s.client_ip,
        user_agent: s.user_agent,
        created_at: s.created_at,
        expires_at: s.expires_at,
    }))
}

/// Approves or denies a live request, under a row lock so concurrent
/// decisions queue and exactly one token is ever minted.
pub async fn decide(state: &AppState, input: CompleteInput) -> Result<CompleteOutcome, AppError> {
    let now = Utc::now();
    state.run(move |conn, cx| {
    let (config, realtime) = (&*cx.config, &cx.realtime);
    let hash = input
        .user_code
        .keyed_hash(config.keys.code_hmac.expose_secret());
    conn.transaction(|conn| {
        let session = device_sessions::lock_live_by_user_hash(conn, &hash, now)?
            .ok_or_else(expired_request)?;
        let approver = &input.approver;
        if session.status == SessionStatus::Approved {
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
        let outcome = if input.approve {
            approve(conn, config, &session, &input, now)?
        } else {
            device_sessions::deny(conn, session.id, approver.id)?;
            let ip = input.client_ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::CliDeviceDenied, Severity::Medium, Some(&ip))
                    .user(approver.id)
                    .details(json!({ "session_id": session.id })),
            )?;
            CompleteOutcome::Denied
        };
        if !matches!(outcome, CompleteOutcome::StepUpRequired { .. }) {
            changed(conn, realtime, &session.device_code_hash)?;
        }
        Ok(outcome)
    })
    }).await
}

/// Tells every instance that a session changed: the NOTIFY is delivered at
/// commit, and this instance hears of it right after its own commit.
pub(super) fn changed(
    conn: &mut Db<'_>,
    realtime: &Arc<Realtime>,
    device_code_hash: &[u8],
) -> Result<(), AppError> {
    notifications::device_session_changed(conn, device_code_hash)?;
    if let Ok(key) = <[u8; 32]>::try_from(device_code_hash) {
        let realtime = realtime.clone();
        conn.after_commit(move || realtime.session_changed(&key));
    }
    Ok(())
}

fn approve(
    conn: &mut Db<'_>,
    config: &Config,
    session: &device_sessions::DeviceSession,
    input: &CompleteInput,
    now: DateTime<Utc>,
) -> Result<CompleteOutcome, AppError> {
    let requested = Scopes::parse(&session.scopes, &config.scope_catalogue)
        .map_err(|m| AppError::bad_request("invalid_scope", m))?;
    let granted =
        policy::granted_scopes(&requested, input.scopes.as_deref(), &config.scope_catalogue)?;
    let expires_at = policy::token_expiry(input.expires_in_days, config.api_token_ttl_days, now)?;
    let approver = users::lock(conn, input.approver.id)?;
    policy::check_approver(config, approver.role, &granted)?;
    let active = api_tokens::count_active_for_user(conn, approver.id, now)?
        + refresh_tokens::count_live_families(conn, approver.id, now)?;
    policy::check_token_cap(active, config.max_api_tokens_per_user)?;

    let client = config
        .client(&session.client_id)
        .ok_or_else(|| AppError::internal("session of an unregistered client"))?;
    let token_policy = config.token_policy(client, session.flow);
    let ip = input.client_ip.to_string();

    // Step-up, checked here, in the transaction that mints the token: a
    // proof is spent exactly when it approves.
    let reasons = policy::step_up_reasons(
        config,
        &policy::Approval {
            requested_from: session.client_ip.as_deref(),
            approver_ip: input.client_ip,
            scopes: granted.as_slice(),
            lifetime_days: policy::granted_lifetime_days(
                config,
                token_policy,
                input.expires_in_days,
            ),
        },
    );
    let checked = step_up::check(
        conn,
        &reasons,
        input.step_up_proof.as_deref(),
        step_up::Approver {
            user_id: approver.id,
            user_session_id: input.approver_session,
            ip: &ip,
        },
        step_up::Subject::DeviceLogin(session.id),
        now,
    )?;
    if let Err(problem) = checked {
        return Ok(CompleteOutcome::StepUpRequired { reasons, problem });
    }
    let issued = grants::issue(
        conn,
        config,
        &grants::Grant {
            policy: token_policy,
            client_id: &session.client_id,
            user_id: approver.id,
            name: &session.token_name,
            scopes: granted.as_slice(),
            api_token_expires_at: expires_at,
            family: None,
            source: TokenSource::Device,
            // Bound at pickup, to the key the client proves then.
            dpop_jkt: None,
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
    let confirmation_code =
        (session.confirmation == Confirmation::Paste).then(ConfirmationCode::generate);
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
    for (kind, details) in [
        (
            EventKind::CliDeviceApproved,
            json!({
                "session_id": session.id,
                "requested_from": session.client_ip,
                "client_id": session.client_id,
            }),
        ),
        (
            EventKind::CliTokenCreated,
            json!({
                "token_name": session.token_name,
                "scopes": granted.as_slice(),
                "requested_from": session.client_ip,
                "user_agent": session.user_agent,
                "client_id": session.client_id,
                "expires_at": issued.expires_at,
                // With a refresh token the sign-in outlives the access token.
                "renewable_until": issued.refresh.as_ref().map(|_| {
                    now + chrono::Duration::from_std(config.refresh_token_absolute)
                        .unwrap_or_default()
                }),
            }),
        ),
    ] {
        events::record(
            conn,
            Event::new(kind, Severity::Medium, Some(&ip))
                .user(approver.id)
                .token(token_id)
                .details(details),
        )?;
    }
    Ok(CompleteOutcome::Approved {
        token_id,
        already: false,
        confirmation_code: confirmation_code.map(|c| c.display()),
    })
}
