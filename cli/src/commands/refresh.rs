//! Authenticated calls, and the renewal of an expired access token with the
//! profile's refresh token on the way.

use envshield_api_types::RefreshResponse;

use super::context::Context;
use super::credentials::{Credentials, SavedSignIn, TokenSource};
use crate::api::{ApiClient, ApiError};
use crate::config::KeyringRef;
use crate::error::{profile_flag, CliError};
use crate::secrets::{Keyring, SecretName};
use crate::text::in_parentheses;

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
                self.refresh(creds, client).map_err(CallError::from)?;
                call(client, &creds.token).map_err(CallError::Api)
            }
            answer => answer.map_err(CallError::Api),
        }
    }

    /// Trades the refresh token in `creds` for a new pair and saves it,
    /// holding the config lock so that two `envshield` processes never
    /// spend the same refresh token (the server takes a second use for
    /// theft and ends the whole session).
    fn refresh(&self, creds: &mut Credentials, client: &ApiClient) -> Result<(), Refused> {
        let name = creds.profile.clone();
        let lock = self.lock_config()?;

        // Another envshield may have refreshed (or someone signed in again)
        // while this one waited for the lock: then use what is saved now.
        let config = self.load_locked(&lock)?;
        let saved = config.profiles.get(&name).filter(|p| p.has_credentials());
        let Some(saved) = saved else {
            return Err(CliError::not_signed_in(&name).into());
        };
        let fresh = self.stored_credentials(&name, saved)?;
        if fresh.refresh_token != creds.refresh_token
            || fresh.token != creds.token
            || fresh.keyring != creds.keyring
        {
            if fresh.api_url == creds.api_url {
                *creds = fresh;
                return Ok(());
            }
            return Err(CliError::new(
                "server_mismatch",
                format!("profile '{name}' was signed in to another server meanwhile. Run the command again."),
            )
            .into());
        }

        let refresh_token = creds.refresh_token.clone().unwrap_or_default();
        let renewed = match client.refresh(&refresh_token) {
            Ok(renewed) => renewed,
            Err(err) if err.is_api_error(400, "invalid_grant") => {
                return Err(Refused::SessionEnded(err))
            }
            Err(err) => {
                let e = CliError::from(err);
                return Err(CliError::new(
                    e.code,
                    format!(
                        "the access token of profile '{name}' expired and could not be renewed: {}",
                        e.message
                    ),
                )
                .into());
            }
        };

        // The new pair replaces the old one where it was: in the keyring
        // entry (written first, under the lock), or in the file.
        let used = SavedSignIn::used_by(creds);
        let mut replaced = false;
        let saved = self
            .store_renewed(&name, creds.keyring.as_ref(), &renewed)
            .and_then(|()| {
                self.update_locked(&lock, |c| {
                    if let Some(p) = c.profiles.get_mut(&name) {
                        if SavedSignIn::of(p) == used && p.refresh_token == file_refresh(creds) {
                            if p.keyring.is_none() {
                                p.token = Some(renewed.token.clone());
                                p.refresh_token = Some(renewed.refresh_token.clone());
                            }
                            p.token_id = Some(renewed.token_id);
                            p.expires_at = renewed.expires_at;
                            replaced = true;
                        }
                    }
                })
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
            let hint = if client.logout(&renewed.token).is_ok() {
                format!(
                    "The renewed session was ended on the server; Run `envshield login{}` to sign in again.",
                    profile_flag(&name)
                )
            } else {
                format!("The renewed session could not be ended on the server either; revoke token {} in the web UI.", renewed.token_id)
            };
            return Err(err.with_hint(&hint).into());
        }

        creds.token = renewed.token;
        creds.token_id = Some(renewed.token_id);
        creds.refresh_token = Some(renewed.refresh_token);
        Ok(())
    }

    /// Writes a renewed pair into the keyring entry `entry`, when the
    /// profile's secrets are there (the file is written by the caller).
    fn store_renewed(
        &self,
        name: &str,
        entry: Option<&KeyringRef>,
        renewed: &RefreshResponse,
    ) -> Result<(), CliError> {
        let Some(entry) = entry else {
            return Ok(());
        };
        Keyring::set(entry, SecretName::AccessToken, &renewed.token)
            .and_then(|()| Keyring::set(entry, SecretName::RefreshToken, &renewed.refresh_token))
            .map_err(|e| {
                CliError::new(
                    "keyring_error",
                    format!(
                        "could not save the renewed token of profile '{name}' in the system keyring ({}: {e}).",
                        Keyring::backend()
                    ),
                )
            })
    }

    /// Turns a failed [`Context::call`] into the error for the person.
    pub fn call_failed(&self, creds: &Credentials, err: CallError) -> CliError {
        match err {
            CallError::Api(err) => self.refused(creds, err),
            CallError::SessionEnded(err) => {
                let said = in_parentheses(&err.server_message().unwrap_or_default());
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
}

/// The refresh token as the file holds it: the one in use for a file
/// profile, none for a keyring profile.
fn file_refresh(creds: &Credentials) -> Option<String> {
    if creds.keyring.is_some() {
        None
    } else {
        creds.refresh_token.clone()
    }
}

/// Why a refresh gave no new pair.
enum Refused {
    /// The server refused the refresh token.
    SessionEnded(ApiError),
    /// Anything else; the message says what.
    Failed(CliError),
}

impl From<CliError> for Refused {
    fn from(err: CliError) -> Self {
        Self::Failed(err)
    }
}

impl From<Refused> for CallError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::SessionEnded(err) => Self::SessionEnded(err),
            Refused::Failed(err) => Self::Refresh(err),
        }
    }
}
