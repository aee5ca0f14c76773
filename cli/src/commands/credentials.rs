//! Which token a command uses, and for which server.

use std::fmt;
use std::sync::Arc;

use envshield_api_types::dpop::DpopKey;

use serde::Serialize;
use uuid::Uuid;

use super::context::Context;
use crate::api::{self, ApiClient, ApiError};
use crate::config::{Config, KeyringRef, Profile};
use crate::error::{profile_flag, CliError};
use crate::secrets::{self, Keyring, KeyringError, SecretName};
use crate::text::{redacted, REDACTED};

/// Environment variable whose token overrides the stored one.
pub const TOKEN_ENV: &str = "ENVSHIELD_TOKEN";

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `ENVSHIELD_TOKEN`.
    Env,
    /// The profile in the config file.
    Config,
}

/// A token and the server it is for.
#[derive(Clone)]
pub struct Credentials {
    /// The token in plaintext.
    pub token: String,
    /// The API base URL to send it to.
    pub api_url: String,
    /// Where the token came from.
    pub source: TokenSource,
    /// The profile it belongs to (the chosen one for `ENVSHIELD_TOKEN`).
    pub profile: String,
    /// The token's id, when the profile knows it.
    pub token_id: Option<Uuid>,
    /// The profile's refresh token, if any (never for `ENVSHIELD_TOKEN`).
    pub refresh_token: Option<String>,
    /// The keyring entry holding the profile's secrets; `None` when they
    /// are in the config file (or come from `ENVSHIELD_TOKEN`).
    pub keyring: Option<KeyringRef>,
    /// The key the token is bound to (DPoP); `None` for a bearer token.
    pub dpop: Option<Arc<DpopKey>>,
}

// Neither token ever appears in debug output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &REDACTED)
            .field("api_url", &self.api_url)
            .field("source", &self.source)
            .field("profile", &self.profile)
            .field("token_id", &self.token_id)
            .field("refresh_token", &redacted(self.refresh_token.as_ref()))
            .field("keyring", &self.keyring)
            .field("dpop", &self.dpop.is_some())
            .finish()
    }
}

/// Why a token is unusable as it is: `<where it is> ... (<reason>). <what
/// to do>`.
fn malformed(message: String) -> CliError {
    CliError::new("invalid_token_format", message)
}

/// One secret of profile `name`, from the file or the keyring; a keyring
/// that cannot be read is an error saying what to do.
pub fn saved_secret(
    name: &str,
    profile: &Profile,
    secret: SecretName,
) -> Result<Option<String>, CliError> {
    secrets::read(profile, secret).map_err(|e| keyring_unreadable(name, &e))
}

/// The keyring holding profile `name`'s secrets could not be read.
pub fn keyring_unreadable(name: &str, err: &KeyringError) -> CliError {
    CliError::new(
        "keyring_error",
        format!(
            "could not read the credentials of profile '{name}' from the system keyring ({}: {err}). Unlock the keyring and try again, or run `envshield login --insecure-storage{}` to keep them in the config file instead.",
            Keyring::backend(),
            profile_flag(name)
        ),
    )
}

/// Profile `name` says it is signed in, but its token is not where it
/// should be (only the keyring can lose it behind the CLI's back).
pub(crate) fn missing_from_keyring(name: &str, profile: &Profile) -> CliError {
    if profile.keyring.is_none() {
        return CliError::not_signed_in(name);
    }
    CliError::new(
        "not_signed_in",
        format!(
            "the token of profile '{name}' is no longer in the system keyring ({}); it was removed outside envshield. Run `envshield login{}` to sign in again.",
            Keyring::backend(),
            profile_flag(name)
        ),
    )
}

impl Credentials {
    /// Whether the token is bound to a DPoP key on this machine.
    pub fn is_dpop_bound(&self) -> bool {
        self.dpop.is_some()
    }
}

impl Context {
    /// A client for the server of `creds`, proving possession of its DPoP
    /// key on every request when the token is bound to one.
    pub fn client_for(&self, creds: &Credentials) -> Result<ApiClient, CliError> {
        Ok(self.client(&creds.api_url)?.with_dpop(creds.dpop.clone()))
    }

    /// The token to use: `ENVSHIELD_TOKEN`, else the profile's saved token.
    /// Fails when there is none.
    pub fn credentials(&self, config: &Config) -> Result<Credentials, CliError> {
        let saved = config.profiles.get(&self.profile);
        if let Some(token) = &self.env_token {
            api::check_token_format(token).map_err(|reason| {
                malformed(format!("{TOKEN_ENV} does not hold a valid token ({reason}). Set it to the token exactly as it was shown, or unset it."))
            })?;
            return Ok(Credentials {
                token: token.clone(),
                api_url: self.api_url(saved.and_then(|p| p.api_url.as_deref()))?,
                source: TokenSource::Env,
                profile: self.profile.clone(),
                token_id: None,
                refresh_token: None,
                keyring: None,
                dpop: None,
            });
        }
        let profile = saved
            .filter(|p| p.has_credentials())
            .ok_or_else(|| CliError::not_signed_in(&self.profile))?;
        self.stored_credentials(&self.profile, profile)
    }

    /// The token saved in `profile` and its server. A saved token is only
    /// ever sent to the server it came from: when `--api-url` or
    /// `ENVSHIELD_API_URL` names another server, this fails instead.
    pub fn stored_credentials(
        &self,
        name: &str,
        profile: &Profile,
    ) -> Result<Credentials, CliError> {
        let token = saved_secret(name, profile, SecretName::AccessToken)?
            .ok_or_else(|| missing_from_keyring(name, profile))?;
        let refresh_token = saved_secret(name, profile, SecretName::RefreshToken)?;
        let flag = profile_flag(name);
        let dpop = if profile.is_dpop_bound() {
            let stored = saved_secret(name, profile, SecretName::DpopPrivateKey)?;
            let key = stored.as_deref().map(DpopKey::from_stored).transpose();
            match key {
                Ok(Some(key)) => Some(Arc::new(key)),
                Ok(None) => return Err(malformed(format!("the token saved in profile '{name}' is bound to a DPoP key, but the key is missing from where the profile keeps its secrets. Run `envshield login{flag}` to sign in again."))),
                Err(e) => return Err(malformed(format!("the DPoP key saved in profile '{name}' cannot be read ({e}). Run `envshield login{flag}` to sign in again."))),
            }
        } else {
            None
        };
        api::check_token_format(&token).map_err(|reason| {
            malformed(format!("the token saved in profile '{name}' is malformed ({reason}). Run `envshield login{flag}` to sign in again."))
        })?;
        let saved = profile.api_url.as_deref();
        let api_url = self.api_url(saved)?;
        if let Some(saved) = saved {
            let saved = api::normalize_api_url(saved)?;
            if saved != api_url {
                return Err(CliError::new(
                    "server_mismatch",
                    format!("profile '{name}' is signed in to {saved}, not {api_url}, and its token is only sent to its own server. Drop --api-url/ENVSHIELD_API_URL, or run `envshield login --api-url {api_url} --profile <new-name>` to sign in there."),
                ));
            }
        }
        Ok(Credentials {
            token,
            api_url,
            source: TokenSource::Config,
            profile: name.to_string(),
            token_id: profile.token_id,
            refresh_token,
            keyring: profile.keyring.clone(),
            dpop,
        })
    }

    /// Turns a refused token (401) into advice that fits where the token
    /// came from; other errors pass through.
    pub fn refused(&self, creds: &Credentials, err: ApiError) -> CliError {
        if !err.is_token_refused() {
            return err.into();
        }
        let said = err
            .server_message()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "HTTP 401".into());
        let message = match creds.source {
            TokenSource::Env => format!(
                "the token in {TOKEN_ENV} was refused by {} ({said}). Set {TOKEN_ENV} to a valid token, or unset it to use your saved sign-in.",
                creds.api_url
            ),
            TokenSource::Config => format!(
                "the saved token of profile '{}' is no longer valid ({said}). Run `envshield login{}` to sign in again.",
                self.profile,
                profile_flag(&self.profile)
            ),
        };
        CliError::new(err.code(), message)
    }
}

/// Which saved sign-in a command used, to forget exactly that one: the
/// keyring entry, or for a file profile the token itself (another `login`
/// may have replaced either meanwhile).
#[derive(Clone, PartialEq, Eq)]
pub struct SavedSignIn {
    /// The keyring entry, when the secrets are there.
    pub keyring: Option<KeyringRef>,
    /// The token, when it is in the file.
    pub token: Option<String>,
}

// The token never appears in debug output.
impl fmt::Debug for SavedSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedSignIn")
            .field("keyring", &self.keyring)
            .field("token", &redacted(self.token.as_ref()))
            .finish()
    }
}

impl SavedSignIn {
    /// The sign-in `profile` holds now.
    pub fn of(profile: &Profile) -> Self {
        Self {
            keyring: profile.keyring.clone(),
            token: profile.token.clone(),
        }
    }

    /// The sign-in `creds` came from (after any refresh).
    pub fn used_by(creds: &Credentials) -> Self {
        Self {
            keyring: creds.keyring.clone(),
            token: creds.keyring.is_none().then(|| creds.token.clone()),
        }
    }
}

impl Context {
    /// Forgets the sign-in `used` of profile `name`, wherever its secrets
    /// are (the keyring entries are deleted, the file's fields cleared),
    /// unless the profile holds another sign-in by now. Returns whether it
    /// was forgotten. The server, profile and other profiles are kept.
    pub fn forget_sign_in(&self, name: &str, used: &SavedSignIn) -> Result<bool, CliError> {
        let lock = self.lock_config()?;
        let config = self.load_locked(&lock)?;
        let Some(profile) = config.profiles.get(name) else {
            return Ok(false);
        };
        if !profile.has_credentials() || SavedSignIn::of(profile) != *used {
            return Ok(false);
        }
        if let Some(entry) = &profile.keyring {
            secrets::erase_keyring(entry).map_err(|e| {
                CliError::new(
                    "keyring_error",
                    format!(
                        "could not delete the credentials of profile '{name}' from the system keyring ({}: {e}); they were kept. Unlock the keyring and run the command again.",
                        Keyring::backend()
                    ),
                )
            })?;
        }
        self.update_locked(&lock, |c| {
            if let Some(p) = c.profiles.get_mut(name) {
                if SavedSignIn::of(p) == *used {
                    p.clear_token();
                }
            }
        })?;
        Ok(true)
    }
}
