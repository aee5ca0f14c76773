//! `whoami`, `logout` and `tokens` once signed in.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Browser, TestEnv};

/// A server, and the CLI signed in to it (through `login --token`).
fn signed_in(email: &str) -> (TestEnv, Browser, String, Uuid) {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser(email);
    let (token, id) = env.mint_token(&browser, "laptop");
    env.run(&["login", "--token", &token]).assert_code(0);
    (env, browser, token, id)
}

#[test]
fn whoami_json_describes_the_account_and_token() {
    let (env, _browser, _token, id) = signed_in("dev@example.com");

    let done = env.run(&["--json", "whoami"]);

    done.assert_code(0);
    let status = done.json();
    assert_eq!(status["signedIn"], true);
    assert_eq!(status["profile"], "default");
    assert_eq!(status["apiUrl"], env.api_url());
    assert_eq!(status["tokenSource"], "config");
    assert_eq!(status["user"]["email"], "dev@example.com");
    assert_eq!(status["user"]["role"], "user");
    assert_eq!(status["token"]["id"], id.to_string());
    assert_eq!(status["token"]["name"], "laptop");
    assert!(status["token"]["scopes"].is_array(), "{status}");
    assert!(done.stderr.is_empty(), "{done:?}");

    // `status` is the same command.
    env.run(&["--json", "status"]).assert_code(0);
}

#[test]
fn logout_revokes_the_token_on_the_server_and_forgets_it() {
    let (env, _browser, token, _id) = signed_in("dev@example.com");

    let done = env.run(&["--json", "logout"]);

    done.assert_code(0);
    let result = done.json();
    assert_eq!(result["profiles"][0]["profile"], "default");
    assert_eq!(result["profiles"][0]["result"], "revoked", "{result}");
    let (status, body) = env.whoami_as_saved(&token);
    assert_eq!(status, 401, "{body}");

    // Gone from the file; the server is remembered for the next login.
    let text = std::fs::read_to_string(env.config_path()).expect("config kept");
    assert!(!text.contains(&token), "{text}");
    let profile = env.saved_profile();
    assert!(profile.get("token").is_none(), "{profile}");
    assert_eq!(profile["apiUrl"], env.api_url());

    let whoami = env.run(&["whoami"]);
    whoami.assert_code(1);
    assert!(
        whoami.error_line().contains("envshield login"),
        "{whoami:?}"
    );

    // A second logout has nothing to do.
    let again = env.run(&["--json", "logout"]);
    again.assert_code(0);
    assert_eq!(again.json()["profiles"][0]["result"], "not_signed_in");
}

/// A server, and the CLI signed in to it through the browser: the saved
/// token is bound to the profile's DPoP key. Returns the token.
fn signed_in_with_dpop(email: &str) -> (TestEnv, String) {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser(email);
    let mut login = env.start(&["--json", "login", "--no-browser"]);
    let started = login.json_event("device_started");
    browser.approve(started["userCode"].as_str().expect("userCode"));
    login.finish().assert_code(0);
    let profile = env.saved_profile();
    assert_eq!(profile["tokenType"], "DPoP", "{profile}");
    let token = profile["token"].as_str().expect("saved token").to_owned();
    (env, token)
}

/// Points the default profile at the same server under another name
/// (`localhost` for `127.0.0.1`): requests still arrive, but every DPoP
/// proof names a URL the server does not take for its own, so it refuses
/// the proof (401 `invalid_dpop_proof`) while the token stays live.
fn address_the_server_as_localhost(env: &TestEnv) {
    let mut config = env.saved_config().expect("a saved config");
    let api_url = env.api_url();
    let renamed = api_url.replace("://127.0.0.1:", "://localhost:");
    assert_ne!(renamed, api_url);
    config["profiles"]["default"]["apiUrl"] = Value::String(renamed);
    let text = serde_json::to_string_pretty(&config).expect("config as JSON");
    std::fs::write(env.config_path(), text).expect("rewrite config.json");
}

#[test]
fn logout_keeps_a_live_token_whose_proof_the_server_refused() {
    let (env, token) = signed_in_with_dpop("dev@example.com");
    let key = env.saved_dpop_key().expect("a saved DPoP key");
    address_the_server_as_localhost(&env);

    // The server refuses the proof, not the token: nothing is forgotten.
    let done = env.sandbox.run(&["--json", "logout"]);
    done.assert_code(1);
    let error = done.json();
    assert_eq!(error["error"], "invalid_dpop_proof", "{done:?}");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("proof of its sign-in key"), "{message}");
    assert!(message.contains("was kept"), "{message}");
    assert!(message.contains("--force"), "{message}");
    assert_eq!(env.saved_profile()["token"], token.as_str());
    assert_eq!(env.whoami_with(&token, Some(&key)).0, 200);

    let done = env.sandbox.run(&["logout"]);
    done.assert_code(1);
    assert!(done.error_line().contains("--force"), "{done:?}");
    assert_eq!(env.saved_profile()["token"], token.as_str());

    // --force forgets it on this machine only: the server still takes it.
    let done = env.sandbox.run(&["--json", "logout", "--force"]);
    done.assert_code(0);
    let result = done.json();
    assert_eq!(
        result["profiles"][0]["result"], "removed_locally",
        "{done:?}"
    );
    let profile = env.saved_profile();
    assert!(profile.get("token").is_none(), "{profile}");
    assert_eq!(env.whoami_with(&token, Some(&key)).0, 200);
}

#[test]
fn tokens_are_listed_and_revoked() {
    let (env, browser, token, id) = signed_in("dev@example.com");
    let (other, other_id) = env.mint_token(&browser, "build server");

    let done = env.run(&["--json", "tokens", "list"]);
    done.assert_code(0);
    let list = done.json();
    let tokens = list["tokens"].as_array().expect("tokens array");
    let find = |id: Uuid| {
        tokens
            .iter()
            .find(|t| t["id"] == id.to_string())
            .unwrap_or_else(|| panic!("token {id} not listed: {list}"))
    };
    assert_eq!(find(id)["name"], "laptop");
    assert_eq!(find(id)["current"], true);
    assert_eq!(find(id)["status"], "active");
    assert_eq!(find(other_id)["name"], "build server");
    assert_eq!(find(other_id)["current"], false);
    assert!(!done.stdout.contains(&token) && !done.stdout.contains(&other));

    // The human table marks the token in use.
    let table = env.run(&["tokens"]);
    table.assert_code(0);
    let mine = table
        .stdout
        .lines()
        .find(|l| l.contains(&id.to_string()))
        .unwrap_or_else(|| panic!("{table:?}"));
    assert!(mine.starts_with('*'), "{table:?}");

    // Revoking another token: it stops working, ours does not.
    let other_id_text = other_id.to_string();
    let done = env.run(&["--json", "tokens", "revoke", &other_id_text]);
    done.assert_code(0);
    let revoked = done.json();
    assert_eq!(revoked["revoked"], other_id_text);
    assert_eq!(revoked["removedLocally"], false);
    assert_eq!(env.whoami_as_saved(&other).0, 401);
    assert_eq!(env.whoami_as_saved(&token).0, 200);

    let list = env.run(&["--json", "tokens", "list"]).json();
    let listed = list["tokens"]
        .as_array()
        .expect("tokens array")
        .iter()
        .find(|t| t["id"] == other_id_text)
        .cloned();
    if let Some(listed) = listed {
        assert_eq!(listed["status"], "revoked", "{list}");
    }

    // Revoking our own token also forgets it here.
    let id_text = id.to_string();
    let done = env.run(&["--json", "tokens", "revoke", &id_text]);
    done.assert_code(0);
    assert_eq!(done.json()["removedLocally"], true);
    assert_eq!(env.whoami_as_saved(&token).0, 401);
    assert!(env.saved_profile().get("token").is_none());

    // Not a UUID: a usage error.
    env.run(&["tokens", "revoke", "not-a-uuid"]).assert_code(2);
}
