//! What the command tests share: a context on a fresh config folder, and
//! signed-in profiles.

use std::path::Path;

use super::context::Context;
use crate::config::{ConfigStore, Profile};
use crate::output::Output;
use crate::secrets::StorePreference;

/// A context on a fresh config folder, with no environment influence.
pub fn context(dir: &Path) -> Context {
    Context {
        out: Output::plain(true),
        profile: "default".into(),
        api_url_flag: None,
        api_url_env: None,
        env_token: None,
        store: ConfigStore::new(dir),
        credential_store: StorePreference::File,
    }
}

/// A profile signed in to `url` with `token`, and nothing else known.
pub fn signed_in_profile(url: &str, token: &str) -> Profile {
    Profile {
        api_url: Some(url.into()),
        token: Some(token.into()),
        ..Default::default()
    }
}
