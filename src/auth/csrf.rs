//! Synchronizer CSRF tokens: random per session, checked in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::crypto;

/// A fresh random token.
pub fn generate() -> String {
    URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>())
}

/// Constant-time comparison of the session's token and a submitted one.
pub fn matches(expected: &str, submitted: &str) -> bool {
    !expected.is_empty() && crypto::ct_eq(expected.as_bytes(), submitted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_match_only_themselves() {
        let a = generate();
        assert_ne!(a, generate());
        assert!(matches(&a, &a));
        assert!(!matches(&a, &generate()));
        assert!(!matches("", ""));
    }
}
