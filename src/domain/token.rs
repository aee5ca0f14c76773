//! API tokens in plaintext: `<prefix><43 random base62><6 base62 CRC32>`.
//!
//! The random part carries 43·log2(62) ≈ 256 bits from the OS CSPRNG. The
//! checksum lets secret scanners and the server reject mistyped or made-up
//! tokens without a database lookup. Only the SHA-256 of the whole token is
//! ever stored.

use crate::crypto;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random base62 characters after the prefix.
pub const TOKEN_BODY_LEN: usize = 43;
/// Base62 characters of the CRC32 checksum (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;

/// A token in plaintext. `Debug` is redacted; the value leaves the process
/// only in the one response that hands it out.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

crypto::redacted_debug!(PlainToken);

fn checksum(prefix_and_body: &str) -> String {
    let mut n = crc32fast::hash(prefix_and_body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

impl PlainToken {
    /// A fresh token with `prefix`.
    pub fn generate(prefix: &str) -> Self {
        let body: String = (0..TOKEN_BODY_LEN)
            .map(|_| char::from(BASE62[crypto::random_below(62) as usize]))
            .collect();
        let head = format!("{prefix}{body}");
        let sum = checksum(&head);
        Self(head + &sum)
    }

    /// Accepts a token only if it has `prefix`, the right length and
    /// alphabet, and a matching checksum.
    pub fn parse(prefix: &str, input: &str) -> Option<Self> {
        let rest = input.strip_prefix(prefix)?;
        if rest.len() != TOKEN_BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| BASE62.contains(&b))
        {
            return None;
        }
        let (head, sum) = input.split_at(input.len() - CHECKSUM_LEN);
        // The checksum is public (it follows from the body): nothing to time.
        (checksum(head) == sum).then(|| Self(input.to_owned()))
    }

    /// The plaintext, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the whole token: what the database stores and looks up.
    pub fn digest(&self) -> [u8; 32] {
        crypto::sha256(self.0.as_bytes())
    }

    /// `esh_…a1B2`: recognisable in lists, useless to an attacker.
    pub fn hint(&self, prefix: &str) -> String {
        let last4 = &self.0[self.0.len() - 4..];
        format!("{prefix}…{last4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_are_unique() {
        let a = PlainToken::generate("esh_");
        let b = PlainToken::generate("esh_");
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 4 + 43 + 6);
        assert_eq!(PlainToken::parse("esh_", a.expose()), Some(a.clone()));
        assert!(a.hint("esh_").starts_with("esh_…"));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let t = PlainToken::generate("esh_");
        let s = t.expose();
        let mut changed = 0;
        for i in 4..s.len() {
            let mut bytes = s.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let other = String::from_utf8(bytes).unwrap();
            assert_eq!(PlainToken::parse("esh_", &other), None, "position {i}");
            changed += 1;
        }
        assert_eq!(changed, 49);
    }

    #[test]
    fn wrong_prefix_or_shape_is_rejected() {
        let t = PlainToken::generate("esh_");
        assert_eq!(PlainToken::parse("abc_", t.expose()), None);
        assert_eq!(PlainToken::parse("esh_", "esh_short"), None);
        assert_eq!(PlainToken::parse("esh_", &format!("{}!", t.expose())), None);
        assert_eq!(PlainToken::parse("esh_", ""), None);
    }
}
