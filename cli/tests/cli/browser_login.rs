//! `envshield login` with the browser on this machine: the
//! authorization-code flow with PKCE to a listener on 127.0.0.1, tokens
//! bound to the CLI's DPoP key; and the device flow where that cannot work.

use serde_json::Value;

use crate::helpers::{interrupt, TestEnv};

/// The address the CLI asks the browser to open.
fn authorize_url(started: &Value) -> String {
    started["authorizationUrl"]
        .as_str()
        .expect("authorizationUrl")
        .to_owned()
}

#[test]
fn approving_in_the_browser_on_this_machine_signs_in_without_a_code() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_browser(&["--json", "login", "--name", "laptop"]);
    let started = login.json_event("browser_login_started");
    let url = authorize_url(&started);
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", env.server.address)),
        "{url}"
    );
    let params: std::collections::HashMap<String, String> = reqwest::Url::parse(&url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], "envshield-cli");
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params["redirect_uri"].starts_with("http://127.0.0.1:"));
    assert!(params["redirect_uri"].ends_with("/callback"));
    assert!(params.contains_key("state") && params.contains_key("dpop_jkt"));

    let callback = browser.consent(&url, "approve", &[]);
    assert!(callback.starts_with(&params["redirect_uri"]), "{callback}");
    // The browser follows the redirect to the CLI's listener.
    let page = reqwest::blocking::get(&callback).expect("the CLI answers the browser");
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .expect("a page")
        .contains("You can close this tab and return to the terminal."));
    let done = login.finish();

    done.assert_code(0);
    let signed_in = done
        .json_lines()
        .into_iter()
        .find(|l| l["event"] == "signed_in")
        .expect("a signed_in event");
    assert_eq!(signed_in["user"]["email"], "dev@example.com");
    assert_eq!(signed_in["token"]["name"], "laptop");
    assert_eq!(signed_in["token"]["dpopBound"], true);
    assert_eq!(signed_in["token"]["refreshable"], true);
    assert!(env.device_sessions().is_empty(), "no device flow");

    // Saved bound to the key whose thumbprint the URL carried, with a
    // refresh token; the access token is no bearer token.
    let profile = env.saved_profile();
    assert_eq!(profile["tokenType"], "DPoP", "{profile}");
    assert!(profile["refreshToken"].as_str().is_some(), "{profile}");
    let key = env.saved_dpop_key().expect("a saved key");
    assert_eq!(key.thumbprint(), params["dpop_jkt"]);
    let token = profile["token"].as_str().expect("a token");
    assert_eq!(env.bearer_whoami(token).0, 401);
    let (status, who) = env.whoami_as_saved(token);
    assert_eq!(status, 200, "{who}");
    assert!(!done.stdout.contains(token) && !done.stderr.contains(token));

    let whoami = env.run(&["whoami"]);
    whoami.assert_code(0);
    assert!(
        whoami.stdout.contains("Bound to this device's key (DPoP)"),
        "{whoami:?}"
    );
}

#[test]
fn denying_in_the_browser_fails_and_saves_nothing() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_browser(&["--json", "login"]);
    let url = authorize_url(&login.json_event("browser_login_started"));
    let callback = browser.consent(&url, "deny", &[]);
    assert!(callback.contains("error=access_denied"), "{callback}");
    let page = reqwest::blocking::get(&callback).expect("the CLI answers the browser");
    assert!(page.text().expect("a page").contains("denied"));
    let done = login.finish();

    done.assert_code(1);
    let lines = done.json_lines();
    let error = lines.last().expect("an error document");
    assert_eq!(error["error"], "access_denied", "{done:?}");
    env.sandbox.assert_nothing_written();
}

#[test]
fn device_flag_uses_the_device_flow_even_with_a_browser_here() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_browser(&["--json", "login", "--device"]);
    let started = login.json_event("device_started");
    let code = started["userCode"].as_str().expect("userCode").to_owned();
    browser.approve(&code);
    let done = login.finish();

    done.assert_code(0);
    assert_eq!(env.only_device_session().status, "CONSUMED");
    assert_eq!(env.saved_profile()["tokenType"], "DPoP");
}

#[test]
fn ctrl_c_while_waiting_for_the_browser_saves_nothing() {
    let env = TestEnv::spawn();

    let mut login = env.start_with_browser(&["--json", "login"]);
    login.json_event("browser_login_started");
    interrupt(login.pid());
    let done = login.finish();

    done.assert_code(130);
    let lines = done.json_lines();
    assert_eq!(
        lines.last().expect("an error")["error"],
        "cancelled",
        "{done:?}"
    );
    env.sandbox.assert_nothing_written();
}

#[test]
fn a_server_that_asks_for_dpop_nonces_gets_them_on_every_path() {
    let env = TestEnv::spawn_with(|c| c.dpop_nonce = true);
    let browser = env.signed_in_browser("dev@example.com");

    // The authorization-code login: the token request is refused once for
    // want of a nonce, then signed again with the one the server named.
    let mut login = env.start_with_browser(&["--json", "login", "--name", "nonce"]);
    let started = login.json_event("browser_login_started");
    let callback = browser.consent(&authorize_url(&started), "approve", &[]);
    let page = reqwest::blocking::get(&callback).expect("the CLI answers the browser");
    assert_eq!(page.status(), 200);
    login.finish().assert_code(0);
    assert_eq!(env.saved_profile()["tokenType"], "DPoP");

    // A new process knows no nonce: its first call is refused and retried.
    let whoami = env.run(&["whoami"]);
    whoami.assert_code(0);
    assert!(whoami.stdout.contains("dev@example.com"), "{whoami:?}");

    // The device flow: start, poll and pickup, each with a nonce.
    let mut login = env.start_with_browser(&["--json", "login", "--device"]);
    let started = login.json_event("device_started");
    browser.approve(started["userCode"].as_str().expect("userCode"));
    login.finish().assert_code(0);
    assert_eq!(env.only_device_session().status, "CONSUMED");
    env.run(&["whoami"]).assert_code(0);
}
