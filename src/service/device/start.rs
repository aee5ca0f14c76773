//! Starting a device login: validate what the client asked for and insert a
//! PENDING session with its audit event, in one statement.

use chrono::{DateTime, Duration, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use envshield_api_types::ConfirmationMode;
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use super::policy;
use crate::config::DEVICE_CODE_GRANT;
use crate::db::models::device_sessions;
use crate::domain::{DeviceCode, Flow, UserCode};
use crate::error::AppError;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::state::AppState;

/// Attempts to draw a user code that is not already taken.
const USER_CODE_ATTEMPTS: usize = 5;

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
    /// How the token will be collected.
    pub confirmation: ConfirmationMode,
    /// Which API is starting it.
    pub flow: Flow,
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

/// Starts a device login: validates the request and inserts a PENDING
/// session.
pub async fn start_session(
    state: &AppState,
    input: StartInput,
    now: DateTime<Utc>,
) -> Result<Started, AppError> {
    state
        .run(move |conn, cx| {
            let config = &*cx.config;
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
            let scopes =
                policy::requested_scopes(input.scopes.as_deref(), &config.default_scopes, client)?;
            let user_agent = policy::user_agent(input.user_agent);
            let ttl = Duration::from_std(config.device_code_ttl).map_err(AppError::internal)?;
            let expires_at = now + ttl;
            let key = config.keys.code_hmac.expose_secret();
            let interval = i32::try_from(config.device_code_interval_secs).unwrap_or(5);

            for _ in 0..USER_CODE_ATTEMPTS {
                let id = Uuid::new_v4();
                let device_code = DeviceCode::generate();
                let user_code = UserCode::generate();
                let event = Event::new(
                    EventKind::CliDeviceStart,
                    Severity::Low,
                    Some(&input.client_ip),
                )
                .details(json!({ "session_id": id, "token_name": token_name.as_str() }));
                // The session and its audit event: one statement, one commit.
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
                        confirmation: input.confirmation.into(),
                        flow: input.flow,
                    },
                    &events::row(&event),
                );
                match inserted {
                    Ok(()) => {
                        events::committed(conn, &event);
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
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        continue
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(AppError::internal("could not draw a free user code"))
        })
        .await
}
