//! `envshield logout`: revoke the token on the server, then forget it here.

use serde::Serialize;

use super::context::{with_server_message, Context};
use super::credentials::{SavedSignIn, TOKEN_ENV};
use super::refresh::CallError;
use crate::cli::LogoutArgs;
use crate::config::Config;
use crate::error::CliError;
use crate::secrets::StoredAt;

/// What happened to one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Revoked on the server and removed here.
    Revoked,
    /// The server no longer accepted it; removed here.
    AlreadyInvalid,
    /// The server could not revoke it; removed here anyway (`--force`).
    RemovedLocally,
    /// There was no token.
    NotSignedIn,
    /// Nothing changed.
    Failed,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileResult {
    profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    result: Outcome,
    message: String,
}

/// Runs `envshield logout`.
pub fn run(ctx: &Context, args: &LogoutArgs) -> Result<(), CliError> {
    let config = ctx.load_config()?;
    let names: Vec<String> = if args.all {
        config
            .profiles
            .iter()
            .filter(|(_, p)| p.has_credentials())
            .map(|(name, _)| name.clone())
            .collect()
    } else {
        vec![ctx.profile.clone()]
    };

    let mut results = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        let (result, failure) = logout_one(ctx, &config, name, args.force);
        results.push(result);
        failures.extend(failure);
    }

    if ctx.env_token.is_some() {
        ctx.out.warn(&format!(
            "{TOKEN_ENV} is still set; commands keep using it until you unset it."
        ));
    }

    if !args.all {
        // One profile: its failure is the error.
        if let Some(err) = failures.pop() {
            return Err(err);
        }
    } else if !failures.is_empty() {
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| r.result == Outcome::Failed)
            .map(|r| r.profile.as_str())
            .collect();
        for err in &failures {
            ctx.out.note(&format!("error: {}", err.message));
        }
        return Err(CliError::new(
            "logout_failed",
            format!(
                "could not sign out of {} profile(s): {}. Their tokens were kept; try again, or add --force to remove them from this machine only.",
                failed.len(),
                failed.join(", ")
            ),
        )
        .with_details(serde_json::json!({ "profiles": results })));
    }

    if ctx.out.is_json() {
        ctx.out
            .json_line(&serde_json::json!({ "profiles": results }));
    } else if results.is_empty() {
        ctx.out.result("No profile is signed in; nothing to do.");
    } else {
        for r in &results {
            ctx.out.result(&r.message);
        }
    }
    Ok(())
}

/// The result for one profile, and the error when it failed.
type Attempt = (ProfileResult, Option<CliError>);

fn logout_one(ctx: &Context, config: &Config, name: &str, force: bool) -> Attempt {
    let result = |api_url: Option<&str>, result, message: String| ProfileResult {
        profile: name.to_string(),
        api_url: api_url.map(str::to_string),
        result,
        message,
    };
    let Some(profile) = config.profiles.get(name).filter(|p| p.has_credentials()) else {
        let done = result(
            None,
            Outcome::NotSignedIn,
            format!("Profile '{name}' is not signed in; nothing to do."),
        );
        return (done, None);
    };

    // The token to forget: the saved one, or the renewed one when the
    // access token had expired and was refreshed on the way (the server
    // then revokes the whole session, refresh token included).
    let mut used = SavedSignIn::of(profile);
    let revoked = ctx.stored_credentials(name, profile).and_then(|mut creds| {
        let client = ctx.client_for(&creds)?;
        let answer = ctx.call(&mut creds, &client, |c, t| c.logout(t));
        used = SavedSignIn::used_by(&creds);
        match answer {
            Ok(()) => Ok((creds.api_url, Outcome::Revoked, String::new())),
            // Only the token refused means it is dead; a refused DPoP proof
            // (`invalid_dpop_proof`) leaves it live and fails below.
            Err(CallError::Api(e)) if e.is_token_refused() => {
                let msg = with_server_message("the server no longer accepted it", &e);
                Ok((creds.api_url, Outcome::AlreadyInvalid, msg))
            }
            Err(CallError::SessionEnded(e)) => {
                let msg = with_server_message("its session had already ended on the server", &e);
                Ok((creds.api_url, Outcome::AlreadyInvalid, msg))
            }
            Err(CallError::Api(e)) => Err(CliError::from(e)),
            Err(CallError::Refresh(e)) => Err(e),
        }
    });

    let saved_url = profile.api_url.clone();
    let (api_url, outcome, said) = match revoked {
        Ok(done) => done,
        Err(err) if force => {
            ctx.out.warn(&err.message);
            (
                saved_url.unwrap_or_default(),
                Outcome::RemovedLocally,
                err.message,
            )
        }
        Err(err) => {
            let err = err.with_hint(&format!(
                "The token of profile '{name}' was kept; try again, or add --force to remove it from this machine only."
            ));
            let failed = result(saved_url.as_deref(), Outcome::Failed, err.message.clone());
            return (failed, Some(err));
        }
    };

    // Forget the token where it is kept (keyring entry or file), unless
    // another login replaced it meanwhile.
    let stored_at = StoredAt::of(profile, &ctx.store.path());
    let removed = ctx.forget_sign_in(name, &used);
    if let Err(err) = removed {
        let message = match outcome {
            Outcome::Revoked => {
                err.with_hint("The token was revoked on the server, so it no longer works.")
            }
            _ => err,
        };
        let failed = result(Some(&api_url), Outcome::Failed, message.message.clone());
        return (failed, Some(message));
    }

    let message = match outcome {
        Outcome::Revoked => format!(
            "Signed out of profile '{name}' ({api_url}): the token was revoked on the server and removed from this machine ({stored_at})."
        ),
        Outcome::AlreadyInvalid => format!(
            "Signed out of profile '{name}' ({api_url}): {said}, so it was only removed from this machine ({stored_at})."
        ),
        _ => format!(
            "Removed the token of profile '{name}' from this machine ({stored_at}), but it was NOT revoked on the server; revoke it in the web UI."
        ),
    };
    (result(Some(&api_url), outcome, message), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::{context, signed_in_profile};
    use crate::test_support::{canned_server, http, json};

    /// Saves the default profile, signed in to `url` with `esh_tok` and,
    /// when given, a refresh token.
    fn save(ctx: &Context, url: &str, refresh_token: Option<&str>) -> Config {
        ctx.update_config(|c| {
            let mut profile = signed_in_profile(url, "esh_tok");
            profile.refresh_token = refresh_token.map(str::to_string);
            c.profiles.insert("default".into(), profile);
        })
        .unwrap()
    }

    fn save_profile(ctx: &Context, url: &str) -> Config {
        save(ctx, url, None)
    }

    fn save_refreshable(ctx: &Context, url: &str) -> Config {
        save(ctx, url, Some("eshr_tok"))
    }

    fn saved_token(ctx: &Context) -> Option<String> {
        ctx.load_config().unwrap().profiles["default"].token.clone()
    }

    /// What logging out of the default profile did.
    struct LoggedOut {
        _tmp: tempfile::TempDir,
        ctx: Context,
        base: String,
        result: ProfileResult,
        err: Option<CliError>,
        requests: Vec<String>,
    }

    /// Logs out of the default profile, saved by `sign_in`, on a server that
    /// answers with `responses`.
    fn log_out(sign_in: fn(&Context, &str) -> Config, responses: Vec<String>) -> LoggedOut {
        let (base, server) = canned_server(responses);
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let config = sign_in(&ctx, &base);
        let (result, err) = logout_one(&ctx, &config, "default", false);
        let requests = server.join().unwrap();
        LoggedOut {
            _tmp: tmp,
            ctx,
            base,
            result,
            err,
            requests,
        }
    }

    #[test]
    fn revoked_on_the_server_then_removed_here() {
        let out = log_out(save_profile, vec![http("204 No Content", "text/plain", "")]);
        assert!(out.err.is_none());
        assert_eq!(out.result.result, Outcome::Revoked);
        assert!(out.requests[0].starts_with("POST /api/v1/cli/auth/logout "));
        assert_eq!(saved_token(&out.ctx), None);
        assert_eq!(
            out.ctx.load_config().unwrap().profiles["default"]
                .api_url
                .as_deref(),
            Some(out.base.as_str())
        );
    }

    #[test]
    fn already_invalid_is_removed_and_said() {
        let out = log_out(
            save_profile,
            vec![json(
                "401 Unauthorized",
                r#"{"error":"invalid_token","message":"Revoked."}"#,
            )],
        );
        assert!(out.err.is_none());
        assert_eq!(out.result.result, Outcome::AlreadyInvalid);
        assert!(out
            .result
            .message
            .contains("no longer accepted it (Revoked)"));
        assert_eq!(saved_token(&out.ctx), None);
    }

    #[test]
    fn a_refused_proof_keeps_the_token_and_points_at_the_clock() {
        let out = log_out(
            save_profile,
            vec![json(
                "401 Unauthorized",
                r#"{"error":"invalid_dpop_proof","message":"The DPoP proof's iat is too far from this server's clock; check the system clock."}"#,
            )],
        );
        assert_eq!(out.result.result, Outcome::Failed);
        let err = out.err.unwrap();
        assert_eq!(err.code, "invalid_dpop_proof");
        assert_eq!(err.exit_code, crate::error::EXIT_FAILURE);
        assert!(
            err.message.contains("this computer's clock"),
            "{}",
            err.message
        );
        assert!(err.message.contains("was kept"), "{}", err.message);
        assert!(err.message.contains("--force"), "{}", err.message);
        assert_eq!(saved_token(&out.ctx).as_deref(), Some("esh_tok"));
    }

    #[test]
    fn unreachable_server_keeps_the_token_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let config = save_profile(&ctx, "http://127.0.0.1:9/api/v1");

        let (result, err) = logout_one(&ctx, &config, "default", false);
        assert_eq!(result.result, Outcome::Failed);
        let err = err.unwrap();
        assert_eq!(err.code, "unreachable");
        assert!(err.message.contains("--force"));
        assert_eq!(saved_token(&ctx).as_deref(), Some("esh_tok"));

        let (result, err) = logout_one(&ctx, &config, "default", true);
        assert!(err.is_none());
        assert_eq!(result.result, Outcome::RemovedLocally);
        assert_eq!(saved_token(&ctx), None);
    }

    #[test]
    fn not_signed_in_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let (result, err) = logout_one(&ctx, &Config::default(), "default", false);
        assert!(err.is_none());
        assert_eq!(result.result, Outcome::NotSignedIn);
    }

    const EXPIRED: &str = r#"{"error":"token_expired","message":"Expired."}"#;

    #[test]
    fn an_expired_access_token_is_renewed_to_end_the_session() {
        let out = log_out(
            save_refreshable,
            vec![
                json("401 Unauthorized", EXPIRED),
                json(
                    "200 OK",
                    r#"{"token":"esh_new","tokenId":"00000000-0000-0000-0000-000000000002","scopes":[],"expiresAt":null,"refreshToken":"eshr_new"}"#,
                ),
                http("204 No Content", "text/plain", ""),
            ],
        );
        assert!(out.err.is_none(), "{:?}", out.err);
        assert_eq!(out.result.result, Outcome::Revoked);
        assert!(out.requests[2].starts_with("POST /api/v1/cli/auth/logout "));
        assert!(out.requests[2].to_lowercase().contains("bearer esh_new"));
        let saved = out.ctx.load_config().unwrap().profiles["default"].clone();
        assert_eq!(saved.token, None);
        assert_eq!(saved.refresh_token, None);
    }

    #[test]
    fn an_ended_session_is_removed_here() {
        let out = log_out(
            save_refreshable,
            vec![
                json("401 Unauthorized", EXPIRED),
                json(
                    "400 Bad Request",
                    r#"{"error":"invalid_grant","message":"Revoked."}"#,
                ),
            ],
        );
        assert!(out.err.is_none(), "{:?}", out.err);
        assert_eq!(out.result.result, Outcome::AlreadyInvalid);
        assert!(
            out.result.message.contains("session had already ended"),
            "{}",
            out.result.message
        );
        assert_eq!(saved_token(&out.ctx), None);
    }
}
