//! The HTTP client and the one shape every request takes: built by
//! [`ApiClient::request`], sent, read in full, then decoded into the typed
//! answer or classified into an [`ApiError`].

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use envshield_api_types::dpop::DpopKey;
use envshield_api_types::ErrorBody;

use super::base_url::normalize_api_url;
use super::error::ApiError;
use super::limits::{CONNECT_TIMEOUT, MAX_BODY, REQUEST_TIMEOUT};
use crate::text::one_line;

/// A client for one API base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: Client,
    base: String,
    /// The key every request proves possession of (DPoP, RFC 9449), when
    /// the tokens are, or are to be, bound to it.
    dpop: Option<Arc<DpopKey>>,
    /// The server's latest `DPoP-Nonce` (RFC 9449 §8), put into every proof.
    nonce: Arc<Mutex<Option<String>>>,
}

/// An answer read in full.
pub(crate) struct Answer {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Its headers.
    pub(crate) headers: HeaderMap,
    /// Its body, at most [`MAX_BODY`] bytes.
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// Whether the server refused the proof for want of its nonce.
    fn asks_for_nonce(&self) -> bool {
        let said = |text: &[u8]| {
            text.windows(b"use_dpop_nonce".len())
                .any(|w| w == b"use_dpop_nonce")
        };
        let challenge = self
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        match self.status {
            StatusCode::UNAUTHORIZED => said(challenge),
            StatusCode::BAD_REQUEST => said(&self.body),
            _ => false,
        }
    }
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
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(user_agent())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Client(innermost(&e)))?;
        Ok(Self {
            http,
            base,
            dpop: None,
            nonce: Arc::default(),
        })
    }

    /// This client, sending a DPoP proof made with `key` on every request
    /// (and a token as `Authorization: DPoP`); `None` keeps Bearer.
    pub fn with_dpop(self, key: Option<Arc<DpopKey>>) -> Self {
        Self { dpop: key, ..self }
    }

    /// The DPoP key requests are proved with, if any.
    pub fn dpop_key(&self) -> Option<&Arc<DpopKey>> {
        self.dpop.as_ref()
    }

    /// A DPoP proof for `method` on the full `url`, made now, with the hash
    /// of `token` when one is sent; `None` without a key.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        let Some(key) = &self.dpop else {
            return Ok(None);
        };
        let nonce = self.nonce.lock().ok().and_then(|n| n.clone());
        key.proof_with_nonce(
            method,
            url,
            token,
            chrono::Utc::now().timestamp(),
            nonce.as_deref(),
        )
        .map(Some)
        .map_err(|e| ApiError::Client(format!("could not sign a DPoP proof: {e}")))
    }

    /// Sends `builder` with a fresh DPoP proof for `method` on `url` (and
    /// `token` as `Authorization: DPoP`; as Bearer without a key), and reads
    /// the answer in full. When the server asks for its DPoP nonce, signs
    /// again with the one it named and sends once more.
    pub(crate) fn send_proved(
        &self,
        builder: RequestBuilder,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let again = builder.try_clone();
        let answer = self.send_once(builder, method, url, token)?;
        match again {
            Some(builder) if self.dpop.is_some() && answer.asks_for_nonce() => {
                self.send_once(builder, method, url, token)
            }
            _ => Ok(answer),
        }
    }

    fn send_once(
        &self,
        mut builder: RequestBuilder,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<Answer, ApiError> {
        match self.dpop_proof(method, url, token)? {
            Some(proof) => {
                builder = builder.header("DPoP", proof);
                if let Some(token) = token {
                    builder = builder.header(AUTHORIZATION, format!("DPoP {token}"));
                }
            }
            None => {
                if let Some(token) = token {
                    builder = builder.bearer_auth(token);
                }
            }
        }
        let response = builder.send().map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(nonce) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            if let Ok(mut kept) = self.nonce.lock() {
                *kept = Some(nonce.to_owned());
            }
        }
        let mut body = Vec::new();
        response
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| ApiError::Unreachable {
                base: self.base.clone(),
                reason: format!("the answer broke off: {e}"),
            })?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The HTTP client itself, for requests outside the API base URL
    /// (the OAuth endpoints).
    pub(crate) fn http(&self) -> &Client {
        &self.http
    }

    /// The API base URL, normalised.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A request to the endpoint at `path` (below the base URL).
    pub(super) fn request(&self, method: Method, path: &'static str) -> Request<'_> {
        let url = format!("{}{path}", self.base);
        Request {
            client: self,
            path,
            builder: self.http.request(method.clone(), &url),
            method,
            url,
            token: None,
            not_found_is_an_answer: false,
        }
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
}

/// A request on its way: endpoint, token, body, and how to read a 404.
pub(super) struct Request<'a> {
    client: &'a ApiClient,
    path: &'static str,
    builder: RequestBuilder,
    method: Method,
    /// The full URL, without the query: a DPoP proof's `htu`.
    url: String,
    token: Option<String>,
    not_found_is_an_answer: bool,
}

impl<'a> Request<'a> {
    /// Sends `token`: as `Authorization: DPoP` with a proof carrying its
    /// hash when the client has a DPoP key, else as the bearer token.
    pub(super) fn bearer(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Sends `body` as JSON.
    pub(super) fn json(mut self, body: &impl Serialize) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// Adds query parameters.
    pub(super) fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.builder = self.builder.query(pairs);
        self
    }

    /// Waits at most `timeout` instead of [`REQUEST_TIMEOUT`].
    pub(super) fn timeout(mut self, timeout: Duration) -> Self {
        self.builder = self.builder.timeout(timeout);
        self
    }

    /// A 404 with the API's error body is the endpoint's answer (no such
    /// thing) rather than a sign of a wrong base URL.
    pub(super) fn not_found_is_an_answer(mut self) -> Self {
        self.not_found_is_an_answer = true;
        self
    }

    /// Sends the request and reads the answer in full.
    pub(super) fn send(self) -> Result<Reply<'a>, ApiError> {
        let client = self.client;
        // A fresh proof for every request sent, retries included: the
        // server accepts each proof once.
        let Answer {
            status,
            headers,
            body,
        } = client.send_proved(
            self.builder,
            self.method.as_str(),
            &self.url,
            self.token.as_deref(),
        )?;
        Ok(Reply {
            base: &client.base,
            path: self.path,
            not_found_is_an_answer: self.not_found_is_an_answer,
            status,
            headers,
            body,
        })
    }

    /// Sends the request and decodes a successful answer.
    pub(super) fn fetch<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        self.send()?.decode()
    }

    /// Sends the request and checks that it succeeded; the body is not read
    /// for meaning.
    pub(super) fn perform(self) -> Result<(), ApiError> {
        let reply = self.send()?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(reply.failure())
        }
    }
}

/// An answer read in full, before it is decoded.
pub(super) struct Reply<'a> {
    base: &'a str,
    path: &'static str,
    not_found_is_an_answer: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply<'_> {
    /// The HTTP status.
    pub(super) fn status(&self) -> u16 {
        self.status.as_u16()
    }

    /// The body as `T`, whatever the status; `None` when it is not one.
    pub(super) fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The typed answer of a success, else the error the answer means.
    pub(super) fn decode<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        if !self.status.is_success() {
            return Err(self.failure());
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            let detail = if self.body.is_empty() {
                "empty body".into()
            } else {
                e.to_string()
            };
            self.bad_response(detail)
        })
    }

    fn bad_response(&self, detail: String) -> ApiError {
        ApiError::BadResponse {
            base: self.base.to_string(),
            path: self.path.to_string(),
            status: self.status(),
            html: self.looks_like_html(),
            detail,
        }
    }

    fn header(&self, name: reqwest::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What an unsuccessful answer means.
    fn failure(self) -> ApiError {
        let status = self.status();
        let base = self.base.to_string();
        let body: Option<ErrorBody> = self.parse();
        if self.status.is_server_error() {
            return ApiError::Server {
                base,
                status,
                message: body.map(|b| b.message),
            };
        }
        if self.status.is_redirection() {
            return ApiError::Redirect {
                base,
                status,
                location: self.header(LOCATION).map(str::to_string),
            };
        }
        let not_found = ApiError::NotFound {
            base,
            path: self.path.to_string(),
        };
        // Where a 404 is not an answer, it means the base URL is not the
        // API's, even when an error body came with it.
        if status == 404 && !self.not_found_is_an_answer {
            return not_found;
        }
        match body {
            Some(body) => ApiError::Api {
                status,
                body,
                retry_after: self.header(RETRY_AFTER).and_then(|v| v.trim().parse().ok()),
            },
            None if status == 404 => not_found,
            None => self.bad_response(if self.body.is_empty() {
                "empty body".into()
            } else {
                "no error body".into()
            }),
        }
    }

    fn looks_like_html(&self) -> bool {
        let content_type_html = self
            .header(CONTENT_TYPE)
            .is_some_and(|v| v.to_ascii_lowercase().contains("html"));
        let body_html = String::from_utf8_lossy(&self.body[..self.body.len().min(64)])
            .trim_start()
            .starts_with('<');
        content_type_html || body_html
    }
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
