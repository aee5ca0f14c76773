//! Where the person wants new secrets kept: `ENVSHIELD_CREDENTIAL_STORE`
//! and `login --insecure-storage`.

use std::fmt;

/// Environment variable that chooses where `login` keeps the secrets:
/// `auto` (the default), `keyring` or `file`.
pub const CREDENTIAL_STORE_ENV: &str = "ENVSHIELD_CREDENTIAL_STORE";

/// Where `login` keeps the secrets it saves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StorePreference {
    /// The system keyring when one works, else the file with a notice.
    #[default]
    Auto,
    /// The system keyring, or fail.
    Keyring,
    /// The file, without trying the keyring (`--insecure-storage`).
    File,
}

impl StorePreference {
    /// Reads the value of [`CREDENTIAL_STORE_ENV`]; unset or empty is
    /// `auto`. The error is a sentence saying what is accepted.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "auto") => Ok(Self::Auto),
            Some("keyring") => Ok(Self::Keyring),
            Some("file") => Ok(Self::File),
            Some(other) => Err(format!(
                "{CREDENTIAL_STORE_ENV} is '{}', but it must be auto, keyring or file. Fix or unset it.",
                crate::text::one_line(other)
            )),
        }
    }
}

impl fmt::Display for StorePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Keyring => "keyring",
            Self::File => "file",
        })
    }
}
