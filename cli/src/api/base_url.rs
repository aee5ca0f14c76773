//! Which server to talk to: choosing, checking and judging the API base URL.

use reqwest::Url;

use super::error::ApiError;
use crate::text::one_line;

/// API base URL used when nothing else says otherwise.
pub const DEFAULT_API_URL: &str = "http://localhost:3000/api/v1";
/// Environment variable that sets the API base URL.
pub const API_URL_ENV: &str = "ENVSHIELD_API_URL";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
