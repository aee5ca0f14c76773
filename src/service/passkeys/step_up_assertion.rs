//! The approval step-up with a passkey: an assertion for one approval,
//! which becomes a proof (`service::step_up`).

use std::net::IpAddr;

use chrono::Utc;
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PasskeyAuthentication, PublicKeyCredential};

use crate::db;
use crate::db::models::passkeys;
use crate::db::models::users::User;
use crate::db::models::webauthn_ceremonies;
use crate::domain::{CeremonyPurpose, StepUpMethod};
use crate::error::AppError;
use crate::service::step_up::{self, Subject};
use crate::service::AppState;

use super::*;

/// Starts a step-up with one of `user`'s passkeys, for approving `subject`
/// (checked open by the caller) from this browser session.
pub async fn start_step_up(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    subject: Subject,
) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id;
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let keys = passkeys::for_user(conn, user_id)?
            .into_iter()
            .map(|row| from_json::<Passkey>(row.passkey))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(AppError::conflict(
                "no_passkeys",
                "Your account has no passkey. Confirm with your password instead.",
            ));
        }
        let (options, authentication) = webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        let mut row = ceremony(CeremonyPurpose::StepUp, to_json(&authentication)?, now);
        row.user_id = Some(user_id);
        row.user_session_id = Some(session_id);
        (row.device_session_id, row.authorization_request) = subject.columns();
        webauthn_ceremonies::insert(conn, &row)?;
        Ok((row.id, request_options(&options)?))
    })
    .await
}

/// Finishes a step-up: verifies the assertion with one of the account's own
/// passkeys and returns a proof for the approval of that request, from
/// this browser session, within [`step_up::PROOF_TTL`]. A refusal is an
/// audit event (`step_up_failed`).
pub async fn finish_step_up(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    ceremony_id: Uuid,
    credential: PublicKeyCredential,
    ip: IpAddr,
) -> Result<Result<String, Refusal>, AppError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id;
    let now = Utc::now();
    let (outcome, subject) = db::run(&state.pool, move |conn| {
        let ceremony = take_ceremony(
            conn,
            ceremony_id,
            CeremonyPurpose::StepUp,
            Some((user_id, session_id)),
            now,
        )?;
        conn.transaction(|conn| {
            let subject = step_up::Subject::from_columns(
                ceremony.device_session_id,
                ceremony.authorization_request.as_deref(),
            )
            .ok_or_else(start_again)?;
            let authentication: PasskeyAuthentication = from_json(ceremony.state)?;
            let row = passkeys::lock_by_credential_id(conn, credential.get_credential_id())?;
            let Some(row) = row.filter(|r| r.user_id == user_id) else {
                return Ok((Err("not_your_passkey"), subject));
            };
            let checked = check_assertion(
                conn,
                &row,
                |_| webauthn.finish_passkey_authentication(&credential, &authentication),
                now,
            )?;
            if let Err(reason) = checked {
                return Ok((Err(reason), subject));
            }
            let proof = step_up::issue_proof(
                conn,
                user_id,
                session_id,
                subject,
                StepUpMethod::Passkey,
                now,
            )?;
            Ok((Ok(proof), subject))
        })
    })
    .await?;
    if let Err(reason) = outcome {
        step_up::record_failure(state, user_id, subject, "passkey", reason, ip).await?;
    }
    Ok(outcome)
}
