//! The API's endpoints, one method each, all built the same way (see
//! [`ApiClient::request`]).

use envshield_api_types::{
    CancelDeviceRequest, ExchangeDeviceRequest, PollDeviceRequest, PollDeviceResponse,
    RefreshRequest, RefreshResponse, RevokeTokenRequest, StartDeviceRequest, StartDeviceResponse,
    TokenListResponse, WhoamiResponse,
};
use reqwest::Method;
use uuid::Uuid;

use super::client::ApiClient;
use super::error::ApiError;
use super::limits::CANCEL_TIMEOUT;

impl ApiClient {
    /// `POST /cli/auth/device/start`.
    pub fn start_device(&self, req: &StartDeviceRequest) -> Result<StartDeviceResponse, ApiError> {
        self.request(Method::POST, "/cli/auth/device/start")
            .json(req)
            .fetch()
    }

    /// `POST /cli/auth/device/poll`. Pending, approved, slow_down, denied and
    /// expired all come back as `Ok`; anything else is an error. With
    /// `wait`, the server holds the request until the session changes (or
    /// `wait` seconds pass), so an approval arrives at once.
    pub fn poll_device(
        &self,
        device_code: &str,
        wait: Option<u32>,
    ) -> Result<PollDeviceResponse, ApiError> {
        let body = PollDeviceRequest {
            device_code: device_code.to_string(),
            wait,
        };
        let reply = self
            .request(Method::POST, "/cli/auth/device/poll")
            .json(&body)
            .send()?;
        // Denied, expired and slow_down come with error statuses but are
        // answers of the poll, not failures.
        if matches!(reply.status(), 200 | 403 | 410 | 429) {
            if let Some(poll) = reply.parse::<PollDeviceResponse>() {
                return Ok(poll);
            }
        }
        reply.decode()
    }

    /// `POST /cli/auth/device/exchange`: paste mode's pickup of the token
    /// with the confirmation code shown in the browser. Only `Approved`
    /// comes back as `Ok`; a wrong code (400 `invalid_confirmation_code`),
    /// a request not approved yet (409 `authorization_pending`), denied
    /// (403) and ended (410) are [`ApiError::Api`].
    pub fn exchange_device(
        &self,
        device_code: &str,
        confirmation_code: &str,
    ) -> Result<PollDeviceResponse, ApiError> {
        let body = ExchangeDeviceRequest {
            device_code: device_code.to_string(),
            confirmation_code: confirmation_code.to_string(),
        };
        self.request(Method::POST, "/cli/auth/device/exchange")
            .json(&body)
            .fetch()
    }

    /// `POST /cli/auth/device/cancel`, with a short timeout: it is sent on
    /// the way out after Ctrl-C.
    pub fn cancel_device(&self, device_code: &str) -> Result<(), ApiError> {
        let body = CancelDeviceRequest {
            device_code: device_code.to_string(),
        };
        self.request(Method::POST, "/cli/auth/device/cancel")
            .timeout(CANCEL_TIMEOUT)
            .json(&body)
            .perform()
    }

    /// `POST /cli/auth/refresh`: a new access token and a new refresh
    /// token for `refresh_token`, which is spent from then on.
    pub fn refresh(&self, refresh_token: &str) -> Result<RefreshResponse, ApiError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.to_string(),
        };
        self.request(Method::POST, "/cli/auth/refresh")
            .json(&body)
            .fetch()
    }

    /// `GET /cli/whoami`.
    pub fn whoami(&self, token: &str) -> Result<WhoamiResponse, ApiError> {
        self.request(Method::GET, "/cli/whoami")
            .bearer(token)
            .fetch()
    }

    /// `GET /cli/tokens`, or `?all=true` (admins: every account's tokens).
    pub fn list_tokens(&self, token: &str, all: bool) -> Result<TokenListResponse, ApiError> {
        let request = self.request(Method::GET, "/cli/tokens").bearer(token);
        if all {
            request.query(&[("all", "true")]).fetch()
        } else {
            request.fetch()
        }
    }

    /// `POST /cli/tokens/revoke`. A 404 here means no such token.
    pub fn revoke_token(&self, token: &str, token_id: Uuid) -> Result<(), ApiError> {
        self.request(Method::POST, "/cli/tokens/revoke")
            .bearer(token)
            .json(&RevokeTokenRequest { token_id })
            .not_found_is_an_answer()
            .perform()
    }

    /// `POST /cli/auth/logout`: revokes `token` itself.
    pub fn logout(&self, token: &str) -> Result<(), ApiError> {
        self.request(Method::POST, "/cli/auth/logout")
            .bearer(token)
            .perform()
    }
}
