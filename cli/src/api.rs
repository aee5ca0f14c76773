//! The HTTP client for the server's v1 JSON API: typed requests in, typed
//! answers or a typed [`ApiError`] out.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use envshield_api_types::{
    CancelDeviceRequest, ErrorBody, ExchangeDeviceRequest, PollDeviceRequest, PollDeviceResponse,
    RefreshRequest, RefreshResponse, RevokeTokenRequest, StartDeviceRequest, StartDeviceResponse,
    TokenListResponse, WhoamiResponse,
};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{clause, one_line};

/// API base URL used when nothing else says otherwise.
pub const DEFAULT_API_URL: &str = "http://localhost:3000/api/v1";
/// Environment variable that sets the API base URL.
pub const API_URL_ENV: &str = "ENVSHIELD_API_URL";
/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The one endpoint where 404 is an answer (no such token), not a wrong URL.
const REVOKE_PATH: &str = "/cli/tokens/revoke";
/// Largest response body read; anything bigger is not an EnvShield answer.
const MAX_BODY: u64 = 1024 * 1024;

/// Picks the API base URL: the `--api-url` flag, then `ENVSHIELD_API_URL`,
/// then the URL saved in the profile, then [`DEFAULT_API_URL`]. Empty values
/// count as unset. The winner is checked and normalised.
pub fn resolve_api_url(
    flag: Option<&str>,
    env: Option<&str>,
    saved: Option<&str>,
) -> Result<String, ApiError> {
    let chosen = [flag, env, saved]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(DEFAULT_API_URL);
    normalize_api_url(chosen)
}

/// Checks that `raw` is an absolute http(s) URL with a host and no query,
/// and drops trailing slashes, so that equal servers compare equal.
pub fn normalize_api_url(raw: &str) -> Result<String, ApiError> {
    let invalid = |reason: &str| ApiError::InvalidUrl {
        url: one_line(raw),
        reason: reason.into(),
    };
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("it must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry a user name or password"));
    }
    Ok(trimmed.to_string())
}

/// True when `api_url` is plain HTTP to a host other than this machine,
/// where a token would cross the network unencrypted.
pub fn is_insecure_remote(api_url: &str) -> bool {
    let Ok(url) = Url::parse(api_url) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    match url.host_str() {
        Some(host) => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => !ip.is_loopback(),
                Err(_) => {
                    let host = host.to_ascii_lowercase();
                    host != "localhost" && !host.ends_with(".localhost")
                }
            }
        }
        None => false,
    }
}

/// Checks the shape of a token: not empty, printable ASCII, no whitespace.
/// The prefix is not checked: servers may configure their own.
pub fn check_token_format(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("a token has no spaces or special characters".into());
    }
    Ok(())
}

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
                let to = location
                    .as_deref()
                    .map(|l| format!(" to {}", one_line(l)))
                    .unwrap_or_default();
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
                let said = message
                    .as_deref()
                    .map(|m| format!(": {}", clause(m)))
                    .unwrap_or_default();
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

/// An answer read in full, before it is decoded.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A client for one API base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: Client,
    base: String,
}

impl ApiClient {
    /// A client for `base` (see [`normalize_api_url`]), with a request
    /// timeout and the `envshield/<version> (<os>)` User-Agent. Redirects are
    /// not followed: the API never redirects, and a redirect usually means a
    /// wrong URL.
    pub fn new(base: &str) -> Result<Self, ApiError> {
        let base = normalize_api_url(base)?;
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(user_agent())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Client(innermost(&e)))?;
        Ok(Self { http, base })
    }

    /// The API base URL, normalised.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /cli/auth/device/start`.
    pub fn start_device(&self, req: &StartDeviceRequest) -> Result<StartDeviceResponse, ApiError> {
        const PATH: &str = "/cli/auth/device/start";
        let raw = self.execute(self.http.post(self.url(PATH)).json(req))?;
        self.decode(PATH, raw)
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
        const PATH: &str = "/cli/auth/device/poll";
        let body = PollDeviceRequest {
            device_code: device_code.to_string(),
            wait,
        };
        let raw = self.execute(self.http.post(self.url(PATH)).json(&body))?;
        if matches!(raw.status.as_u16(), 200 | 403 | 410 | 429) {
            if let Ok(answer) = serde_json::from_slice::<PollDeviceResponse>(&raw.body) {
                return Ok(answer);
            }
        }
        self.decode(PATH, raw)
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
        const PATH: &str = "/cli/auth/device/exchange";
        let body = ExchangeDeviceRequest {
            device_code: device_code.to_string(),
            confirmation_code: confirmation_code.to_string(),
        };
        let raw = self.execute(self.http.post(self.url(PATH)).json(&body))?;
        self.decode(PATH, raw)
    }

    /// `POST /cli/auth/refresh`: a new access token and a new refresh
    /// token for `refresh_token`, which is spent from then on.
    pub fn refresh(&self, refresh_token: &str) -> Result<RefreshResponse, ApiError> {
        const PATH: &str = "/cli/auth/refresh";
        let body = RefreshRequest {
            refresh_token: refresh_token.to_string(),
        };
        let raw = self.execute(self.http.post(self.url(PATH)).json(&body))?;
        self.decode(PATH, raw)
    }

    /// `POST /cli/auth/device/cancel`, with a short timeout: it is sent on
    /// the way out after Ctrl-C.
    pub fn cancel_device(&self, device_code: &str) -> Result<(), ApiError> {
        const PATH: &str = "/cli/auth/device/cancel";
        let body = CancelDeviceRequest {
            device_code: device_code.to_string(),
        };
        let raw = self.execute(
            self.http
                .post(self.url(PATH))
                .timeout(Duration::from_secs(5))
                .json(&body),
        )?;
        self.expect_success(PATH, raw)
    }

    /// `GET /cli/whoami`.
    pub fn whoami(&self, token: &str) -> Result<WhoamiResponse, ApiError> {
        const PATH: &str = "/cli/whoami";
        let raw = self.execute(self.http.get(self.url(PATH)).bearer_auth(token))?;
        self.decode(PATH, raw)
    }

    /// `GET /cli/tokens`, or `?all=true` (admins: every account's tokens).
    pub fn list_tokens(&self, token: &str, all: bool) -> Result<TokenListResponse, ApiError> {
        const PATH: &str = "/cli/tokens";
        let url = if all {
            format!("{}?all=true", self.url(PATH))
        } else {
            self.url(PATH)
        };
        let raw = self.execute(self.http.get(url).bearer_auth(token))?;
        self.decode(PATH, raw)
    }

    /// `POST /cli/tokens/revoke`.
    pub fn revoke_token(&self, token: &str, token_id: Uuid) -> Result<(), ApiError> {
        const PATH: &str = REVOKE_PATH;
        let body = RevokeTokenRequest { token_id };
        let raw = self.execute(
            self.http
                .post(self.url(PATH))
                .bearer_auth(token)
                .json(&body),
        )?;
        self.expect_success(PATH, raw)
    }

    /// `POST /cli/auth/logout`: revokes `token` itself.
    pub fn logout(&self, token: &str) -> Result<(), ApiError> {
        const PATH: &str = "/cli/auth/logout";
        let raw = self.execute(self.http.post(self.url(PATH)).bearer_auth(token))?;
        self.expect_success(PATH, raw)
    }

    fn execute(&self, request: RequestBuilder) -> Result<Raw, ApiError> {
        let response: Response = request.send().map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        response
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| ApiError::Unreachable {
                base: self.base.clone(),
                reason: format!("the answer broke off: {e}"),
            })?;
        Ok(Raw {
            status,
            headers,
            body,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                base: self.base.clone(),
            }
        } else if e.is_builder() {
            ApiError::InvalidUrl {
                url: self.base.clone(),
                reason: innermost(e),
            }
        } else {
            ApiError::Unreachable {
                base: self.base.clone(),
                reason: innermost(e),
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, raw: Raw) -> Result<T, ApiError> {
        if !raw.status.is_success() {
            return Err(self.failure(path, raw));
        }
        serde_json::from_slice(&raw.body).map_err(|e| self.bad_response(path, &raw, &e))
    }

    fn expect_success(&self, path: &str, raw: Raw) -> Result<(), ApiError> {
        if raw.status.is_success() {
            Ok(())
        } else {
            Err(self.failure(path, raw))
        }
    }

    fn bad_response(&self, path: &str, raw: &Raw, e: &serde_json::Error) -> ApiError {
        ApiError::BadResponse {
            base: self.base.clone(),
            path: path.to_string(),
            status: raw.status.as_u16(),
            html: looks_like_html(raw),
            detail: if raw.body.is_empty() {
                "empty body".into()
            } else {
                e.to_string()
            },
        }
    }

    fn failure(&self, path: &str, raw: Raw) -> ApiError {
        let status = raw.status.as_u16();
        let body = serde_json::from_slice::<ErrorBody>(&raw.body).ok();
        if raw.status.is_server_error() {
            return ApiError::Server {
                base: self.base.clone(),
                status,
                message: body.map(|b| b.message),
            };
        }
        if raw.status.is_redirection() {
            return ApiError::Redirect {
                base: self.base.clone(),
                status,
                location: raw
                    .headers
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
        }
        // Only `revoke` can legitimately answer 404 (no such token); on any
        // other endpoint a 404, even with a JSON body, means the base URL
        // is not the API's.
        if status == 404 && path != REVOKE_PATH {
            return ApiError::NotFound {
                base: self.base.clone(),
                path: path.to_string(),
            };
        }
        match body {
            Some(body) => ApiError::Api {
                status,
                body,
                retry_after: raw
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            },
            None if status == 404 => ApiError::NotFound {
                base: self.base.clone(),
                path: path.to_string(),
            },
            None => ApiError::BadResponse {
                base: self.base.clone(),
                path: path.to_string(),
                status,
                html: looks_like_html(&raw),
                detail: if raw.body.is_empty() {
                    "empty body".into()
                } else {
                    "no error body".into()
                },
            },
        }
    }
}

fn looks_like_html(raw: &Raw) -> bool {
    let content_type_html = raw
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"));
    let body_html = String::from_utf8_lossy(&raw.body[..raw.body.len().min(64)])
        .trim_start()
        .starts_with('<');
    content_type_html || body_html
}

/// `envshield/<version> (<os>)`.
pub fn user_agent() -> String {
    format!(
        "envshield/{} ({})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

/// The deepest cause in an error chain: the part that says what really
/// happened ("Connection refused (os error 111)"), without the URL (which
/// could carry secrets in other setups).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    let text = one_line(&current.to_string());
    if text.is_empty() {
        "unknown network error".into()
    } else {
        text
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    /// A one-shot HTTP peer: answers the next `count` connections with the
    /// given raw responses, in order, and hands back the requests' first
    /// lines and headers.
    pub(crate) fn canned_server(
        responses: Vec<String>,
    ) -> (String, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                seen.push(read_request(&stream));
                (&stream).write_all(response.as_bytes()).unwrap();
            }
            seen
        });
        (base, handle)
    }

    fn read_request(stream: &TcpStream) -> String {
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head.push_str(&String::from_utf8_lossy(&body));
        head
    }

    pub(crate) fn http(status: &str, content_type: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn closed_port_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/api/v1")
    }

    #[test]
    fn api_url_precedence_is_flag_env_profile_default() {
        let r = |f, e, s| resolve_api_url(f, e, s).unwrap();
        assert_eq!(
            r(
                Some("http://flag/api/v1"),
                Some("http://env"),
                Some("http://saved")
            ),
            "http://flag/api/v1"
        );
        assert_eq!(
            r(None, Some("http://env/"), Some("http://saved")),
            "http://env"
        );
        assert_eq!(
            r(None, None, Some("http://saved/api/v1")),
            "http://saved/api/v1"
        );
        assert_eq!(r(None, Some(""), Some("http://saved")), "http://saved");
        assert_eq!(r(None, None, None), DEFAULT_API_URL);
    }

    #[test]
    fn bad_api_urls_are_refused_with_advice() {
        for bad in [
            "localhost:3000",
            "ftp://x/api",
            "http://",
            "http://x/api?a=1",
            "not a url",
        ] {
            let err = normalize_api_url(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_api_url", "{bad}");
            assert!(err.to_string().contains("Check --api-url"), "{err}");
        }
        assert_eq!(
            normalize_api_url(" https://e.example/api/v1/// ").unwrap(),
            "https://e.example/api/v1"
        );
    }

    #[test]
    fn plain_http_off_this_machine_is_flagged() {
        assert!(is_insecure_remote("http://envshield.example.com/api/v1"));
        assert!(is_insecure_remote("http://10.0.0.1/api/v1"));
        assert!(!is_insecure_remote("http://localhost:3000/api/v1"));
        assert!(!is_insecure_remote("http://127.0.0.1:3000/api/v1"));
        assert!(!is_insecure_remote("http://[::1]:3000/api/v1"));
        assert!(!is_insecure_remote("https://envshield.example.com/api/v1"));
    }

    #[test]
    fn token_format_only_requires_printable_without_spaces() {
        assert!(check_token_format("esh_abc").is_ok());
        assert!(check_token_format("acme_XYZ123").is_ok());
        assert!(check_token_format("").is_err());
        assert!(check_token_format("esh abc").is_err());
        assert!(check_token_format("esh_abc\n").is_err());
        assert!(check_token_format("esh_é").is_err());
    }

    #[test]
    fn user_agent_names_version_and_os() {
        let ua = user_agent();
        assert!(ua.starts_with("envshield/0."), "{ua}");
        assert!(ua.ends_with(&format!("({})", std::env::consts::OS)));
    }

    #[test]
    fn unreachable_server_is_a_one_line_error_with_advice() {
        let base = closed_port_url();
        let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
        assert_eq!(err.code(), "unreachable");
        assert!(err.is_transient());
        let message = err.to_string();
        assert!(message.starts_with("could not reach the EnvShield server at http://127.0.0.1:"));
        assert!(message.to_lowercase().contains("refused"), "{message}");
        assert!(message.contains("Check that the server is running"));
        assert!(!message.contains('\n'));
    }

    #[test]
    fn html_answer_is_reported_as_wrong_url() {
        let (base, server) = canned_server(vec![http(
            "200 OK",
            "text/html; charset=utf-8",
            "<!doctype html><html><body>Welcome</body></html>",
        )]);
        let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
        server.join().unwrap();
        assert_eq!(err.code(), "bad_response");
        let message = err.to_string();
        assert!(
            message.contains("with an HTML page (HTTP 200)"),
            "{message}"
        );
        assert!(message.contains("Check --api-url"), "{message}");
    }

    #[test]
    fn non_json_text_is_reported() {
        let (base, server) = canned_server(vec![http("200 OK", "text/plain", "hello")]);
        let err = ApiClient::new(&base)
            .unwrap()
            .list_tokens("esh_x", false)
            .unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, ApiError::BadResponse { html: false, .. }));
        assert!(err.to_string().contains("not EnvShield JSON"), "{err}");
    }

    #[test]
    fn server_error_is_transient_and_shows_the_message() {
        let (base, server) = canned_server(vec![
            http(
                "503 Service Unavailable",
                "application/json",
                r#"{"error":"unavailable","message":"Database is down."}"#,
            ),
            http("502 Bad Gateway", "text/html", "<html>bad gateway</html>"),
        ]);
        let client = ApiClient::new(&base).unwrap();
        let first = client.whoami("esh_x").unwrap_err();
        let second = client.whoami("esh_x").unwrap_err();
        server.join().unwrap();

        assert_eq!(first.code(), "server_error");
        assert!(first.is_transient());
        assert_eq!(
            first.to_string(),
            format!("the server at {base} failed (HTTP 503: Database is down). Try again in a minute; if it keeps failing, tell the server's operator.")
        );
        assert!(second.to_string().contains("failed (HTTP 502)"), "{second}");
    }

    #[test]
    fn unauthorized_carries_the_server_message() {
        let (base, server) = canned_server(vec![http(
            "401 Unauthorized",
            "application/json",
            r#"{"error":"invalid_token","message":"The token is revoked."}"#,
        )]);
        let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
        let requests = server.join().unwrap();
        assert!(err.is_unauthorized());
        assert_eq!(err.code(), "invalid_token");
        assert_eq!(
            err.to_string(),
            "The token is revoked. Run `envshield login` to sign in again."
        );
        let request = requests[0].to_lowercase();
        assert!(request.starts_with("get /api/v1/cli/whoami "), "{request}");
        assert!(request.contains("authorization: bearer esh_x"));
        assert!(request.contains("user-agent: envshield/"));
    }

    #[test]
    fn rate_limit_reports_retry_after() {
        let body = r#"{"error":"rate_limited","message":"Too many sign-ins."}"#;
        let response = format!(
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 42\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (base, server) = canned_server(vec![response.to_string()]);
        let err = ApiClient::new(&base)
            .unwrap()
            .start_device(&StartDeviceRequest::default())
            .unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "Too many sign-ins. Try again in 42 seconds."
        );
    }

    #[test]
    fn not_found_without_body_points_at_the_url() {
        let (base, server) = canned_server(vec![http("404 Not Found", "text/plain", "")]);
        let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, ApiError::NotFound { .. }));
        assert!(err.to_string().contains("has no /cli/whoami endpoint"));
    }

    #[test]
    fn json_404_points_at_the_url_except_on_revoke() {
        let not_found = || {
            http(
                "404 Not Found",
                "application/json",
                r#"{"error":"not_found","message":"No such token."}"#,
            )
        };
        let (base, server) = canned_server(vec![not_found(), not_found()]);
        let client = ApiClient::new(&base).unwrap();
        let wrong_url = client.whoami("esh_x").unwrap_err();
        let no_token = client.revoke_token("esh_x", Uuid::nil()).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(wrong_url, ApiError::NotFound { .. }),
            "{wrong_url:?}"
        );
        assert_eq!(no_token.to_string(), "No such token.");
    }

    #[test]
    fn redirects_are_not_followed() {
        let response = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere/api/v1/cli/whoami\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (base, server) = canned_server(vec![response.to_string()]);
        let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
        server.join().unwrap();
        assert!(
            err.to_string()
                .contains("redirect (HTTP 301 to https://elsewhere"),
            "{err}"
        );
    }

    #[test]
    fn poll_answers_of_every_status_decode() {
        let (base, server) = canned_server(vec![
            http(
                "200 OK",
                "application/json",
                r#"{"status":"pending","pollInterval":5}"#,
            ),
            http(
                "429 Too Many Requests",
                "application/json",
                r#"{"status":"slow_down","error":"slow_down","message":"Slow down.","pollInterval":10}"#,
            ),
            http(
                "403 Forbidden",
                "application/json",
                r#"{"status":"denied","error":"access_denied","message":"Denied."}"#,
            ),
            http(
                "410 Gone",
                "application/json",
                r#"{"status":"expired","error":"expired_token","message":"Expired."}"#,
            ),
        ]);
        let client = ApiClient::new(&base).unwrap();
        assert_eq!(
            client.poll_device("dc", None).unwrap(),
            PollDeviceResponse::Pending { poll_interval: 5 }
        );
        assert!(matches!(
            client.poll_device("dc", None).unwrap(),
            PollDeviceResponse::SlowDown {
                poll_interval: 10,
                ..
            }
        ));
        assert!(matches!(
            client.poll_device("dc", None).unwrap(),
            PollDeviceResponse::Denied { .. }
        ));
        assert!(matches!(
            client.poll_device("dc", None).unwrap(),
            PollDeviceResponse::Expired { .. }
        ));
        let requests = server.join().unwrap();
        assert!(requests[0].starts_with("POST /api/v1/cli/auth/device/poll "));
        assert!(
            requests[0].ends_with(r#"{"deviceCode":"dc"}"#),
            "{}",
            requests[0]
        );
    }
}
