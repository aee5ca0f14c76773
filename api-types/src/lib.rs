//! Request and response bodies of the EnvShield v1 JSON API (`/api/v1/cli/...`).
//!
//! The server serialises these and the `envshield` CLI deserialises them, so
//! the two cannot drift apart. Field names are camelCase on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "dpop")]
pub mod dpop;
#[cfg(feature = "handoff")]
pub mod handoff;
pub mod oauth;

pub use oauth::{
    AuthorizationServerMetadata, DeviceAuthorizationResponse, IntrospectionResponse,
    OAuthErrorBody, TokenResponse,
};

/// Stands in for a secret in hand-written `Debug` output, so tokens and codes
/// never reach a log line or a panic message.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An optional count: JSON has one number type, so `24.0` is the integer 24
/// (as JSON Schema reads it); `24.5`, negatives and strings are refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::{Error, Unexpected};
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(u64),
        Float(f64),
    }
    let whole =
        |n: f64| (n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n)).then_some(n as u32);
    match Option::<Number>::deserialize(d)? {
        None => Ok(None),
        Some(Number::Whole(n)) => u32::try_from(n)
            .map(Some)
            .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(n), &"a count up to 2^32")),
        Some(Number::Float(n)) => whole(n)
            .map(Some)
            .ok_or_else(|| D::Error::invalid_value(Unexpected::Float(n), &"a whole number")),
    }
}

/// `POST /api/v1/cli/auth/device/start`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartDeviceRequest {
    /// Name the minted token will carry; the server picks one when absent.
    /// Printable, 1 to 128 characters once trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub token_name: Option<String>,
    /// Scopes asked for; the server's default set when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Registered client asking; `envshield-cli` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `paste`: the token is released only to `device/exchange` with the
    /// confirmation code shown in the browser. The server may require it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationMode>,
    /// The public half of a fresh X25519 key (base64url, 32 bytes): the
    /// token is then handed out sealed to it (HPKE, RFC 9180), so whoever
    /// polls with a stolen device code gets only ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{43}$"))]
    pub handoff_key: Option<String>,
}

/// A token sealed to the CLI's handoff key (`sealedToken` in the poll
/// answer, HPKE base mode, see the `handoff` feature): base64url `enc` (the
/// encapsulated key) and `ciphertext`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SealedToken {
    /// `HPKE-Base-X25519-SHA256-ChaCha20Poly1305`.
    pub suite: String,
    /// The encapsulated key, base64url.
    pub enc: String,
    /// The sealed `{token, refreshToken?}`, base64url.
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedToken")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// How the CLI collects the token once the request is approved.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationMode {
    /// The next poll hands the token over.
    #[default]
    Poll,
    /// The person types a code shown in the browser; `device/exchange` hands it over.
    Paste,
}

/// Answer to `start`: what the CLI shows and keeps while it polls.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StartDeviceResponse {
    /// The CLI's secret for polling. Never shown to the person.
    pub device_code: String,
    /// Short code the person compares in the browser, `XXXX-XXXX`.
    pub user_code: String,
    /// Page that shows this request, with the user code filled in.
    pub verification_url: String,
    /// Page where the code can be typed by hand.
    pub verification_uri: String,
    /// When the request stops being usable.
    pub expires_at: DateTime<Utc>,
    /// Seconds until `expires_at`.
    pub expires_in: i64,
    /// Seconds the CLI must wait between polls.
    pub poll_interval: u64,
    /// Name the token will carry.
    pub token_name: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// How the token will be collected (`paste` when the server requires it).
    #[serde(default)]
    pub confirmation: ConfirmationMode,
    /// The session's id: bound into the sealed handoff (`info` and
    /// associated data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
}

/// `POST /api/v1/cli/auth/device/poll` body (and the GET query).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollDeviceRequest {
    /// The device code from `start`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{43}$"))]
    pub device_code: String,
    /// Long-poll: hold the request up to this many seconds (at most 30)
    /// until the session changes, then answer as a normal poll would.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[cfg_attr(feature = "openapi", schema(maximum = 30))]
    pub wait: Option<u32>,
}

/// Every answer of `poll`, told apart by `status`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PollDeviceResponse {
    /// 200: nobody has decided yet; poll again after `pollInterval` seconds.
    #[serde(rename_all = "camelCase")]
    Pending {
        /// Seconds to wait before the next poll.
        poll_interval: u64,
    },
    /// 200: approved; the token is handed out exactly once.
    #[serde(rename_all = "camelCase")]
    Approved {
        /// The API token in plaintext, shown once; absent when it is
        /// sealed to the CLI's handoff key (`sealedToken`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Id of the token, for `tokens revoke`.
        token_id: Uuid,
        /// Name of the token.
        token_name: String,
        /// Scopes the token carries (the approver may have narrowed them).
        scopes: Vec<String>,
        /// When the token stops working; `None` for no expiry.
        expires_at: Option<DateTime<Utc>>,
        /// Refresh token, for clients issued short-lived access tokens.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<String>,
        /// `DPoP` when the token is bound to the key that proved possession
        /// at pickup (send it as `Authorization: DPoP` with a proof), else
        /// `Bearer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_type: Option<String>,
        /// The token (and refresh token), sealed to the `handoffKey` sent at
        /// `start` (HPKE, RFC 9180): `{suite, enc, ciphertext}`, opening to
        /// `{token, refreshToken?}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed_token: Option<SealedToken>,
    },
    /// 200: approved in paste mode; send the code shown in the browser to
    /// `device/exchange`. Polling never releases the token.
    ConfirmationRequired {
        /// What to do, for a person.
        message: String,
    },
    /// 429: polled faster than allowed; wait `pollInterval` seconds from now on.
    #[serde(rename_all = "camelCase")]
    SlowDown {
        /// Error code, `slow_down`.
        error: String,
        /// What happened, for a person.
        message: String,
        /// The new, longer interval in seconds.
        poll_interval: u64,
    },
    /// 403: the person denied the request.
    Denied {
        /// Error code, `access_denied`.
        error: String,
        /// What happened, for a person.
        message: String,
    },
    /// 410: unknown, expired, cancelled or already used.
    Expired {
        /// Error code, `expired_token`.
        error: String,
        /// What happened, for a person.
        message: String,
    },
}

/// What the browser decides in `complete`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Mint a token for the CLI.
    Approve,
    /// Refuse the request.
    Deny,
}

/// `POST /api/v1/cli/auth/device/complete`, from a signed-in browser session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteDeviceRequest {
    /// The code shown in the terminal, any case, with or without the dash.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^[BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz]{4}-?[BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz]{4}$"
        )
    )]
    pub user_code: String,
    /// Approve or deny.
    pub decision: Decision,
    /// A subset of the requested scopes; all requested when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// A shorter lifetime than the server's default, in days.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub expires_in_days: Option<u32>,
    /// A step-up proof from the approval page (a fresh passkey assertion or
    /// the password), needed when the server's `APPROVAL_STEP_UP` asks for
    /// one; single use, for this request, this account and this browser
    /// session, for five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_proof: Option<String>,
}

/// `POST /api/v1/cli/auth/device/cancel`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelDeviceRequest {
    /// The device code from `start`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{43}$"))]
    pub device_code: String,
}

/// `POST /api/v1/cli/auth/device/exchange`: paste mode's pickup.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExchangeDeviceRequest {
    /// The device code from `start`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{43}$"))]
    pub device_code: String,
    /// The confirmation code shown in the browser after approval.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{3}-?[0-9]{3}$"))]
    pub confirmation_code: String,
}

/// `POST /api/v1/cli/auth/refresh`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub refresh_token: String,
}

/// Answer to `refresh`: a new access token and a new refresh token (the old
/// refresh token is now spent; presenting it again revokes the family).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefreshResponse {
    /// New access token.
    pub token: String,
    /// Its id.
    pub token_id: Uuid,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// New refresh token.
    pub refresh_token: String,
    /// `DPoP` for a bound pair, else `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

/// `{status: "ok", message}` from `complete` and `cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StatusMessage {
    /// Always `ok`.
    pub status: String,
    /// What happened, for a person.
    pub message: String,
    /// Paste mode: the code the person types into the terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_code: Option<String>,
}

/// The account behind a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Account id.
    pub id: Uuid,
    /// Sign-in email.
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
}

/// The token a request was made with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Token id.
    pub id: Uuid,
    /// Token name.
    pub name: String,
    /// Scopes it carries.
    pub scopes: Vec<String>,
    /// When it was minted.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None` for no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last request made with it (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/cli/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoamiResponse {
    /// Who the token belongs to.
    pub user: UserInfo,
    /// The token itself.
    pub token: TokenInfo,
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked by its owner or an admin.
    Revoked,
}

/// One row of `GET /api/v1/cli/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenSummary {
    /// Token id.
    pub id: Uuid,
    /// Owner's account id.
    pub user_id: Uuid,
    /// Owner's email.
    pub user_email: String,
    /// Token name.
    pub name: String,
    /// Prefix and last four characters, e.g. `esh_…a1B2`.
    pub hint: String,
    /// Scopes it carries.
    pub scopes: Vec<String>,
    /// When it was minted.
    pub created_at: DateTime<Utc>,
    /// Last request made with it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working; `None` for no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Active, expired or revoked.
    pub status: TokenStatus,
    /// Whether this is the token the request was made with.
    pub current: bool,
    /// Bound to a DPoP key (RFC 9449): useless without that key.
    #[serde(default)]
    pub dpop_bound: bool,
}

/// `GET /api/v1/cli/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenListResponse {
    /// Newest first.
    pub tokens: Vec<TokenSummary>,
}

/// `POST /api/v1/cli/tokens/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// Id of the token to revoke.
    pub token_id: Uuid,
}

/// Every error body: a stable code and a sentence a person can act on.
/// Device endpoints add `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable snake_case code.
    pub error: String,
    /// What happened and what to do.
    pub message: String,
    /// Device-flow state, on device endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

// Hand-written `Debug` for every body that carries a token, refresh token,
// device code or confirmation code: the secret is shown as `[redacted]`.

impl std::fmt::Debug for StartDeviceResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartDeviceResponse")
            .field("device_code", &Redacted)
            .field("user_code", &self.user_code)
            .field("verification_url", &self.verification_url)
            .field("verification_uri", &self.verification_uri)
            .field("expires_at", &self.expires_at)
            .field("expires_in", &self.expires_in)
            .field("poll_interval", &self.poll_interval)
            .field("token_name", &self.token_name)
            .field("scopes", &self.scopes)
            .field("confirmation", &self.confirmation)
            .finish()
    }
}

impl std::fmt::Debug for PollDeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollDeviceRequest")
            .field("device_code", &Redacted)
            .field("wait", &self.wait)
            .finish()
    }
}

impl std::fmt::Debug for PollDeviceResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pending { poll_interval } => f
                .debug_struct("Pending")
                .field("poll_interval", poll_interval)
                .finish(),
            Self::Approved {
                token,
                token_id,
                token_name,
                scopes,
                expires_at,
                refresh_token,
                token_type,
                sealed_token,
            } => f
                .debug_struct("Approved")
                .field("token", &token.as_ref().map(|_| Redacted))
                .field("sealed_token", sealed_token)
                .field("token_id", token_id)
                .field("token_name", token_name)
                .field("scopes", scopes)
                .field("expires_at", expires_at)
                .field("refresh_token", &refresh_token.as_ref().map(|_| Redacted))
                .field("token_type", token_type)
                .finish(),
            Self::ConfirmationRequired { message } => f
                .debug_struct("ConfirmationRequired")
                .field("message", message)
                .finish(),
            Self::SlowDown {
                error,
                message,
                poll_interval,
            } => f
                .debug_struct("SlowDown")
                .field("error", error)
                .field("message", message)
                .field("poll_interval", poll_interval)
                .finish(),
            Self::Denied { error, message } => f
                .debug_struct("Denied")
                .field("error", error)
                .field("message", message)
                .finish(),
            Self::Expired { error, message } => f
                .debug_struct("Expired")
                .field("error", error)
                .field("message", message)
                .finish(),
        }
    }
}

impl std::fmt::Debug for CancelDeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelDeviceRequest")
            .field("device_code", &Redacted)
            .finish()
    }
}

impl std::fmt::Debug for ExchangeDeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeDeviceRequest")
            .field("device_code", &Redacted)
            .field("confirmation_code", &Redacted)
            .finish()
    }
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &Redacted)
            .finish()
    }
}

impl std::fmt::Debug for RefreshResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshResponse")
            .field("token", &Redacted)
            .field("token_id", &self.token_id)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &Redacted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_responses_are_tagged_by_status_in_camel_case() {
        let pending = PollDeviceResponse::Pending { poll_interval: 5 };
        let json = serde_json::to_value(&pending).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "pending", "pollInterval": 5})
        );

        let parsed: PollDeviceResponse = serde_json::from_value(serde_json::json!({
            "status": "slow_down", "error": "slow_down", "message": "m", "pollInterval": 10
        }))
        .unwrap();
        assert_eq!(
            parsed,
            PollDeviceResponse::SlowDown {
                error: "slow_down".into(),
                message: "m".into(),
                poll_interval: 10
            }
        );
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let err = serde_json::from_str::<StartDeviceRequest>(r#"{"tokenName":"x","bogus":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"));
    }

    #[test]
    fn decision_is_lowercase() {
        let req: CompleteDeviceRequest =
            serde_json::from_str(r#"{"userCode":"BCDF-GHJK","decision":"deny"}"#).unwrap();
        assert_eq!(req.decision, Decision::Deny);
        assert_eq!(req.scopes, None);
    }

    #[test]
    fn debug_never_prints_tokens_or_codes() {
        const SECRET: &str = "s3cr3t-value";
        let when = chrono::DateTime::<Utc>::UNIX_EPOCH;
        let shown = [
            format!(
                "{:?}",
                StartDeviceResponse {
                    device_code: SECRET.into(),
                    user_code: "BCDF-GHJK".into(),
                    verification_url: "u".into(),
                    verification_uri: "u".into(),
                    expires_at: when,
                    expires_in: 600,
                    poll_interval: 5,
                    token_name: "t".into(),
                    scopes: vec![],
                    confirmation: ConfirmationMode::Poll,
                    session_id: None,
                }
            ),
            format!(
                "{:?}",
                PollDeviceRequest {
                    device_code: SECRET.into(),
                    wait: Some(20),
                }
            ),
            format!(
                "{:?}",
                PollDeviceResponse::Approved {
                    token: Some(SECRET.into()),
                    sealed_token: None,
                    token_id: Uuid::nil(),
                    token_name: "t".into(),
                    scopes: vec!["envs:read".into()],
                    expires_at: None,
                    refresh_token: Some(SECRET.into()),
                    token_type: Some("DPoP".into()),
                }
            ),
            format!(
                "{:?}",
                CancelDeviceRequest {
                    device_code: SECRET.into(),
                }
            ),
            format!(
                "{:?}",
                ExchangeDeviceRequest {
                    device_code: SECRET.into(),
                    confirmation_code: SECRET.into(),
                }
            ),
            format!(
                "{:?}",
                RefreshRequest {
                    refresh_token: SECRET.into(),
                }
            ),
            format!(
                "{:#?}",
                RefreshResponse {
                    token: SECRET.into(),
                    token_id: Uuid::nil(),
                    scopes: vec![],
                    expires_at: Some(when),
                    refresh_token: SECRET.into(),
                    token_type: None,
                }
            ),
        ];
        for s in shown {
            assert!(!s.contains(SECRET), "{s}");
            assert!(s.contains("[redacted]"), "{s}");
        }
    }
}
