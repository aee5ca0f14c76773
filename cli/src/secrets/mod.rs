//! Where a profile's secrets live: the operating system's credential store
//! (the "keyring": Secret Service on Linux, the Keychain on macOS, the
//! Credential Manager on Windows) or, as a fallback or by choice, the 0600
//! config file itself.
//!
//! A profile holds named secrets ([`SecretName`]: the access token, the
//! refresh token, later a private key). The config file always holds the
//! profile's non-secret data and says where its secrets are: a `keyring`
//! entry names the keyring service and account; without one, the secrets
//! are in the file (`token`, `refreshToken`, `secrets`), as every version
//! before the keyring wrote them.

mod keyring_store;
mod preference;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::config::{KeyringRef, Profile};

pub use keyring_store::{Keyring, KeyringError};
pub use preference::{StorePreference, CREDENTIAL_STORE_ENV};

/// A secret a profile may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretName {
    /// The API (or short-lived access) token.
    AccessToken,
    /// The refresh token that renews a short-lived access token.
    RefreshToken,
    /// The private key that proves possession of the tokens (DPoP).
    DpopPrivateKey,
}

impl SecretName {
    /// Every secret a profile may hold, for erasing them all.
    pub const ALL: [SecretName; 3] = [
        SecretName::AccessToken,
        SecretName::RefreshToken,
        SecretName::DpopPrivateKey,
    ];

    /// The secret's name in the keyring entry and in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::DpopPrivateKey => "dpop_private_key",
        }
    }
}

/// Reads one secret of `profile` from where it lives; `None` when the
/// profile does not hold it.
pub fn read(profile: &Profile, name: SecretName) -> Result<Option<String>, KeyringError> {
    match &profile.keyring {
        Some(entry) => Keyring::get(entry, name),
        None => Ok(match name {
            SecretName::AccessToken => profile.token.clone(),
            SecretName::RefreshToken => profile.refresh_token.clone(),
            other => profile.secrets.get(other.as_str()).cloned(),
        }),
    }
}

/// Writes (or, with `None`, removes) one secret of `profile` where it
/// lives. For a file profile this only changes `profile`; the caller saves
/// the config.
pub fn write(
    profile: &mut Profile,
    name: SecretName,
    value: Option<&str>,
) -> Result<(), KeyringError> {
    match (&profile.keyring, value) {
        (Some(entry), Some(value)) => Keyring::set(entry, name, value),
        (Some(entry), None) => Keyring::delete(entry, name),
        (None, value) => {
            let value = value.map(str::to_string);
            match name {
                SecretName::AccessToken => profile.token = value,
                SecretName::RefreshToken => profile.refresh_token = value,
                other => match value {
                    Some(v) => {
                        profile.secrets.insert(other.as_str().to_string(), v);
                    }
                    None => {
                        profile.secrets.remove(other.as_str());
                    }
                },
            }
            Ok(())
        }
    }
}

/// Deletes every secret of the keyring entry `entry` (missing ones are
/// fine). Stops at the first failure.
pub fn erase_keyring(entry: &KeyringRef) -> Result<(), KeyringError> {
    SecretName::ALL
        .into_iter()
        .try_for_each(|name| Keyring::delete(entry, name))
}

/// Which kind of store holds a profile's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The operating system's credential store.
    Keyring,
    /// The config file.
    File,
    /// `ENVSHIELD_TOKEN`: nothing is stored.
    Env,
}

/// Where a credential lives, for `whoami` and `login` to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAt {
    /// The kind of store.
    pub store: StoreKind,
    /// Where exactly, for people: `system keyring (Secret Service)`, or
    /// the file's path.
    pub location: String,
}

impl StoredAt {
    /// Where the secrets of `profile` live, the config file being `file`.
    pub fn of(profile: &Profile, file: &Path) -> Self {
        if profile.keyring.is_some() {
            Self::keyring()
        } else {
            Self::file(file)
        }
    }

    /// The system keyring.
    pub fn keyring() -> Self {
        Self {
            store: StoreKind::Keyring,
            location: format!("system keyring ({})", Keyring::backend()),
        }
    }

    /// The config file at `path`.
    pub fn file(path: &Path) -> Self {
        Self {
            store: StoreKind::File,
            location: format!("file {}", path.display()),
        }
    }
}

impl fmt::Display for StoredAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location)
    }
}

#[cfg(test)]
mod tests;
