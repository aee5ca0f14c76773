//! Choosing credentials, advice for refused tokens, and token refresh
//! against a canned server.

use uuid::Uuid;

use super::fixtures::{context, signed_in_profile};
use super::*;
use crate::api::{ApiClient, ApiError};
use crate::config::{Config, Profile};
use crate::test_support::{canned_server, json};

fn signed_in(url: &str) -> Config {
    let mut config = Config::default();
    config
        .profiles
        .insert("default".into(), signed_in_profile(url, "esh_saved"));
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
        keyring: None,
        dpop: None,
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

const WHOAMI: &str = r#"{"user":{"id":"00000000-0000-0000-0000-000000000009","email":"a@x","role":"user"},"token":{"id":"00000000-0000-0000-0000-000000000002","name":"n","scopes":[],"createdAt":"2025-01-01T00:00:00Z","expiresAt":null,"lastUsedAt":null}}"#;
const EXPIRED: &str = r#"{"error":"token_expired","message":"The access token expired."}"#;
const RENEWED: &str = r#"{"token":"esh_new","tokenId":"00000000-0000-0000-0000-000000000002","scopes":[],"expiresAt":"2030-01-01T00:00:00Z","refreshToken":"eshr_new"}"#;

/// A default profile signed in with an access token and a refresh token,
/// on a canned server.
struct Refreshable {
    _tmp: tempfile::TempDir,
    ctx: Context,
    creds: Credentials,
    client: ApiClient,
    server: std::thread::JoinHandle<Vec<String>>,
}

impl Refreshable {
    /// The profile, on a server that answers with `responses`.
    fn on(responses: Vec<String>) -> Self {
        let (base, server) = canned_server(responses);
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let config = ctx
            .update_config(|c| {
                c.profiles.insert(
                    "default".into(),
                    Profile {
                        api_url: Some(base.clone()),
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
        Self {
            _tmp: tmp,
            ctx,
            creds,
            client: ApiClient::new(&base).unwrap(),
            server,
        }
    }

    /// `whoami`, refreshing on the way when needed.
    fn whoami(&mut self) -> Result<envshield_api_types::WhoamiResponse, CallError> {
        self.ctx
            .call(&mut self.creds, &self.client, |c, t| c.whoami(t))
    }
}

#[test]
fn an_expired_access_token_is_refreshed_saved_and_the_call_retried() {
    let mut fixture = Refreshable::on(vec![
        json("401 Unauthorized", EXPIRED),
        json("200 OK", RENEWED),
        json("200 OK", WHOAMI),
    ]);
    let who = fixture.whoami().unwrap();
    let Refreshable {
        ctx, creds, server, ..
    } = fixture;
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
    let mut fixture = Refreshable::on(vec![
        json("401 Unauthorized", EXPIRED),
        json(
            "400 Bad Request",
            r#"{"error":"invalid_grant","message":"The refresh token is not valid."}"#,
        ),
    ]);
    let err = fixture.whoami().unwrap_err();
    let Refreshable {
        ctx, creds, server, ..
    } = fixture;
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
    let mut fixture = Refreshable::on(vec![
        json(
            "401 Unauthorized",
            r#"{"error":"invalid_token","message":"Revoked."}"#,
        ),
        json("401 Unauthorized", EXPIRED),
    ]);
    let err = fixture.whoami().unwrap_err();
    let Refreshable {
        ctx,
        creds,
        client,
        server,
        ..
    } = fixture;
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
    let mut fixture = Refreshable::on(vec![
        json("401 Unauthorized", EXPIRED),
        json("200 OK", WHOAMI),
    ]);
    // Meanwhile, another envshield refreshed.
    fixture
        .ctx
        .update_config(|c| {
            let p = c.profiles.get_mut("default").unwrap();
            p.token = Some("esh_other".into());
            p.refresh_token = Some("eshr_other".into());
        })
        .unwrap();
    fixture.whoami().unwrap();
    let Refreshable { creds, server, .. } = fixture;
    let requests = server.join().unwrap();
    assert!(requests[1]
        .to_lowercase()
        .contains("authorization: bearer esh_other"));
    assert_eq!(creds.refresh_token.as_deref(), Some("eshr_other"));
}

#[test]
fn debug_output_hides_every_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ctx = context(tmp.path());
    ctx.env_token = Some("esh_env_secret".into());
    let shown = format!("{ctx:?}");
    assert!(!shown.contains("esh_env_secret"), "{shown}");
    assert!(shown.contains("env_token: Some(\"<redacted>\")"), "{shown}");

    let creds = Credentials {
        token: "esh_access_secret".into(),
        api_url: "http://x".into(),
        source: TokenSource::Config,
        profile: "default".into(),
        token_id: None,
        refresh_token: Some("eshr_refresh_secret".into()),
        keyring: None,
        dpop: None,
    };
    let shown = format!("{creds:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("http://x"), "{shown}");
}
