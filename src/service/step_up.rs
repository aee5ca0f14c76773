//! Approval step-up: the proof that an approver just passed a fresh passkey
//! assertion (`service::passkeys::finish_step_up`) or typed the password
//! again ([`prove_with_password`]). A proof is good for one approval (its
//! [`Subject`]: a CLI login request, or a request at `/oauth/authorize`),
//! by that account, from that browser session, within [`PROOF_TTL`].
//! [`check`] takes it in the transaction that mints the token, so a proof is
//! spent exactly when it is used.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::password;
use crate::crypto::{self, sha256};
use crate::db::models::passkeys;
use crate::db::models::step_up_proofs::{self, StepUpProof};
use crate::db::models::users::User;
use crate::db::{self, Db};
use crate::domain::StepUpMethod;
use crate::error::AppError;
use crate::service::device::policy::StepUpReason;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

/// How long a passed step-up may be used to approve.
pub const PROOF_TTL: Duration = Duration::minutes(5);

/// The one approval a step-up is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A pending CLI login request of the device flow.
    DeviceLogin(Uuid),
    /// A request at `/oauth/authorize`, named by the digest of its client,
    /// redirect URI and PKCE challenge (it has no row until approved).
    Authorization([u8; 32]),
}

impl Subject {
    /// The columns that name it (`device_session_id`, `authorization_request`).
    pub fn columns(self) -> (Option<Uuid>, Option<Vec<u8>>) {
        match self {
            Self::DeviceLogin(id) => (Some(id), None),
            Self::Authorization(digest) => (None, Some(digest.to_vec())),
        }
    }

    /// Read back from those columns; `None` when they name nothing.
    pub fn from_columns(
        device_session: Option<Uuid>,
        authorization: Option<&[u8]>,
    ) -> Option<Self> {
        match (device_session, authorization) {
            (Some(id), None) => Some(Self::DeviceLogin(id)),
            (None, Some(digest)) => <[u8; 32]>::try_from(digest).ok().map(Self::Authorization),
            _ => None,
        }
    }

    /// What the audit log says about it.
    fn details(self) -> Value {
        match self {
            Self::DeviceLogin(id) => json!({ "session_id": id }),
            Self::Authorization(digest) => {
                json!({ "authorization_request": hex::encode(&digest[..8]) })
            }
        }
    }
}

/// Records a passed step-up for one approval and returns the proof the
/// browser carries to it (only its digest is stored).
pub fn issue_proof(
    conn: &mut Db<'_>,
    user_id: Uuid,
    user_session_id: Uuid,
    subject: Subject,
    method: StepUpMethod,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let proof = URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>());
    let (device_session_id, authorization_request) = subject.columns();
    step_up_proofs::insert(
        conn,
        &StepUpProof {
            digest: sha256(proof.as_bytes()).to_vec(),
            user_id,
            user_session_id,
            device_session_id,
            authorization_request,
            method,
            created_at: now,
            expires_at: now + PROOF_TTL,
        },
    )?;
    Ok(proof)
}

/// Why a presented proof did not pass (the audit log's `reason`):
/// `missing`, `unknown_or_used`, `expired`, `not_for_this_approval`.
pub type ProofRefusal = &'static str;

/// Takes the presented proof, if any, and checks it was passed by
/// `user_id` in browser session `user_session_id` for `subject`, and is
/// still fresh. A proof that does not fit is spent all the same.
fn consume(
    conn: &mut Db<'_>,
    proof: Option<&str>,
    user_id: Uuid,
    user_session_id: Uuid,
    subject: Subject,
    now: DateTime<Utc>,
) -> Result<Result<StepUpMethod, ProofRefusal>, AppError> {
    let Some(proof) = proof.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(Err("missing"));
    };
    let Some(found) = step_up_proofs::take(conn, &sha256(proof.as_bytes()))? else {
        return Ok(Err("unknown_or_used"));
    };
    if found.expires_at <= now {
        return Ok(Err("expired"));
    }
    let found_subject = Subject::from_columns(
        found.device_session_id,
        found.authorization_request.as_deref(),
    );
    let fits = found.user_id == user_id
        && found.user_session_id == user_session_id
        && found_subject == Some(subject);
    if !fits {
        return Ok(Err("not_for_this_approval"));
    }
    Ok(Ok(found.method))
}

/// Who is approving what, for [`check`].
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    /// The signed-in account.
    pub user_id: Uuid,
    /// Its browser session.
    pub user_session_id: Uuid,
    /// The browser's address.
    pub ip: &'a str,
}

/// The step-up an approval needs, checked in the transaction that mints:
/// with no `reasons` it passes; otherwise it takes the presented proof and
/// records `step_up_passed` or `step_up_failed` (with the reasons' codes).
/// `Err` is why it did not pass: the caller mints nothing, but commits, so
/// the failure stays on record and the proof stays spent.
pub fn check(
    conn: &mut Db<'_>,
    reasons: &[StepUpReason],
    proof: Option<&str>,
    approver: Approver<'_>,
    subject: Subject,
    now: DateTime<Utc>,
) -> Result<Result<(), ProofRefusal>, AppError> {
    if reasons.is_empty() {
        return Ok(Ok(()));
    }
    let codes: Vec<&str> = reasons.iter().map(StepUpReason::code).collect();
    let checked = consume(
        conn,
        proof,
        approver.user_id,
        approver.user_session_id,
        subject,
        now,
    )?;
    let mut details = subject.details();
    details["reasons"] = json!(codes);
    let kind = match checked {
        Ok(method) => {
            details["method"] = json!(method.as_str());
            EventKind::StepUpPassed
        }
        Err(problem) => {
            details["reason"] = json!(problem);
            EventKind::StepUpFailed
        }
    };
    events::record(
        conn,
        Event::new(kind, Severity::Medium, Some(approver.ip))
            .user(approver.user_id)
            .details(details),
    )?;
    Ok(checked.map(|_| ()))
}

/// Records a failed step-up (kept whatever else the request did).
pub async fn record_failure(
    state: &AppState,
    user_id: Uuid,
    subject: Subject,
    method: &'static str,
    reason: &'static str,
    ip: IpAddr,
) -> Result<(), AppError> {
    db::run(&state.pool, move |conn| {
        let ip = ip.to_string();
        let mut details = subject.details();
        details["method"] = json!(method);
        details["reason"] = json!(reason);
        let event = Event::new(EventKind::StepUpFailed, Severity::Medium, Some(&ip))
            .user(user_id)
            .details(details);
        Ok(events::record(conn, event)?)
    })
    .await
}

/// Why a password step-up was refused, in words for the approval page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpRefused(pub String);

/// A step-up with the account's password, for an account without a
/// passkey: each attempt counts against the sign-in limits of the account
/// and network (a 429 past them), a wrong password is a `step_up_failed`
/// event, a right one a proof for approving `subject` from this browser
/// session. The caller has checked that `subject` is still open.
pub async fn prove_with_password(
    state: &AppState,
    user: &User,
    user_session_id: Uuid,
    subject: Subject,
    typed: SecretString,
    ip: IpAddr,
) -> Result<Result<String, StepUpRefused>, AppError> {
    let refuse = |m: &str| Ok(Err(StepUpRefused(m.to_owned())));
    let user_id = user.id;
    let has_passkeys = db::run(&state.pool, move |conn| {
        Ok(passkeys::count_for_user(conn, user_id)? > 0)
    })
    .await?;
    if has_passkeys {
        return refuse("Your account has a passkey: confirm with it instead of your password.");
    }
    if !state.config.password_login {
        return refuse(
            "Password sign-in is turned off on this server. Add a passkey under Account → Passkeys, then approve with it.",
        );
    }
    let hold = crate::service::limits::check_sign_in(state, &user.email, ip).await?;
    tokio::time::sleep(hold).await;
    let hash = user.password_hash.clone();
    let right =
        crate::service::accounts::bcrypt(state, move || password::verify_password(&typed, &hash))
            .await?;
    if !right {
        record_failure(state, user_id, subject, "password", "wrong_password", ip).await?;
        return refuse("That is not your password. Type it again to approve.");
    }
    let now = Utc::now();
    let proof = db::run(&state.pool, move |conn| {
        issue_proof(
            conn,
            user_id,
            user_session_id,
            subject,
            StepUpMethod::Password,
            now,
        )
    })
    .await?;
    Ok(Ok(proof))
}
