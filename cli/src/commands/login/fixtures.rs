//! What the sign-in tests share: a started request and fast timing.

use std::time::Duration;

use chrono::Utc;
use envshield_api_types::{ConfirmationMode, StartDeviceResponse};

use super::wait::WaitOptions;

/// An approval without a refresh token.
pub const APPROVED: &str = r#"{"status":"approved","token":"esh_tok","tokenId":"00000000-0000-0000-0000-000000000001","tokenName":"n","scopes":["read"],"expiresAt":null}"#;

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
        session_id: None,
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
