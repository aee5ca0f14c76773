//! One module per command, and the [`Context`] they share.

pub mod login;
pub mod logout;
pub mod token;
pub mod tokens;
pub mod whoami;

use serde::Serialize;

use crate::api::{self, ApiClient, ApiError};
use crate::config::{Config, ConfigStore, Profile};
use crate::error::{clause, profile_flag, CliError};
use crate::output::Output;

/// Environment variable whose token overrides the stored one.
pub const TOKEN_ENV: &str = "ENVSHIELD_TOKEN";

/// What every command needs: the output mode, the chosen profile, the API
/// URL sources, the environment token and the config store.
#[derive(Debug, Clone)]
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
}

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
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("source", &self.source)
            .finish()
    }
}

impl Context {
    /// Reads the config, passing permission warnings to stderr.
    pub fn load_config(&self) -> Result<Config, CliError> {
        Ok(self.store.load(&mut |w| self.out.warn(&w))?)
    }

    /// Loads, edits and saves the config (other profiles are kept).
    pub fn update_config(&self, change: impl FnOnce(&mut Config)) -> Result<Config, CliError> {
        Ok(self.store.update(&mut |w| self.out.warn(&w), change)?)
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

    /// The token to use: `ENVSHIELD_TOKEN`, else the profile's saved token.
    /// Fails when there is none.
    pub fn credentials(&self, config: &Config) -> Result<Credentials, CliError> {
        let saved = config.profiles.get(&self.profile);
        if let Some(token) = &self.env_token {
            api::check_token_format(token).map_err(|reason| {
                CliError::new(
                    "invalid_token_format",
                    format!("{TOKEN_ENV} does not hold a valid token ({reason}). Set it to the token exactly as it was shown, or unset it."),
                )
            })?;
            return Ok(Credentials {
                token: token.clone(),
                api_url: self.api_url(saved.and_then(|p| p.api_url.as_deref()))?,
                source: TokenSource::Env,
            });
        }
        let profile = saved
            .filter(|p| p.token.is_some())
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
        let token = profile
            .token
            .clone()
            .ok_or_else(|| CliError::not_signed_in(name))?;
        let flag = profile_flag(name);
        api::check_token_format(&token).map_err(|reason| {
            CliError::new(
                "invalid_token_format",
                format!("the token saved in profile '{name}' is malformed ({reason}). Run `envshield login{flag}` to sign in again."),
            )
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
        })
    }

    /// Turns a refused token (401) into advice that fits where the token
    /// came from; other errors pass through.
    pub fn refused(&self, creds: &Credentials, err: ApiError) -> CliError {
        if !err.is_unauthorized() {
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

/// Combines a server message with ours: `"<ours> (<server's>)"`.
pub(crate) fn with_server_message(ours: &str, err: &ApiError) -> String {
    match err.server_message().filter(|m| !m.is_empty()) {
        Some(m) => format!("{ours} ({})", clause(&m)),
        None => ours.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A context on a fresh config folder, with no environment influence.
    pub(crate) fn context(dir: &std::path::Path) -> Context {
        Context {
            out: Output::plain(true),
            profile: "default".into(),
            api_url_flag: None,
            api_url_env: None,
            env_token: None,
            store: ConfigStore::new(dir),
        }
    }

    fn signed_in(url: &str) -> Config {
        let mut config = Config::default();
        config.profiles.insert(
            "default".into(),
            Profile {
                api_url: Some(url.into()),
                token: Some("esh_saved".into()),
                ..Default::default()
            },
        );
        config
    }

    #[test]
    fn no_token_means_not_signed_in() {
        let tmp = tempfile::tempdir().unwrap();
        let err = context(tmp.path())
            .credentials(&Config::default())
            .unwrap_err();
        assert_eq!(err.code, "not_signed_in");
        assert!(err.message.contains("Run `envshield login`"));
    }

    #[test]
    fn env_token_wins_over_the_saved_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ctx = context(tmp.path());
        ctx.env_token = Some("esh_env".into());
        let creds = ctx.credentials(&signed_in("http://saved/api/v1")).unwrap();
        assert_eq!(creds.token, "esh_env");
        assert_eq!(creds.source, TokenSource::Env);
        assert_eq!(creds.api_url, "http://saved/api/v1");
    }

    #[test]
    fn saved_token_goes_to_its_own_server_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ctx = context(tmp.path());
        let config = signed_in("http://saved/api/v1/");
        assert_eq!(
            ctx.credentials(&config).unwrap().api_url,
            "http://saved/api/v1"
        );
        ctx.api_url_flag = Some("http://saved/api/v1".into());
        assert!(ctx.credentials(&config).is_ok());
        ctx.api_url_flag = None;
        ctx.api_url_env = Some("http://other/api/v1".into());
        let err = ctx.credentials(&config).unwrap_err();
        assert_eq!(err.code, "server_mismatch");
    }

    #[test]
    fn refused_tokens_get_advice_for_their_source() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let err = ApiError::Api {
            status: 401,
            body: envshield_api_types::ErrorBody {
                error: "invalid_token".into(),
                message: "Token revoked.".into(),
                status: None,
            },
            retry_after: None,
        };
        let creds = Credentials {
            token: "t".into(),
            api_url: "http://x".into(),
            source: TokenSource::Config,
        };
        let e = ctx.refused(&creds, err.clone());
        assert_eq!(e.code, "invalid_token");
        assert_eq!(e.message, "the saved token of profile 'default' is no longer valid (Token revoked). Run `envshield login` to sign in again.");
        let env = Credentials {
            source: TokenSource::Env,
            ..creds
        };
        assert!(ctx.refused(&env, err).message.contains("ENVSHIELD_TOKEN"));
    }
}
