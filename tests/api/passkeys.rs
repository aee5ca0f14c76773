//! Passkeys and the approval step-up: the ceremony endpoints' guards, the
//! settings page, an admin's recovery, and `APPROVAL_STEP_UP` with the
//! password (accounts without a passkey) and with step-up proofs. The
//! passkey ceremonies themselves run in a real browser (`tests/e2e`).

use envshield_server::config::ApprovalStepUp;
use reqwest::Client;
use serde_json::{json, Value};

use crate::helpers::{browser, spawn_app, spawn_app_with, TestApp, PASSWORD};
use crate::pages_support::{approval_page, assert_security_headers, get, post, Page};

/// A server whose `APP_URL` is `http://localhost:PORT`, so that it is a
/// WebAuthn relying party (an IP address cannot be one).
async fn passkey_app(
    customize: impl FnOnce(&mut envshield_server::config::Config) + Send + 'static,
) -> TestApp {
    spawn_app_with(|c| {
        c.app_url.set_host(Some("localhost")).unwrap();
        customize(c);
    })
    .await
}

async fn step_up_app(policy: ApprovalStepUp) -> TestApp {
    spawn_app_with(move |c| c.approval_step_up = policy).await
}

/// POSTs JSON from `client`, with this site's `Origin` unless `origin` is false.
async fn post_json(
    app: &TestApp,
    client: &Client,
    path: &str,
    body: Value,
    origin: bool,
) -> (u16, Value) {
    let mut r = client.post(app.url(path)).json(&body);
    if origin {
        r = r.header("Origin", app.origin());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The approval form posted as a browser would, with extra fields.
async fn decide_with(
    app: &TestApp,
    client: &Client,
    code: &str,
    decision: &str,
    scopes: &[&str],
    extra: &[(&str, &str)],
) -> Page {
    let page = approval_page(app, client, code).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let csrf = page.csrf();
    let mut form = vec![
        ("csrf_token", csrf.as_str()),
        ("code", code),
        ("decision", decision),
        ("expires_in_days", ""),
    ];
    form.extend(scopes.iter().map(|s| ("scopes", *s)));
    form.extend_from_slice(extra);
    post(client, app, "/cli/login", &form).await
}

async fn start_with(app: &TestApp, body: Value) -> (String, String) {
    let s: Value = app.start(body).await.json().await.unwrap();
    (
        s["userCode"].as_str().unwrap().to_owned(),
        s["deviceCode"].as_str().unwrap().to_owned(),
    )
}

/// The latest event of `kind`: its user and details.
async fn last_event(app: &TestApp, kind: &str) -> (String, Value) {
    let row = app
        .scalar(&format!(
            "SELECT json_build_object('user', user_id::text, 'details', details)::text FROM security_events WHERE kind = '{kind}' ORDER BY id DESC LIMIT 1"
        ))
        .await;
    let v: Value = serde_json::from_str(&row).unwrap();
    (
        v["user"].as_str().unwrap_or_default().to_owned(),
        v["details"].clone(),
    )
}

#[tokio::test]
async fn ceremony_endpoints_refuse_cross_origin_and_signed_out_calls() {
    let app = passkey_app(|_| {}).await;
    let (user, signed_in) = app.signed_in_browser("dev@example.com", false).await;
    let signed_out = browser();
    let signed_in_only = [
        (
            "/settings/passkeys/register/start",
            json!({ "name": "Laptop" }),
        ),
        (
            "/settings/passkeys/register/finish",
            json!({ "credential": {} }),
        ),
        ("/cli/login/step-up/start", json!({ "code": "BCDF-GHJK" })),
        ("/cli/login/step-up/finish", json!({ "credential": {} })),
    ];
    for (path, body) in &signed_in_only {
        // No Origin: a cross-site form or script; refused before anything.
        let (status, answer) = post_json(&app, &signed_in, path, body.clone(), false).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"], "cross_origin_request", "{path}");
        let (status, answer) = post_json(&app, &signed_out, path, body.clone(), true).await;
        assert_eq!(status, 401, "{path}: {answer}");
        assert_eq!(answer["error"], "not_signed_in", "{path}");
        // Only JSON: a form post (what a cross-site page can send) is refused.
        let r = signed_in
            .post(app.url(path))
            .header("Origin", app.origin())
            .form(&[("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{path}");
    }
    for path in ["/login/passkey/start", "/login/passkey/finish"] {
        let (status, answer) = post_json(&app, &signed_out, path, json!({}), false).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"], "cross_origin_request");
        let evil = signed_out
            .post(app.url(path))
            .header("Origin", "https://evil.example")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(evil.status(), 403, "{path}");
    }

    // Same origin: the options a browser needs, naming this site.
    let (status, options) =
        post_json(&app, &signed_out, "/login/passkey/start", json!({}), true).await;
    assert_eq!(status, 200, "{options}");
    let pk = &options["publicKey"];
    assert_eq!(pk["rpId"], "localhost");
    assert_eq!(pk["userVerification"], "required");
    assert!(pk["challenge"].as_str().unwrap().len() >= 43, "{pk}");
    assert!(
        pk["allowCredentials"].as_array().is_none_or(Vec::is_empty),
        "username-less: no account named: {pk}"
    );
    assert!(
        options.get("mediation").is_none(),
        "a modal request, started by a click"
    );
    assert_eq!(
        app.count("webauthn_ceremonies", "purpose = 'sign_in'")
            .await,
        1
    );

    let (status, options) = post_json(
        &app,
        &signed_in,
        "/settings/passkeys/register/start",
        json!({ "name": "  Work laptop ", "password": PASSWORD }),
        true,
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let pk = &options["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["user"]["name"], "dev@example.com");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(
        app.scalar(&format!(
            "SELECT passkey_name FROM webauthn_ceremonies WHERE purpose = 'register' AND user_id = '{}'",
            user.id
        ))
        .await,
        "Work laptop"
    );
    // A name that is no name is refused before any ceremony starts.
    for bad in ["", "   ", &"x".repeat(65)] {
        let (status, answer) = post_json(
            &app,
            &signed_in,
            "/settings/passkeys/register/start",
            json!({ "name": bad }),
            true,
        )
        .await;
        assert_eq!(status, 400, "{bad:?}");
        assert_eq!(answer["error"], "invalid_passkey_name");
    }

    // An answer that is no credential is refused, and the challenge is
    // spent: the browser must start again.
    let (status, answer) = post_json(
        &app,
        &signed_in,
        "/settings/passkeys/register/finish",
        json!({ "credential": { "id": "x", "rawId": "eA", "type": "public-key",
            "response": { "attestationObject": "AAAA", "clientDataJSON": "e30" } } }),
        true,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "passkey_refused");
    assert_eq!(app.count("passkeys", "true").await, 0);
    assert_eq!(
        app.count("webauthn_ceremonies", "purpose = 'register'")
            .await,
        0
    );
    let (status, answer) = post_json(
        &app,
        &signed_in,
        "/settings/passkeys/register/finish",
        json!({ "credential": { "id": "x", "rawId": "eA", "type": "public-key",
            "response": { "attestationObject": "AAAA", "clientDataJSON": "e30" } } }),
        true,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "ceremony_expired", "{answer}");

    // A sign-in answer from a browser that started none.
    let (status, answer) = post_json(
        &app,
        &browser(),
        "/login/passkey/finish",
        json!({ "credential": { "id": "x", "rawId": "eA", "type": "public-key",
            "response": { "authenticatorData": "AAAA", "clientDataJSON": "e30", "signature": "AAAA" } } }),
        true,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "ceremony_expired");

    // The sign-in page offers passkeys, through the site's own script only.
    let login = get(&browser(), &app, "/login?redirect=/settings/tokens").await;
    login.assert_has(&[
        "Sign in with a passkey",
        "<script src=\"/static/js/passkeys.js\" defer></script>",
        "data-redirect=\"/settings/tokens\"",
    ]);
    assert_security_headers(&login);
    let script = browser()
        .get(app.url("/static/js/passkeys.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script
        .text()
        .await
        .unwrap()
        .contains("navigator.credentials.get"));
}

#[tokio::test]
async fn an_app_url_on_an_ip_address_offers_no_passkeys() {
    // The test servers' APP_URL is http://127.0.0.1:PORT.
    let app = spawn_app().await;
    let login = get(&browser(), &app, "/login").await;
    login.assert_lacks(&["passkey", "<script"]);
    let (status, answer) =
        post_json(&app, &browser(), "/login/passkey/start", json!({}), true).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "passkeys_unavailable");
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let page = get(&b, &app, "/settings/passkeys").await;
    assert_eq!(page.status, 200);
    page.assert_has(&["Passkeys are not available on this server"]);
    page.assert_lacks(&["id=\"passkey-add\""]);
}

/// Stores a passkey for `user` directly, as a registration stores it (a
/// P-256 public key whose private half nobody has, under the credential id
/// of 16 bytes `credential`): for the pages that list and remove them.
/// Stores a passkey for `user` (a fixed P-256 key; `credential` makes its id).
pub(crate) async fn store_passkey(
    app: &TestApp,
    user: uuid::Uuid,
    name: &str,
    credential: u8,
) -> String {
    use base64::Engine;
    let id = uuid::Uuid::new_v4();
    let cred_id = [credential; 16];
    let passkey = json!({ "cred": {
        "cred_id": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cred_id),
        "cred": { "type_": "ES256", "key": { "EC_EC2": { "curve": "SECP256R1",
            "x": [194,126,127,109,252,23,131,21,252,6,223,99,44,254,140,27,230,17,94,5,133,28,104,41,144,69,171,149,161,26,200,243],
            "y": [143,123,183,156,24,178,21,248,117,159,162,69,171,52,188,252,26,59,6,47,103,92,19,58,117,103,249,0,219,8,95,196] } } },
        "counter": 0, "user_verified": true, "backup_eligible": false, "backup_state": false,
        "registration_policy": "required",
        "extensions": { "cred_protect": "NotRequested", "hmac_create_secret": "NotRequested" },
        "attestation": { "data": "None", "metadata": "None" },
        "attestation_format": "none"
    } });
    app.sql(&format!(
        "INSERT INTO passkeys (id, user_id, name, credential_id, passkey) VALUES ('{id}', '{user}', '{name}', '\\x{}', '{passkey}')",
        hex::encode(cred_id)
    ))
    .await;
    id.to_string()
}

#[tokio::test]
async fn the_settings_page_lists_renames_and_removes_your_passkeys_only() {
    let app = passkey_app(|_| {}).await;
    let (dev, b) = app.signed_in_browser("dev@example.com", false).await;
    let (other, ob) = app.signed_in_browser("other@example.com", false).await;
    let mine = store_passkey(&app, dev.id, "Old phone", 1).await;
    let theirs = store_passkey(&app, other.id, "Their key", 2).await;
    app.sql(&format!(
        "UPDATE passkeys SET last_used_at = '2026-11-25 14:03:00+00' WHERE id = '{mine}'"
    ))
    .await;

    // Linked from the account settings tabs.
    let sessions = get(&b, &app, "/settings/sessions").await;
    sessions.assert_has(&["<a href=\"/settings/passkeys\">Passkeys</a>"]);
    let page = get(&b, &app, "/settings/passkeys").await;
    assert_eq!(page.status, 200);
    assert_security_headers(&page);
    page.assert_has(&[
        "<h1>Passkeys</h1>",
        "Old phone",
        "2026-11-25 14:03 UTC",
        "id=\"passkey-add\"",
        "aria-current=\"page\">Passkeys</a>",
    ]);
    page.assert_lacks(&["Their key"]);
    let csrf = page.csrf();

    let renamed = post(
        &b,
        &app,
        &format!("/settings/passkeys/{mine}/rename"),
        &[("csrf_token", &csrf), ("name", " Phone ")],
    )
    .await;
    assert_eq!(renamed.status, 303);
    assert_eq!(
        renamed.location.as_deref(),
        Some("/settings/passkeys?done=renamed")
    );
    get(&b, &app, "/settings/passkeys?done=renamed")
        .await
        .assert_has(&["Passkey renamed.", "Phone"]);
    let bad = post(
        &b,
        &app,
        &format!("/settings/passkeys/{mine}/rename"),
        &[("csrf_token", &csrf), ("name", "")],
    )
    .await;
    assert_eq!(bad.status, 400);
    bad.assert_has(&["Give the passkey a name"]);
    // Without the CSRF token: refused; another account's passkey: not found.
    let forged = post(
        &b,
        &app,
        &format!("/settings/passkeys/{mine}/remove"),
        &[("csrf_token", "forged")],
    )
    .await;
    assert_eq!(forged.status, 403);
    for action in ["rename", "remove"] {
        let r = post(
            &b,
            &app,
            &format!("/settings/passkeys/{theirs}/{action}"),
            &[("csrf_token", &csrf), ("name", "mine now")],
        )
        .await;
        assert_eq!(r.status, 404, "{action}");
    }
    assert_eq!(
        app.scalar(&format!("SELECT name FROM passkeys WHERE id = '{theirs}'"))
            .await,
        "Their key"
    );

    let removed = post(
        &b,
        &app,
        &format!("/settings/passkeys/{mine}/remove"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(removed.status, 303);
    assert_eq!(
        app.count("passkeys", &format!("user_id = '{}'", dev.id))
            .await,
        0
    );
    let (user, details) = last_event(&app, "passkey_removed").await;
    assert_eq!(user, dev.id.to_string());
    assert_eq!(details["by"], dev.id.to_string());
    assert_eq!(details["name"], "Phone");
    get(&b, &app, "/settings/passkeys?done=removed")
        .await
        .assert_has(&["Passkey removed.", "You have no passkey yet."]);
    drop(ob);
}

#[tokio::test]
async fn an_admin_removes_an_accounts_passkeys_and_it_is_recorded() {
    let app = passkey_app(|_| {}).await;
    let (admin, a) = app.signed_in_browser("admin@example.com", true).await;
    let dev = app.create_user("dev@example.com", false).await;
    let bare = app.create_user("bare@example.com", false).await;
    store_passkey(&app, dev.id, "Lost phone", 1).await;
    store_passkey(&app, dev.id, "Lost key", 2).await;

    // Offered only for accounts that have passkeys.
    let list = get(&a, &app, "/admin/users").await;
    list.assert_has(&[&format!("/admin/users/{}/remove-passkeys", dev.id)]);
    list.assert_lacks(&[&format!("/admin/users/{}/remove-passkeys", bare.id)]);
    let confirm = get(
        &a,
        &app,
        &format!("/admin/users/{}/remove-passkeys", dev.id),
    )
    .await;
    assert_eq!(confirm.status, 200);
    confirm.assert_has(&[
        "Remove passkeys: dev@example.com?",
        "Every passkey of the account is removed",
    ]);
    let done = post(
        &a,
        &app,
        &format!("/admin/users/{}/remove-passkeys", dev.id),
        &[("csrf_token", &confirm.csrf())],
    )
    .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location.as_deref(),
        Some("/admin/users?done=remove-passkeys")
    );
    assert_eq!(app.count("passkeys", "true").await, 0);
    get(&a, &app, "/admin/users?done=remove-passkeys")
        .await
        .assert_has(&["The account&#39;s passkeys were removed."]);
    let (user, details) = last_event(&app, "passkey_removed").await;
    assert_eq!(user, dev.id.to_string(), "the event is about the account");
    assert_eq!(details["by"], admin.id.to_string(), "and names the admin");
    assert_eq!(details["removed"], 2);

    // Not for anyone else.
    let (_, d) = app.signed_in_browser("eve@example.com", false).await;
    let page = get(
        &d,
        &app,
        &format!("/admin/users/{}/remove-passkeys", admin.id),
    )
    .await;
    assert_eq!(page.status, 403);
}

#[tokio::test]
async fn never_asks_no_step_up_whatever_is_asked() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (code, device) =
        start_with(&app, json!({ "scopes": ["envs:write", "tokens:write"] })).await;
    let page = approval_page(&app, &b, &code).await;
    page.assert_lacks(&["Confirm it is you", "step_up"]);
    let done = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:write", "tokens:write"],
        &[],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert_eq!(app.poll(&device).await.status(), 200);
    assert_eq!(
        app.count("security_events", "kind LIKE 'step_up%'").await,
        0
    );
}

#[tokio::test]
async fn high_risk_asks_the_password_again_says_why_and_records_it() {
    let app = step_up_app(ApprovalStepUp::HighRisk).await;
    let (dev, b) = app.signed_in_browser("dev@example.com", false).await;
    let (code, device) = start_with(&app, json!({ "scopes": ["envs:read", "envs:write"] })).await;

    let page = approval_page(&app, &b, &code).await;
    assert_eq!(page.status, 200);
    assert_security_headers(&page);
    page.assert_has(&[
        "Confirm it is you",
        "It asks for envs:write, a high-risk scope.",
        "The token would live 365 days, longer than 90 days. A shorter expiry avoids this.",
        "name=\"step_up_password\"",
        "autocomplete=\"current-password\"",
    ]);
    // Same network (loopback), so that is no reason here.
    page.assert_lacks(&["another network", "data-step-up=\"passkey\""]);

    // Approve without the password: refused, with why, and recorded.
    let refused = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:read", "envs:write"],
        &[],
    )
    .await;
    assert_eq!(refused.status, 403);
    refused.assert_has(&["Confirm it is you before approving", "a high-risk scope"]);
    let (user, details) = last_event(&app, "step_up_failed").await;
    assert_eq!(user, dev.id.to_string());
    assert_eq!(details["reason"], "missing");
    assert_eq!(
        details["reasons"],
        json!(["high_risk_scope", "long_lifetime"])
    );
    assert_eq!(app.count("api_tokens", "true").await, 0, "nothing minted");

    // A wrong password: refused, recorded.
    let wrong = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:read", "envs:write"],
        &[("step_up_password", "not my password")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    wrong.assert_has(&["That is not your password."]);
    let (_, details) = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reason"], "wrong_password");
    assert_eq!(details["method"], "password");

    // The right one: approved, recorded, the CLI gets its token.
    let approved = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:read", "envs:write"],
        &[("step_up_password", PASSWORD)],
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.html);
    approved.assert_has(&["CLI login approved"]);
    let (user, details) = last_event(&app, "step_up_passed").await;
    assert_eq!(user, dev.id.to_string());
    assert_eq!(details["method"], "password");
    assert_eq!(app.poll(&device).await.status(), 200);
    assert_eq!(
        app.count("step_up_proofs", "true").await,
        0,
        "the proof was spent"
    );

    // Denying never asks.
    let (code, device) = start_with(&app, json!({ "scopes": ["envs:write"] })).await;
    let denied = decide_with(&app, &b, &code, "deny", &[], &[]).await;
    assert_eq!(denied.status, 200, "{}", denied.html);
    assert_eq!(app.poll(&device).await.status(), 403);

    // Narrowed below every reason (read only, 30 days): no step-up.
    let (code, device) = start_with(&app, json!({ "scopes": ["envs:read", "envs:write"] })).await;
    let page = approval_page(&app, &b, &code).await;
    let narrowed = post(
        &b,
        &app,
        "/cli/login",
        &[
            ("csrf_token", &page.csrf()),
            ("code", &code),
            ("decision", "approve"),
            ("scopes", "envs:read"),
            ("expires_in_days", "30"),
        ],
    )
    .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.html);
    assert_eq!(app.poll(&device).await.status(), 200);
}

#[tokio::test]
async fn wrong_step_up_passwords_count_against_the_sign_in_limit() {
    let app = spawn_app_with(|c| {
        c.approval_step_up = ApprovalStepUp::Always;
        c.rate_limits.login_per_account_per_hour = 2;
    })
    .await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (code, _) = start_with(&app, json!({ "scopes": ["envs:read"] })).await;
    let page = approval_page(&app, &b, &code).await;
    page.assert_has(&["This server asks for it on every approval."]);
    // The sign-in above took one attempt of the two.
    let wrong = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:read"],
        &[("step_up_password", "nope nope nope")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    let limited = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:read"],
        &[("step_up_password", PASSWORD)],
    )
    .await;
    assert_eq!(limited.status, 429, "{}", limited.html);
    assert!(limited.headers.contains_key("retry-after"));
}

/// A step-up proof stored as a passed step-up stores it, bound to the
/// `n`-th (oldest first) browser session of `user` and the request `code`.
async fn proof_for(
    app: &TestApp,
    user: uuid::Uuid,
    nth_session: i64,
    code: &str,
    ttl: &str,
) -> String {
    use base64::Engine;
    let proof = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(envshield_server::crypto::random_bytes::<32>());
    let digest = hex::encode(envshield_server::crypto::sha256(proof.as_bytes()));
    let code = envshield_server::domain::UserCode::parse(code).unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&app.server.config.keys.code_hmac);
    let user_hash = hex::encode(code.keyed_hash(key));
    app.sql(&format!(
        "INSERT INTO step_up_proofs (digest, user_id, user_session_id, device_session_id, method, expires_at)
         SELECT '\\x{digest}', '{user}',
           (SELECT id FROM user_sessions WHERE user_id = '{user}' ORDER BY created_at, id OFFSET {nth_session} LIMIT 1),
           (SELECT id FROM cli_device_sessions WHERE user_code_hash = '\\x{user_hash}'),
           'passkey', now() + interval '{ttl}'"
    ))
    .await;
    proof
}

#[tokio::test]
async fn a_step_up_proof_is_single_use_fresh_and_bound_to_its_session_and_request() {
    let app = step_up_app(ApprovalStepUp::HighRisk).await;
    let (dev, first) = app.signed_in_browser("dev@example.com", false).await;
    let second = browser();
    assert_eq!(
        app.sign_in(&second, "dev@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    let approve = |code: &str, proof: Option<&str>| {
        let mut body = json!({ "userCode": code, "decision": "approve" });
        if let Some(p) = proof {
            body["stepUpProof"] = json!(p);
        }
        body
    };
    let (code, device) = start_with(&app, json!({ "scopes": ["envs:write"] })).await;

    // The JSON API asks for the same step-up, and says why.
    let r = app.complete(&first, approve(&code, None)).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "step_up_required");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("It asks for envs:write, a high-risk scope."),
        "{message}"
    );
    assert!(
        message.contains("No step-up proof came with it"),
        "{message}"
    );

    // A proof passed in the other browser session does not approve here,
    // and is spent by trying.
    let elsewhere = proof_for(&app, dev.id, 1, &code, "5 minutes").await;
    let r = app.complete(&first, approve(&code, Some(&elsewhere))).await;
    assert_eq!(r.status(), 403);
    let (_, details) = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reason"], "not_for_this_approval");
    let r = app
        .complete(&second, approve(&code, Some(&elsewhere)))
        .await;
    assert_eq!(r.status(), 403, "spent by the first attempt");
    let (_, details) = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reason"], "unknown_or_used");

    // A stale one does not either.
    let stale = proof_for(&app, dev.id, 0, &code, "-1 second").await;
    let r = app.complete(&first, approve(&code, Some(&stale))).await;
    assert_eq!(r.status(), 403);
    let (_, details) = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reason"], "expired");

    // A fresh one from this session for this request approves, once.
    let proof = proof_for(&app, dev.id, 0, &code, "5 minutes").await;
    let r = app.complete(&first, approve(&code, Some(&proof))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.poll(&device).await.status(), 200);
    let (_, details) = last_event(&app, "step_up_passed").await;
    assert_eq!(details["method"], "passkey");
    let (other_code, _) = start_with(&app, json!({ "scopes": ["envs:write"] })).await;
    let r = app
        .complete(&first, approve(&other_code, Some(&proof)))
        .await;
    assert_eq!(r.status(), 403, "a proof approves one request, once");

    // A proof for another request does not approve this one.
    let (third, _) = start_with(&app, json!({ "scopes": ["envs:write"] })).await;
    let for_other = proof_for(&app, dev.id, 0, &other_code, "5 minutes").await;
    let r = app
        .complete(&first, approve(&third, Some(&for_other)))
        .await;
    assert_eq!(r.status(), 403);
    let (_, details) = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reason"], "not_for_this_approval");
}

#[tokio::test]
async fn an_account_with_a_passkey_is_asked_for_it_not_its_password() {
    let app = passkey_app(|c| c.approval_step_up = ApprovalStepUp::Always).await;
    let (dev, b) = app.signed_in_browser("dev@example.com", false).await;
    store_passkey(&app, dev.id, "Laptop", 1).await;
    let (code, _) = start_with(&app, json!({ "scopes": ["envs:read"] })).await;
    let page = approval_page(&app, &b, &code).await;
    assert_eq!(page.status, 200);
    assert_security_headers(&page);
    page.assert_has(&[
        "data-step-up=\"passkey\"",
        "name=\"step_up_proof\"",
        "Approve asks for one of your passkeys first.",
        "<script src=\"/static/js/passkeys.js\" defer></script>",
    ]);
    page.assert_lacks(&["name=\"step_up_password\""]);
    // The password is no way around the passkey.
    let r = decide_with(
        &app,
        &b,
        &code,
        "approve",
        &["envs:read"],
        &[("step_up_password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, 403);
    r.assert_has(&["Your account has a passkey: confirm with it"]);
    // A passkey step-up starts for this request, offering the account's passkeys.
    let (status, options) = post_json(
        &app,
        &b,
        "/cli/login/step-up/start",
        json!({ "code": code }),
        true,
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let allowed = options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(allowed, 1);
    assert_eq!(
        app.count(
            "webauthn_ceremonies",
            "purpose = 'step_up' AND device_session_id IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_operator_removes_an_accounts_passkeys_from_the_command_line() {
    let app = spawn_app().await;
    let dev = app.create_user("dev@example.com", false).await;
    store_passkey(&app, dev.id, "Lost phone", 3).await;
    let dir = crate::helpers::fresh_target_dir("envshield-test-remove-passkeys");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_envshield-server"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ENVSHIELD_DATA_DIR", &dir)
        .env("DATABASE_URL", &app.server.db.url)
        .env("RUST_LOG", "warn")
        .args(["users", "remove-passkeys", "--email", "dev@example.com"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("dev@example.com: 1 passkey(s) removed"),
        "{stdout}"
    );
    assert_eq!(app.count("passkeys", "true").await, 0);
    let (user, details) = last_event(&app, "passkey_removed").await;
    assert_eq!(user, dev.id.to_string());
    assert_eq!(details["by"], "operator");
}

const REGISTER_START: &str = "/settings/passkeys/register/start";

/// Starts adding a passkey named `name` from `client`, typing `password`
/// (none: the field left out); status and answer.
async fn add_passkey(
    app: &TestApp,
    client: &Client,
    name: &str,
    password: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({ "name": name });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    post_json(app, client, REGISTER_START, body, true).await
}

/// Asserts a refusal: `status`, the error `code`, and a message that says
/// `says`.
fn assert_refused(answer: &(u16, Value), status: u16, code: &str, says: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{body}");
}

/// Ceremonies of registration waiting for an answer.
async fn registrations(app: &TestApp) -> i64 {
    app.count("webauthn_ceremonies", "purpose = 'register'")
        .await
}

#[tokio::test]
async fn a_stolen_session_cookie_alone_cannot_add_a_passkey() {
    // Arrange: a browser session of an account with a password, as a
    // stolen cookie gives it.
    let app = passkey_app(|_| {}).await;
    let (_, cookie) = app.signed_in_browser("dev@example.com", false).await;

    // Act: start registering a passkey with the cookie only.
    let answer = add_passkey(&app, &cookie, "Not mine", None).await;

    // Assert: refused, saying what to do, and no ceremony started.
    assert_refused(&answer, 403, "password_required", "current password");
    assert_eq!(registrations(&app).await, 0);
}

#[tokio::test]
async fn adding_a_passkey_asks_for_the_current_password() {
    let app = passkey_app(|_| {}).await;
    let (dev, b) = app.signed_in_browser("dev@example.com", false).await;

    // The add form asks for it.
    let page = get(&b, &app, "/settings/passkeys").await;
    assert_eq!(page.status, 200);
    page.assert_has(&[
        // Shown by the script only, and never a GET: the password stays
        // out of URLs.
        "<form id=\"passkey-add\" method=\"post\" hidden>",
        "id=\"passkey-password\"",
        "name=\"password\"",
        "type=\"password\"",
        "autocomplete=\"current-password\"",
    ]);

    // Empty is missing.
    let answer = add_passkey(&app, &b, "Laptop", Some("")).await;
    assert_refused(&answer, 403, "password_required", "current password");

    // A wrong one: refused, recorded, nothing started.
    let answer = add_passkey(&app, &b, "Laptop", Some("not my password")).await;
    assert_refused(&answer, 403, "wrong_password", "not your current password");
    assert_eq!(registrations(&app).await, 0);
    let (who, details) = last_event(&app, "login_failed").await;
    assert_eq!(who, dev.id.to_string());
    assert_eq!(details["reason"], "wrong_password");
    assert_eq!(details["method"], "password");
    assert_eq!(details["during"], "add_passkey");

    // The right one: the ceremony starts for this account.
    let (status, options) = add_passkey(&app, &b, "Laptop", Some(PASSWORD)).await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["user"]["name"], "dev@example.com");
    assert_eq!(
        app.count(
            "webauthn_ceremonies",
            &format!("purpose = 'register' AND user_id = '{}'", dev.id)
        )
        .await,
        1
    );
    // The password is nowhere in the audit trail.
    assert_eq!(
        app.count(
            "security_events",
            &format!("details::text LIKE '%{PASSWORD}%' OR details::text LIKE '%not my password%'")
        )
        .await,
        0
    );
}

#[tokio::test]
async fn wrong_passwords_when_adding_a_passkey_count_against_the_sign_in_limit() {
    let app = passkey_app(|c| c.rate_limits.login_per_account_per_hour = 2).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    // The sign-in above took one attempt of the two.
    let answer = add_passkey(&app, &b, "Laptop", Some("nope nope nope")).await;
    assert_refused(&answer, 403, "wrong_password", "not your current password");
    let (status, answer) = add_passkey(&app, &b, "Laptop", Some(PASSWORD)).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(registrations(&app).await, 0);
}

/// POSTs JSON from `client` to this site at its `APP_URL` address (where
/// a single sign-on comes back to, so where its cookie lives).
async fn post_json_at_origin(
    app: &TestApp,
    client: &Client,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = client
        .post(format!("{}{path}", app.origin()))
        .header("Origin", app.origin())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Signs `client` in through the OpenID provider as its person `login`,
/// from this site's `APP_URL` address; the callback's status.
async fn sign_in_with_provider(app: &TestApp, client: &Client, login: &str) -> u16 {
    let start = url::Url::parse(&format!("{}/auth/oidc/corp/start", app.origin())).unwrap();
    let callback = crate::sso::provider_round_trip(client, start, login).await;
    client.get(callback).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn an_account_without_a_password_adds_a_passkey_only_soon_after_signing_in() {
    use envshield_server::testing::oidc::OidcTestProvider;
    use std::sync::{Arc, Mutex};

    // Arrange: a server offering passkeys and a provider that creates
    // accounts (with a password nobody knows).
    let slot: Arc<Mutex<Option<OidcTestProvider>>> = Arc::default();
    let keep = slot.clone();
    let app = passkey_app(move |c| {
        let callback = format!("{}/auth/oidc/corp/callback", c.app_base());
        let provider = OidcTestProvider::start(json!({
            "clients": [{ "client_id": "envshield", "client_secret": "envshield-test-secret", "redirect_uris": [callback] }],
            "accounts": { "newbie": { "email": "newbie@example.com", "email_verified": true, "name": "New Person" } },
            "misbehave": null,
        }))
        .expect("the OpenID provider starts");
        c.oidc_providers = vec![envshield_server::config::OidcProvider {
            create_accounts: true,
            ..crate::sso::corp(&provider.issuer)
        }];
        *keep.lock().unwrap() = Some(provider);
    })
    .await;
    // Kept until the end: dropping it stops the provider.
    let _provider = slot.lock().unwrap().take().unwrap();
    let b = browser();
    assert_eq!(sign_in_with_provider(&app, &b, "newbie").await, 303);

    // Just signed in: the page asks for no password, and a passkey starts.
    let page = b
        .get(format!("{}/settings/passkeys", app.origin()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"passkey-add\""), "{page}");
    assert!(!page.contains("id=\"passkey-password\""), "{page}");
    assert!(page.contains("within 10 minutes of signing in"), "{page}");
    let (status, answer) =
        post_json_at_origin(&app, &b, REGISTER_START, json!({ "name": "Phone" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(registrations(&app).await, 1);

    // The same session 11 minutes on (a cookie taken since): refused,
    // nothing started, saying to sign in again.
    app.sql("DELETE FROM webauthn_ceremonies").await;
    app.sql("UPDATE user_sessions SET created_at = created_at - interval '11 minutes'")
        .await;
    let answer = post_json_at_origin(&app, &b, REGISTER_START, json!({ "name": "Phone" })).await;
    assert_refused(&answer, 403, "sign_in_again", "Sign in again");
    assert_eq!(registrations(&app).await, 0);

    // Signed in again, the person adds it.
    assert_eq!(sign_in_with_provider(&app, &b, "newbie").await, 303);
    let (status, answer) =
        post_json_at_origin(&app, &b, REGISTER_START, json!({ "name": "Phone" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(registrations(&app).await, 1);
}
