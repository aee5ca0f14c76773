//! `envshield login` through the browser: approved, denied, expired,
//! interrupted.

use std::time::Duration;

use crate::helpers::{interrupt, mode, TestEnv};

#[test]
fn approved_login_saves_a_private_token_that_works() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start(&["--json", "login", "--no-browser"]);
    let started = login.json_event("device_started");
    let code = started["userCode"].as_str().expect("userCode").to_owned();
    let url = started["verificationUrl"]
        .as_str()
        .expect("verificationUrl");
    assert_eq!(url, format!("{}/cli/login?code={code}", env.server.address));
    browser.approve(&code);
    let done = login.finish();

    done.assert_code(0);
    let lines = done.json_lines();
    assert_eq!(lines.len(), 2, "{done:?}");
    let signed_in = &lines[1];
    assert_eq!(signed_in["event"], "signed_in");
    assert_eq!(signed_in["profile"], "default");
    assert_eq!(signed_in["apiUrl"], env.api_url());
    assert_eq!(signed_in["user"]["email"], "dev@example.com");
    assert_eq!(
        signed_in["configPath"],
        env.config_path().display().to_string()
    );
    // No TTY on stdin: no prompt, the default name.
    let name = signed_in["token"]["name"].as_str().expect("token name");
    assert!(name.starts_with("CLI Token - "), "{name}");
    assert!(!done.stderr.contains("Token name"), "{done:?}");

    // The file and its folder are private.
    assert_eq!(mode(&env.config_dir()), 0o700);
    assert_eq!(mode(&env.config_path()), 0o600);

    // The file holds the token, for this server, bound to the key saved
    // next to it (DPoP): it works with a proof of that key, not as a Bearer.
    let profile = env.saved_profile();
    assert_eq!(profile["apiUrl"], env.api_url());
    assert_eq!(profile["tokenId"], signed_in["token"]["id"]);
    assert_eq!(profile["tokenName"], name);
    let token = profile["token"].as_str().expect("saved token");
    assert!(token.starts_with("esh_"), "{token}");
    // A long-lived API token: no refresh token comes with it.
    assert!(profile.get("refreshToken").is_none(), "{profile}");
    assert_eq!(signed_in["token"]["refreshable"], false);
    assert_eq!(profile["tokenType"], "DPoP", "{profile}");
    assert_eq!(signed_in["token"]["dpopBound"], true);
    let key = env.saved_dpop_key().expect("a saved DPoP key");
    let (status, who) = env.bearer_whoami(token);
    assert_eq!(status, 401, "a bound token is no bearer token: {who}");
    let (status, who) = env.whoami_as_saved(token);
    assert_eq!(status, 200, "{who}");
    // The server bound it to that very key.
    let (_, listed) = env.get_with_dpop("/api/v1/cli/tokens", token, &key);
    assert!(
        listed.to_string().contains("\"dpopBound\":true"),
        "{listed}"
    );
    assert_eq!(who["user"]["email"], "dev@example.com");
    assert_eq!(who["token"]["id"], signed_in["token"]["id"]);

    // The token itself is never printed.
    assert!(!done.stdout.contains(token) && !done.stderr.contains(token));

    // The server's side: one session, consumed.
    assert_eq!(env.only_device_session().status, "CONSUMED");

    let whoami = env.run(&["whoami"]);
    whoami.assert_code(0);
    assert!(
        whoami
            .stdout
            .contains("Signed in as dev@example.com (user)"),
        "{whoami:?}"
    );
    assert!(whoami.stdout.contains(name), "{whoami:?}");
    assert!(
        whoami.stdout.contains("Bound to this device's key (DPoP)"),
        "{whoami:?}"
    );
    let json = env.run(&["--json", "whoami"]);
    json.assert_code(0);
    assert_eq!(json.json()["dpopBound"], true, "{json:?}");
}

#[test]
fn denied_login_fails_and_writes_nothing() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start(&["login", "--no-browser"]);
    let code = login.user_code_in_stderr();
    browser.deny(&code);
    let done = login.finish();

    done.assert_code(1);
    let error = done.final_error_line();
    assert!(error.contains("denied in the browser"), "{done:?}");
    assert!(error.contains("envshield login"), "{done:?}");
    env.assert_nothing_written();
    assert_eq!(env.only_device_session().status, "DENIED");
}

#[test]
fn expired_login_fails_with_the_expired_message() {
    let env = TestEnv::spawn_with(|c| c.device_code_ttl = Duration::from_secs(3));

    let mut login = env.start(&["--json", "login", "--no-browser"]);
    login.json_event("device_started");
    let done = login.finish();

    done.assert_code(1);
    let lines = done.json_lines();
    assert_eq!(lines.len(), 2, "{done:?}");
    assert_eq!(lines[1]["error"], "expired_token", "{done:?}");
    let message = lines[1]["message"].as_str().expect("message");
    assert!(
        message.contains("expired before it was approved"),
        "{message}"
    );
    env.assert_nothing_written();
}

#[test]
fn ctrl_c_cancels_the_request_on_the_server() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start(&["--json", "login", "--no-browser"]);
    let started = login.json_event("device_started");
    let code = started["userCode"].as_str().expect("userCode").to_owned();
    // At once: a script may send Ctrl-C as soon as it has the code.
    interrupt(login.pid());
    let done = login.finish();

    done.assert_code(130);
    let lines = done.json_lines();
    assert_eq!(lines.len(), 2, "{done:?}");
    assert_eq!(lines[1]["error"], "cancelled", "{done:?}");
    assert_eq!(env.only_device_session().status, "CANCELLED");
    // Too late to approve it now.
    let r = browser.complete(&code, "approve");
    assert_eq!(r.status(), 410);
    env.assert_nothing_written();
}
