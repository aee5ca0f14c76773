//! Same-machine login with no code to compare: `/oauth/authorize` with PKCE
//! on a loopback redirect (RFC 6749 §4.1, RFC 7636, RFC 8252), the consent
//! page, and the `authorization_code` grant, with the attacks it exists for:
//! a replayed code, a wrong verifier, a non-loopback redirect.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use envshield_api_types::dpop::DpopKey;
use reqwest::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};

use envshield_server::config::ApprovalStepUp;

use crate::helpers::{
    browser, csrf_from, get_json, get_text, spawn_app, spawn_app_with, TestApp, PASSWORD,
};

const REDIRECT: &str = "http://127.0.0.1:49152/callback";
const VERIFIER: &str = "a-verifier-of-more-than-forty-three-characters-0123456789";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "envshield-cli"),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("code_challenge_method", "S256"),
    ];
    let c = challenge(VERIFIER);
    params.push(("code_challenge", &c));
    params.extend_from_slice(extra);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    app.url(&format!("/oauth/authorize?{query}"))
}

/// The query parameters of a redirect's `Location`.
fn location_params(r: &reqwest::Response) -> (String, std::collections::HashMap<String, String>) {
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    let params = url.query_pairs().into_owned().collect();
    (location, params)
}

/// Opens the consent page and submits `decision` with `envs:read` ticked.
async fn decide(app: &TestApp, browser: &Client, url: &str, decision: &str) -> reqwest::Response {
    consent_with(app, browser, url, decision, &["envs:read"], &[]).await
}

/// Opens the consent page and submits `decision` with `scopes` ticked and
/// the `extra` fields.
async fn consent_with(
    app: &TestApp,
    browser: &Client,
    url: &str,
    decision: &str,
    scopes: &[&str],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let page = browser.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("envshield-cli"), "the page names the client");
    assert!(html.contains("127.0.0.1:49152"), "and where the token goes");
    let csrf = csrf_from(&html);
    let mut form: Vec<(String, String)> = vec![
        ("csrf_token".into(), csrf),
        ("decision".into(), decision.into()),
    ];
    form.extend(scopes.iter().map(|s| ("scopes".into(), (*s).into())));
    form.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    // The hidden inputs carry the request.
    for cap in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = cap.split('"').next().unwrap();
        let value = cap
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        if name != "csrf_token" {
            form.push((name.into(), html_unescape(value)));
        }
    }
    browser
        .post(app.url("/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#x3a;", ":")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
}

async fn token_request(
    app: &TestApp,
    params: &[(&str, &str)],
    dpop: Option<String>,
) -> (u16, Value) {
    let mut request = app.cli.post(app.url("/oauth/token")).form(params);
    if let Some(p) = dpop {
        request = request.header("DPoP", p);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Approves a request in a signed-in browser; returns the code.
async fn approved_code(app: &TestApp, email: &str) -> String {
    let (_, browser) = app.signed_in_browser(email, false).await;
    let r = decide(app, &browser, &authorize_url(app, &[]), "approve").await;
    assert_eq!(r.status(), 303);
    let (location, params) = location_params(&r);
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(params["state"], "st-123");
    assert_eq!(params["iss"], app.server.config.app_base(), "RFC 9207 iss");
    params["code"].clone()
}

fn redeem<'a>(code: &'a str, verifier: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", "envshield-cli"),
        ("code_verifier", verifier),
    ]
}

#[tokio::test]
async fn consent_then_the_code_and_verifier_give_a_token_once() {
    let app = spawn_app().await;
    let code = approved_code(&app, "laptop@example.com").await;
    let (status, body) = token_request(&app, &redeem(&code, VERIFIER), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "envs:read", "narrowed on the consent page");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.whoami(&access).await.status(), 200);

    // The code again: someone else holds it; what it issued is revoked.
    let (status, body) = token_request(&app, &redeem(&code, VERIFIER), None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    app.whoami_settles(&access, 401).await;
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'authorization_code_reused' AND severity = 'high'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_wrong_verifier_spends_the_code() {
    let app = spawn_app().await;
    let code = approved_code(&app, "pkce@example.com").await;
    let wrong = "another-verifier-of-more-than-forty-three-characters-xyz";
    let (status, body) = token_request(&app, &redeem(&code, wrong), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("code_verifier"));
    // Even the right verifier cannot redeem it now.
    let (status, _) = token_request(&app, &redeem(&code, VERIFIER), None).await;
    assert_eq!(status, 400);
    assert_eq!(app.count("api_tokens", "revoked_at IS NULL").await, 0);
}

#[tokio::test]
async fn the_redirect_uri_must_be_loopback_and_pkce_s256_is_required() {
    let app = spawn_app().await;
    let (_, browser) = app.signed_in_browser("strict@example.com", false).await;
    // A non-loopback redirect: a page, never a redirect to it.
    for bad in [
        "https://evil.example/cb",
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
    ] {
        let url = authorize_url(&app, &[]).replace(
            &url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
            &url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>(),
        );
        let r = browser.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none());
        assert!(
            r.text().await.unwrap().contains("redirect_uri must"),
            "{bad}"
        );
    }
    // No PKCE: told at the redirect URI.
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "envshield-cli"),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
        ])
        .finish();
    let r = browser
        .get(app.url(&format!("/oauth/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, params) = location_params(&r);
    assert_eq!(params["error"], "invalid_request");
    assert!(params["error_description"].contains("code_challenge"));
    assert_eq!(params["state"], "s");
    // `plain` is refused too.
    let r = browser
        .get(authorize_url(&app, &[]).replace("S256", "plain"))
        .send()
        .await
        .unwrap();
    let (_, params) = location_params(&r);
    assert_eq!(params["error"], "invalid_request");
    // A parameter given twice.
    let twice = format!("{}&state=again", authorize_url(&app, &[]));
    assert_eq!(browser.get(&twice).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn signed_out_it_asks_to_sign_in_first_and_deny_tells_the_client() {
    let app = spawn_app().await;
    let url = authorize_url(&app, &[]);
    let r = browser().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap();
    assert!(to.starts_with("/login?redirect="), "{to}");

    let (_, signed_in) = app.signed_in_browser("deny@example.com", false).await;
    let r = decide(&app, &signed_in, &url, "deny").await;
    assert_eq!(r.status(), 303);
    let (_, params) = location_params(&r);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "st-123");
    assert_eq!(app.count("api_tokens", "true").await, 0);
}

#[tokio::test]
async fn a_dpop_jkt_in_the_request_binds_the_code_to_that_key() {
    let app = spawn_app().await;
    let key = DpopKey::generate_p256().unwrap();
    let jkt = key.thumbprint();
    let (_, browser) = app.signed_in_browser("bound@example.com", false).await;
    let r = decide(
        &app,
        &browser,
        &authorize_url(&app, &[("dpop_jkt", &jkt)]),
        "approve",
    )
    .await;
    let (_, params) = location_params(&r);
    let code = params["code"].clone();
    let htu = format!("{}/oauth/token", app.server.config.app_base());
    let now = chrono::Utc::now().timestamp();
    // Another key's proof is refused and leaves the code usable.
    let thief = DpopKey::generate_p256().unwrap();
    let (status, body) = token_request(
        &app,
        &redeem(&code, VERIFIER),
        Some(thief.proof("POST", &htu, None, now).unwrap()),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let (status, body) = token_request(
        &app,
        &redeem(&code, VERIFIER),
        Some(key.proof("POST", &htu, None, now).unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn discovery_lists_the_authorization_endpoint_and_pkce() {
    let app = spawn_app().await;
    let d: Value = get_json(&app.cli, app.url("/.well-known/oauth-authorization-server")).await;
    let base = app.server.config.app_base();
    assert_eq!(
        d["authorization_endpoint"],
        format!("{base}/oauth/authorize")
    );
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(d["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "authorization_code"));
}

#[tokio::test]
async fn a_third_party_library_runs_pkce_and_a_dpop_bound_refresh_from_discovery() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl,
        Scope, TokenResponse, TokenUrl,
    };

    let app = spawn_app().await;
    let discovery: Value =
        get_json(&app.cli, app.url("/.well-known/oauth-authorization-server")).await;
    let endpoint = |name: &str| discovery[name].as_str().unwrap().to_owned();
    let client = BasicClient::new(ClientId::new("envshield-cli".to_owned()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::new(endpoint("authorization_endpoint")).unwrap())
        .set_token_uri(TokenUrl::new(endpoint("token_endpoint")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("envs:read".to_owned()))
        .set_pkce_challenge(challenge)
        .url();

    let (_, browser) = app.signed_in_browser("library@example.com", false).await;
    let r = decide(&app, &browser, url.as_str(), "approve").await;
    assert_eq!(r.status(), 303);
    let (_, params) = location_params(&r);
    assert_eq!(&params["state"], csrf.secret());

    // Every token request carries a proof by this key (RFC 9449).
    let key = DpopKey::generate_p256().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let with_dpop = |mut request: oauth2::HttpRequest| {
        let (key, http) = (&key, &http);
        async move {
            let now = chrono::Utc::now().timestamp();
            let proof = key
                .proof(
                    request.method().as_str(),
                    &request.uri().to_string(),
                    None,
                    now,
                )
                .unwrap();
            request.headers_mut().insert("DPoP", proof.parse().unwrap());
            let response = http.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            Ok::<_, reqwest::Error>(answer.body(response.bytes().await?.to_vec()).unwrap())
        }
    };
    let token = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&with_dpop)
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", token.token_type()).to_lowercase(),
        "extension(\"dpop\")"
    );
    let refresh = token
        .refresh_token()
        .expect("the CLI client over OAuth gets a refresh token");
    // Without the key, the bound refresh token is refused.
    let err = client
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("invalid_dpop_proof"), "{err:?}");
    // With it, a rotated pair bound to the same key.
    let refreshed = client
        .exchange_refresh_token(refresh)
        .request_async(&with_dpop)
        .await
        .unwrap();
    assert_ne!(
        refreshed.access_token().secret(),
        token.access_token().secret()
    );
    assert_eq!(
        app.count(
            "api_tokens",
            &format!("dpop_jkt = '{}' AND revoked_at IS NULL", key.thumbprint())
        )
        .await,
        2
    );
}

/// The latest event of `kind`: its details.
async fn last_event(app: &TestApp, kind: &str) -> Value {
    let row = app
        .scalar(&format!(
            "SELECT details::text FROM security_events WHERE kind = '{kind}' ORDER BY id DESC LIMIT 1"
        ))
        .await;
    serde_json::from_str(&row).unwrap()
}

#[tokio::test]
async fn the_consent_page_asks_for_the_step_up_says_why_and_records_it() {
    let app = spawn_app_with(|c| c.approval_step_up = ApprovalStepUp::HighRisk).await;
    let (_, browser) = app.signed_in_browser("consent@example.com", false).await;
    let url = authorize_url(&app, &[("scope", "envs:read envs:write")]);
    let html = get_text(&browser, &url).await;
    for expected in [
        "Confirm it is you",
        "It asks for envs:write, a high-risk scope.",
        "name=\"step_up_password\"",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    let both = ["envs:read", "envs:write"];

    // Approve without the password: the page again with why; no code.
    let r = consent_with(&app, &browser, &url, "approve", &both, &[]).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Confirm it is you before approving"),
        "{html}"
    );
    let details = last_event(&app, "step_up_failed").await;
    assert_eq!(details["reason"], "missing");
    assert!(details["authorization_request"].is_string(), "{details}");
    assert_eq!(app.count("api_tokens", "true").await, 0, "nothing minted");

    // A wrong password: refused and recorded.
    let wrong = [("step_up_password", "not my password")];
    let r = consent_with(&app, &browser, &url, "approve", &both, &wrong).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("That is not your password."));
    assert_eq!(
        last_event(&app, "step_up_failed").await["reason"],
        "wrong_password"
    );

    // Narrowed to a read-only scope: no reason left, so no step-up.
    let r = consent_with(&app, &browser, &url, "approve", &["envs:read"], &[]).await;
    assert_eq!(r.status(), 303);
    assert!(location_params(&r).1.contains_key("code"));

    // The right password: a code, and the step-up on record.
    let right = [("step_up_password", PASSWORD)];
    let r = consent_with(&app, &browser, &url, "approve", &both, &right).await;
    assert_eq!(r.status(), 303);
    let (_, params) = location_params(&r);
    let (status, body) = token_request(&app, &redeem(&params["code"], VERIFIER), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "envs:read envs:write");
    assert_eq!(
        last_event(&app, "step_up_passed").await["method"],
        "password"
    );
    assert_eq!(app.count("step_up_proofs", "true").await, 0, "spent");

    // Denying never asks.
    let r = consent_with(&app, &browser, &url, "deny", &[], &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location_params(&r).1["error"], "access_denied");
}

/// A step-up proof stored for the authorization request with this PKCE
/// challenge, passed in the browser session of `user`.
async fn proof_for_request(app: &TestApp, user: uuid::Uuid, code_challenge: &str) -> String {
    let proof = URL_SAFE_NO_PAD.encode(envshield_server::crypto::random_bytes::<32>());
    let digest = hex::encode(envshield_server::crypto::sha256(proof.as_bytes()));
    let named = format!("envshield-cli\0{REDIRECT}\0{code_challenge}\0");
    let request = hex::encode(envshield_server::crypto::sha256(named.as_bytes()));
    app.sql(&format!(
        "INSERT INTO step_up_proofs (digest, user_id, user_session_id, authorization_request, method, expires_at)
         SELECT '\\x{digest}', '{user}',
           (SELECT id FROM user_sessions WHERE user_id = '{user}' ORDER BY created_at DESC LIMIT 1),
           '\\x{request}', 'passkey', now() + interval '5 minutes'"
    ))
    .await;
    proof
}

#[tokio::test]
async fn a_consent_step_up_proof_approves_only_its_own_request() {
    let app = spawn_app_with(|c| c.approval_step_up = ApprovalStepUp::Always).await;
    let (user, browser) = app
        .signed_in_browser("bound-proof@example.com", false)
        .await;
    let url = authorize_url(&app, &[]);

    // A proof for another authorization request (another PKCE challenge).
    let elsewhere = proof_for_request(&app, user.id, &challenge("another-verifier")).await;
    let r = consent_with(
        &app,
        &browser,
        &url,
        "approve",
        &["envs:read"],
        &[("step_up_proof", &elsewhere)],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        last_event(&app, "step_up_failed").await["reason"],
        "not_for_this_approval"
    );

    // One for this request approves, once.
    let proof = proof_for_request(&app, user.id, &challenge(VERIFIER)).await;
    let with_proof = [("step_up_proof", proof.as_str())];
    let r = consent_with(&app, &browser, &url, "approve", &["envs:read"], &with_proof).await;
    assert_eq!(r.status(), 303);
    assert!(location_params(&r).1.contains_key("code"));
    let again = consent_with(&app, &browser, &url, "approve", &["envs:read"], &with_proof).await;
    assert_eq!(again.status(), 403, "a proof is spent by its approval");
    assert_eq!(
        last_event(&app, "step_up_failed").await["reason"],
        "unknown_or_used"
    );
}

#[tokio::test]
async fn an_account_with_a_passkey_starts_a_step_up_for_the_authorization_request() {
    let app = spawn_app_with(|c| {
        c.app_url.set_host(Some("localhost")).unwrap();
        c.approval_step_up = ApprovalStepUp::Always;
    })
    .await;
    let (user, browser) = app.signed_in_browser("with-key@example.com", false).await;
    crate::passkeys::store_passkey(&app, user.id, "Laptop", 1).await;
    let url = authorize_url(&app, &[]);
    let html = get_text(&browser, &url).await;
    for expected in [
        "data-step-up=\"passkey\"",
        "data-carried=\"response_type client_id redirect_uri state code_challenge",
        "<script src=\"/static/js/passkeys.js\" defer></script>",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    assert!(!html.contains("name=\"step_up_password\""));
    // The password is no way around the passkey.
    let typed = [("step_up_password", PASSWORD)];
    let r = consent_with(&app, &browser, &url, "approve", &["envs:read"], &typed).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your account has a passkey: confirm with it"));

    // The ceremony starts for this request, named by its parameters.
    let params: serde_json::Map<String, Value> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let r = browser
        .post(app.url("/oauth/authorize/step-up/start"))
        .header("Origin", app.origin())
        .json(&serde_json::json!({ "params": params }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.count(
            "webauthn_ceremonies",
            "purpose = 'step_up' AND authorization_request IS NOT NULL AND device_session_id IS NULL"
        )
        .await,
        1
    );
    // A request the server would refuse starts nothing.
    let r = browser
        .post(app.url("/oauth/authorize/step-up/start"))
        .header("Origin", app.origin())
        .json(&serde_json::json!({ "params": { "client_id": "envshield-cli" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_code_never_redeemed_has_its_tokens_revoked_when_it_expires() {
    let app = spawn_app_with(|c| c.max_api_tokens_per_user = 1).await;
    let (_, browser) = app.signed_in_browser("gone@example.com", false).await;
    let url = authorize_url(&app, &[]);
    let r = decide(&app, &browser, &url, "approve").await;
    assert_eq!(r.status(), 303);
    let (_, params) = location_params(&r);
    let code = params["code"].clone();
    // The client never comes for it; the one slot is taken meanwhile.
    let r = decide(&app, &browser, &url, "approve").await;
    assert_eq!(r.status(), 409, "the cap counts the unredeemed grant");

    app.sql("UPDATE authorization_codes SET expires_at = now() - interval '1 second'")
        .await;
    app.on_db(|conn| {
        envshield_server::service::authorize::purge_due(
            &mut envshield_server::db::Db::new(conn),
            &std::sync::Arc::default(),
            chrono::Utc::now(),
        )
        .unwrap()
    })
    .await;
    assert_eq!(app.count("api_tokens", "revoked_at IS NULL").await, 0);
    assert_eq!(app.count("refresh_tokens", "revoked_at IS NULL").await, 0);
    assert_eq!(
        app.count("authorization_codes", "sealed_token IS NOT NULL")
            .await,
        0,
        "nothing sealed is kept"
    );
    let (status, body) = token_request(&app, &redeem(&code, VERIFIER), None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let r = decide(&app, &browser, &url, "approve").await;
    assert_eq!(r.status(), 303, "the slot is free again");
}

#[tokio::test]
async fn the_redirect_uri_is_compared_as_the_same_address() {
    let app = spawn_app().await;
    let (_, browser) = app.signed_in_browser("bare@example.com", false).await;
    let bare = "http://127.0.0.1:49152";
    let c = challenge(VERIFIER);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "envshield-cli"),
            ("redirect_uri", bare),
            ("state", "st-123"),
            ("code_challenge_method", "S256"),
            ("code_challenge", c.as_str()),
        ])
        .finish();
    let url = app.url(&format!("/oauth/authorize?{query}"));
    let r = decide(&app, &browser, &url, "approve").await;
    assert_eq!(r.status(), 303);
    let (_, params) = location_params(&r);
    let code = params["code"].clone();
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", bare),
        ("client_id", "envshield-cli"),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = token_request(&app, &grant, None).await;
    assert_eq!(status, 200, "the same redirect_uri as sent: {body}");
}

#[tokio::test]
async fn the_device_login_policy_holds_for_the_authorization_code_flow_too() {
    let app = spawn_app_with(|c| {
        c.device_login_policy = envshield_server::config::DeviceLoginPolicy::parse(
            "DEVICE_LOGIN_POLICY",
            r#"{"admin": {"enabled": false}, "user": {"maxLifetimeDays": 30}}"#,
            &c.scope_catalogue,
        )
        .unwrap();
        c.cli_oauth_token_policy = envshield_server::config::TokenPolicy::ApiToken;
        c.api_token_ttl_days = Some(90);
    })
    .await;
    let url = authorize_url(&app, &[]);

    // An admin may not approve a terminal login at all.
    let (_, admin) = app.signed_in_browser("root@example.com", true).await;
    let r = decide(&app, &admin, &url, "approve").await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("rule enabled"), "{html}");
    assert_eq!(app.count("api_tokens", "true").await, 0, "nothing minted");
    let event = last_event(&app, "device_login_refused").await;
    assert_eq!(event["rule"], "enabled", "{event}");
    assert_eq!(event["via"], "authorization_code", "{event}");

    // A user gets at most the role's lifetime, and the page offers no more.
    let (_, user) = app.signed_in_browser("dev@example.com", false).await;
    let page = get_text(&user, &url).await;
    assert!(page.contains("30 days (default)"), "{page}");
    assert!(!page.contains("90 days"), "no longer choice: {page}");
    let r = consent_with(
        &app,
        &user,
        &url,
        "approve",
        &["envs:read"],
        &[("expires_in_days", "90")],
    )
    .await;
    assert_eq!(r.status(), 403, "longer than the role may pick");
    let html = r.text().await.unwrap();
    assert!(html.contains("rule maxLifetimeDays"), "{html}");
    let r = decide(&app, &user, &url, "approve").await;
    assert_eq!(r.status(), 303);
    let days = app
        .scalar("SELECT extract(day from expires_at - created_at)::int::text FROM api_tokens")
        .await;
    assert_eq!(days, "30");
}
