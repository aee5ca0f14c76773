//! Short-lived access tokens with rotating refresh tokens: the CLI renews
//! an expired access token by itself, saves the new pair, and the server's
//! reuse detection ends the whole session when an old refresh token comes
//! back.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use envshield_api_types::dpop::DpopKey;
use envshield_server::config::TokenPolicy;
use serde_json::{json, Value};

use crate::helpers::{Running, TestEnv};

/// Lifetime of the access tokens in these tests.
const ACCESS_TTL: Duration = Duration::from_secs(3);

/// A server whose `envshield-cli` client gets access + refresh tokens.
pub fn access_refresh_server() -> TestEnv {
    TestEnv::spawn_with(|c| {
        c.clients[0].token_policy = TokenPolicy::AccessRefresh;
        c.access_token_ttl = ACCESS_TTL;
        // Any second use of a refresh token is reuse (no retry window), so
        // these tests see reuse detection end the session at once.
        c.refresh_reuse_grace = std::time::Duration::ZERO;
    })
}

/// Signs in through the browser with `--json`; returns the `signed_in` line.
fn login(env: &TestEnv) -> Value {
    let browser = env.signed_in_browser("dev@example.com");
    let mut login = env.start(&["--json", "login", "--no-browser"]);
    let started = login.json_event("device_started");
    browser.approve(started["userCode"].as_str().expect("userCode"));
    let done = login.finish();
    done.assert_code(0);
    let lines = done.json_lines();
    lines.last().expect("signed_in").clone()
}

/// The saved access and refresh token.
fn saved_pair(env: &TestEnv) -> (String, String) {
    let profile = env.saved_profile();
    let token = profile["token"].as_str().expect("saved token").to_owned();
    let refresh = profile["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no refreshToken in {profile}"))
        .to_owned();
    (token, refresh)
}

/// Waits, by the clock and never longer than 30 s, until the saved access
/// token is past its `expiresAt`, then until the server says so (401
/// `token_expired`).
pub fn wait_until_expired(env: &TestEnv, token: &str, key: Option<&DpopKey>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let profile = env.saved_profile();
    let expires_at: DateTime<Utc> = profile["expiresAt"]
        .as_str()
        .unwrap_or_else(|| panic!("an access token has an expiry: {profile}"))
        .parse()
        .expect("expiresAt is a time");
    assert!(
        expires_at <= Utc::now() + chrono::Duration::from_std(ACCESS_TTL * 2).expect("ttl"),
        "the access token lives {ACCESS_TTL:?}, not until {expires_at}"
    );
    while Utc::now() <= expires_at {
        assert!(
            Instant::now() < deadline,
            "the clock never passed {expires_at}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    loop {
        let (status, body) = env.whoami_with(token, key);
        if status == 401 {
            assert_eq!(body["error"], "token_expired", "{body}");
            return;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "the server still accepts the access token after {expires_at}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST /cli/auth/refresh` as a thief holding the profile's key too
/// (with a proof of the saved key, when there is one).
fn refresh(env: &TestEnv, refresh_token: &str) -> (u16, Value) {
    let url = env.url("/api/v1/cli/auth/refresh");
    let mut request = reqwest::blocking::Client::new()
        .post(&url)
        .json(&json!({ "refreshToken": refresh_token }));
    if let Some(key) = env.saved_dpop_key() {
        let proof = key
            .proof("POST", &url, None, Utc::now().timestamp())
            .expect("a proof");
        request = request.header("DPoP", proof);
    }
    let r = request.send().expect("POST refresh");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn an_expired_access_token_is_renewed_and_reusing_the_old_refresh_token_ends_the_session() {
    let env = access_refresh_server();
    let signed_in = login(&env);
    assert_eq!(signed_in["token"]["refreshable"], true, "{signed_in}");
    let (old_access, old_refresh) = saved_pair(&env);
    assert!(old_access.starts_with("esh_"), "{old_access}");
    assert!(old_refresh.starts_with("eshr_"), "{old_refresh}");
    wait_until_expired(&env, &old_access, env.saved_dpop_key().as_ref());

    let whoami = env.run(&["whoami"]);
    whoami.assert_code(0);
    assert!(
        whoami
            .stdout
            .contains("Signed in as dev@example.com (user)"),
        "{whoami:?}"
    );
    // Neither token is ever printed.
    let (new_access, new_refresh) = saved_pair(&env);
    for secret in [&old_access, &old_refresh, &new_access, &new_refresh] {
        assert!(!whoami.stdout.contains(secret.as_str()), "{whoami:?}");
        assert!(!whoami.stderr.contains(secret.as_str()), "{whoami:?}");
    }
    // The file now holds a new pair, and the new access token works.
    assert_ne!(new_access, old_access);
    assert_ne!(new_refresh, old_refresh);
    assert_ne!(env.saved_profile()["tokenId"], signed_in["token"]["id"]);
    let (status, who) = env.whoami_as_saved(&new_access);
    assert_eq!(status, 200, "{who}");

    // The old refresh token was spent: the server refuses it, and takes
    // its reuse for theft, revoking the whole family.
    let (status, body) = refresh(&env, &old_refresh);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let (status, body) = env.whoami_as_saved(&new_access);
    assert_eq!(
        status, 401,
        "the new access token died with its family: {body}"
    );
    let (status, body) = refresh(&env, &new_refresh);
    assert_eq!(status, 400, "so did the new refresh token: {body}");

    let whoami = env.run(&["whoami"]);
    whoami.assert_code(1);
    assert!(
        whoami.error_line().contains("envshield login"),
        "{whoami:?}"
    );
}

#[test]
fn a_refused_refresh_token_says_the_session_ended() {
    let env = access_refresh_server();
    login(&env);
    let (access, refresh_token) = saved_pair(&env);
    wait_until_expired(&env, &access, env.saved_dpop_key().as_ref());
    // Someone else spends the refresh token first.
    let (status, body) = refresh(&env, &refresh_token);
    assert_eq!(status, 200, "{body}");

    let done = env.run(&["--json", "whoami"]);
    done.assert_code(1);
    let error = done.json();
    assert_eq!(error["error"], "session_ended", "{done:?}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("session of profile 'default' has ended"),
        "{message}"
    );
    assert!(message.contains("Run `envshield login`"), "{message}");

    // The CLI's use of the spent refresh token was taken for theft: the
    // whole session is revoked now, and the CLI still says to sign in.
    let done = env.run(&["whoami"]);
    done.assert_code(1);
    assert!(
        done.error_line().contains("Run `envshield login`"),
        "{done:?}"
    );
    assert_eq!(saved_pair(&env), (access, refresh_token));
}

#[test]
fn tokens_list_renews_too_and_the_environment_token_is_never_renewed() {
    let env = access_refresh_server();
    login(&env);
    let (access, refresh_token) = saved_pair(&env);
    wait_until_expired(&env, &access, env.saved_dpop_key().as_ref());

    // ENVSHIELD_TOKEN holds no refresh token: the expiry is reported.
    let mut cmd = env.cli(&["--json", "whoami"]);
    cmd.env("ENVSHIELD_TOKEN", &access);
    let done = Running::spawn(cmd, None).finish();
    done.assert_code(1);
    let error = done.json();
    assert_eq!(error["error"], "token_expired", "{done:?}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ENVSHIELD_TOKEN"),
        "{done:?}"
    );
    assert_eq!(saved_pair(&env), (access.clone(), refresh_token.clone()));

    let done = env.run(&["--json", "tokens", "list"]);
    done.assert_code(0);
    let (new_access, _) = saved_pair(&env);
    assert_ne!(new_access, access);
    let list = done.json();
    let current: Vec<&Value> = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|t| t["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{list}");
    assert_eq!(current[0]["id"], env.saved_profile()["tokenId"], "{list}");
}

#[test]
fn logout_ends_the_whole_session_even_with_an_expired_access_token() {
    // Not expired: the refresh token dies with the access token.
    let env = access_refresh_server();
    login(&env);
    let (_, refresh_token) = saved_pair(&env);
    let done = env.run(&["logout"]);
    done.assert_code(0);
    assert!(done.stdout.contains("revoked on the server"), "{done:?}");
    let (status, body) = refresh(&env, &refresh_token);
    assert_eq!(status, 400, "{body}");
    let profile = env.saved_profile();
    assert!(profile.get("token").is_none(), "{profile}");
    assert!(profile.get("refreshToken").is_none(), "{profile}");

    // Expired: renewed on the way, then revoked.
    let env = access_refresh_server();
    login(&env);
    let (access, refresh_token) = saved_pair(&env);
    wait_until_expired(&env, &access, env.saved_dpop_key().as_ref());
    let done = env.run(&["--json", "logout"]);
    done.assert_code(0);
    assert_eq!(done.json()["profiles"][0]["result"], "revoked", "{done:?}");
    let profile = env.saved_profile();
    assert!(profile.get("token").is_none(), "{profile}");
    assert!(profile.get("refreshToken").is_none(), "{profile}");
    // The spent refresh token is refused (and nothing of the session lives).
    let (status, body) = refresh(&env, &refresh_token);
    assert_eq!(status, 400, "{body}");
}
