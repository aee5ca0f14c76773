//! The browser half: looking a request up by its user code, and approving
//! or denying it, under a row lock so exactly one token is ever minted. An
//! approval that `APPROVAL_STEP_UP` asks a step-up for consumes its proof
//! in the same transaction, or mints nothing. An approval that
//! `DEVICE_LOGIN_POLICY` refuses is recorded as `device_login_refused`
//! and changes nothing else; under `DEVICE_CONFIRMATION=risk` the approval
//! decides whether the paste-back code is needed, and stores that.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use super::policy::{self, Approval, PasteReason, Refusal, StepUpReason};
use crate::config::{Config, TokenPolicy};
use crate::db::models::notifications;
use crate::db::models::{api_tokens, device_sessions, refresh_tokens, users};
use crate::db::{self, Db};
use crate::domain::{
    Confirmation, ConfirmationCode, Flow, Role, Scopes, SessionStatus, TokenSource, UserCode,
};
use crate::error::AppError;
use crate::realtime::Realtime;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;
use crate::service::{grants, step_up};

/// What the browser decided about the request with this user code, and
/// who decided it.
pub type CompleteInput = grants::Decision<UserCode>;

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
        /// Why the code is needed, in words (empty without a code).
        paste_reasons: Vec<String>,
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
    /// How the token will be collected (`risk`: decided at approval).
    pub confirmation: Confirmation,
    /// Which API started it.
    pub flow: Flow,
    /// The client asking.
    pub client_id: String,
}

impl RequestView {
    /// Why approving this request from `approver_ip` needs a step-up, with
    /// the scopes `granted` (all asked for when `None`) and the lifetime
    /// `chosen_days` (the default when `None`).
    pub fn step_up_reasons(
        &self,
        config: &Config,
        role: Role,
        approver_ip: IpAddr,
        granted: Option<&[String]>,
        chosen_days: Option<u32>,
    ) -> Vec<StepUpReason> {
        let scopes = granted.unwrap_or(&self.scopes);
        let approval = self.approval(config, role, approver_ip, scopes, chosen_days);
        policy::step_up_reasons(config, &approval)
    }

    /// Approving this request from `approver_ip` with `scopes` and
    /// `chosen_days` (the role's longest lifetime when `None`), as the
    /// policy rules and step-up see it.
    fn approval<'a>(
        &'a self,
        config: &Config,
        role: Role,
        approver_ip: IpAddr,
        scopes: &'a [String],
        chosen_days: Option<u32>,
    ) -> Approval<'a> {
        Approval {
            role,
            requested_from: self.client_ip.as_deref(),
            approver_ip,
            scopes,
            lifetime_days: lifetime_days(config, self.token_policy, role, chosen_days),
            fixed_lifetime: self.token_policy == TokenPolicy::AccessRefresh,
        }
    }

    /// Why approving from `approver_ip` with the scopes `granted` (all
    /// asked for when `None`) would show a paste-back code, in words.
    pub fn paste_reasons(
        &self,
        config: &Config,
        approver_ip: IpAddr,
        granted: Option<&[String]>,
    ) -> Vec<String> {
        policy::paste_reasons(
            config,
            self.confirmation,
            self.client_ip.as_deref(),
            approver_ip,
            granted.unwrap_or(&self.scopes),
        )
        .iter()
        .map(PasteReason::sentence)
        .collect()
    }

    /// What `DEVICE_LOGIN_POLICY` says against an approval by `role` from
    /// `approver_ip` before anything is chosen: the scopes asked for that
    /// the role may grant (all of them when it may grant none), with the
    /// default lifetime.
    pub fn policy_refusal(
        &self,
        config: &Config,
        role: Role,
        approver_ip: IpAddr,
    ) -> Option<Refusal> {
        let allowed = self.scopes_allowed(config, role);
        let scopes = if allowed.is_empty() {
            &self.scopes
        } else {
            &allowed
        };
        let approval = self.approval(config, role, approver_ip, scopes, None);
        policy::check_rules(&config.device_login_policy, &approval).err()
    }

    /// The scopes asked for that `role` may grant under `DEVICE_LOGIN_POLICY`.
    pub fn scopes_allowed(&self, config: &Config, role: Role) -> Vec<String> {
        let rules = config.device_login_policy.for_role(role);
        self.scopes
            .iter()
            .filter(|s| {
                rules
                    .and_then(|r| r.scopes.as_ref())
                    .is_none_or(|a| a.contains(s))
            })
            .cloned()
            .collect()
    }
}

/// The longest lifetime an approver of `role` may pick, in days (`None`:
/// for ever): `API_TOKEN_TTL_DAYS` capped by the role's `maxLifetimeDays`.
pub fn max_lifetime_days(config: &Config, role: Role) -> Option<u32> {
    let cap = config
        .device_login_policy
        .for_role(role)
        .and_then(|r| r.max_lifetime_days);
    policy::capped_lifetime(config.api_token_ttl_days, cap)
}

/// How long the tokens of an approval by `role` live, in days (`None`:
/// for ever): the chosen lifetime, else the longest the role may pick; a
/// refresh family lives `REFRESH_TOKEN_ABSOLUTE_DAYS`.
pub fn lifetime_days(
    config: &Config,
    token_policy: TokenPolicy,
    role: Role,
    chosen_days: Option<u32>,
) -> Option<u32> {
    let chosen = chosen_days.or_else(|| max_lifetime_days(config, role));
    policy::granted_lifetime_days(config, token_policy, chosen)
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
        confirmation: s.confirmation,
        flow: s.flow,
        client_id: s.client_id,
    }))
}

/// Approves or denies a live request, under a row lock so concurrent
/// decisions queue and exactly one token is ever minted.
pub async fn decide(state: &AppState, input: CompleteInput) -> Result<CompleteOutcome, AppError> {
    let now = Utc::now();
    let decided = state.run(move |conn, cx| {
    let (config, realtime) = (&*cx.config, &cx.realtime);
    let hash = input
        .request
        .keyed_hash(config.keys.code_hmac.expose_secret());
    conn.transaction(|conn| {
        let session = device_sessions::lock_live_by_user_hash(conn, &hash, now)?
            .ok_or_else(expired_request)?;
        let approver = &input.approver;
        if session.status == SessionStatus::Approved {
            return match (session.user_id, session.token_id) {
                (Some(uid), Some(token_id)) if uid == approver.id && input.approve => {
                    Ok(Ok(CompleteOutcome::Approved {
                        token_id,
                        already: true,
                        confirmation_code: None,
                        paste_reasons: Vec::new(),
                    }))
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
            match approve(conn, config, &session, &input, now)? {
                Ok(outcome) => outcome,
                // Recorded; nothing else changed.
                Err(refusal) => return Ok(Err(refusal)),
            }
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
        Ok(Ok(outcome))
    })
    }).await?;
    decided.map_err(|refusal| refusal.error())
}

/// Records an approval refused by `DEVICE_LOGIN_POLICY` (or by the
/// paste-back code a client cannot type) as `device_login_refused`.
fn record_refusal(
    conn: &mut Db<'_>,
    session: &device_sessions::DeviceSession,
    approver: Uuid,
    ip: &str,
    refusal: &Refusal,
) -> Result<(), AppError> {
    let about = json!({
        "session_id": session.id,
        "requested_from": session.client_ip,
        "client_id": session.client_id,
    });
    record_policy_refusal(conn, approver, ip, refusal, about)
}

/// Records an approval refused by `DEVICE_LOGIN_POLICY` (or by the
/// confirmation mode) as `device_login_refused`: the role, the rule, the
/// refusal's facts and `about` the request.
pub fn record_policy_refusal(
    conn: &mut Db<'_>,
    approver: Uuid,
    ip: &str,
    refusal: &Refusal,
    mut about: serde_json::Value,
) -> Result<(), AppError> {
    if let Some(all) = about.as_object_mut() {
        all.insert("role".to_owned(), refusal.role.as_str().into());
        all.insert("rule".to_owned(), refusal.rule.into());
        if let Some(extra) = refusal.details.as_object() {
            all.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    events::record(
        conn,
        Event::new(EventKind::DeviceLoginRefused, Severity::Medium, Some(ip))
            .user(approver)
            .details(about),
    )?;
    Ok(())
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

/// Approves, or says which rule refused (already recorded).
fn approve(
    conn: &mut Db<'_>,
    config: &Config,
    session: &device_sessions::DeviceSession,
    input: &CompleteInput,
    now: DateTime<Utc>,
) -> Result<Result<CompleteOutcome, Refusal>, AppError> {
    let requested = Scopes::parse(&session.scopes, &config.scope_catalogue)
        .map_err(|m| AppError::bad_request("invalid_scope", m))?;
    let granted =
        policy::granted_scopes(&requested, input.scopes.as_deref(), &config.scope_catalogue)?;
    let approver = users::lock(conn, input.approver.id)?;
    let client = config
        .client(&session.client_id)
        .ok_or_else(|| AppError::internal("session of an unregistered client"))?;
    let token_policy = config.token_policy(client, session.flow);
    let ip = input.client_ip.to_string();
    let lifetime = lifetime_days(config, token_policy, approver.role, input.expires_in_days);

    // DEVICE_LOGIN_POLICY, for the approver's role.
    let approval = Approval {
        role: approver.role,
        requested_from: session.client_ip.as_deref(),
        approver_ip: input.client_ip,
        scopes: granted.as_slice(),
        lifetime_days: lifetime,
        fixed_lifetime: token_policy == TokenPolicy::AccessRefresh,
    };
    if let Err(refusal) = policy::check_rules(&config.device_login_policy, &approval) {
        record_refusal(conn, session, approver.id, &ip, &refusal)?;
        return Ok(Err(refusal));
    }
    let max_days = max_lifetime_days(config, approver.role);
    let expires_at = policy::token_expiry(input.expires_in_days, max_days, now)?;
    policy::check_approver(config, approver.role, &granted)?;
    let active = api_tokens::count_active_for_user(conn, approver.id, now)?
        + refresh_tokens::count_live_families(conn, approver.id, now)?;
    policy::check_token_cap(active, config.max_api_tokens_per_user)?;

    // How the token is collected: `risk` is decided here, and stored.
    let paste_reasons = policy::paste_reasons(
        config,
        session.confirmation,
        session.client_ip.as_deref(),
        input.client_ip,
        granted.as_slice(),
    );
    let confirmation = if paste_reasons.is_empty() {
        Confirmation::Poll
    } else {
        Confirmation::Paste
    };
    if confirmation == Confirmation::Paste && !policy::can_paste(session.flow, Some(client)) {
        let refusal = cannot_paste(&session.client_id, approver.role, &paste_reasons);
        record_refusal(conn, session, approver.id, &ip, &refusal)?;
        return Ok(Err(refusal));
    }

    // Step-up, checked here, in the transaction that mints the token: a
    // proof is spent exactly when it approves.
    let reasons = policy::step_up_reasons(config, &approval);
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
        return Ok(Ok(CompleteOutcome::StepUpRequired { reasons, problem }));
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
    let sealed = issued.seal(config, session.id)?;
    let code_key = config.keys.code_hmac.expose_secret();
    let confirmation_code = (confirmation == Confirmation::Paste).then(ConfirmationCode::generate);
    let code_hash = confirmation_code.as_ref().map(|c| c.keyed_hash(code_key));
    let stored = device_sessions::Approval {
        user_id: approver.id,
        token_id,
        sealed: &sealed,
        confirmation,
        confirmation_code_hash: code_hash.as_ref().map(|h| h.as_slice()),
    };
    if device_sessions::approve(conn, session.id, &stored, now)? != 1 {
        return Err(expired_request());
    }
    for (kind, details) in [
        (
            EventKind::CliDeviceApproved,
            json!({
                "session_id": session.id,
                "requested_from": session.client_ip,
                "client_id": session.client_id,
                "confirmation": confirmation.as_str(),
                "paste_reasons": paste_reasons.iter().map(PasteReason::code).collect::<Vec<_>>(),
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
    Ok(Ok(CompleteOutcome::Approved {
        token_id,
        already: false,
        confirmation_code: confirmation_code.map(|c| c.display()),
        paste_reasons: paste_reasons.iter().map(PasteReason::sentence).collect(),
    }))
}

/// The refusal of an approval that needs the paste-back code, for a
/// client that cannot type it (`DEVICE_CONFIRMATION=risk`).
fn cannot_paste(client_id: &str, role: Role, reasons: &[PasteReason]) -> Refusal {
    let why: Vec<String> = reasons.iter().map(PasteReason::sentence).collect();
    Refusal {
        code: "paste_back_unavailable",
        role,
        rule: "DEVICE_CONFIRMATION",
        message: format!(
            "This approval needs a confirmation code typed back into the requesting device, and client `{client_id}` cannot take one. {} Approve from the device's own network without high-risk scopes, or ask an operator to register the client with \"confirmation\" in OAUTH_CLIENTS.",
            why.join(" ")
        ),
        details: json!({
            "reasons": reasons.iter().map(PasteReason::code).collect::<Vec<_>>(),
        }),
    }
}
