//! The one home of cryptography: CSPRNG, SHA-256, HMAC, constant-time
//! comparison, and AES-256-GCM sealing of in-flight tokens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of the key id prefixed to sealed blobs.
const KEY_ID_LEN: usize = 4;
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// SHA-256's block size: the key length HMAC-SHA256 works with.
const HMAC_BLOCK_LEN: usize = 64;

/// Implements `Debug` for a type that holds secrets: `Name(<redacted>)`,
/// or, given fields, a struct showing only those (the rest left out).
macro_rules! redacted_debug {
    ($name:ident) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
    ($name:ident { $($field:ident),+ $(,)? }) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))+
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use redacted_debug;

/// Bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

/// A uniformly random index below `bound` (rejection sampling, no modulo bias).
pub fn random_below(bound: u32) -> u32 {
    debug_assert!(bound > 0);
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let v = OsRng.next_u32();
        if v < zone {
            return v % bound;
        }
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 of `message` under `key`, with a domain label so the same key
/// never produces the same tag for two kinds of input.
pub fn hmac_sha256(key: &[u8; 32], domain: &str, message: &[u8]) -> [u8; 32] {
    // HMAC zero-pads a key shorter than the hash's block to the block size
    // (RFC 2104 §2), so the padded block is the same key; handing it over
    // whole uses the constructor that has no error case.
    let mut block = [0u8; HMAC_BLOCK_LEN];
    block[..key.len()].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(domain.as_bytes());
    mac.update(&[0]);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Plain HMAC-SHA256 (RFC 2104) of `message` under a key of any length:
/// what receivers of the security webhook compute with their own tools.
pub fn hmac_sha256_plain(key: &[u8], message: &[u8]) -> [u8; 32] {
    // A key longer than the block is replaced by its hash, a shorter one
    // zero-padded (RFC 2104 §2): the constructor with no error case.
    let hashed;
    let key = if key.len() > HMAC_BLOCK_LEN {
        hashed = sha256(key);
        &hashed[..]
    } else {
        key
    };
    let mut block = [0u8; HMAC_BLOCK_LEN];
    block[..key.len()].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The `X-EnvShield-Signature` header of a webhook request sent at `unix`
/// seconds: `t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">`. The time is
/// signed with the body, so a receiver can refuse an old request replayed.
pub fn webhook_signature(key: &[u8], unix: i64, body: &[u8]) -> String {
    let mut signed = unix.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!(
        "t={unix},v1={}",
        hex::encode(hmac_sha256_plain(key, &signed))
    )
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A 256-bit AES-GCM key with the id stored beside every blob it seals.
#[derive(Clone)]
pub struct SealKey {
    id: [u8; KEY_ID_LEN],
    key: [u8; 32],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey(id={})", hex::encode(self.id))
    }
}

impl SealKey {
    /// Wraps raw key bytes; the id is derived from the key so it needs no
    /// separate configuration and never reveals the key.
    pub fn new(key: [u8; 32]) -> Self {
        let digest = sha256(&[b"envshield-seal-key-id:".as_slice(), &key].concat());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { id, key }
    }
}

/// The current sealing key plus older keys still accepted for opening.
#[derive(Clone, Debug)]
pub struct SealKeyring {
    current: SealKey,
    previous: Vec<SealKey>,
}

/// Sealing failed: AES-GCM refuses a plaintext or associated data beyond its
/// limits (about 64 GiB), which no token comes near.
#[derive(Debug, thiserror::Error)]
#[error("AES-GCM refused to seal {len} bytes")]
pub struct SealError {
    /// Length of the plaintext that was refused.
    pub len: usize,
}

/// Opening a sealed blob failed: unknown key, wrong associated data, or tampering.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The blob is shorter than its header.
    #[error("sealed blob is truncated")]
    Truncated,
    /// No key with the blob's id is configured.
    #[error("sealed with unknown key id {0}")]
    UnknownKey(String),
    /// Authentication failed.
    #[error("sealed blob failed authentication")]
    Invalid,
}

impl SealKeyring {
    /// A keyring sealing with `current` and opening with it or any of `previous`.
    pub fn new(current: SealKey, previous: Vec<SealKey>) -> Self {
        Self { current, previous }
    }

    /// `key id || nonce || AES-256-GCM(plaintext, aad)` under the current key.
    ///
    /// # Errors
    ///
    /// Only for inputs beyond AES-GCM's limits (about 64 GiB).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = Aes256Gcm::new((&self.current.key).into());
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let nonce = Nonce::from_slice(&nonce_bytes);
        let ciphertext = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError {
                len: plaintext.len(),
            })?;
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a blob made by [`SealKeyring::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < KEY_ID_LEN + NONCE_LEN {
            return Err(OpenError::Truncated);
        }
        let (id, rest) = sealed.split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(hex::encode(id)))?;
        Aes256Gcm::new((&key.key).into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_hmac_matches_rfc_4231() {
        // Test case 2 (short key) and 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256_plain(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256_plain(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn webhook_signatures_sign_the_time_with_the_body() {
        let sig = webhook_signature(
            b"whsec-test-key-0123456789",
            1_700_000_000,
            br#"{"kind":"x"}"#,
        );
        // As Python's hmac module computes it (the receiver's side in SECURITY.md).
        assert_eq!(
            sig,
            "t=1700000000,v1=554a946283491fc43a53cc8c311f06cf34a8088886597e5a2c65ca19b26f9a6f"
        );
        let later = webhook_signature(
            b"whsec-test-key-0123456789",
            1_700_000_001,
            br#"{"kind":"x"}"#,
        );
        assert_ne!(sig[16..], later[16..], "another time, another signature");
    }

    fn ring() -> SealKeyring {
        SealKeyring::new(SealKey::new([7; 32]), vec![])
    }

    #[test]
    fn seal_round_trips_and_binds_associated_data() {
        let ring = ring();
        let sealed = ring.seal(b"row-1", b"esh_secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"esh_secret"));
        assert_eq!(ring.open(b"row-1", &sealed).unwrap(), b"esh_secret");
        assert!(matches!(
            ring.open(b"row-2", &sealed),
            Err(OpenError::Invalid)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = ring();
        let mut sealed = ring.seal(b"a", b"secret").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(ring.open(b"a", &sealed).is_err());
        assert!(matches!(
            ring.open(b"a", &[1, 2]),
            Err(OpenError::Truncated)
        ));
    }

    #[test]
    fn rotated_keys_still_open_old_blobs() {
        let old = SealKey::new([1; 32]);
        let sealed = SealKeyring::new(old.clone(), vec![])
            .seal(b"x", b"t")
            .unwrap();
        let rotated = SealKeyring::new(SealKey::new([2; 32]), vec![old]);
        assert_eq!(rotated.open(b"x", &sealed).unwrap(), b"t");
        let without_old = SealKeyring::new(SealKey::new([2; 32]), vec![]);
        assert!(matches!(
            without_old.open(b"x", &sealed),
            Err(OpenError::UnknownKey(_))
        ));
    }

    #[test]
    fn hmac_is_domain_separated() {
        let key = [3; 32];
        assert_ne!(
            hmac_sha256(&key, "device", b"abc"),
            hmac_sha256(&key, "user", b"abc")
        );
        assert_eq!(
            hmac_sha256(&key, "device", b"abc"),
            hmac_sha256(&key, "device", b"abc")
        );
    }

    #[test]
    fn hmac_of_the_padded_block_equals_hmac_of_the_key() {
        let key = [9u8; 32];
        let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        reference.update(b"device");
        reference.update(&[0]);
        reference.update(b"abc");
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(hmac_sha256(&key, "device", b"abc"), expected);
    }

    #[test]
    fn random_below_stays_in_range() {
        for _ in 0..1000 {
            assert!(random_below(20) < 20);
        }
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
