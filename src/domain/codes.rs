//! The two codes of a device session: the CLI's secret device code and the
//! short user code a person compares and types.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::crypto;

/// Letters a user code is drawn from: consonants only, so no word can be
/// spelled and nothing is confused with a digit (RFC 8628 §6.1).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code (20^8 ≈ 2^34.6 possibilities).
pub const USER_CODE_LEN: usize = 8;
/// Random bytes in a device code.
const DEVICE_CODE_BYTES: usize = 32;
/// Length of a device code once base64url-encoded.
const DEVICE_CODE_LEN: usize = 43;

/// The CLI's polling secret: 256 random bits, base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCode(String);

crypto::redacted_debug!(DeviceCode);

impl DeviceCode {
    /// A fresh device code from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(crypto::random_bytes::<DEVICE_CODE_BYTES>()))
    }

    /// Accepts only the exact shape `generate` produces.
    pub fn parse(input: &str) -> Option<Self> {
        let ok = input.len() == DEVICE_CODE_LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(input.to_owned()))
    }

    /// The code itself, to hand to the CLI once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Keyed hash stored and looked up instead of the code.
    pub fn keyed_hash(&self, key: &[u8; 32]) -> [u8; 32] {
        crypto::hmac_sha256(key, "device-code", self.0.as_bytes())
    }
}

/// The short code shown in the terminal and in the browser, normalised to
/// eight upper-case letters.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode(String);

crypto::redacted_debug!(UserCode);

impl UserCode {
    /// A fresh user code, each letter uniform over the alphabet.
    pub fn generate() -> Self {
        let code = (0..USER_CODE_LEN)
            .map(|_| {
                let i = crypto::random_below(USER_CODE_ALPHABET.len() as u32) as usize;
                char::from(USER_CODE_ALPHABET[i])
            })
            .collect();
        Self(code)
    }

    /// Accepts any case, with or without the dash, spaces or other separators
    /// people type; rejects anything else.
    pub fn parse(input: &str) -> Option<Self> {
        let letters: String = input
            .chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\t' | '_' | '.'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let ok = letters.len() == USER_CODE_LEN
            && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
        ok.then_some(Self(letters))
    }

    /// `XXXX-XXXX`, as shown to people.
    pub fn display(&self) -> String {
        let (a, b) = self.0.split_at(USER_CODE_LEN / 2);
        format!("{a}-{b}")
    }

    /// Keyed hash stored and looked up instead of the code.
    pub fn keyed_hash(&self, key: &[u8; 32]) -> [u8; 32] {
        crypto::hmac_sha256(key, "user-code", self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet_and_round_trip_through_display() {
        for _ in 0..200 {
            let code = UserCode::generate();
            let shown = code.display();
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert_eq!(UserCode::parse(&shown), Some(code.clone()));
            assert_eq!(UserCode::parse(&shown.to_lowercase()), Some(code.clone()));
            assert_eq!(UserCode::parse(&shown.replace('-', " ")), Some(code));
        }
    }

    #[test]
    fn user_code_parse_rejects_bad_input() {
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "BCDFÉGHJK",
        ] {
            assert_eq!(UserCode::parse(bad), None, "{bad}");
        }
        assert!(UserCode::parse(" bcdf ghjk ").is_some());
    }

    #[test]
    fn device_codes_are_long_and_parse_strictly() {
        let code = DeviceCode::generate();
        assert_eq!(code.expose().len(), 43);
        assert_eq!(DeviceCode::parse(code.expose()), Some(code.clone()));
        assert_eq!(DeviceCode::parse(&code.expose()[1..]), None);
        assert_eq!(
            DeviceCode::parse(&format!("{}=", &code.expose()[1..])),
            None
        );
        assert_ne!(code, DeviceCode::generate());
        assert!(!format!("{code:?}").contains(code.expose()));
    }
}

/// The paste-back confirmation code shown in the approving browser: six
/// digits, shown `123-456`, accepted with or without separators.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfirmationCode(String);

crypto::redacted_debug!(ConfirmationCode);

impl ConfirmationCode {
    /// A fresh code, uniform over 000000–999999.
    pub fn generate() -> Self {
        Self(format!("{:06}", crypto::random_below(1_000_000)))
    }

    /// Accepts six digits, ignoring dashes and spaces.
    pub fn parse(input: &str) -> Option<Self> {
        let digits: String = input.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(Self(digits))
    }

    /// `123-456`.
    pub fn display(&self) -> String {
        let (a, b) = self.0.split_at(3);
        format!("{a}-{b}")
    }

    /// Keyed hash stored instead of the code.
    pub fn keyed_hash(&self, key: &[u8; 32]) -> [u8; 32] {
        crypto::hmac_sha256(key, "confirmation-code", self.0.as_bytes())
    }
}

#[cfg(test)]
mod confirmation_tests {
    use super::ConfirmationCode;

    #[test]
    fn confirmation_codes_round_trip_and_reject_junk() {
        let c = ConfirmationCode::generate();
        assert_eq!(ConfirmationCode::parse(&c.display()), Some(c.clone()));
        assert_eq!(
            ConfirmationCode::parse(&c.display().replace('-', " ")),
            Some(c)
        );
        for bad in ["", "12345", "1234567", "12a456", "BCDF-GHJK"] {
            assert_eq!(ConfirmationCode::parse(bad), None, "{bad}");
        }
    }
}
