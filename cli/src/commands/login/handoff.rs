//! The token handoff sealed to this login (HPKE, RFC 9180): every device
//! login makes a fresh X25519 key, sends its public half at `start`, and
//! accepts the token only sealed to it, bound to the session `start`
//! named. The private half lives in memory for that one login: it is never
//! written anywhere, printed or logged (its `Debug` shows the public half
//! only), and it is dropped when the login ends.
//!
//! Whoever polls first with a stolen device code gets only ciphertext; the
//! owner's poll then learns that the token was collected (the server
//! revokes it). An answer with the token in the clear, or a sealed token
//! that does not open, is refused: it was not made by the server for this
//! login (a proxy or a look-alike server altered it).

use std::fmt;

use envshield_api_types::handoff::{HandoffKey, HandoffPayload};
use envshield_api_types::{SealedToken, StartDeviceResponse};
use uuid::Uuid;

/// A handoff key offered at `start`, before the server named the session.
pub struct OfferedKey(HandoffKey);

impl OfferedKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(HandoffKey::generate())
    }

    /// The public half, for `start`'s `handoffKey`.
    pub fn public_b64(&self) -> String {
        self.0.public_b64()
    }

    /// The key bound to the session `start` named; `None` when `start`
    /// named none (the server did not take the key: it would hand the token
    /// over in the clear).
    pub fn for_session(self, start: &StartDeviceResponse) -> Option<Handoff> {
        start.session_id.map(|session_id| Handoff {
            key: self.0,
            session_id,
        })
    }
}

impl fmt::Debug for OfferedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OfferedKey").field(&self.0).finish()
    }
}

/// This login's handoff key and the session it was offered to.
pub struct Handoff {
    key: HandoffKey,
    session_id: Uuid,
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("key", &self.key)
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// Why an approval's token was refused.
#[derive(Clone, PartialEq, Eq)]
pub enum Refused {
    /// The token came in the clear although this login asked for it
    /// sealed. Kept so that it can be revoked.
    InTheClear(String),
    /// The sealed token did not open with this login's key and session
    /// (or the answer carried no token at all); why.
    DoesNotOpen(String),
}

// The token refused in the clear never appears in debug output.
impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InTheClear(_) => f.write_str("InTheClear([redacted])"),
            Self::DoesNotOpen(why) => f.debug_tuple("DoesNotOpen").field(why).finish(),
        }
    }
}

impl Handoff {
    /// A handoff for `session_id` with a fresh key (tests).
    #[cfg(test)]
    pub fn for_tests(session_id: Uuid) -> Self {
        Self {
            key: HandoffKey::generate(),
            session_id,
        }
    }

    /// The public half of the key.
    #[cfg(test)]
    pub fn public_b64(&self) -> String {
        self.key.public_b64()
    }

    /// The session the token must be sealed for.
    #[cfg(test)]
    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    /// The token and refresh token of an approval: opened from
    /// `sealed`, never taken in the clear.
    pub fn open(
        &self,
        clear: Option<String>,
        sealed: Option<&SealedToken>,
    ) -> Result<HandoffPayload, Refused> {
        if let Some(token) = clear {
            return Err(Refused::InTheClear(token));
        }
        let sealed = sealed.ok_or_else(|| {
            Refused::DoesNotOpen("the approval carried no sealed token".to_owned())
        })?;
        self.key
            .open(sealed, self.session_id)
            .map_err(|e| Refused::DoesNotOpen(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use envshield_api_types::handoff::seal;

    use super::*;

    fn payload() -> HandoffPayload {
        HandoffPayload {
            token: "esh_secret".into(),
            refresh_token: Some("eshr_secret".into()),
        }
    }

    #[test]
    fn only_a_token_sealed_to_this_login_is_taken() {
        let session = Uuid::from_u128(1);
        let handoff = Handoff::for_tests(session);
        let sealed = seal(&handoff.public_b64(), session, &payload()).unwrap();
        assert_eq!(handoff.open(None, Some(&sealed)).unwrap(), payload());

        // In the clear, even next to a good sealed token: refused.
        let refused = handoff
            .open(Some("esh_clear".into()), Some(&sealed))
            .unwrap_err();
        assert_eq!(refused, Refused::InTheClear("esh_clear".into()));
        assert!(!format!("{refused:?}").contains("esh_clear"));

        // Sealed for another session, or to another key, or missing.
        let other_session = seal(&handoff.public_b64(), Uuid::from_u128(2), &payload()).unwrap();
        assert!(matches!(
            handoff.open(None, Some(&other_session)),
            Err(Refused::DoesNotOpen(_))
        ));
        let other_key = seal(&HandoffKey::generate().public_b64(), session, &payload()).unwrap();
        assert!(matches!(
            handoff.open(None, Some(&other_key)),
            Err(Refused::DoesNotOpen(_))
        ));
        assert!(matches!(
            handoff.open(None, None),
            Err(Refused::DoesNotOpen(_))
        ));
    }

    #[test]
    fn the_key_is_bound_to_the_session_start_names() {
        let key = OfferedKey::generate();
        let public = key.public_b64();
        let mut start = crate::commands::login::fixtures::start(1);
        start.session_id = None;
        assert!(OfferedKey::generate().for_session(&start).is_none());
        start.session_id = Some(Uuid::from_u128(3));
        let handoff = key.for_session(&start).unwrap();
        assert_eq!(handoff.session_id(), Uuid::from_u128(3));
        assert_eq!(handoff.public_b64(), public);
        // Debug shows the public half and the session, nothing else.
        let shown = format!("{handoff:?}");
        assert!(shown.contains(&public), "{shown}");
        assert!(!shown.contains("private"), "{shown}");
    }
}
