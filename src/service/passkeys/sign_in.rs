//! Signing in with a passkey, username-less: the authenticator names the
//! account.

use std::net::IpAddr;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableAuthentication, PublicKeyCredential};

use crate::db;
use crate::db::models::passkeys;
use crate::db::models::users::{self, User};
use crate::db::models::webauthn_ceremonies;
use crate::domain::CeremonyPurpose;
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

use super::*;

/// Starts a username-less sign-in: options for `navigator.credentials.get()`
/// with no credentials listed (the authenticator offers its passkeys for
/// this site), and the ceremony's id.
pub async fn start_sign_in(state: &AppState) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let (options, authentication) = webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let row = ceremony(CeremonyPurpose::SignIn, to_json(&authentication)?, now);
        webauthn_ceremonies::insert(conn, &row)?;
        Ok((row.id, request_options(&options)?))
    })
    .await
}

/// Finishes a passkey sign-in: the account the passkey belongs to, or why
/// it was refused. Every outcome is an audit event.
pub async fn finish_sign_in(
    state: &AppState,
    ceremony_id: Uuid,
    credential: PublicKeyCredential,
    ip: IpAddr,
) -> Result<Result<User, Refusal>, AppError> {
    let webauthn = webauthn(state)?;
    let now = Utc::now();
    let (outcome, about) = db::run(&state.pool, move |conn| {
        let ceremony = take_ceremony(conn, ceremony_id, CeremonyPurpose::SignIn, None, now)?;
        conn.transaction(|conn| {
            let authentication: DiscoverableAuthentication = from_json(ceremony.state)?;
            let Ok((user_id, credential_id)) =
                webauthn.identify_discoverable_authentication(&credential)
            else {
                return Ok((Err("no_user_handle"), None));
            };
            let Some(row) = passkeys::lock_by_credential_id(conn, credential_id)? else {
                return Ok((Err("unknown_passkey"), None));
            };
            if row.user_id != user_id {
                return Ok((Err("user_handle_mismatch"), Some(row.user_id)));
            }
            let user = users::find(conn, row.user_id)?.ok_or_else(start_again)?;
            if user.disabled_at.is_some() {
                return Ok((Err("account_disabled"), Some(user.id)));
            }
            let checked = check_assertion(
                conn,
                &row,
                |passkey| {
                    webauthn.finish_discoverable_authentication_v2(
                        &credential,
                        authentication,
                        passkey,
                    )
                },
                now,
            )?;
            if let Err(reason) = checked {
                return Ok((Err(reason), Some(user.id)));
            }
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasskeySignIn, Severity::Low, Some(&ip))
                    .user(user.id)
                    .details(json!({ "passkey_id": row.id, "name": row.name })),
            )?;
            Ok((Ok(user), None))
        })
    })
    .await?;
    if let Err(reason) = outcome {
        // Recorded apart: the transaction above kept nothing of a refusal
        // (the spent ceremony aside).
        db::run(&state.pool, move |conn| {
            let ip = ip.to_string();
            let event = Event::new(EventKind::LoginFailed, Severity::Low, Some(&ip))
                .about(about, None)
                .details(json!({ "method": "passkey", "reason": reason }));
            Ok(events::record(conn, event)?)
        })
        .await?;
    }
    Ok(outcome)
}
