//! The token handoff sealed to the CLI (HPKE, RFC 9180): a device code
//! stolen and polled first yields only ciphertext, and the owner's later
//! poll raises the alert and ends the token.

use envshield_api_types::handoff::HandoffKey;
use envshield_api_types::{PollDeviceResponse, StartDeviceResponse};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

async fn sealed_login(app: &TestApp, key: &HandoffKey, email: &str) -> (StartDeviceResponse, Uuid) {
    let r = app
        .start(json!({ "tokenName": "sealed", "handoffKey": key.public_b64() }))
        .await;
    assert_eq!(r.status(), 200);
    let started: StartDeviceResponse = r.json().await.unwrap();
    let session_id = started.session_id.expect("start names the session");
    let (_, browser) = app.signed_in_browser(email, false).await;
    assert_eq!(
        app.approve(&browser, &started.user_code).await.status(),
        200
    );
    (started, session_id)
}

#[tokio::test]
async fn the_owner_opens_the_sealed_token_and_nobody_sees_it_in_the_clear() {
    let app = spawn_app().await;
    let key = HandoffKey::generate();
    let (started, session_id) = sealed_login(&app, &key, "sealed@example.com").await;
    let r = app.poll(&started.device_code).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("esh_"), "no token in the clear: {text}");
    let PollDeviceResponse::Approved {
        token: None,
        sealed_token: Some(sealed),
        ..
    } = serde_json::from_str(&text).unwrap()
    else {
        panic!("{text}")
    };
    let payload = key
        .open(&sealed, session_id)
        .expect("the owner's key opens it");
    assert_eq!(app.whoami(&payload.token).await.status(), 200);
}

#[tokio::test]
async fn a_stolen_device_code_polled_first_gets_ciphertext_and_the_token_ends() {
    let app = spawn_app().await;
    let key = HandoffKey::generate();
    let (started, session_id) = sealed_login(&app, &key, "victim@example.com").await;

    // The thief polls first and gets what only the owner's key opens.
    let r = app.poll(&started.device_code).await;
    assert_eq!(r.status(), 200);
    let PollDeviceResponse::Approved {
        token: None,
        sealed_token: Some(sealed),
        token_id,
        ..
    } = r.json().await.unwrap()
    else {
        panic!("expected a sealed approval")
    };
    let thief = HandoffKey::generate();
    assert!(thief.open(&sealed, session_id).is_err());

    // The owner's poll finds the pickup taken: an alert, and the token,
    // which nobody can use, is revoked.
    let r = app.poll(&started.device_code).await;
    assert_eq!(r.status(), 410);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "expired");
    assert_eq!(body["error"], "device_code_reused", "{body}");
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'cli_device_code_reused' AND severity = 'high'"
        )
        .await,
        1
    );
    // Every later poll says the same; the alert is recorded once.
    let r = app.poll(&started.device_code).await;
    assert_eq!(r.status(), 410);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "device_code_reused", "{body}");
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'cli_device_code_reused' AND severity = 'high'"
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "api_tokens",
            &format!("id = '{token_id}' AND revoked_at IS NOT NULL")
        )
        .await,
        1
    );
    // Even a thief who later learned the key could not use it.
    let payload = key.open(&sealed, session_id).unwrap();
    app.whoami_settles(&payload.token, 401).await;
}

#[tokio::test]
async fn a_malformed_handoff_key_is_refused_at_start() {
    let app = spawn_app().await;
    let r = app
        .start(json!({ "tokenName": "bad", "handoffKey": "too-short" }))
        .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_handoff_key");
}

#[tokio::test]
async fn a_login_without_a_handoff_key_polled_again_is_just_over() {
    let app = spawn_app().await;
    let r = app.start(json!({ "tokenName": "clear" })).await;
    let started: StartDeviceResponse = r.json().await.unwrap();
    let (_, browser) = app.signed_in_browser("clear@example.com", false).await;
    assert_eq!(
        app.approve(&browser, &started.user_code).await.status(),
        200
    );
    assert_eq!(app.poll(&started.device_code).await.status(), 200);
    let r = app.poll(&started.device_code).await;
    assert_eq!(r.status(), 410);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "expired_token", "{body}");
}

#[tokio::test]
async fn a_stolen_device_code_polled_at_the_oauth_token_endpoint_gets_nothing() {
    let app = spawn_app().await;
    let key = HandoffKey::generate();
    let (started, session_id) = sealed_login(&app, &key, "sealed-oauth@example.com").await;

    // The thief tries the OAuth token endpoint with the CLI's client id: the
    // login was started through the v1 API, so OAuth knows no such code.
    let r = app
        .cli
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "envshield-cli"),
            ("device_code", started.device_code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(!text.contains("esh_"), "no token in the clear: {text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // Nothing was consumed: the owner still collects the sealed token.
    let r = app.poll(&started.device_code).await;
    assert_eq!(r.status(), 200);
    let PollDeviceResponse::Approved {
        sealed_token: Some(sealed),
        ..
    } = r.json().await.unwrap()
    else {
        panic!("expected a sealed approval")
    };
    let payload = key.open(&sealed, session_id).unwrap();
    assert_eq!(app.whoami(&payload.token).await.status(), 200);
}
