//! The HTTP client for the server's v1 JSON API: typed requests in, typed
//! answers or a typed [`ApiError`] out.

mod base_url;
mod client;
mod endpoints;
mod error;

use std::time::Duration;

pub use base_url::{is_insecure_remote, normalize_api_url, resolve_api_url};
pub use client::{user_agent, ApiClient};
pub use error::ApiError;

/// API base URL used when nothing else says otherwise.
pub const DEFAULT_API_URL: &str = "http://localhost:3000/api/v1";
/// Environment variable that sets the API base URL.
pub const API_URL_ENV: &str = "ENVSHIELD_API_URL";
/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

#[cfg(test)]
mod tests;
