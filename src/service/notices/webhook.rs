//! The signed webhook: each notice POSTed as JSON to `SECURITY_WEBHOOK_URL`
//! with `X-EnvShield-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::mail::SendError;
use crate::config::Webhook;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-EnvShield-Signature";
/// The notice's kind, for receivers that route by header.
pub const EVENT_HEADER: &str = "X-EnvShield-Event";
/// The notice's id: the same on every retry, so receivers can drop repeats.
pub const DELIVERY_HEADER: &str = "X-EnvShield-Delivery";
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts notices to the webhook.
pub struct Poster {
    client: reqwest::Client,
    url: SecretString,
    secret: SecretString,
    /// The receiver's host, for logs.
    pub host: String,
}

impl Poster {
    /// A client for `webhook`; redirects are not followed (the signed body
    /// goes to the configured address or nowhere).
    pub fn new(webhook: &Webhook) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("envshield-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("the webhook client cannot be built: {e}"))?;
        Ok(Self {
            client,
            url: webhook.url.clone(),
            secret: webhook.secret.clone(),
            host: webhook.host.clone(),
        })
    }

    /// Posts `payload`, signed now. Any 2xx answer is delivery.
    pub async fn post(&self, payload: &Value) -> Result<(), SendError> {
        let body = serde_json::to_vec(payload).map_err(|e| SendError {
            message: format!("the notice could not be encoded: {e}"),
            permanent: true,
        })?;
        let now = chrono::Utc::now().timestamp();
        let signature =
            crate::crypto::webhook_signature(self.secret.expose_secret().as_bytes(), now, &body);
        let kind = payload.get("kind").and_then(Value::as_str).unwrap_or("");
        let id = payload.get("id").and_then(Value::as_str).unwrap_or("");
        let answer = self
            .client
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, kind)
            .header(DELIVERY_HEADER, id)
            .body(body)
            .send()
            .await
            // The URL may hold a key of the receiver's: never in the error.
            .map_err(|e| SendError {
                message: format!("{}: {}", self.host, e.without_url()),
                permanent: false,
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError {
                message: format!("{} answered HTTP {}", self.host, status.as_u16()),
                permanent: false,
            })
        }
    }
}
