//! What the sign-in tests share: a started request and fast timing.

use std::time::Duration;

use chrono::Utc;
use envshield_api_types::handoff::{seal, HandoffPayload};
use envshield_api_types::{ConfirmationMode, StartDeviceResponse};
use uuid::Uuid;

use super::handoff::Handoff;
use super::wait::WaitOptions;

/// The session id [`start`] names.
pub const SESSION: Uuid = Uuid::from_u128(0x5e55);

/// An approval without a refresh token, in the clear (refused by the CLI).
pub const APPROVED_IN_THE_CLEAR: &str = r#"{"status":"approved","token":"esh_tok","tokenId":"00000000-0000-0000-0000-000000000001","tokenName":"n","scopes":["read"],"expiresAt":null}"#;

/// A fresh handoff key for the session of [`start`].
pub fn handoff() -> Handoff {
    Handoff::for_tests(SESSION)
}

/// An approval of `token` (and `refresh`), sealed to `handoff` as the
/// server seals it.
pub fn approved(handoff: &Handoff, token: &str, refresh: Option<&str>) -> String {
    let payload = HandoffPayload {
        token: token.into(),
        refresh_token: refresh.map(Into::into),
    };
    let sealed = seal(&handoff.public_b64(), handoff.session_id(), &payload).unwrap();
    serde_json::json!({
        "status": "approved",
        "tokenId": "00000000-0000-0000-0000-000000000001",
        "tokenName": "n",
        "scopes": ["read"],
        "expiresAt": null,
        "sealedToken": sealed,
    })
    .to_string()
}

/// A started request that asks to be polled every `poll_interval` seconds.
pub fn start(poll_interval: u64) -> StartDeviceResponse {
    StartDeviceResponse {
        device_code: "dev-secret".into(),
        user_code: "BCDF-GHJK".into(),
        verification_url: "http://localhost:3000/cli/login?code=BCDF-GHJK".into(),
        verification_uri: "http://localhost:3000/cli/device".into(),
        expires_at: Utc::now(),
        expires_in: 600,
        poll_interval,
        token_name: "n".into(),
        scopes: vec![],
        confirmation: ConfirmationMode::Poll,
        session_id: Some(SESSION),
    }
}

/// Timing shrunk to milliseconds.
pub fn fast() -> WaitOptions {
    WaitOptions {
        hard_timeout: Duration::from_secs(20),
        min_interval: Duration::ZERO,
        backoff_base: Duration::from_millis(5),
        slice: Duration::from_millis(5),
    }
}
