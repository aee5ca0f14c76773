//! What every command is given: the output, the profile, where the API URL
//! and token may come from, and the config store.

use std::fmt;

use crate::api::{self, ApiClient, ApiError};
use crate::config::{Config, ConfigLock, ConfigStore};
use crate::error::CliError;
use crate::output::Output;
use crate::secrets::StorePreference;
use crate::text::{in_parentheses, redacted};

/// What every command needs: the output mode, the chosen profile, the API
/// URL sources, the environment token and the config store.
#[derive(Clone)]
pub struct Context {
    /// Human or `--json` output.
    pub out: Output,
    /// The profile name (`--profile`, `ENVSHIELD_PROFILE`, or `default`).
    pub profile: String,
    /// `--api-url`, if given.
    pub api_url_flag: Option<String>,
    /// `ENVSHIELD_API_URL`, if set and not empty.
    pub api_url_env: Option<String>,
    /// `ENVSHIELD_TOKEN`, if set and not empty.
    pub env_token: Option<String>,
    /// Where the config file lives.
    pub store: ConfigStore,
    /// Where `login` keeps new secrets (`ENVSHIELD_CREDENTIAL_STORE`).
    pub credential_store: StorePreference,
}

// The environment token never appears in debug output.
impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("out", &self.out)
            .field("profile", &self.profile)
            .field("api_url_flag", &self.api_url_flag)
            .field("api_url_env", &self.api_url_env)
            .field("env_token", &redacted(self.env_token.as_ref()))
            .field("store", &self.store)
            .field("credential_store", &self.credential_store)
            .finish()
    }
}

impl Context {
    /// Passes a config warning (loose permissions) to stderr.
    fn warn(&self) -> impl FnMut(String) + '_ {
        |w: String| self.out.warn(&w)
    }

    /// Reads the config, passing permission warnings to stderr.
    pub fn load_config(&self) -> Result<Config, CliError> {
        Ok(self.store.load(&mut self.warn())?)
    }

    /// Loads, edits and saves the config under its lock (other profiles
    /// are kept).
    pub fn update_config(&self, change: impl FnOnce(&mut Config)) -> Result<Config, CliError> {
        Ok(self.store.update(&mut self.warn(), change)?)
    }

    /// Takes the config folder's lock, for work that must not interleave
    /// with another `envshield` (a token refresh).
    pub fn lock_config(&self) -> Result<ConfigLock, CliError> {
        Ok(self.store.lock(&mut self.warn())?)
    }

    /// [`Context::load_config`] for the holder of `lock`.
    pub fn load_locked(&self, lock: &ConfigLock) -> Result<Config, CliError> {
        Ok(lock.load(&mut self.warn())?)
    }

    /// [`Context::update_config`] for the holder of `lock`.
    pub fn update_locked(
        &self,
        lock: &ConfigLock,
        change: impl FnOnce(&mut Config),
    ) -> Result<Config, CliError> {
        Ok(lock.update(&mut self.warn(), change)?)
    }

    /// The API URL by precedence: flag, env, `saved`, default.
    pub fn api_url(&self, saved: Option<&str>) -> Result<String, CliError> {
        Ok(api::resolve_api_url(
            self.api_url_flag.as_deref(),
            self.api_url_env.as_deref(),
            saved,
        )?)
    }

    /// A client for `api_url`, warning when a token would travel over plain
    /// HTTP to another machine.
    pub fn client(&self, api_url: &str) -> Result<ApiClient, CliError> {
        if api::is_insecure_remote(api_url) {
            self.out.warn(&format!(
                "{api_url} uses plain HTTP; your token crosses the network unencrypted. Use https:// for anything but local testing."
            ));
        }
        Ok(ApiClient::new(api_url)?)
    }
}

/// Combines a server message with ours: `"<ours> (<server's>)"`.
pub(crate) fn with_server_message(ours: &str, err: &ApiError) -> String {
    let said = err.server_message().unwrap_or_default();
    format!("{ours}{}", in_parentheses(&said))
}
