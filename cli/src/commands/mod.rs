//! One module per command, and the [`Context`] they share.

pub mod login;
pub mod logout;
pub mod token;
pub mod tokens;
pub mod whoami;

use serde::Serialize;
use uuid::Uuid;

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
    /// The profile it belongs to (the chosen one for `ENVSHIELD_TOKEN`).
    pub profile: String,
    /// The token's id, when the profile knows it.
    pub token_id: Option<Uuid>,
    /// The profile's refresh token, if any (never for `ENVSHIELD_TOKEN`).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("source", &self.source)
            .field("profile", &self.profile)
            .field("token_id", &self.token_id)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why an authenticated call (see [`Context::call`]) failed.
#[derive(Debug)]
pub enum CallError {
    /// The server's answer to the call (to the retried call after a
    /// refresh), or the network's.
    Api(ApiError),
    /// The access token expired and the server refused the refresh token
    /// (`invalid_grant`: expired, revoked, or already used): the session
    /// has ended.
    SessionEnded(ApiError),
    /// The refresh itself failed otherwise (server unreachable, config not
    /// writable, ...); the message says what happened.
    Refresh(CliError),
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
                profile: self.profile.clone(),
                token_id: None,
                refresh_token: None,
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
            profile: name.to_string(),
            token_id: profile.token_id,
            refresh_token: profile.refresh_token.clone(),
        })
    }

    /// Makes an authenticated call: `call(client, token)`. When the server
    /// answers that the access token expired (401 `token_expired`) and the
    /// saved profile holds a refresh token, gets a new pair
    /// (`POST /cli/auth/refresh`), saves it (one atomic write), updates
    /// `creds`, and makes the call once more. A token from
    /// `ENVSHIELD_TOKEN` is never refreshed.
    pub fn call<T>(
        &self,
        creds: &mut Credentials,
        client: &ApiClient,
        call: impl Fn(&ApiClient, &str) -> Result<T, ApiError>,
    ) -> Result<T, CallError> {
        match call(client, &creds.token) {
            Err(err)
                if err.is_token_expired()
                    && creds.source == TokenSource::Config
                    && creds.refresh_token.is_some() =>
            {
                self.refresh(creds, client)?;
                call(client, &creds.token).map_err(CallError::Api)
            }
            answer => answer.map_err(CallError::Api),
        }
    }

    /// Trades the refresh token in `creds` for a new pair and saves it,
    /// holding the config lock so that two `envshield` processes never
    /// spend the same refresh token (the server takes a second use for
    /// theft and ends the whole session).
    fn refresh(&self, creds: &mut Credentials, client: &ApiClient) -> Result<(), CallError> {
        let name = creds.profile.clone();
        let flag = profile_flag(&name);
        let again = format!("Run `envshield login{flag}` to sign in again.");
        let _lock = self
            .store
            .lock(&mut |w| self.out.warn(&w))
            .map_err(|e| CallError::Refresh(e.into()))?;

        // Another envshield may have refreshed (or someone signed in again)
        // while this one waited for the lock: then use what is saved now.
        let config = self.load_config().map_err(CallError::Refresh)?;
        let saved = config.profiles.get(&name).filter(|p| p.token.is_some());
        let Some(saved) = saved else {
            return Err(CallError::Refresh(CliError::not_signed_in(&name)));
        };
        if saved.refresh_token != creds.refresh_token || saved.token.as_ref() != Some(&creds.token)
        {
            let fresh = self
                .stored_credentials(&name, saved)
                .map_err(CallError::Refresh)?;
            if fresh.api_url == creds.api_url {
                *creds = fresh;
                return Ok(());
            }
            return Err(CallError::Refresh(CliError::new(
                "server_mismatch",
                format!("profile '{name}' was signed in to another server meanwhile. Run the command again."),
            )));
        }

        let refresh_token = creds.refresh_token.clone().unwrap_or_default();
        let renewed = match client.refresh(&refresh_token) {
            Ok(renewed) => renewed,
            Err(err) if err.is_api_error(400, "invalid_grant") => {
                return Err(CallError::SessionEnded(err))
            }
            Err(err) => {
                let e = CliError::from(err);
                return Err(CallError::Refresh(CliError::new(
                    e.code,
                    format!(
                        "the access token of profile '{name}' expired and could not be renewed: {}",
                        e.message
                    ),
                )));
            }
        };

        let old_token = creds.token.clone();
        let mut replaced = false;
        let saved = self.update_config(|c| {
            if let Some(p) = c.profiles.get_mut(&name) {
                if p.token.as_ref() == Some(&old_token) && p.refresh_token == creds.refresh_token {
                    p.token = Some(renewed.token.clone());
                    p.token_id = Some(renewed.token_id);
                    p.expires_at = renewed.expires_at;
                    p.refresh_token = Some(renewed.refresh_token.clone());
                    replaced = true;
                }
            }
        });
        let stored = match saved {
            Ok(_) if replaced => Ok(()),
            Ok(_) => Err(CliError::new(
                "config_changed",
                format!("profile '{name}' changed while its token was being renewed."),
            )),
            Err(err) => Err(err),
        };
        if let Err(err) = stored {
            // Nobody holds the new pair: end the session on the server
            // rather than leave it alive (best effort).
            let revoked = client.logout(&renewed.token).is_ok();
            let hint = if revoked {
                format!("The renewed session was ended on the server; {again}")
            } else {
                format!("The renewed session could not be ended on the server either; revoke token {} in the web UI.", renewed.token_id)
            };
            return Err(CallError::Refresh(err.with_hint(&hint)));
        }

        creds.token = renewed.token;
        creds.token_id = Some(renewed.token_id);
        creds.refresh_token = Some(renewed.refresh_token);
        Ok(())
    }

    /// Turns a failed [`Context::call`] into the error for the person.
    pub fn call_failed(&self, creds: &Credentials, err: CallError) -> CliError {
        match err {
            CallError::Api(err) => self.refused(creds, err),
            CallError::SessionEnded(err) => {
                let said = err
                    .server_message()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                CliError::new(
                    "session_ended",
                    format!(
                        "the session of profile '{}' has ended: its access token expired and the server refused to renew it{said}. Run `envshield login{}` to sign in again.",
                        creds.profile,
                        profile_flag(&creds.profile)
                    ),
                )
            }
            CallError::Refresh(err) => err,
        }
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
            profile: "default".into(),
            token_id: None,
            refresh_token: None,
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

    use crate::api::tests::{canned_server, http};

    const WHOAMI: &str = r#"{"user":{"id":"00000000-0000-0000-0000-000000000009","email":"a@x","role":"user"},"token":{"id":"00000000-0000-0000-0000-000000000002","name":"n","scopes":[],"createdAt":"2025-01-01T00:00:00Z","expiresAt":null,"lastUsedAt":null}}"#;
    const EXPIRED: &str = r#"{"error":"token_expired","message":"The access token expired."}"#;
    const RENEWED: &str = r#"{"token":"esh_new","tokenId":"00000000-0000-0000-0000-000000000002","scopes":[],"expiresAt":"2030-01-01T00:00:00Z","refreshToken":"eshr_new"}"#;

    fn json(status: &str, body: &str) -> String {
        http(status, "application/json", body)
    }

    /// A context whose default profile is signed in to `url` with an
    /// access token and a refresh token.
    fn refreshable(dir: &std::path::Path, url: &str) -> (Context, Credentials) {
        let ctx = context(dir);
        let config = ctx
            .update_config(|c| {
                c.profiles.insert(
                    "default".into(),
                    Profile {
                        api_url: Some(url.into()),
                        token: Some("esh_old".into()),
                        token_id: Some(Uuid::from_u128(1)),
                        token_name: Some("n".into()),
                        refresh_token: Some("eshr_old".into()),
                        ..Default::default()
                    },
                );
            })
            .unwrap();
        let creds = ctx.credentials(&config).unwrap();
        (ctx, creds)
    }

    #[test]
    fn an_expired_access_token_is_refreshed_saved_and_the_call_retried() {
        let (base, server) = canned_server(vec![
            json("401 Unauthorized", EXPIRED),
            json("200 OK", RENEWED),
            json("200 OK", WHOAMI),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, mut creds) = refreshable(tmp.path(), &base);
        let client = ApiClient::new(&base).unwrap();
        let who = ctx.call(&mut creds, &client, |c, t| c.whoami(t)).unwrap();
        let requests = server.join().unwrap();

        assert_eq!(who.user.email, "a@x");
        assert!(requests[0]
            .to_lowercase()
            .contains("authorization: bearer esh_old"));
        assert!(requests[1].starts_with("POST /api/v1/cli/auth/refresh "));
        assert!(
            requests[1].ends_with(r#"{"refreshToken":"eshr_old"}"#),
            "{}",
            requests[1]
        );
        assert!(requests[2]
            .to_lowercase()
            .contains("authorization: bearer esh_new"));

        assert_eq!(creds.token, "esh_new");
        assert_eq!(creds.refresh_token.as_deref(), Some("eshr_new"));
        assert_eq!(creds.token_id, Some(Uuid::from_u128(2)));
        let saved = ctx.load_config().unwrap().profiles["default"].clone();
        assert_eq!(saved.token.as_deref(), Some("esh_new"));
        assert_eq!(saved.refresh_token.as_deref(), Some("eshr_new"));
        assert_eq!(saved.token_id, Some(Uuid::from_u128(2)));
        assert_eq!(saved.token_name.as_deref(), Some("n"));
        assert!(saved.expires_at.is_some());
    }

    #[test]
    fn a_refused_refresh_token_means_the_session_ended() {
        let (base, server) = canned_server(vec![
            json("401 Unauthorized", EXPIRED),
            json(
                "400 Bad Request",
                r#"{"error":"invalid_grant","message":"The refresh token is not valid."}"#,
            ),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, mut creds) = refreshable(tmp.path(), &base);
        let client = ApiClient::new(&base).unwrap();
        let err = ctx
            .call(&mut creds, &client, |c, t| c.whoami(t))
            .unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, CallError::SessionEnded(_)), "{err:?}");
        let e = ctx.call_failed(&creds, err);
        assert_eq!(e.code, "session_ended");
        assert!(e.message.contains("has ended"), "{}", e.message);
        assert!(
            e.message
                .ends_with("Run `envshield login` to sign in again."),
            "{}",
            e.message
        );
        // Nothing was changed on disk.
        let saved = ctx.load_config().unwrap().profiles["default"].clone();
        assert_eq!(saved.token.as_deref(), Some("esh_old"));
    }

    #[test]
    fn no_refresh_for_other_refusals_or_the_environment_token() {
        let (base, server) = canned_server(vec![
            json(
                "401 Unauthorized",
                r#"{"error":"invalid_token","message":"Revoked."}"#,
            ),
            json("401 Unauthorized", EXPIRED),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, mut creds) = refreshable(tmp.path(), &base);
        let client = ApiClient::new(&base).unwrap();
        let err = ctx
            .call(&mut creds, &client, |c, t| c.whoami(t))
            .unwrap_err();
        assert!(matches!(&err, CallError::Api(e) if e.code() == "invalid_token"));

        let mut env = Credentials {
            source: TokenSource::Env,
            refresh_token: None,
            ..creds.clone()
        };
        let err = ctx.call(&mut env, &client, |c, t| c.whoami(t)).unwrap_err();
        // Two requests in all: no refresh was tried.
        server.join().unwrap();
        let e = ctx.call_failed(&env, err);
        assert_eq!(e.code, "token_expired");
        assert!(e.message.contains("ENVSHIELD_TOKEN"), "{}", e.message);
    }

    #[test]
    fn a_pair_renewed_by_another_process_is_used_without_refreshing() {
        let (base, server) = canned_server(vec![
            json("401 Unauthorized", EXPIRED),
            json("200 OK", WHOAMI),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, mut creds) = refreshable(tmp.path(), &base);
        // Meanwhile, another envshield refreshed.
        ctx.update_config(|c| {
            let p = c.profiles.get_mut("default").unwrap();
            p.token = Some("esh_other".into());
            p.refresh_token = Some("eshr_other".into());
        })
        .unwrap();
        let client = ApiClient::new(&base).unwrap();
        ctx.call(&mut creds, &client, |c, t| c.whoami(t)).unwrap();
        let requests = server.join().unwrap();
        assert!(requests[1]
            .to_lowercase()
            .contains("authorization: bearer esh_other"));
        assert_eq!(creds.refresh_token.as_deref(), Some("eshr_other"));
    }
}
