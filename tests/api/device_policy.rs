//! `DEVICE_CONFIRMATION=risk` (paste-back only for risky approvals) and
//! `DEVICE_LOGIN_POLICY` (per-role rules checked at approval).

use envshield_server::config::{Config, DeviceLoginPolicy, OAuthClient, TokenPolicy};
use reqwest::Client;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};
use crate::pages_support::{approval_page, decide, Page};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn risk(c: &mut Config) {
    c.device_confirmation_risk = true;
}

fn policy(c: &mut Config, raw: &str) {
    c.device_login_policy =
        DeviceLoginPolicy::parse("DEVICE_LOGIN_POLICY", raw, &c.scope_catalogue).unwrap();
}

/// A login asking for `scopes`; its code pair.
async fn start(app: &TestApp, scopes: &[&str]) -> (String, String, Value) {
    let r = app.start(json!({ "scopes": scopes })).await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    (
        s["userCode"].as_str().unwrap().to_owned(),
        s["deviceCode"].as_str().unwrap().to_owned(),
        s,
    )
}

/// `complete` as JSON; status and body.
async fn complete(app: &TestApp, browser: &Client, body: Value) -> (u16, Value) {
    let r = app.complete(browser, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Approves `user_code` as JSON, all scopes asked for; status and body.
async fn approve(app: &TestApp, browser: &Client, user_code: &str) -> (u16, Value) {
    complete(
        app,
        browser,
        json!({"userCode": user_code, "decision": "approve"}),
    )
    .await
}

/// Approves `user_code` with `envs:read` through the page's form.
async fn approve_form(app: &TestApp, browser: &Client, user_code: &str, page: &Page) -> Page {
    decide(
        app,
        browser,
        user_code,
        &page.csrf(),
        "approve",
        &["envs:read"],
        "",
    )
    .await
}

async fn poll_status(app: &TestApp, device_code: &str) -> Value {
    app.poll(device_code).await.json().await.unwrap()
}

async fn exchange(app: &TestApp, device_code: &str, code: &str) -> (u16, Value) {
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/exchange"))
        .json(&json!({ "deviceCode": device_code, "confirmationCode": code }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The details of the newest event of `kind`.
async fn last_event(app: &TestApp, kind: &str) -> Value {
    let row = app
        .scalar(&format!(
            "SELECT details::text FROM security_events WHERE kind = '{kind}' ORDER BY id DESC LIMIT 1"
        ))
        .await;
    serde_json::from_str(&row).unwrap()
}

async fn requested_from(app: &TestApp, ip: &str) {
    app.sql(&format!(
        "UPDATE cli_device_sessions SET client_ip = '{ip}' WHERE status = 'PENDING'"
    ))
    .await;
}

#[tokio::test]
async fn risk_mode_asks_for_the_code_from_another_network_only() {
    let app = spawn_app_with(risk).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;

    // Same network, low-risk scopes: the next poll takes the token.
    let (user_code, device_code, started) = start(&app, &["envs:read", "tokens:read"]).await;
    assert_eq!(started["confirmation"], "poll", "undecided: the CLI polls");
    let (status, body) = approve(&app, &b, &user_code).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("confirmationCode").is_none(), "{body}");
    let p = poll_status(&app, &device_code).await;
    assert_eq!(p["status"], "approved", "{p}");
    assert!(p["token"].is_string());
    assert_eq!(
        last_event(&app, "cli_device_approved").await["confirmation"],
        "poll"
    );

    // Another network: approval shows a code, polling releases nothing.
    let (user_code, device_code, _) = start(&app, &["envs:read", "tokens:read"]).await;
    requested_from(&app, "203.0.113.7").await;
    let (status, body) = approve(&app, &b, &user_code).await;
    assert_eq!(status, 200, "{body}");
    let code = body["confirmationCode"].as_str().unwrap().to_owned();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(
            "The request came from another network (203.0.113.7) than this browser (127.0.0.1)"
        ),
        "{message}"
    );
    let p = poll_status(&app, &device_code).await;
    assert_eq!(p["status"], "confirmation_required", "{p}");
    assert!(p.get("token").is_none());
    let details = last_event(&app, "cli_device_approved").await;
    assert_eq!(details["confirmation"], "paste");
    assert_eq!(details["paste_reasons"], json!(["other_network"]));
    let (status, t) = exchange(&app, &device_code, &code).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(app.whoami(t["token"].as_str().unwrap()).await.status(), 200);
    assert_eq!(
        app.count("cli_device_sessions", "confirmation = 'risk'")
            .await,
        0,
        "every approved login was decided"
    );
}

#[tokio::test]
async fn risk_mode_asks_for_the_code_for_high_risk_scopes_and_the_pages_say_why() {
    let app = spawn_app_with(risk).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (user_code, device_code, _) = start(&app, &["envs:read", "envs:write"]).await;

    let page = approval_page(&app, &b, &user_code).await;
    assert_eq!(page.status, 200);
    page.assert_has(&[
        "A code to type in your terminal",
        "The token would carry envs:write, which this server counts as high risk.",
    ]);
    page.assert_lacks(&["another network"]);
    let result = decide(
        &app,
        &b,
        &user_code,
        &page.csrf(),
        "approve",
        &["envs:read", "envs:write"],
        "",
    )
    .await;
    assert_eq!(result.status, 200, "{}", result.html);
    result.assert_has(&[
        "Type this code in your terminal",
        "A code is needed because:",
        "The token would carry envs:write, which this server counts as high risk.",
    ]);
    assert_eq!(
        poll_status(&app, &device_code).await["status"],
        "confirmation_required"
    );

    // Unticking the high-risk scope: no code, the poll takes the token.
    let (user_code, device_code, _) = start(&app, &["envs:read", "envs:write"]).await;
    let page = approval_page(&app, &b, &user_code).await;
    let result = approve_form(&app, &b, &user_code, &page).await;
    assert_eq!(result.status, 200, "{}", result.html);
    result.assert_has(&["You can return to your terminal."]);
    result.assert_lacks(&["A code is needed"]);
    let p = poll_status(&app, &device_code).await;
    assert_eq!(p["status"], "approved", "{p}");
    assert_eq!(p["scopes"], json!(["envs:read"]));
}

fn third_party(c: &mut Config) {
    risk(c);
    c.clients.push(OAuthClient {
        client_id: "third-party".to_owned(),
        grants: vec![DEVICE_GRANT.to_owned()],
        scopes: vec!["envs:read".to_owned()],
        token_policy: TokenPolicy::ApiToken,
        confirmation: None,
        require_dpop: false,
    });
}

async fn oauth_form(app: &TestApp, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .cli
        .post(app.url(path))
        .form(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn risk_mode_refuses_a_client_that_cannot_paste_only_when_a_code_is_needed() {
    let app = spawn_app_with(third_party).await;
    let (user, b) = app.signed_in_browser("dev@example.com", false).await;
    let (status, auth) = oauth_form(
        &app,
        "/oauth/device_authorization",
        &[("client_id", "third-party")],
    )
    .await;
    assert_eq!(
        status, 200,
        "accepted: a low-risk approval needs no code: {auth}"
    );
    let user_code = auth["user_code"].as_str().unwrap();
    let device_code = auth["device_code"].as_str().unwrap();

    requested_from(&app, "203.0.113.7").await;
    let (status, body) = approve(&app, &b, user_code).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "paste_back_unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("client `third-party` cannot take one"),
        "{message}"
    );
    assert!(
        message.contains("another network (203.0.113.7)"),
        "{message}"
    );
    let details = last_event(&app, "device_login_refused").await;
    assert_eq!(details["rule"], "DEVICE_CONFIRMATION");
    assert_eq!(details["role"], "user");
    assert_eq!(details["reasons"], json!(["other_network"]));
    assert_eq!(
        app.count(
            "security_events",
            &format!("kind = 'device_login_refused' AND user_id = '{}'", user.id)
        )
        .await,
        1
    );
    assert_eq!(app.count("api_tokens", "true").await, 0, "nothing minted");

    // From the device's own network the same request is approved and polled.
    requested_from(&app, "127.0.0.1").await;
    let (status, body) = approve(&app, &b, user_code).await;
    assert_eq!(status, 200, "{body}");
    let (status, t) = oauth_form(
        &app,
        "/oauth/token",
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", "third-party"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert!(t["access_token"].is_string());
}

#[tokio::test]
async fn each_rule_refuses_naming_itself_and_is_recorded() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        policy(
            c,
            r#"{"user": {"approvalNetworks": ["10.0.0.0/8"]},
                "admin": {"requestNetworks": ["198.51.100.0/24"]}}"#,
        );
    })
    .await;
    let (user, b) = app.signed_in_browser("dev@example.com", false).await;
    let (admin, a) = app.signed_in_browser("admin@example.com", true).await;

    // approvalNetworks: the user's browser is at 127.0.0.1.
    let (user_code, _, _) = start(&app, &["envs:read"]).await;
    let page = approval_page(&app, &b, &user_code).await;
    page.assert_has(&["allows approving device logins only from 10.0.0.0/8; this browser is at 127.0.0.1 (rule approvalNetworks)."]);
    let (status, body) = approve(&app, &b, &user_code).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "device_login_policy");
    assert_eq!(
        body["message"],
        "Your organisation's policy for accounts with the `user` role allows approving device logins only from 10.0.0.0/8; this browser is at 127.0.0.1 (rule approvalNetworks)."
    );
    let details = last_event(&app, "device_login_refused").await;
    assert_eq!(
        (details["role"].as_str(), details["rule"].as_str()),
        (Some("user"), Some("approvalNetworks"))
    );
    // The page form refuses the same, 403 with the message.
    let refused = approve_form(&app, &b, &user_code, &page).await;
    assert_eq!(refused.status, 403);
    refused.assert_has(&["(rule approvalNetworks)"]);
    // From the office network (through the trusted proxy) it is approved.
    let r = b
        .post(app.url("/api/v1/cli/auth/device/complete"))
        .header("Origin", app.origin())
        .header("X-Forwarded-For", "10.20.30.40")
        .json(&json!({"userCode": user_code, "decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // requestNetworks: the admin's rule, for a request from 203.0.113.9.
    let (user_code, _, _) = start(&app, &["envs:read"]).await;
    requested_from(&app, "203.0.113.9").await;
    let (status, body) = approve(&app, &a, &user_code).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "Your organisation's policy for accounts with the `admin` role allows device logins only from 198.51.100.0/24; this request came from 203.0.113.9 (rule requestNetworks)."
    );
    let details = last_event(&app, "device_login_refused").await;
    assert_eq!(details["rule"], "requestNetworks");
    assert_eq!(details["role"], "admin");
    assert_eq!(details["requested_from"], "203.0.113.9");
    requested_from(&app, "198.51.100.23").await;
    let (status, body) = approve(&app, &a, &user_code).await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        app.count(
            "security_events",
            &format!("kind = 'device_login_refused' AND user_id = '{}'", user.id)
        )
        .await,
        2,
        "the JSON and the form refusal"
    );
    assert_eq!(
        app.count(
            "security_events",
            &format!("kind = 'device_login_refused' AND user_id = '{}'", admin.id)
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_role_with_the_flow_off_cannot_approve_and_a_start_no_role_admits_is_refused() {
    let app = spawn_app_with(|c| policy(c, r#"{"user": {"enabled": false}}"#)).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (_, a) = app.signed_in_browser("admin@example.com", true).await;
    let (user_code, device_code, _) = start(&app, &["envs:read"]).await;
    let page = approval_page(&app, &b, &user_code).await;
    page.assert_has(&["turns device logins off (rule enabled)"]);
    let refused = approve_form(&app, &b, &user_code, &page).await;
    assert_eq!(refused.status, 403);
    refused.assert_has(&["turns device logins off (rule enabled)"]);
    assert_eq!(
        last_event(&app, "device_login_refused").await["rule"],
        "enabled"
    );
    assert_eq!(poll_status(&app, &device_code).await["status"], "pending");
    let (status, body) = approve(&app, &a, &user_code).await;
    assert_eq!(status, 200, "admins are not affected: {body}");

    let closed = spawn_app_with(|c| {
        policy(
            c,
            r#"{"user": {"enabled": false}, "admin": {"requestNetworks": ["10.0.0.0/8"]}}"#,
        )
    })
    .await;
    let r = closed.start(json!({})).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "device_login_policy");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("(rule requestNetworks)"),
        "{body}"
    );
    let details = last_event(&closed, "device_login_refused").await;
    assert_eq!(details["stage"], "start");
    assert_eq!(details["rule"], "requestNetworks");
    assert_eq!(closed.count("cli_device_sessions", "true").await, 0);
}

#[tokio::test]
async fn scopes_and_lifetime_are_capped_per_role() {
    let app = spawn_app_with(|c| {
        policy(
            c,
            r#"{"user": {"scopes": ["envs:read", "tokens:read"], "maxLifetimeDays": 30}}"#,
        )
    })
    .await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (user_code, device_code, _) =
        start(&app, &["envs:read", "envs:write", "tokens:read"]).await;

    // All asked for, through the API: refused, naming what to untick.
    let (status, body) = approve(&app, &b, &user_code).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "device_login_policy");
    assert!(
        body["message"].as_str().unwrap().contains(
            "at most these scopes: envs:read, tokens:read. Untick envs:write (rule scopes)."
        ),
        "{body}"
    );
    assert_eq!(
        last_event(&app, "device_login_refused").await["scopes"],
        json!(["envs:write"])
    );
    // A lifetime past the cap: refused.
    let (status, body) = complete(
        &app,
        &b,
        json!({"userCode": user_code, "decision": "approve", "scopes": ["envs:read"], "expiresInDays": 90}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 30 days; this one would live 90 days (rule maxLifetimeDays)"),
        "{body}"
    );
    assert_eq!(
        last_event(&app, "device_login_refused").await["rule"],
        "maxLifetimeDays"
    );

    // The page offers only what the role may grant.
    let page = approval_page(&app, &b, &user_code).await;
    assert_eq!(page.status, 200);
    page.assert_has(&[
        "value=\"envs:write\" disabled>",
        "(your organisation's policy does not let your role grant it)",
        "<option value=\"7\">7 days</option>",
        "30 days (default)",
    ]);
    page.assert_lacks(&["value=\"envs:write\" checked", "90 days", "365 days"]);
    let result = decide(
        &app,
        &b,
        &user_code,
        &page.csrf(),
        "approve",
        &["envs:read", "tokens:read"],
        "",
    )
    .await;
    assert_eq!(result.status, 200, "{}", result.html);
    let p = poll_status(&app, &device_code).await;
    assert_eq!(p["scopes"], json!(["envs:read", "tokens:read"]));
    assert_eq!(
        app.count(
            "api_tokens",
            "expires_at BETWEEN now() + interval '29 days 23 hours' AND now() + interval '30 days 1 hour'"
        )
        .await,
        1,
        "the default lifetime is the role's cap"
    );
}

#[tokio::test]
async fn step_up_scopes_demand_the_step_up_whatever_approval_step_up_says() {
    let app = spawn_app_with(|c| policy(c, r#"{"user": {"stepUpScopes": ["tokens:read"]}}"#)).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (user_code, device_code, _) = start(&app, &["envs:read", "tokens:read"]).await;

    let page = approval_page(&app, &b, &user_code).await;
    page.assert_has(&[
        "Confirm it is you",
        "Your organisation&#39;s policy asks for it whenever an account with the `user` role grants tokens:read (rule stepUpScopes).",
    ]);
    let (status, body) = approve(&app, &b, &user_code).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "step_up_required");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("(rule stepUpScopes)"),
        "{body}"
    );
    let details = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reasons"], json!(["policy_step_up_scope"]));
    assert_eq!(poll_status(&app, &device_code).await["status"], "pending");

    // Without that scope no step-up is asked.
    let (status, body) = complete(
        &app,
        &b,
        json!({"userCode": user_code, "decision": "approve", "scopes": ["envs:read"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
