//! The token handoff sealed to the CLI (HPKE, RFC 9180): at `start` the CLI
//! sends the public half of a fresh X25519 key; the one poll that picks the
//! token up receives it sealed to that key, so a device code stolen and
//! polled first yields only ciphertext.
//!
//! Suite: base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305; the session id is bound in as `info` and as the
//! associated data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::SealedToken;

type Kem = X25519HkdfSha256;

/// The suite's name, as sent with every sealed token.
pub const SUITE: &str = "HPKE-Base-X25519-SHA256-ChaCha20Poly1305";

/// What is sealed: the tokens the poll would otherwise carry in the clear.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HandoffPayload {
    /// The API or access token.
    pub token: String,
    /// The refresh token, for clients that get one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for HandoffPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandoffPayload([redacted])")
    }
}

/// Sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffError(pub &'static str);

impl std::fmt::Display for HandoffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for HandoffError {}

fn info(session_id: Uuid) -> Vec<u8> {
    format!("envshield device handoff v1 {session_id}").into_bytes()
}

fn public_key(b64: &str) -> Result<<Kem as hpke::Kem>::PublicKey, HandoffError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim())
        .map_err(|_| HandoffError("handoffKey is not base64url"))?;
    if bytes.len() != 32 {
        return Err(HandoffError(
            "handoffKey must be a 32-byte X25519 public key",
        ));
    }
    <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
        .map_err(|_| HandoffError("handoffKey is not an X25519 public key"))
}

/// Whether `b64` is a usable handoff key (32 bytes, base64url).
pub fn check_public_key(b64: &str) -> Result<(), HandoffError> {
    public_key(b64).map(|_| ())
}

/// Seals `payload` for session `session_id` to the CLI's `public_key`.
pub fn seal(
    public_b64: &str,
    session_id: Uuid,
    payload: &HandoffPayload,
) -> Result<SealedToken, HandoffError> {
    let pk = public_key(public_b64)?;
    let plaintext =
        serde_json::to_vec(payload).map_err(|_| HandoffError("the payload does not serialise"))?;
    let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        &info(session_id),
        &plaintext,
        session_id.as_bytes(),
    )
    .map_err(|_| HandoffError("sealing failed"))?;
    Ok(SealedToken {
        suite: SUITE.to_owned(),
        enc: URL_SAFE_NO_PAD.encode(enc.to_bytes()),
        ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
    })
}

/// The CLI's ephemeral handoff key pair, for one login.
pub struct HandoffKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: <Kem as hpke::Kem>::PublicKey,
}

impl std::fmt::Debug for HandoffKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffKey")
            .field("public", &self.public_b64())
            .finish_non_exhaustive()
    }
}

impl HandoffKey {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        let (private, public) = Kem::gen_keypair();
        Self { private, public }
    }

    /// The public half, base64url, for `start`'s `handoffKey`.
    pub fn public_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public.to_bytes())
    }

    /// Opens what the server sealed for `session_id`.
    pub fn open(
        &self,
        sealed: &SealedToken,
        session_id: Uuid,
    ) -> Result<HandoffPayload, HandoffError> {
        if sealed.suite != SUITE {
            return Err(HandoffError("the token is sealed with an unknown suite"));
        }
        let decode = |s: &str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| HandoffError("the sealed token is not base64url"))
        };
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&decode(&sealed.enc)?)
            .map_err(|_| HandoffError("the sealed token's enc is malformed"))?;
        let plaintext = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &enc,
            &info(session_id),
            &decode(&sealed.ciphertext)?,
            session_id.as_bytes(),
        )
        .map_err(|_| HandoffError("the sealed token does not open with this login's key"))?;
        serde_json::from_slice(&plaintext)
            .map_err(|_| HandoffError("the sealed token is not a token payload"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_and_session_it_was_sealed_for_open_it() {
        let key = HandoffKey::generate();
        let session = Uuid::from_u128(7);
        let payload = HandoffPayload {
            token: "esh_secret".into(),
            refresh_token: Some("eshr_secret".into()),
        };
        let sealed = seal(&key.public_b64(), session, &payload).unwrap();
        assert!(!sealed.ciphertext.contains("esh_secret"));
        assert_eq!(key.open(&sealed, session).unwrap(), payload);
        assert!(
            key.open(&sealed, Uuid::from_u128(8)).is_err(),
            "another session"
        );
        assert!(
            HandoffKey::generate().open(&sealed, session).is_err(),
            "another key"
        );
        let mut tampered = sealed.clone();
        let flipped = if tampered.ciphertext.starts_with('A') {
            "B"
        } else {
            "A"
        };
        tampered.ciphertext.replace_range(0..1, flipped);
        assert!(key.open(&tampered, session).is_err());
        assert!(check_public_key("short").is_err());
        assert!(check_public_key(&key.public_b64()).is_ok());
        assert!(!format!("{payload:?}").contains("secret"));
    }
}
