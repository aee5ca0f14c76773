//! Sender-constrained tokens (DPoP, RFC 9449) and the attacks they exist
//! for: a bound token replayed as Bearer or with a foreign proof, a replayed
//! proof, a proof for another URL or method, a stolen device code polled
//! first.

use envshield_api_types::dpop::{claims, DpopKey};
use envshield_server::config::TokenPolicy;
use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::{get_json, spawn_app, spawn_app_with, TestApp};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const WHOAMI: &str = "/api/v1/cli/whoami";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The URL a proof names: the server's public base and the path.
fn htu(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.server.config.app_base())
}

fn proof(app: &TestApp, key: &DpopKey, method: &str, path: &str, token: Option<&str>) -> String {
    key.proof(method, &htu(app, path), token, now()).unwrap()
}

/// A v1 start with a proof by `key`, approved in a signed-in browser;
/// returns the device code.
async fn approved_v1_login(app: &TestApp, key: &DpopKey, email: &str) -> String {
    let path = "/api/v1/cli/auth/device/start";
    let r = app
        .cli
        .post(app.url(path))
        .header("DPoP", proof(app, key, "POST", path, None))
        .json(&json!({ "tokenName": "bound laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    let (_, browser) = app.signed_in_browser(email, false).await;
    let user_code = started["userCode"].as_str().unwrap();
    assert_eq!(app.approve(&browser, user_code).await.status(), 200);
    started["deviceCode"].as_str().unwrap().to_owned()
}

async fn poll_with(app: &TestApp, device_code: &str, dpop: Option<String>) -> Response {
    let path = "/api/v1/cli/auth/device/poll";
    let mut request = app
        .cli
        .post(app.url(path))
        .json(&json!({ "deviceCode": device_code }));
    if let Some(p) = dpop {
        request = request.header("DPoP", p);
    }
    request.send().await.unwrap()
}

/// A bound token, picked up with a proof by `key`.
async fn bound_token(app: &TestApp, key: &DpopKey, email: &str) -> String {
    let device_code = approved_v1_login(app, key, email).await;
    let pickup = proof(app, key, "POST", "/api/v1/cli/auth/device/poll", None);
    let r = poll_with(app, &device_code, Some(pickup)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP", "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: &str,
    dpop: Option<String>,
) -> Response {
    let mut request = app
        .cli
        .request(method, app.url(path))
        .header("Authorization", authorization);
    if let Some(p) = dpop {
        request = request.header("DPoP", p);
    }
    request.send().await.unwrap()
}

async fn refusal(r: Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_bound_token_works_only_with_a_fresh_proof_by_its_key() {
    let app = spawn_app().await;
    let key = DpopKey::generate_p256().unwrap();
    let token = bound_token(&app, &key, "dpop@example.com").await;
    let scheme = format!("DPoP {token}");

    let good = proof(&app, &key, "GET", WHOAMI, Some(&token));
    let r = call(&app, Method::GET, WHOAMI, &scheme, Some(good.clone())).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["user"]["email"], "dpop@example.com");

    // The same proof again: a replay.
    let (status, challenge, body) =
        refusal(call(&app, Method::GET, WHOAMI, &scheme, Some(good)).await).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert!(body["message"].as_str().unwrap().contains("already used"));

    // Stolen and replayed as a plain Bearer token.
    let (status, challenge, body) =
        refusal(call(&app, Method::GET, WHOAMI, &format!("Bearer {token}"), None).await).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("algs=\"ES256 EdDSA\""), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("bound to a DPoP key"));

    // Stolen and sent with the thief's own proof.
    let thief = DpopKey::generate_p256().unwrap();
    let foreign = proof(&app, &thief, "GET", WHOAMI, Some(&token));
    let (status, challenge, _) =
        refusal(call(&app, Method::GET, WHOAMI, &scheme, Some(foreign)).await).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("another key"), "{challenge}");

    // A proof for another URL, another method, or without the token's hash.
    for bad in [
        proof(&app, &key, "GET", "/api/v1/cli/tokens", Some(&token)),
        proof(&app, &key, "POST", WHOAMI, Some(&token)),
        proof(&app, &key, "GET", WHOAMI, None),
        proof(&app, &key, "GET", WHOAMI, Some("esh_another")),
    ] {
        let (status, challenge, _) =
            refusal(call(&app, Method::GET, WHOAMI, &scheme, Some(bad)).await).await;
        assert_eq!(status, 401);
        assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    }
    // The DPoP scheme with no proof, or two.
    let (status, _, _) = refusal(call(&app, Method::GET, WHOAMI, &scheme, None).await).await;
    assert_eq!(status, 401);
    let two = app
        .cli
        .get(app.url(WHOAMI))
        .header("Authorization", &scheme)
        .header("DPoP", proof(&app, &key, "GET", WHOAMI, Some(&token)))
        .header("DPoP", proof(&app, &key, "GET", WHOAMI, Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 401);

    // A proof signed outside the allowed clock window.
    let stale = key
        .proof("GET", &htu(&app, WHOAMI), Some(&token), now() - 600)
        .unwrap();
    let (status, _, body) =
        refusal(call(&app, Method::GET, WHOAMI, &scheme, Some(stale)).await).await;
    assert_eq!(status, 401);
    assert!(body["message"].as_str().unwrap().contains("iat"), "{body}");

    // And with a fresh proof it still works.
    let again = proof(&app, &key, "GET", WHOAMI, Some(&token));
    assert_eq!(
        call(&app, Method::GET, WHOAMI, &scheme, Some(again))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_stolen_device_code_polled_first_gets_nothing_and_raises_an_alert() {
    let app = spawn_app().await;
    let key = DpopKey::generate_ed25519().unwrap();
    let device_code = approved_v1_login(&app, &key, "victim@example.com").await;

    // The thief polls first: without a proof, then with a key of its own.
    let r = poll_with(&app, &device_code, None).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert!(body.get("token").is_none());
    let thief = DpopKey::generate_p256().unwrap();
    let foreign = proof(&app, &thief, "POST", "/api/v1/cli/auth/device/poll", None);
    let r = poll_with(&app, &device_code, Some(foreign)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'dpop_pickup_refused' AND severity = 'high'"
        )
        .await,
        2
    );

    // The real CLI still gets its token, bound to its key.
    let pickup = proof(&app, &key, "POST", "/api/v1/cli/auth/device/poll", None);
    let r = poll_with(&app, &device_code, Some(pickup)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP");
    let jkt = app
        .scalar(&format!(
            "SELECT dpop_jkt FROM api_tokens WHERE id = '{}'",
            body["tokenId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(jkt, key.thumbprint());
}

#[tokio::test]
async fn unbound_tokens_keep_working_as_bearer_and_not_as_dpop() {
    let app = spawn_app().await;
    let (_, browser) = app.signed_in_browser("plain@example.com", false).await;
    let body = app.login_token(&browser).await;
    assert_eq!(body["tokenType"], "Bearer");
    let token = body["token"].as_str().unwrap();
    assert_eq!(app.whoami(token).await.status(), 200);
    let key = DpopKey::generate_p256().unwrap();
    let p = proof(&app, &key, "GET", WHOAMI, Some(token));
    let (status, challenge, _) =
        refusal(call(&app, Method::GET, WHOAMI, &format!("DPoP {token}"), Some(p)).await).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("not bound"), "{challenge}");
}

async fn form(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    dpop: Option<String>,
) -> (u16, Value) {
    let mut request = app.cli.post(app.url(path)).form(params);
    if let Some(p) = dpop {
        request = request.header("DPoP", p);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn oauth_tokens_and_refresh_tokens_are_bound_to_the_key_of_the_token_request() {
    let app = spawn_app_with(|c| c.clients[0].token_policy = TokenPolicy::AccessRefresh).await;
    let d: Value = get_json(&app.cli, app.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );

    let (status, started) = form(
        &app,
        "/oauth/device_authorization",
        &[("client_id", "envshield-cli")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, browser) = app.signed_in_browser("oauth-dpop@example.com", false).await;
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(app.approve(&browser, user_code).await.status(), 200);

    let key = DpopKey::generate_p256().unwrap();
    let device_code = started["device_code"].as_str().unwrap();
    let grant = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code),
        ("client_id", "envshield-cli"),
    ];
    // A proof that does not verify is refused before anything is handed out.
    let mut forged = proof(&app, &key, "POST", "/oauth/token", None);
    forged.push('A');
    let (status, body) = form(&app, "/oauth/token", &grant, Some(forged)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );

    let (status, body) = form(
        &app,
        "/oauth/token",
        &grant,
        Some(proof(&app, &key, "POST", "/oauth/token", None)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.whoami(&access).await.status(),
        401,
        "bound: not as Bearer"
    );
    let p = proof(&app, &key, "GET", WHOAMI, Some(&access));
    assert_eq!(
        call(
            &app,
            Method::GET,
            WHOAMI,
            &format!("DPoP {access}"),
            Some(p)
        )
        .await
        .status(),
        200
    );

    let refresh_grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", "envshield-cli"),
    ];
    // The refresh token is bound too (RFC 9449 §5): no proof, or another
    // key's, is refused and spends nothing.
    let (status, body) = form(&app, "/oauth/token", &refresh_grant, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let thief = DpopKey::generate_p256().unwrap();
    let foreign = proof(&app, &thief, "POST", "/oauth/token", None);
    let (status, body) = form(&app, "/oauth/token", &refresh_grant, Some(foreign)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    // A proof for the token endpoint replayed is refused too.
    let once = proof(&app, &key, "POST", "/oauth/token", None);
    let (status, body) = form(&app, "/oauth/token", &refresh_grant, Some(once.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let next_grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", next.as_str()),
        ("client_id", "envshield-cli"),
    ];
    let (status, body) = form(&app, "/oauth/token", &next_grant, Some(once)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    assert_eq!(
        app.count(
            "refresh_tokens",
            &format!("dpop_jkt = '{}'", key.thumbprint())
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_client_marked_require_dpop_cannot_get_or_use_an_unbound_token() {
    let app = spawn_app_with(|c| c.clients[0].require_dpop = true).await;
    let r = app.start(json!({ "tokenName": "no key" })).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");

    // A token minted unbound (before the switch) is refused as Bearer.
    let key = DpopKey::generate_p256().unwrap();
    let token = bound_token(&app, &key, "strict@example.com").await;
    app.sql("UPDATE api_tokens SET dpop_jkt = NULL").await;
    let (status, _, body) =
        refusal(call(&app, Method::GET, WHOAMI, &format!("Bearer {token}"), None).await).await;
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("must be bound"),
        "{body}"
    );
}

#[test]
fn a_proof_names_only_the_url_without_query() {
    // What the CLI and the tests sign: checked here so a change of the
    // signer shows up as a test failure, not as refused requests.
    let c = claims("GET", "http://h/p?q=1#f", None, 1).unwrap();
    assert_eq!(c["htu"], "http://h/p");
}

#[tokio::test]
async fn under_dpop_nonce_a_proof_needs_the_servers_current_nonce() {
    let app = spawn_app_with(|c| c.dpop_nonce = true).await;
    let key = DpopKey::generate_p256().unwrap();
    let start = "/api/v1/cli/auth/device/start";
    let send_start = |proof: String| {
        app.cli
            .post(app.url(start))
            .header("DPoP", proof)
            .json(&json!({ "tokenName": "nonce laptop" }))
            .send()
    };
    let nonce_of = |r: &Response| {
        r.headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // Without a nonce: refused with use_dpop_nonce, and told the nonce.
    let r = send_start(proof(&app, &key, "POST", start, None))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let nonce = nonce_of(&r).expect("a DPoP-Nonce header");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");

    // A nonce the server never issued: refused the same way.
    let forged = key
        .proof_with_nonce("POST", &htu(&app, start), None, now(), Some("made-up"))
        .unwrap();
    let r = send_start(forged).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "use_dpop_nonce");

    // With it: accepted, and the answer names the nonce to use next.
    let with_nonce = |path: &str, method: &str, token: Option<&str>| {
        key.proof_with_nonce(method, &htu(&app, path), token, now(), Some(&nonce))
            .unwrap()
    };
    let r = send_start(with_nonce(start, "POST", None)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(nonce_of(&r).as_deref(), Some(nonce.as_str()));
    let started: Value = r.json().await.unwrap();
    let (_, browser) = app.signed_in_browser("nonce@example.com", false).await;
    let user_code = started["userCode"].as_str().unwrap();
    assert_eq!(app.approve(&browser, user_code).await.status(), 200);
    let device_code = started["deviceCode"].as_str().unwrap();
    let poll = "/api/v1/cli/auth/device/poll";
    let r = poll_with(&app, device_code, Some(with_nonce(poll, "POST", None))).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // On a resource: a 401 with the RFC's challenge, then accepted.
    let scheme = format!("DPoP {token}");
    let bare = proof(&app, &key, "GET", WHOAMI, Some(&token));
    let r = call(&app, Method::GET, WHOAMI, &scheme, Some(bare)).await;
    assert!(nonce_of(&r).is_some());
    let (status, challenge, _) = refusal(r).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let r = call(
        &app,
        Method::GET,
        WHOAMI,
        &scheme,
        Some(with_nonce(WHOAMI, "GET", Some(&token))),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Requests without a proof are untouched, and get no nonce.
    let r = app.cli.get(app.url("/health")).send().await.unwrap();
    assert!(nonce_of(&r).is_none());
}
