//! Approval step-up: the proof that an approver just passed a fresh passkey
//! assertion (`service::passkeys::finish_step_up`) or typed the password
//! again ([`prove_with_password`]). A proof is good for one approval: that
//! request, by that account, from that browser session, within
//! [`PROOF_TTL`]. [`consume`] takes it in the transaction that mints the
//! token (`decide`), so a proof is spent exactly when it is used.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::auth::password;
use crate::crypto::{self, sha256};
use crate::db::models::passkeys;
use crate::db::models::step_up_proofs::{self, StepUpProof};
use crate::db::models::users::User;
use crate::db::{self, Db};
use crate::domain::{SessionStatus, StepUpMethod, UserCode};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::state::AppState;

/// How long a passed step-up may be used to approve.
pub const PROOF_TTL: Duration = Duration::minutes(5);

/// Records a passed step-up for one approval and returns the proof the
/// browser carries to it (only its digest is stored).
pub fn issue_proof(
    conn: &mut Db<'_>,
    user_id: Uuid,
    user_session_id: Uuid,
    device_session_id: Uuid,
    method: StepUpMethod,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let proof = URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>());
    step_up_proofs::insert(
        conn,
        &StepUpProof {
            digest: sha256(proof.as_bytes()).to_vec(),
            user_id,
            user_session_id,
            device_session_id,
            method,
            created_at: now,
            expires_at: now + PROOF_TTL,
        },
    )?;
    Ok(proof)
}

/// Why a presented proof did not pass (the audit log's `reason`).
pub type ProofRefusal = &'static str;

/// Takes the presented proof, if any, and checks it was passed by
/// `user_id` in browser session `user_session_id` for the request
/// `device_session_id`, and is still fresh. A proof that does not fit is
/// spent all the same.
pub fn consume(
    conn: &mut Db<'_>,
    proof: Option<&str>,
    user_id: Uuid,
    user_session_id: Uuid,
    device_session_id: Uuid,
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
    let fits = found.user_id == user_id
        && found.user_session_id == user_session_id
        && found.device_session_id == device_session_id;
    if !fits {
        return Ok(Err("not_for_this_approval"));
    }
    Ok(Ok(found.method))
}

/// Records a failed step-up (kept whatever else the request did).
pub async fn record_failure(
    state: &AppState,
    user_id: Uuid,
    device_session_id: Uuid,
    method: &'static str,
    reason: &'static str,
    ip: IpAddr,
) -> Result<(), AppError> {
    db::run(&state.pool, move |conn| {
        let ip = ip.to_string();
        let event = Event::new(EventKind::StepUpFailed, Severity::Medium, Some(&ip))
            .user(user_id)
            .details(json!({
                "session_id": device_session_id,
                "method": method,
                "reason": reason,
            }));
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
/// event, a right one a proof for approving the request with `code` from
/// this browser session.
pub async fn prove_with_password(
    state: &AppState,
    user: &User,
    user_session_id: Uuid,
    code: &UserCode,
    typed: SecretString,
    ip: IpAddr,
) -> Result<Result<String, StepUpRefused>, AppError> {
    let refuse = |m: &str| Ok(Err(StepUpRefused(m.to_owned())));
    let request = super::find_request(state, code).await?;
    let Some(request) = request.filter(|r| r.status == SessionStatus::Pending) else {
        return Err(super::expired_request());
    };
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
        record_failure(state, user_id, request.id, "password", "wrong_password", ip).await?;
        return refuse("That is not your password. Type it again to approve.");
    }
    let now = Utc::now();
    let proof = db::run(&state.pool, move |conn| {
        issue_proof(
            conn,
            user_id,
            user_session_id,
            request.id,
            StepUpMethod::Password,
            now,
        )
    })
    .await?;
    Ok(Ok(proof))
}
