//! What the config file holds: profiles, each a server, a token for it,
//! and where that token is kept.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::text::redacted;

/// Name of the profile used when none is given.
pub const DEFAULT_PROFILE: &str = "default";

/// The token type of a DPoP-bound token.
pub const DPOP_TOKEN_TYPE: &str = "DPoP";

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One signed-in identity: a server and a token for it.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The API base URL the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The API token in plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Id of the token on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    /// Name of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// When the token stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The refresh token in plaintext, when the server issued a short-lived
    /// access token (`token`) with it. Saved and replaced together with the
    /// access token, in the same write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// How the token is sent: `DPoP` when it is bound to the profile's DPoP
    /// key (`dpop_private_key`, RFC 9449); absent (every profile saved
    /// before DPoP) or `Bearer` for a plain bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Other named secrets (e.g. `dpop_private_key`) of a profile whose
    /// secrets are kept in this file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Where the secrets are when they are not in this file: the system
    /// keyring entry. Absent (as in every file written before the keyring
    /// was used) means `token`, `refreshToken` and `secrets` hold them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<KeyringRef>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A profile's entry in the system keyring: each secret is filed under
/// `service` as `<account>/<secret name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyringRef {
    /// The keyring service (`envshield`).
    pub service: String,
    /// The account: the profile's name and a random suffix, so that two
    /// config folders (`ENVSHIELD_CONFIG_DIR`) never share entries.
    pub account: String,
}

/// The keyring service every entry of the CLI is filed under.
pub const KEYRING_SERVICE: &str = "envshield";

impl KeyringRef {
    /// A new entry for a sign-in to `profile`.
    pub fn new(profile: &str) -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        Self {
            service: KEYRING_SERVICE.to_string(),
            account: format!("{profile}-{}", &suffix[..12]),
        }
    }
}

impl Profile {
    /// Whether the profile is signed in: its token is in this file, or in
    /// the keyring entry it names.
    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || self.keyring.is_some()
    }

    /// Whether the token is bound to the profile's DPoP key.
    pub fn is_dpop_bound(&self) -> bool {
        self.token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(DPOP_TOKEN_TYPE))
    }

    /// Forgets the token but keeps the server, so the next `login` goes to
    /// the same place. A keyring entry must have been erased first.
    pub fn clear_token(&mut self) {
        self.token = None;
        self.token_id = None;
        self.token_name = None;
        self.expires_at = None;
        self.refresh_token = None;
        self.token_type = None;
        self.secrets.clear();
        self.keyring = None;
    }
}

// Neither token ever appears in debug output.
impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("api_url", &self.api_url)
            .field("token", &redacted(self.token.as_ref()))
            .field("token_id", &self.token_id)
            .field("token_name", &self.token_name)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &redacted(self.refresh_token.as_ref()))
            .field("token_type", &self.token_type)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

/// Checks a profile name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn parse_profile_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err("a profile name is 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}
