//! Registering a passkey from the settings page.

use std::net::IpAddr;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyRegistration, RegisterPublicKeyCredential,
};

use crate::db;
use crate::db::models::passkeys::{self, PasskeyRow};
use crate::db::models::users::User;
use crate::db::models::webauthn_ceremonies;
use crate::domain::CeremonyPurpose;
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::AppState;

use super::*;

/// Starts registering a passkey named `name` for the signed-in `user`: the
/// options for `navigator.credentials.create()` (a discoverable credential,
/// user verification required; the account's passkeys excluded) and the
/// ceremony's id.
pub async fn start_registration(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    name: String,
) -> Result<(Uuid, serde_json::Value), AppError> {
    let webauthn = webauthn(state)?;
    let (user_id, email) = (user.id, user.email.clone());
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        let existing = passkeys::for_user(conn, user_id)?;
        if existing.len() as i64 >= MAX_PASSKEYS_PER_ACCOUNT {
            return Err(AppError::conflict(
                "too_many_passkeys",
                format!(
                    "You have {MAX_PASSKEYS_PER_ACCOUNT} passkeys, the most allowed. Remove one you no longer use first."
                ),
            ));
        }
        let exclude = existing
            .into_iter()
            .map(|row| from_json::<Passkey>(row.passkey).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, registration) = webauthn
            .start_passkey_registration(user_id, &email, &email, Some(exclude))
            .map_err(internal)?;
        let mut row = ceremony(CeremonyPurpose::Register, to_json(&registration)?, now);
        row.user_id = Some(user_id);
        row.user_session_id = Some(session_id);
        row.passkey_name = Some(name);
        webauthn_ceremonies::insert(conn, &row)?;
        Ok((row.id, discoverable(&options)?))
    })
    .await
}

/// The creation options asking for a discoverable credential (a resident
/// key), so that the passkey can sign in without an email typed first.
/// webauthn-rs leaves residency to the authenticator; the server never
/// relies on it, so asking for more does not change what is verified.
fn discoverable(options: &CreationChallengeResponse) -> Result<serde_json::Value, AppError> {
    let mut value = to_json(options)?;
    let selection = &mut value["publicKey"]["authenticatorSelection"];
    if !selection.is_object() {
        *selection = json!({});
    }
    selection["residentKey"] = json!("required");
    selection["requireResidentKey"] = json!(true);
    selection["userVerification"] = json!("required");
    Ok(value)
}

/// Finishes a registration: verifies the browser's answer against the
/// ceremony this browser session started, and stores the passkey.
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    ceremony_id: Uuid,
    credential: RegisterPublicKeyCredential,
    ip: IpAddr,
) -> Result<PasskeyRow, AppError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id;
    let now = Utc::now();
    db::run(&state.pool, move |conn| {
        // Taken in a statement of its own: spent even if what follows fails.
        let ceremony = take_ceremony(
            conn,
            ceremony_id,
            CeremonyPurpose::Register,
            Some((user_id, session_id)),
            now,
        )?;
        conn.transaction(|conn| {
            let name = ceremony.passkey_name.clone().ok_or_else(start_again)?;
            let registration: PasskeyRegistration = from_json(ceremony.state)?;
            let passkey = match webauthn.finish_passkey_registration(&credential, &registration) {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(error = %e, "passkey registration refused");
                    return Err(AppError::bad_request(
                        "passkey_refused",
                        "Your browser's answer could not be verified, so no passkey was added. Try again.",
                    ));
                }
            };
            let row = PasskeyRow {
                id: Uuid::new_v4(),
                user_id,
                name,
                credential_id: passkey.cred_id().clone(),
                passkey: to_json(&passkey)?,
                counter: 0,
                created_at: now,
                last_used_at: None,
            };
            passkeys::insert(conn, &row).map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => AppError::conflict(
                    "passkey_exists",
                    "This passkey is already registered. Use it to sign in, or add another.",
                ),
                other => other.into(),
            })?;
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::PasskeyAdded, Severity::Medium, Some(&ip))
                    .user(user_id)
                    .details(json!({ "passkey_id": row.id, "name": row.name })),
            )?;
            Ok(row)
        })
    })
    .await
}
