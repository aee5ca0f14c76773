//! DPoP proofs (RFC 9449): reading and verifying the `DPoP` header's JWT,
//! and the JWK thumbprint (RFC 7638) a token is bound to. Pure: the replay
//! check of `jti` across instances is in `service::dpop`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The proof algorithms accepted, as advertised in discovery
/// (`dpop_signing_alg_values_supported`) and in `WWW-Authenticate`.
pub const ALGORITHMS: [&str; 2] = ["ES256", "EdDSA"];
/// How old a proof's `iat` may be.
pub const MAX_AGE: Duration = Duration::seconds(300);
/// How far ahead of this server's clock a proof's `iat` may be.
pub const MAX_SKEW: Duration = Duration::seconds(60);
/// Longest proof accepted, in bytes (a P-256 proof is about 600).
const MAX_LEN: usize = 4096;
/// Longest `jti` accepted.
const MAX_JTI: usize = 256;

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL as the client addressed it: this server's public
    /// base and the path (`htu`, compared without query and fragment).
    pub url: &'a str,
    /// On a resource request, the access token sent with it (`ath`).
    pub access_token: Option<&'a str>,
    /// This server's clock.
    pub now: DateTime<Utc>,
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The key's JWK SHA-256 thumbprint, base64url (`cnf.jkt`).
    pub jkt: String,
    /// SHA-256 of the thumbprint and `jti`: the proof's identity for the
    /// replay check.
    pub replay_id: [u8; 32],
    /// Until when the replay check must remember it: past that its `iat`
    /// is too old anyway.
    pub remember_until: DateTime<Utc>,
    /// The server nonce it carries, if any (checked under `DPOP_NONCE`).
    pub nonce: Option<String>,
}

/// Why a proof was refused; the message names the rule and is safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// The refusal of a proof without a current server nonce (`DPOP_NONCE`).
pub const USE_NONCE: Invalid = Invalid(
    "This server requires a DPoP nonce: sign the proof again with the nonce from the DPoP-Nonce header.",
);

impl Invalid {
    /// The error code it is answered with (RFC 9449 §7.1, §8).
    pub fn code(&self) -> &'static str {
        if *self == USE_NONCE {
            "use_dpop_nonce"
        } else {
            "invalid_dpop_proof"
        }
    }
}

/// How long one server nonce is issued for; each is accepted for this long
/// after the next one takes over, so for 5 to 10 minutes in all.
pub const NONCE_PERIOD_SECS: i64 = 300;

/// The server nonce of `now`'s period: the period's number and a keyed MAC
/// of it, so every instance with the same `key` issues and accepts the same.
pub fn nonce(key: &[u8; 32], now: DateTime<Utc>) -> String {
    nonce_of_period(key, now.timestamp().div_euclid(NONCE_PERIOD_SECS))
}

fn nonce_of_period(key: &[u8; 32], period: i64) -> String {
    let mac = crate::crypto::hmac_sha256(key, "dpop-nonce", &period.to_be_bytes());
    let mut bytes = period.to_be_bytes().to_vec();
    bytes.extend_from_slice(&mac[..16]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `value` is the nonce of `now`'s period or of the one before.
pub fn nonce_is_current(key: &[u8; 32], value: &str, now: DateTime<Utc>) -> bool {
    let period = now.timestamp().div_euclid(NONCE_PERIOD_SECS);
    [period, period - 1]
        .into_iter()
        .any(|p| crate::crypto::ct_eq(value.as_bytes(), nonce_of_period(key, p).as_bytes()))
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<Value>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// A public key from a proof's `jwk`.
enum Key {
    P256 { x: Vec<u8>, y: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

impl Key {
    fn from_jwk(alg: &str, jwk: &Map<String, Value>) -> Result<Self, Invalid> {
        if jwk.contains_key("d") {
            return Err(Invalid("The proof's jwk holds a private key."));
        }
        let field = |name: &str, len: usize| -> Result<Vec<u8>, Invalid> {
            let text = jwk
                .get(name)
                .and_then(Value::as_str)
                .ok_or(Invalid("The proof's jwk lacks a coordinate."))?;
            let bytes = URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| Invalid("The proof's jwk is not base64url."))?;
            if bytes.len() == len {
                Ok(bytes)
            } else {
                Err(Invalid(
                    "The proof's jwk has a coordinate of the wrong size.",
                ))
            }
        };
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        match alg {
            "ES256" if text("kty") == Some("EC") && text("crv") == Some("P-256") => Ok(Self::P256 {
                x: field("x", 32)?,
                y: field("y", 32)?,
            }),
            "EdDSA" if text("kty") == Some("OKP") && text("crv") == Some("Ed25519") => {
                Ok(Self::Ed25519 { x: field("x", 32)? })
            }
            _ => Err(Invalid(
                "The proof's jwk does not match its alg (ES256 needs an EC P-256 key, EdDSA an OKP Ed25519 key).",
            )),
        }
    }

    /// RFC 7638: SHA-256 over the required members in lexical order, with
    /// no whitespace.
    fn thumbprint(&self) -> String {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let canonical = match self {
            Self::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64(x),
                b64(y)
            ),
            Self::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::P256 { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            Self::Ed25519 { x } => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// `ath`: base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// An `htu` reduced to what RFC 9449 §4.3 compares: scheme, host and port
/// (defaults dropped, case folded by the URL parser) and path; no query, no
/// fragment.
fn normalized(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!(
        "{}://{}{}{}",
        parsed.scheme(),
        host,
        port,
        parsed.path()
    ))
}

/// Checks a `DPoP` header value against the request it came with.
pub fn verify(value: &str, expected: &Expected<'_>) -> Result<Proof, Invalid> {
    if value.len() > MAX_LEN {
        return Err(Invalid("The DPoP proof is too long."));
    }
    let mut parts = value.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid(
            "The DPoP proof is not a signed JWT (three dot-separated parts).",
        ));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| Invalid("The DPoP proof is not base64url."))
    };
    let header: Header = serde_json::from_slice(&decode(h64)?)
        .map_err(|_| Invalid("The DPoP proof's header is not a JSON object."))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(Invalid("The DPoP proof's typ must be dpop+jwt."));
    }
    let alg = header.alg.unwrap_or_default();
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(Invalid("The DPoP proof's alg must be ES256 or EdDSA."));
    }
    let jwk = header
        .jwk
        .ok_or(Invalid("The DPoP proof's header has no jwk."))?;
    let key = Key::from_jwk(&alg, &jwk)?;
    let signature = decode(s64)?;
    let signed = &value.as_bytes()[..h64.len() + 1 + p64.len()];
    if !key.verify(signed, &signature) {
        return Err(Invalid(
            "The DPoP proof's signature does not verify with its jwk.",
        ));
    }
    let claims: Claims = serde_json::from_slice(&decode(p64)?)
        .map_err(|_| Invalid("The DPoP proof's claims are not a JSON object."))?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(Invalid(
            "The DPoP proof needs a jti of 1 to 256 characters.",
        ))?;
    if claims.htm.as_deref() != Some(expected.method) {
        return Err(Invalid(
            "The DPoP proof's htm is not this request's method.",
        ));
    }
    let htu = claims.htu.as_deref().and_then(normalized);
    if htu.is_none() || htu != normalized(expected.url) {
        return Err(Invalid("The DPoP proof's htu is not this request's URL."));
    }
    let iat = claims
        .iat
        .as_ref()
        .and_then(Value::as_i64)
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .ok_or(Invalid(
            "The DPoP proof needs iat, in seconds since the epoch.",
        ))?;
    if iat < expected.now - MAX_AGE || iat > expected.now + MAX_SKEW {
        return Err(Invalid(
            "The DPoP proof's iat is too far from this server's clock; check the system clock.",
        ));
    }
    if let Some(token) = expected.access_token {
        let ath = claims.ath.ok_or(Invalid(
            "The DPoP proof needs ath, the hash of the access token.",
        ))?;
        if !crate::crypto::ct_eq(ath.as_bytes(), access_token_hash(token).as_bytes()) {
            return Err(Invalid(
                "The DPoP proof's ath does not match the access token.",
            ));
        }
    }
    let jkt = key.thumbprint();
    let mut id = Sha256::new();
    id.update(jkt.as_bytes());
    id.update(b".");
    id.update(jti.as_bytes());
    Ok(Proof {
        jkt,
        replay_id: id.finalize().into(),
        remember_until: iat.max(expected.now) + MAX_AGE,
        nonce: claims.nonce,
    })
}

#[cfg(test)]
mod tests {
    use envshield_api_types::dpop::{claims, DpopKey};
    use serde_json::json;

    use super::*;

    const URL: &str = "https://auth.example.com/api/v1/cli/whoami";

    fn expected(now: DateTime<Utc>) -> Expected<'static> {
        Expected {
            method: "GET",
            url: URL,
            access_token: Some("tok"),
            now,
        }
    }

    fn proof(
        key: &DpopKey,
        method: &str,
        url: &str,
        ath: Option<&str>,
        iat: DateTime<Utc>,
    ) -> String {
        key.proof(method, url, ath, iat.timestamp()).unwrap()
    }

    #[test]
    fn a_well_formed_proof_passes_and_names_its_key() {
        let now = Utc::now();
        for key in [
            DpopKey::generate_p256().unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ] {
            let checked = verify(&proof(&key, "GET", URL, Some("tok"), now), &expected(now));
            assert_eq!(checked.expect("valid").jkt, key.thumbprint());
        }
    }

    #[test]
    fn a_nonce_is_current_for_its_period_and_the_next_only() {
        let key = [7u8; 32];
        let t = |s: i64| Utc.timestamp_opt(s, 0).single().unwrap();
        let issued = nonce(&key, t(1_000_000_200));
        assert_eq!(issued, nonce(&key, t(1_000_000_499)), "same period");
        assert_ne!(issued, nonce(&key, t(1_000_000_199)), "the period before");
        assert!(nonce_is_current(&key, &issued, t(1_000_000_200)));
        assert!(nonce_is_current(&key, &issued, t(1_000_000_200 + 300)));
        assert!(!nonce_is_current(&key, &issued, t(1_000_000_200 + 600)));
        assert!(!nonce_is_current(&[8u8; 32], &issued, t(1_000_000_200)));
        assert!(!nonce_is_current(&key, "made-up", t(1_000_000_200)));
    }

    #[test]
    fn the_rfc_8037_example_thumbprint() {
        let key = Key::Ed25519 {
            x: URL_SAFE_NO_PAD
                .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                .unwrap(),
        };
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn htu_is_compared_without_query_and_with_default_ports_dropped() {
        let key = DpopKey::generate_p256().unwrap();
        let now = Utc::now();
        let header = key.proof_header();
        let mut c = claims("GET", URL, Some("tok"), now.timestamp()).unwrap();
        c["htu"] = json!("HTTPS://Auth.Example.com:443/api/v1/cli/whoami?x=1");
        assert!(verify(&key.sign_jwt(&header, &c).unwrap(), &expected(now)).is_ok());
        let other = proof(
            &key,
            "GET",
            "https://auth.example.com/api/v1/cli/tokens",
            Some("tok"),
            now,
        );
        assert_eq!(
            verify(&other, &expected(now)).unwrap_err().0,
            "The DPoP proof's htu is not this request's URL."
        );
    }

    #[test]
    fn each_rule_refuses() {
        let key = DpopKey::generate_p256().unwrap();
        let now = Utc::now();
        let refused = |proof: String| verify(&proof, &expected(now)).unwrap_err().0;
        assert!(refused(proof(&key, "POST", URL, Some("tok"), now)).contains("htm"));
        assert!(refused(proof(&key, "GET", URL, Some("other"), now)).contains("ath"));
        assert!(refused(proof(&key, "GET", URL, None, now)).contains("ath"));
        let old = now - Duration::seconds(301);
        assert!(refused(proof(&key, "GET", URL, Some("tok"), old)).contains("iat"));
        let ahead = now + Duration::seconds(61);
        assert!(refused(proof(&key, "GET", URL, Some("tok"), ahead)).contains("iat"));
        let good = claims("GET", URL, Some("tok"), now.timestamp()).unwrap();
        let with = |name: &str, value: Value| {
            let mut header = key.proof_header();
            header[name] = value;
            key.sign_jwt(&header, &good).unwrap()
        };
        assert!(refused(with("typ", json!("jwt"))).contains("typ"));
        assert!(refused(with("alg", json!("HS256"))).contains("alg"));
        let mut private = key.public_jwk();
        private["d"] = json!("AAAA");
        assert!(refused(with("jwk", private)).contains("private"));
        // Signed by another key than the one its jwk names.
        let other = DpopKey::generate_p256().unwrap();
        assert!(refused(other.sign_jwt(&key.proof_header(), &good).unwrap()).contains("signature"));
        let mut no_jti = good.clone();
        no_jti["jti"] = json!("");
        assert!(refused(key.sign_jwt(&key.proof_header(), &no_jti).unwrap()).contains("jti"));
        assert!(refused("a.b".to_owned()).contains("three"));
        assert!(refused("x".repeat(5000)).contains("too long"));
    }

    #[test]
    fn two_proofs_differ_in_replay_id_but_share_the_key() {
        let key = DpopKey::generate_p256().unwrap();
        let now = Utc::now();
        let a = verify(&proof(&key, "GET", URL, Some("tok"), now), &expected(now)).unwrap();
        let b = verify(&proof(&key, "GET", URL, Some("tok"), now), &expected(now)).unwrap();
        assert_eq!(a.jkt, b.jkt);
        assert_ne!(a.replay_id, b.replay_id);
        assert_eq!(a.remember_until, now + MAX_AGE);
    }
}
