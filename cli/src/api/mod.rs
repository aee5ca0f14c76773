//! The HTTP client for the server's v1 JSON API: typed requests in, typed
//! answers or a typed [`ApiError`] out.

mod base_url;
mod client;
mod endpoints;
mod error;
mod limits;

pub use base_url::{
    is_insecure_remote, normalize_api_url, resolve_api_url, API_URL_ENV, DEFAULT_API_URL,
};
pub use client::{user_agent, ApiClient};
pub use error::ApiError;
pub use limits::{LONGEST_HOLD, POLL_HEADROOM, REQUEST_TIMEOUT};

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
