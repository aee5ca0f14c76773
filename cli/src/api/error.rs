//! Why an API call failed, and what to tell the person about it.

use std::fmt;

use envshield_api_types::ErrorBody;

use super::limits::REQUEST_TIMEOUT;
use crate::text::{clause, one_line, prefixed};

/// Why an API call failed. `Display` is the one-line "what happened. What to
/// do." message for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The API URL is not usable.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up.
    Client(String),
    /// No connection could be made (refused, DNS, TLS, reset).
    Unreachable {
        /// The API base URL.
        base: String,
        /// What the network layer said.
        reason: String,
    },
    /// The server did not answer within [`REQUEST_TIMEOUT`].
    Timeout {
        /// The API base URL.
        base: String,
    },
    /// The server answered with a redirect; the URL is probably not the API.
    Redirect {
        /// The API base URL.
        base: String,
        /// The HTTP status.
        status: u16,
        /// Where it pointed.
        location: Option<String>,
    },
    /// 404 without an API error body: nothing at that path.
    NotFound {
        /// The API base URL.
        base: String,
        /// The endpoint asked for.
        path: String,
    },
    /// The answer was not the JSON the API sends (HTML, text, wrong shape).
    BadResponse {
        /// The API base URL.
        base: String,
        /// The endpoint asked for.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The answer was an HTML page.
        html: bool,
        /// What was wrong with it, when not HTML.
        detail: String,
    },
    /// 5xx: the server failed.
    Server {
        /// The API base URL.
        base: String,
        /// The HTTP status.
        status: u16,
        /// The error body's message, when there was one.
        message: Option<String>,
    },
    /// 4xx with the API's error body.
    Api {
        /// The HTTP status.
        status: u16,
        /// The body, as sent.
        body: ErrorBody,
        /// Seconds from `Retry-After`, on 429.
        retry_after: Option<u64>,
    },
}

impl ApiError {
    /// Stable code for `--json` output.
    pub fn code(&self) -> String {
        match self {
            Self::InvalidUrl { .. } => "invalid_api_url".into(),
            Self::Client(_) => "client_error".into(),
            Self::Unreachable { .. } => "unreachable".into(),
            Self::Timeout { .. } => "timeout".into(),
            Self::Redirect { .. } | Self::NotFound { .. } | Self::BadResponse { .. } => {
                "bad_response".into()
            }
            Self::Server { .. } => "server_error".into(),
            Self::Api { body, .. } => {
                let code = one_line(&body.error);
                if code.is_empty() {
                    "api_error".into()
                } else {
                    code
                }
            }
        }
    }

    /// Worth retrying after a pause: the network or the server had a
    /// problem that may pass.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Server { .. }
        )
    }

    /// The server refused the token (401).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Api { status: 401, .. })
    }

    /// The server refused the token itself (401), not only the DPoP proof
    /// sent with it (`invalid_dpop_proof`: a clock that is off, say), after
    /// which the token may still be live.
    pub fn is_token_refused(&self) -> bool {
        self.is_unauthorized() && !self.is_api_error(401, "invalid_dpop_proof")
    }

    /// The server refused the token because it expired (401
    /// `token_expired`): a refresh token can get a new one.
    pub fn is_token_expired(&self) -> bool {
        self.is_api_error(401, "token_expired")
    }

    /// A 4xx answer with this status and error code.
    pub fn is_api_error(&self, status: u16, code: &str) -> bool {
        matches!(self, Self::Api { status: s, body, .. } if *s == status && body.error == code)
    }

    /// The server's message for a 4xx answer.
    pub fn server_message(&self) -> Option<String> {
        match self {
            Self::Api { body, .. } => Some(clause(&body.message)),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CHECK_URL: &str = "Check --api-url or ENVSHIELD_API_URL: it should be the API base, e.g. http://localhost:3000/api/v1";
        match self {
            Self::InvalidUrl { url, reason } => write!(
                f,
                "the API URL '{url}' is not valid ({}). {CHECK_URL}.",
                clause(reason)
            ),
            Self::Client(reason) => write!(
                f,
                "could not set up the HTTP client ({}). Reinstall envshield or report this as a bug.",
                clause(reason)
            ),
            Self::Unreachable { base, reason } => write!(
                f,
                "could not reach the EnvShield server at {base} ({}). Check that the server is running and that --api-url or ENVSHIELD_API_URL points at it.",
                clause(reason)
            ),
            Self::Timeout { base } => write!(
                f,
                "the server at {base} did not answer within {} seconds. Check your connection and try again.",
                REQUEST_TIMEOUT.as_secs()
            ),
            Self::Redirect {
                base,
                status,
                location,
            } => {
                let to = prefixed(" to ", location.as_deref().map(one_line));
                write!(
                    f,
                    "the server at {base} answered with a redirect (HTTP {status}{to}). {CHECK_URL} (maybe https://)."
                )
            }
            Self::NotFound { base, path } => write!(
                f,
                "the server at {base} has no {path} endpoint (HTTP 404). {CHECK_URL}."
            ),
            Self::BadResponse {
                base,
                path,
                status,
                html,
                detail,
            } => {
                if *html {
                    write!(
                        f,
                        "the server at {base} answered {path} with an HTML page (HTTP {status}) instead of EnvShield JSON. {CHECK_URL}."
                    )
                } else {
                    write!(
                        f,
                        "the server at {base} answered {path} with something that is not EnvShield JSON (HTTP {status}: {}). {CHECK_URL}.",
                        clause(detail)
                    )
                }
            }
            Self::Server {
                base,
                status,
                message,
            } => {
                let said = prefixed(": ", message.as_deref().map(clause));
                write!(
                    f,
                    "the server at {base} failed (HTTP {status}{said}). Try again in a minute; if it keeps failing, tell the server's operator."
                )
            }
            Self::Api {
                status,
                body,
                retry_after,
            } => {
                let message = clause(&body.message);
                let message = if message.is_empty() {
                    format!("the server refused the request (HTTP {status})")
                } else {
                    message
                };
                match (*status, body.error.as_str()) {
                    (_, "invalid_dpop_proof") if mentions_time(&message) => write!(
                        f,
                        "the server refused this computer's proof of its sign-in key (DPoP: {message}). Check that this computer's clock is right (set it automatically, e.g. with NTP), then try again."
                    ),
                    (_, "invalid_dpop_proof") => write!(
                        f,
                        "the server refused this computer's proof of its sign-in key (DPoP: {message}). Try again; if it keeps failing, run `envshield login` to sign in with a new key."
                    ),
                    (401, _) => write!(
                        f,
                        "{message}. Run `envshield login` to sign in again."
                    ),
                    (403, "insufficient_scope") => write!(
                        f,
                        "{message}. Sign in with a token that has the scope: `envshield login --scopes <scope>`."
                    ),
                    (429, _) => match retry_after {
                        Some(secs) => write!(f, "{message}. Try again in {secs} seconds."),
                        None => write!(f, "{message}. Try again in a minute."),
                    },
                    _ => write!(f, "{message}."),
                }
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// Whether a DPoP refusal is about the proof's time (`iat`): then the
/// clock of one side is off.
fn mentions_time(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["iat", "clock", "time", "future", "too old"]
        .iter()
        .any(|w| lower.contains(w))
}
