//! The pieces of an authorization-code request from a native client: the
//! one-time code, the PKCE challenge and verifier (RFC 7636, S256 only),
//! and the loopback redirect URI (RFC 8252 §7.3).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::DeviceCode;
use crate::crypto;

/// An authorization code: 256 random bits, base64url, the same shape as a
/// device code but hashed under its own label.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode(DeviceCode);

crypto::redacted_debug!(AuthCode);

impl AuthCode {
    /// A fresh code.
    pub fn generate() -> Self {
        Self(DeviceCode::generate())
    }

    /// Accepts only the shape `generate` produces.
    pub fn parse(input: &str) -> Option<Self> {
        DeviceCode::parse(input).map(Self)
    }

    /// The code, to put in the redirect once.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Keyed hash stored instead of the code.
    pub fn keyed_hash(&self, key: &[u8; 32]) -> [u8; 32] {
        crypto::hmac_sha256(key, "authorization-code", self.expose().as_bytes())
    }
}

/// A PKCE S256 challenge: base64url of a SHA-256, 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge(String);

impl Challenge {
    /// Reads `code_challenge`, with `code_challenge_method` (only `S256`;
    /// `plain` gives the code away to whoever sees the request).
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, &'static str> {
        let Some(challenge) = challenge else {
            return Err("code_challenge is required: PKCE with S256 (RFC 7636).");
        };
        if method != Some("S256") {
            return Err("code_challenge_method must be S256.");
        }
        let ok = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(challenge.to_owned()))
        } else {
            Err("code_challenge must be the base64url SHA-256 of the verifier (43 characters).")
        }
    }

    /// The challenge as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `verifier` (43 to 128 unreserved characters, RFC 7636 §4.1)
/// hashes to the stored `challenge`, in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && crypto::ct_eq(computed.as_bytes(), challenge.as_bytes())
}

/// A loopback redirect URI (RFC 8252 §7.3): `http`, the IP literal
/// `127.0.0.1` or `[::1]`, an explicit port (any: the client picks one per
/// login), a path, and no fragment or user information.
pub fn loopback_redirect(uri: &str) -> Result<url::Url, &'static str> {
    let parsed = url::Url::parse(uri).map_err(|_| "redirect_uri is not a URL.")?;
    if parsed.scheme() != "http" {
        return Err("redirect_uri must be an http loopback address (RFC 8252 §7.3).");
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if !loopback {
        return Err(
            "redirect_uri must be a loopback IP literal, http://127.0.0.1:<port>/… or http://[::1]:<port>/… (RFC 8252 §7.3, §8.3).",
        );
    }
    if parsed.port().is_none() {
        return Err("redirect_uri must name the port the client listens on.");
    }
    if parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("redirect_uri must not carry a fragment or user information.");
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
            challenge
        ));
        assert!(!verifier_matches("short", challenge));
        let c = Challenge::parse(Some(challenge), Some("S256")).unwrap();
        assert_eq!(c.as_str(), challenge);
        assert!(Challenge::parse(Some(challenge), Some("plain")).is_err());
        assert!(Challenge::parse(Some(challenge), None).is_err());
        assert!(Challenge::parse(None, Some("S256")).is_err());
        assert!(Challenge::parse(Some("abc"), Some("S256")).is_err());
    }

    #[test]
    fn only_loopback_ip_literals_with_a_port_are_redirects() {
        assert!(loopback_redirect("http://127.0.0.1:49152/callback").is_ok());
        assert!(loopback_redirect("http://[::1]:8080/").is_ok());
        for bad in [
            "https://127.0.0.1:1/cb",
            "http://localhost:8080/cb",
            "http://evil.example:8080/cb",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:80#x",
            "http://u:p@127.0.0.1:8080/",
            "not a url",
            "http://10.0.0.1:8080/",
        ] {
            assert!(loopback_redirect(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_auth_code_hashes_apart_from_the_same_device_code() {
        let key = [7u8; 32];
        let code = AuthCode::generate();
        let device = DeviceCode::parse(code.expose()).unwrap();
        assert_ne!(code.keyed_hash(&key), device.keyed_hash(&key));
        assert_eq!(AuthCode::parse(code.expose()), Some(code));
    }
}
