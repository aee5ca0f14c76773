//! DPoP proofs (RFC 9449) as a client makes them: a key pair (P-256 for
//! ES256, or Ed25519 for EdDSA), its public JWK and thumbprint (RFC 7638),
//! and the signed `dpop+jwt` sent in the `DPoP` header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub &'static str);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for KeyError {}

enum Pair {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A DPoP key pair. `Debug` never shows the private half.
pub struct DpopKey {
    pair: Pair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.alg())
            .field("jkt", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

const P256_TAG: &str = "es256:";
const ED25519_TAG: &str = "eddsa:";

impl DpopKey {
    /// A new P-256 key (ES256), the default.
    pub fn generate_p256() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError("could not generate a P-256 key"))?;
        Self::p256(pkcs8.as_ref())
    }

    /// A new Ed25519 key (EdDSA).
    pub fn generate_ed25519() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError("could not generate an Ed25519 key"))?;
        Self::ed25519(pkcs8.as_ref())
    }

    fn p256(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| KeyError("not a P-256 PKCS#8 key"))?;
        Ok(Self {
            pair: Pair::P256(pair),
            pkcs8: pkcs8.to_vec(),
        })
    }

    fn ed25519(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| KeyError("not an Ed25519 PKCS#8 key"))?;
        Ok(Self {
            pair: Pair::Ed25519(pair),
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// The key as text for a credential store (`es256:` or `eddsa:` and
    /// base64url PKCS#8). A secret: store it as one.
    pub fn to_stored(&self) -> String {
        let tag = match self.pair {
            Pair::P256(_) => P256_TAG,
            Pair::Ed25519(_) => ED25519_TAG,
        };
        format!("{tag}{}", URL_SAFE_NO_PAD.encode(&self.pkcs8))
    }

    /// Reads what [`DpopKey::to_stored`] wrote.
    pub fn from_stored(text: &str) -> Result<Self, KeyError> {
        let decode = |b64: &str| {
            URL_SAFE_NO_PAD
                .decode(b64.trim())
                .map_err(|_| KeyError("the stored DPoP key is not base64url"))
        };
        if let Some(b64) = text.strip_prefix(P256_TAG) {
            Self::p256(&decode(b64)?)
        } else if let Some(b64) = text.strip_prefix(ED25519_TAG) {
            Self::ed25519(&decode(b64)?)
        } else {
            Err(KeyError("the stored DPoP key has an unknown type"))
        }
    }

    /// The JWS `alg`: `ES256` or `EdDSA`.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::P256(_) => "ES256",
            Pair::Ed25519(_) => "EdDSA",
        }
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        match &self.pair {
            Pair::P256(pair) => {
                // An uncompressed point: 0x04, x, y.
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                })
            }
            Pair::Ed25519(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    /// The JWK SHA-256 thumbprint (RFC 7638), base64url: what a bound
    /// token's `cnf.jkt` holds.
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        let field = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        let canonical = match self.pair {
            Pair::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                field("x"),
                field("y")
            ),
            Pair::Ed25519(_) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, field("x"))
            }
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Signs `header` and `claims` as a compact JWS with this key.
    pub fn sign_jwt(&self, header: &Value, claims: &Value) -> Result<String, KeyError> {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string().as_bytes());
        let signing_input = format!("{}.{}", b64(header), b64(claims));
        let signature = match &self.pair {
            Pair::P256(pair) => pair
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .map_err(|_| KeyError("could not sign with the P-256 key"))?
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(signing_input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The header of a proof made with this key.
    pub fn proof_header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.public_jwk() })
    }

    /// A proof for one request: `method` and `url` (query and fragment are
    /// dropped), `iat` in seconds since the epoch, and, on a call with an
    /// access token, its hash (`ath`).
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        iat: i64,
    ) -> Result<String, KeyError> {
        self.proof_with_nonce(method, url, access_token, iat, None)
    }

    /// [`Self::proof`], carrying the server's `nonce` when it asked for one
    /// (`DPoP-Nonce`, RFC 9449 §8).
    pub fn proof_with_nonce(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        iat: i64,
        nonce: Option<&str>,
    ) -> Result<String, KeyError> {
        let mut claims = claims(method, url, access_token, iat)?;
        if let Some(n) = nonce {
            claims["nonce"] = Value::String(n.to_owned());
        }
        self.sign_jwt(&self.proof_header(), &claims)
    }
}

/// The claims of a proof, with a fresh random `jti`.
pub fn claims(
    method: &str,
    url: &str,
    access_token: Option<&str>,
    iat: i64,
) -> Result<Value, KeyError> {
    let mut jti = [0u8; 16];
    SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| KeyError("no randomness for a jti"))?;
    let htu = url.split(['?', '#']).next().unwrap_or(url);
    let mut claims = json!({
        "jti": URL_SAFE_NO_PAD.encode(jti),
        "htm": method,
        "htu": htu,
        "iat": iat,
    });
    if let Some(token) = access_token {
        claims["ath"] = Value::String(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_key_reads_back_as_the_same_key() {
        for key in [
            DpopKey::generate_p256().unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ] {
            let again = DpopKey::from_stored(&key.to_stored()).unwrap();
            assert_eq!(again.thumbprint(), key.thumbprint());
            assert_eq!(again.alg(), key.alg());
        }
        assert!(DpopKey::from_stored("rsa:AAAA").is_err());
        assert!(DpopKey::from_stored("es256:!!").is_err());
    }

    #[test]
    fn debug_hides_the_private_key() {
        let key = DpopKey::generate_p256().unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_stored()[6..20]));
        assert!(shown.contains(&key.thumbprint()));
    }

    #[test]
    fn a_proof_carries_the_request_and_a_fresh_jti() {
        let key = DpopKey::generate_p256().unwrap();
        let proof = key
            .proof(
                "POST",
                "https://a.example/oauth/token?x=1",
                Some("t"),
                1_700_000_000,
            )
            .unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["htu"], "https://a.example/oauth/token");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(
            claims["ath"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(b"t")).as_str()
        );
        let other = key.proof("POST", "https://a.example/", None, 1).unwrap();
        assert_ne!(proof.split('.').nth(1), other.split('.').nth(1));
    }
}
