//! The operating system's credential store, through the `keyring` crate.

use std::fmt;

use crate::config::KeyringRef;
use crate::text::clause;

use super::SecretName;

/// Why the keyring could not be used: not there (no D-Bus session, no
/// Secret Service), locked, or failing. `Display` is one clause, to be
/// embedded in a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringError {
    reason: String,
}

impl KeyringError {
    fn new(reason: impl fmt::Display) -> Self {
        let reason = clause(&reason.to_string());
        Self {
            reason: if reason.is_empty() {
                "the keyring gave no reason".into()
            } else {
                reason
            },
        }
    }
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for KeyringError {}

/// The system keyring: one entry per secret, filed under the profile's
/// service and `<account>/<secret name>`.
#[derive(Debug, Clone, Copy)]
pub struct Keyring;

/// Whether this build has a real credential store. Elsewhere the `keyring`
/// crate would fall back to an in-memory mock that forgets everything at
/// exit: never use it.
const SUPPORTED: bool = cfg!(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    windows
));

impl Keyring {
    /// What the keyring is called on this system, for messages.
    pub fn backend() -> &'static str {
        if cfg!(target_os = "macos") {
            "macOS Keychain"
        } else if cfg!(windows) {
            "Windows Credential Manager"
        } else {
            "Secret Service"
        }
    }

    fn entry(at: &KeyringRef, name: SecretName) -> Result<keyring::Entry, KeyringError> {
        if !SUPPORTED {
            return Err(KeyringError::new(
                "this operating system has no supported keyring",
            ));
        }
        let user = format!("{}/{}", at.account, name.as_str());
        keyring::Entry::new(&at.service, &user).map_err(KeyringError::new)
    }

    /// The secret, `None` when the keyring has no such entry.
    pub fn get(at: &KeyringRef, name: SecretName) -> Result<Option<String>, KeyringError> {
        match Self::entry(at, name)?.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeyringError::new(e)),
        }
    }

    /// Stores the secret, replacing the one there.
    pub fn set(at: &KeyringRef, name: SecretName, secret: &str) -> Result<(), KeyringError> {
        Self::entry(at, name)?
            .set_password(secret)
            .map_err(KeyringError::new)
    }

    /// Deletes the secret; a missing entry is fine.
    pub fn delete(at: &KeyringRef, name: SecretName) -> Result<(), KeyringError> {
        match Self::entry(at, name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(KeyringError::new(e)),
        }
    }
}
