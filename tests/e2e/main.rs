//! End-to-end tests in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver, against the real server.
//! Screenshots land in `target/screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use browser::Browser;
use diesel::Connection;
use envshield_api_types::{PollDeviceResponse, StartDeviceResponse};
use envshield_server::domain::Email;
use envshield_server::service::accounts;
use envshield_server::testing::TestServer;
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery staple";

async fn server() -> TestServer {
    tokio::task::spawn_blocking(|| TestServer::spawn(|_| {}))
        .await
        .unwrap()
        .expect("test server starts")
}

async fn create_user(server: &TestServer, email: &str, admin: bool) {
    let url = server.db.url.clone();
    let email = email.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        accounts::create_user(
            &mut conn,
            &Email::parse(&email).unwrap(),
            &SecretString::from(PASSWORD.to_owned()),
            if admin { "admin" } else { "user" },
            4,
        )
        .unwrap();
    })
    .await
    .unwrap();
}

async fn start(server: &TestServer, name: &str) -> StartDeviceResponse {
    reqwest::Client::new()
        .post(format!("{}/cli/auth/device/start", server.api_url()))
        .header("User-Agent", "envshield/0.1.0 (linux)")
        .json(&json!({ "tokenName": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn poll(server: &TestServer, device_code: &str) -> (u16, PollDeviceResponse) {
    let r = reqwest::Client::new()
        .post(format!("{}/cli/auth/device/poll", server.api_url()))
        .json(&json!({ "deviceCode": device_code }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Opens the verification URL signed out, signs in on the redirect, and
/// arrives at the confirmation page showing the code.
/// The approved answer a poll of `device_code` gets now: its token (an
/// `esh_` API token), token name and scopes.
async fn collect(server: &TestServer, device_code: &str) -> (String, String, Vec<String>) {
    let (status, answer) = poll(server, device_code).await;
    assert_eq!(status, 200);
    let PollDeviceResponse::Approved {
        token: Some(token),
        token_name,
        scopes,
        ..
    } = answer
    else {
        panic!("expected the token, got {answer:?}");
    };
    assert!(token.starts_with("esh_"));
    (token, token_name, scopes)
}

async fn open_and_sign_in(b: &Browser, started: &StartDeviceResponse, email: &str) {
    b.goto(&started.verification_url).await;
    let url = b.current_url().await;
    assert!(
        url.contains("/login?redirect="),
        "redirected to sign in: {url}"
    );
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("h1", "CLI login request").await;
    assert!(b.current_url().await.contains("/cli/login?code="));
    assert_eq!(b.text(".user-code").await, started.user_code);
    let page = b.text("main").await;
    assert!(page.contains("Check that this code matches the one in your terminal"));
    assert!(page.contains(email));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_in_the_browser_and_the_cli_gets_the_token() {
    let server = server().await;
    create_user(&server, "dev@example.com", false).await;
    let b = Browser::open().await;
    let started = start(&server, "laptop").await;
    open_and_sign_in(&b, &started, "dev@example.com").await;
    // Tall windows, so the screenshots show the whole page down to the buttons.
    b.resize(1280, 1300).await;
    b.screenshot("approval-desktop").await;
    b.resize(390, 1700).await;
    b.screenshot("approval-phone").await;
    b.resize(1280, 900).await;

    b.click("button[value=approve]").await;
    b.wait_for_text("h1", "CLI login approved. You can return to your terminal.")
        .await;
    let (_, token_name, _) = collect(&server, &started.device_code).await;
    assert_eq!(token_name, "laptop");

    b.goto(&format!("{}/settings/tokens", server.address)).await;
    b.wait_for_text("main", "laptop").await;
    b.screenshot("tokens-desktop").await;
    b.resize(390, 1000).await;
    b.screenshot("tokens-phone").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_in_the_browser_and_the_cli_is_told() {
    let server = server().await;
    create_user(&server, "dev@example.com", false).await;
    let b = Browser::open().await;
    let started = start(&server, "laptop").await;
    open_and_sign_in(&b, &started, "dev@example.com").await;
    b.click("button[value=deny]").await;
    b.wait_for_text("h1", "CLI login denied.").await;
    let (status, answer) = poll(&server, &started.device_code).await;
    assert_eq!(status, 403);
    assert!(
        matches!(answer, PollDeviceResponse::Denied { .. }),
        "{answer:?}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_revokes_a_token_in_the_admin_page() {
    let server = server().await;
    create_user(&server, "dev@example.com", false).await;
    create_user(&server, "admin@example.com", true).await;

    // The developer logs in through the browser.
    let dev = Browser::open().await;
    let started = start(&server, "build box").await;
    open_and_sign_in(&dev, &started, "dev@example.com").await;
    dev.click("button[value=approve]").await;
    dev.wait_for_text("h1", "CLI login approved").await;
    dev.close().await;
    let (token, _, _) = collect(&server, &started.device_code).await;
    let whoami = |t: String| {
        let url = format!("{}/cli/whoami", server.api_url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(whoami(token.clone()).await, 200);

    // The admin revokes it.
    let admin = Browser::open().await;
    admin
        .goto(&format!("{}/login?redirect=/admin/tokens", server.address))
        .await;
    admin.fill("#email", "admin@example.com").await;
    admin.fill("#password", PASSWORD).await;
    admin.click("form button[type=submit]").await;
    admin.wait_for_text("h1", "Every account's tokens").await;
    assert!(admin.text("main").await.contains("build box"));
    admin.screenshot("admin-tokens-desktop").await;
    admin.click_link_containing("Revoke").await;
    admin.click("button.danger").await;
    admin.wait_for_text("main", "revoked").await;
    assert_eq!(
        whoami(token).await,
        401,
        "the revoked token is refused at once"
    );
    admin.close().await;
}

/// Signs in on `/login`, coming back to `path`.
async fn sign_in_to(b: &Browser, server: &TestServer, email: &str, path: &str) {
    b.goto(&format!("{}/login?redirect={path}", server.address))
        .await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("form button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_password_and_admin_users_in_the_browser() {
    let server = server().await;
    create_user(&server, "dev@example.com", false).await;
    create_user(&server, "admin@example.com", true).await;
    let laptop = Browser::open().await;
    let phone = Browser::open().await;
    sign_in_to(&phone, &server, "dev@example.com", "/settings/tokens").await;
    phone.wait_for_text("h1", "Your API tokens").await;
    sign_in_to(&laptop, &server, "dev@example.com", "/settings/sessions").await;
    laptop.wait_for_text("h1", "Where you are signed in").await;
    let sessions = laptop.text("main").await;
    assert_eq!(sessions.matches("Signed in").count(), 2, "{sessions}");
    assert!(sessions.contains("this browser"), "{sessions}");
    laptop.resize(1280, 1100).await;
    laptop.screenshot("sessions-desktop").await;
    laptop.resize(390, 1500).await;
    laptop.screenshot("sessions-phone").await;
    laptop.resize(1280, 900).await;

    // A new password: the other browser is signed out, this one stays.
    laptop.click_link_containing("Password").await;
    laptop.wait_for_text("h1", "Change your password").await;
    laptop.fill("#current_password", "not my password").await;
    laptop
        .fill("#new_password", "a new and longer passphrase")
        .await;
    laptop
        .fill("#new_password_confirm", "a new and longer passphrase")
        .await;
    laptop.click("form button.primary").await;
    laptop
        .wait_for_text("#password-error", "Your current password is not right.")
        .await;
    laptop.screenshot("password-desktop").await;
    laptop.resize(390, 1000).await;
    laptop.screenshot("password-phone").await;
    laptop.resize(1280, 900).await;
    laptop.fill("#current_password", PASSWORD).await;
    laptop
        .fill("#new_password", "a new and longer passphrase")
        .await;
    laptop
        .fill("#new_password_confirm", "a new and longer passphrase")
        .await;
    laptop.click("form button.primary").await;
    laptop.wait_for_text(".notice", "Password changed").await;
    phone
        .goto(&format!("{}/settings/tokens", server.address))
        .await;
    phone.wait_for_text("h1", "Sign in").await;

    // An admin disables the account: the laptop's session ends too.
    let admin = Browser::open().await;
    sign_in_to(&admin, &server, "admin@example.com", "/admin/users").await;
    admin.wait_for_text("h1", "Accounts").await;
    admin.resize(1280, 1100).await;
    admin.screenshot("admin-users-desktop").await;
    admin.resize(390, 1700).await;
    admin.screenshot("admin-users-phone").await;
    admin.resize(1280, 900).await;
    admin.click_link_containing("Disable dev@example.com").await;
    admin.wait_for_text("h1", "Disable: dev@example.com?").await;
    admin.click("button.danger").await;
    admin.wait_for_text(".notice", "Account disabled").await;
    laptop
        .goto(&format!("{}/settings/sessions", server.address))
        .await;
    laptop.wait_for_text("h1", "Sign in").await;
    for b in [laptop, phone, admin] {
        b.close().await;
    }
}

/// A server whose sign-in page offers "Sign in with Corp SSO", a real
/// OpenID provider (`oidc-provider`) where `dev` is dev@example.com.
async fn server_with_provider() -> (
    TestServer,
    envshield_server::testing::oidc::OidcTestProvider,
) {
    use envshield_server::testing::oidc::OidcTestProvider;
    use std::sync::{Arc, Mutex};
    let slot: Arc<Mutex<Option<OidcTestProvider>>> = Arc::default();
    let keep = slot.clone();
    let server = tokio::task::spawn_blocking(move || {
        TestServer::spawn(move |c| {
            let callback = format!("{}/auth/oidc/corp/callback", c.app_base());
            let provider = OidcTestProvider::start(json!({
                "clients": [{ "client_id": "envshield", "client_secret": "e2e-secret", "redirect_uris": [callback] }],
                "accounts": { "dev": { "email": "dev@example.com", "email_verified": true } },
            }))
            .expect("the OpenID provider starts");
            c.oidc_providers = vec![envshield_server::config::OidcProvider {
                id: "corp".into(),
                name: "Corp SSO".into(),
                issuer: provider.issuer.clone(),
                client_id: "envshield".into(),
                client_secret: Some(SecretString::from("e2e-secret")),
                scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
                allowed_domains: vec!["example.com".into()],
                admin_groups: Vec::new(),
                groups_claim: "groups".into(),
                create_accounts: false,
            }];
            *keep.lock().unwrap() = Some(provider);
        })
    })
    .await
    .unwrap()
    .expect("test server starts");
    let provider = slot.lock().unwrap().take().unwrap();
    (server, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_provider_then_approve_and_the_cli_gets_the_token() {
    let (server, _provider) = server_with_provider().await;
    create_user(&server, "dev@example.com", false).await;
    let b = Browser::open().await;
    let started = start(&server, "sso laptop").await;

    // Signed out, the verification link lands on the sign-in page.
    b.goto(&started.verification_url).await;
    assert!(b.current_url().await.contains("/login?redirect="));
    b.wait_for_text("a.sso-button", "Sign in with Corp SSO")
        .await;
    b.resize(1280, 900).await;
    b.screenshot("login-sso-desktop").await;
    b.resize(390, 900).await;
    b.screenshot("login-sso-phone").await;
    b.resize(1280, 900).await;

    // The provider's own sign-in and consent forms.
    b.click("a.sso-button").await;
    b.fill("input[name=login]", "dev").await;
    b.fill("input[name=password]", "any password").await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("body", "Continue").await;
    b.click("form button[type=submit]").await;

    // Back on the CLI's request, signed in through the provider.
    b.wait_for_text("h1", "CLI login request").await;
    assert!(b.current_url().await.contains("/cli/login?code="));
    assert_eq!(b.text(".user-code").await, started.user_code);
    assert!(b.text("main").await.contains("dev@example.com"));
    b.click("button[value=approve]").await;
    b.wait_for_text("h1", "CLI login approved. You can return to your terminal.")
        .await;
    collect(&server, &started.device_code).await;
    b.close().await;
}

/// A server at `http://localhost:PORT` (WebAuthn needs a host name, and
/// Chromium counts localhost as a secure context), asking a step-up for
/// high-risk approvals.
async fn passkey_server() -> TestServer {
    tokio::task::spawn_blocking(|| {
        TestServer::spawn(|c| {
            c.app_url.set_host(Some("localhost")).unwrap();
            c.approval_step_up = envshield_server::config::ApprovalStepUp::HighRisk;
        })
    })
    .await
    .unwrap()
    .expect("test server starts")
}

async fn count(server: &TestServer, condition: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let url = server.db.url.clone();
    let sql = format!("SELECT count(*) AS n FROM security_events WHERE {condition}");
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        diesel::sql_query(sql).get_result::<N>(&mut conn).unwrap().n
    })
    .await
    .unwrap()
}

/// A tool's loopback callback: answers every request with a short page.
async fn loopback_callback() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let body = "callback received";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (format!("http://127.0.0.1:{port}/callback"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_a_passkey_sign_in_with_it_and_approve_a_high_risk_login_with_it() {
    let server = passkey_server().await;
    let base = server.config.app_base();
    assert!(base.starts_with("http://localhost:"), "{base}");
    create_user(&server, "dev@example.com", false).await;
    let b = Browser::open().await;
    let authenticator = b.add_virtual_authenticator().await;

    // Signed in with the password, add a passkey in the settings.
    b.goto(&format!("{base}/login?redirect=/settings/passkeys"))
        .await;
    b.fill("#email", "dev@example.com").await;
    b.fill("#password", PASSWORD).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.wait_for_text("h1", "Passkeys").await;
    b.fill("#passkey-name", "Work laptop").await;
    // The session alone adds no passkey: the form asks for the password.
    b.fill("#passkey-password", "not my password").await;
    b.click("#passkey-add button[type=submit]").await;
    b.wait_for_text("#passkey-error", "That is not your current password")
        .await;
    assert!(b.credentials(&authenticator).await.is_empty());
    b.fill("#passkey-password", PASSWORD).await;
    b.click("#passkey-add button[type=submit]").await;
    b.wait_for_text(".notice", "Passkey added").await;
    assert!(b.text("main").await.contains("Work laptop"));
    assert_eq!(count(&server, "kind = 'passkey_added'").await, 1);
    assert_eq!(
        count(
            &server,
            "kind = 'login_failed' AND details->>'during' = 'add_passkey'"
        )
        .await,
        1
    );
    assert_eq!(
        b.credentials(&authenticator).await.len(),
        1,
        "a discoverable credential"
    );
    b.resize(1280, 1000).await;
    b.screenshot("passkeys-desktop").await;
    b.resize(390, 1300).await;
    b.screenshot("passkeys-phone").await;
    b.resize(1280, 900).await;
    b.click("form[action='/logout'] button").await;
    b.wait_for_text("h1", "Sign in").await;

    // The CLI asks for a high-risk scope; the link lands on the sign-in
    // page, where the passkey signs in without an email typed.
    let started: StartDeviceResponse = reqwest::Client::new()
        .post(format!("{}/cli/auth/device/start", server.api_url()))
        .json(&json!({ "tokenName": "deploy box", "scopes": ["envs:read", "envs:write"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started.verification_url.starts_with(&base));
    b.goto(&started.verification_url).await;
    assert!(b.current_url().await.contains("/login?redirect="));
    b.click("#passkey-sign-in").await;
    b.wait_for_text("h1", "CLI login request").await;
    assert!(b.current_url().await.contains("/cli/login?code="));
    assert!(b.text("main").await.contains("dev@example.com"));
    assert_eq!(count(&server, "kind = 'passkey_sign_in'").await, 1);

    // The approval asks for the passkey again, and says why.
    b.wait_for_text(".step-up", "It asks for envs:write, a high-risk scope.")
        .await;
    let step_up = b.text(".step-up").await;
    assert!(step_up.contains("Confirm it is you"), "{step_up}");
    assert!(step_up.contains("longer than 90 days"), "{step_up}");
    b.resize(1280, 1400).await;
    b.screenshot("step-up-desktop").await;
    b.resize(390, 1800).await;
    b.screenshot("step-up-phone").await;
    b.resize(1280, 900).await;
    b.click("button[value=approve]").await;
    b.wait_for_text("h1", "CLI login approved. You can return to your terminal.")
        .await;
    assert_eq!(
        count(
            &server,
            "kind = 'step_up_passed' AND details->>'method' = 'passkey'"
        )
        .await,
        1
    );
    let (_, _, scopes) = collect(&server, &started.device_code).await;
    assert_eq!(scopes, ["envs:read", "envs:write"]);

    // The same-machine login's consent page asks for the passkey the same
    // way; the code comes back to the tool's loopback callback.
    let (redirect_uri, callback) = loopback_callback().await;
    let verifier = "a-verifier-for-the-consent-step-up-0123456789abcdef";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "envshield-cli"),
            ("redirect_uri", redirect_uri.as_str()),
            ("state", "e2e"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "envs:read envs:write"),
        ])
        .finish();
    b.goto(&format!("{base}/oauth/authorize?{query}")).await;
    b.wait_for_text(".step-up", "It asks for envs:write, a high-risk scope.")
        .await;
    b.click("button[value=approve]").await;
    b.wait_for_text("body", "callback received").await;
    let back = url::Url::parse(&b.current_url().await).unwrap();
    assert!(back.as_str().starts_with(&redirect_uri), "{back}");
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code at the callback");
    callback.abort();
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", "envshield-cli"),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["scope"], "envs:read envs:write", "{token}");
    assert_eq!(
        count(
            &server,
            "kind = 'step_up_passed' AND details->>'method' = 'passkey' AND details ? 'authorization_request'"
        )
        .await,
        1
    );

    // A clone of the authenticator from before those sign-ins (its
    // signature counter behind the server's) is refused.
    let mut credentials = b.credentials(&authenticator).await;
    assert!(
        credentials[0]["signCount"].as_u64().unwrap() >= 2,
        "{credentials:?}"
    );
    credentials[0]["signCount"] = json!(0);
    b.replace_credentials(&authenticator, &credentials).await;
    b.goto(&format!("{base}/settings/passkeys")).await;
    b.click("form[action='/logout'] button").await;
    b.wait_for_text("h1", "Sign in").await;
    b.click("#passkey-sign-in").await;
    b.wait_for_text("#passkey-error", "That passkey was not accepted")
        .await;
    assert_eq!(
        count(
            &server,
            "kind = 'login_failed' AND details->>'reason' = 'counter_regression'"
        )
        .await,
        1
    );
    b.close().await;
}
