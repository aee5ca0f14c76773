//! What the config file holds: profiles, each a server and a token for it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::text::redacted;

/// Name of the profile used when none is given.
pub const DEFAULT_PROFILE: &str = "default";

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
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Profile {
    /// Forgets the token but keeps the server, so the next `login` goes to
    /// the same place.
    pub fn clear_token(&mut self) {
        self.token = None;
        self.token_id = None;
        self.token_name = None;
        self.expires_at = None;
        self.refresh_token = None;
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
