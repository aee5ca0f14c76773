//! Single sign-on through a real OpenID provider (`oidc-provider` from npm,
//! run by Node.js), driven through its own login and consent forms.

use std::sync::{Arc, Mutex};

use envshield_server::config::{Config, OidcProvider};
use envshield_server::testing::oidc::OidcTestProvider;
use reqwest::header::LOCATION;
use reqwest::Client;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{browser, csrf_from, get_text, spawn_app_with, TestApp, PASSWORD};
use crate::pages_support::{self, approve_via_form};

const CLIENT_ID: &str = "envshield";
const OTHER_CLIENT_ID: &str = "other-app";

struct Sso {
    app: TestApp,
    provider: OidcTestProvider,
}

/// An app with one provider, `corp`, whose people are `accounts`
/// (`{"login": {"email": …, "email_verified": …, "groups": […]}}`);
/// `tweak` adjusts the configuration after the provider is set.
async fn sso_app(
    accounts: Value,
    misbehave: Value,
    tweak: impl FnOnce(&mut Config) + Send + 'static,
) -> Sso {
    let slot: Arc<Mutex<Option<OidcTestProvider>>> = Arc::default();
    let keep = slot.clone();
    let app = spawn_app_with(move |c| {
        let callback = format!("{}/auth/oidc/corp/callback", c.app_base());
        let provider = OidcTestProvider::start(json!({
            "clients": [
                { "client_id": CLIENT_ID, "client_secret": "envshield-test-secret", "redirect_uris": [callback] },
                { "client_id": OTHER_CLIENT_ID, "client_secret": "other-secret", "redirect_uris": ["http://127.0.0.1:9/other/callback"] },
            ],
            "accounts": accounts,
            "misbehave": misbehave,
        }))
        .expect("the OpenID provider starts");
        c.oidc_providers = vec![corp(&provider.issuer)];
        *keep.lock().unwrap() = Some(provider);
        tweak(c);
    })
    .await;
    let provider = slot.lock().unwrap().take().unwrap();
    Sso { app, provider }
}

pub(crate) fn corp(issuer: &str) -> OidcProvider {
    OidcProvider {
        id: "corp".into(),
        name: "Corp SSO".into(),
        issuer: issuer.to_owned(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(SecretString::from("envshield-test-secret")),
        scopes: ["openid", "email", "profile", "groups"]
            .map(String::from)
            .to_vec(),
        allowed_domains: Vec::new(),
        admin_groups: Vec::new(),
        groups_claim: "groups".into(),
        create_accounts: false,
    }
}

fn person(email: &str, verified: bool) -> Value {
    json!({ "email": email, "email_verified": verified, "name": "Test Person" })
}

fn form_value<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(&html[start..end])
}

/// Follows EnvShield's start link through the provider's own login and
/// consent forms as `login`; returns the callback URL the provider sends
/// the browser back to (not yet followed).
async fn through_provider(sso: &Sso, browser: &Client, start: &str, login: &str) -> String {
    let start = url::Url::parse(&sso.app.url(start)).unwrap();
    provider_round_trip(browser, start, login).await
}

/// [`through_provider`] from a whole `start` URL (a server whose `APP_URL`
/// is not the address tests reach it at).
pub(crate) async fn provider_round_trip(browser: &Client, start: url::Url, login: &str) -> String {
    let mut url = start;
    let mut response = browser.get(url.clone()).send().await.unwrap();
    for _ in 0..20 {
        if response.status().is_redirection() {
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            url = url.join(&location).unwrap();
            if url.path() == "/auth/oidc/corp/callback" {
                return url.to_string();
            }
            response = browser.get(url.clone()).send().await.unwrap();
            continue;
        }
        assert_eq!(response.status(), 200, "at {url}");
        let html = response.text().await.unwrap();
        let action = form_value(&html, "action=\"").expect("a provider form");
        let action = url.join(&action.replace("&amp;", "&")).unwrap();
        let prompt = form_value(&html, "name=\"prompt\" value=\"").expect("a prompt");
        let fields: Vec<(&str, &str)> = match prompt {
            "login" => vec![
                ("prompt", "login"),
                ("login", login),
                ("password", "anything"),
            ],
            "consent" => vec![("prompt", "consent")],
            other => panic!("unexpected provider prompt {other}"),
        };
        url = action.clone();
        response = browser.post(action).form(&fields).send().await.unwrap();
    }
    panic!("the provider never sent the browser back");
}

/// A whole sign-in as `login`; the answer to the callback.
async fn sign_in_as(sso: &Sso, browser: &Client, start: &str, login: &str) -> reqwest::Response {
    let callback = through_provider(sso, browser, start, login).await;
    browser.get(callback).send().await.unwrap()
}

async fn is_signed_in(app: &TestApp, browser: &Client) -> bool {
    let r = browser
        .get(app.url("/settings/tokens"))
        .send()
        .await
        .unwrap();
    r.status() == 200
}

async fn refusals(app: &TestApp, reason: &str) -> i64 {
    app.count(
        "security_events",
        &format!("kind = 'sso_refused' AND details->>'reason' = '{reason}'"),
    )
    .await
}

async fn set_accounts(sso: &Sso, accounts: Value) {
    let r = Client::new()
        .put(format!("{}/__test/accounts", sso.provider.issuer))
        .body(accounts.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn sso_links_by_verified_email_and_comes_back_to_the_cli_request() {
    let sso = sso_app(
        json!({ "alice": person("Alice@Example.com", true) }),
        Value::Null,
        |_| {},
    )
    .await;
    let app = &sso.app;
    let user = app.create_user("alice@example.com", false).await;
    let started = app.start_ok().await;
    let back_to = format!("/cli/login?code={}", started.user_code);
    let b = browser();

    // The sign-in page offers the provider, carrying the redirect.
    let page = get_text(
        &b,
        app.url(&format!(
            "/login?redirect=/cli/login%3Fcode%3D{}",
            started.user_code
        )),
    )
    .await;
    assert!(page.contains("Sign in with Corp SSO"), "{page}");
    let start = form_value(&page, "class=\"button sso-button\" href=\"")
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        start.starts_with("/auth/oidc/corp/start?redirect="),
        "{start}"
    );

    // The provider is asked for a code with PKCE S256, a state and a nonce.
    let to_provider = b.get(app.url(&start)).send().await.unwrap();
    assert_eq!(to_provider.status(), 303);
    let auth = url::Url::parse(to_provider.headers()[LOCATION].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = auth.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16);
    assert_eq!(q["redirect_uri"], app.url("/auth/oidc/corp/callback"));

    let r = sign_in_as(&sso, &b, &start, "alice").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], back_to.as_str());
    assert!(is_signed_in(app, &b).await);

    // Approve the CLI's request as the linked account: the CLI gets a token.
    let decided = approve_via_form(app, &b, &started.user_code).await;
    assert_eq!(decided.status, 200, "{}", decided.html);
    let polled: Value = app.poll(&started.device_code).await.json().await.unwrap();
    assert_eq!(polled["status"], "approved", "{polled}");
    let me: Value = app
        .whoami(polled["token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], user.id.to_string());

    // One link, recorded; a second sign-in reuses it.
    let link = format!("user_id = '{}' AND provider = 'corp'", user.id);
    assert_eq!(app.count("user_identities", &link).await, 1);
    assert_eq!(app.count("security_events", "kind = 'sso_link'").await, 1);
    let again = browser();
    let r = sign_in_as(&sso, &again, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.headers()[LOCATION], "/");
    assert_eq!(app.count("user_identities", &link).await, 1);
    assert_eq!(app.count("security_events", "kind = 'sso_link'").await, 1);
    assert_eq!(
        app.count("security_events", "kind = 'sso_sign_in'").await,
        2
    );
    assert_eq!(
        app.count("user_identities", "last_sign_in_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn sso_creates_an_account_on_first_sign_in_only_when_allowed() {
    let accounts = json!({ "newbie": person("newbie@example.com", true) });
    let sso = sso_app(accounts.clone(), Value::Null, |c| {
        c.oidc_providers[0].create_accounts = true;
    })
    .await;
    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "newbie").await;
    assert_eq!(r.status(), 303);
    assert!(is_signed_in(&sso.app, &b).await);
    let app = &sso.app;
    assert_eq!(
        app.scalar("SELECT role FROM users WHERE email = 'newbie@example.com'")
            .await,
        "user"
    );
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'account_created' AND details->>'by' = 'sso:corp'"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("users", "email = 'newbie@example.com' AND email_verified")
            .await,
        1,
        "the provider vouched for the email"
    );
    // The account has no usable password.
    let r = app
        .sign_in(&browser(), "newbie@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), 401);

    // Without createAccounts, an unknown person is refused.
    let closed = sso_app(accounts, Value::Null, |_| {}).await;
    let b = browser();
    let r = sign_in_as(&closed, &b, "/auth/oidc/corp/start", "newbie").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("no EnvShield account"));
    assert!(!is_signed_in(&closed.app, &b).await);
    assert_eq!(refusals(&closed.app, "no_account").await, 1);
    assert_eq!(closed.app.count("users", "true").await, 0);
}

#[tokio::test]
async fn sso_refuses_a_wrong_domain_an_unverified_email_and_a_disabled_account() {
    let sso = sso_app(
        json!({
            "outsider": person("mallory@elsewhere.test", true),
            "unverified": person("victim@example.com", false),
            "disabled": person("gone@example.com", true),
        }),
        Value::Null,
        |c| {
            c.oidc_providers[0].allowed_domains = vec!["example.com".into()];
            c.oidc_providers[0].create_accounts = true;
        },
    )
    .await;
    let app = &sso.app;
    app.create_user("mallory@elsewhere.test", false).await;
    app.create_user("victim@example.com", false).await;
    let gone = app.create_user("gone@example.com", false).await;
    app.sql(&format!(
        "UPDATE users SET disabled_at = now() WHERE id = '{}'",
        gone.id
    ))
    .await;

    for (login, reason, text) in [
        ("outsider", "domain_not_allowed", "not on a domain allowed"),
        ("unverified", "email_unverified", "not verified your email"),
        ("disabled", "account_disabled", "account is disabled"),
    ] {
        let b = browser();
        let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", login).await;
        assert_eq!(r.status(), 403, "{login}");
        assert!(r.text().await.unwrap().contains(text), "{login}");
        assert!(!is_signed_in(app, &b).await, "{login}");
        assert_eq!(refusals(app, reason).await, 1, "{login}");
    }
    assert_eq!(app.count("user_identities", "true").await, 0);
    assert_eq!(app.count("users", "true").await, 3, "nothing created");
}

/// Signs `browser` up through the sign-up form as `email`.
async fn sign_up(app: &TestApp, browser: &Client, email: &str) {
    let page = get_text(browser, app.url("/signup")).await;
    let r = browser
        .post(app.url("/signup"))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf_token", &csrf_from(&page)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed up");
}

#[tokio::test]
async fn sso_does_not_link_an_account_whose_email_was_only_typed_at_sign_up() {
    let alice = json!({ "alice": {
        "email": "alice@corp.com", "email_verified": true, "groups": ["envshield-admins"]
    }});
    let sso = sso_app(alice, Value::Null, |c| {
        c.allow_signup = true;
        c.oidc_providers[0].admin_groups = vec!["envshield-admins".into()];
        c.oidc_providers[0].create_accounts = true;
    })
    .await;
    let app = &sso.app;
    // Someone who is not Alice signs up with her address; nobody checks it.
    let squatter = browser();
    sign_up(app, &squatter, "alice@corp.com").await;

    // The real Alice signs in through her provider: refused, not linked.
    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("never verified"), "{html}");
    assert!(html.contains("ask an administrator"), "{html}");
    assert!(!is_signed_in(app, &b).await);
    assert_eq!(refusals(app, "account_email_unverified").await, 1);
    assert_eq!(app.count("user_identities", "true").await, 0);
    assert_eq!(app.count("security_events", "kind = 'sso_link'").await, 0);
    assert_eq!(
        app.scalar("SELECT role FROM users WHERE email = 'alice@corp.com'")
            .await,
        "user"
    );
    assert_eq!(app.count("users", "true").await, 1, "nothing created");
    // The squatter keeps only what signing up gave: an unverified account.
    assert_eq!(
        app.count("users", "email = 'alice@corp.com' AND NOT email_verified")
            .await,
        1
    );
}

#[tokio::test]
async fn sso_links_an_account_an_admin_created_on_the_admin_page() {
    let sso = sso_app(
        json!({ "bob": person("bob@corp.com", true) }),
        Value::Null,
        |c| c.allow_signup = true,
    )
    .await;
    let app = &sso.app;
    let (_, admin) = app.signed_in_browser("admin@corp.com", true).await;
    let list = pages_support::get(&admin, app, "/admin/users").await;
    let created = pages_support::post(
        &admin,
        app,
        "/admin/users",
        &[
            ("csrf_token", &list.csrf()),
            ("email", "bob@corp.com"),
            ("role", "user"),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.html);

    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "bob").await;
    assert_eq!(r.status(), 303);
    assert!(is_signed_in(app, &b).await);
    let bob = app
        .scalar("SELECT id::text FROM users WHERE email = 'bob@corp.com'")
        .await;
    let link = format!("user_id = '{bob}' AND provider = 'corp'");
    assert_eq!(app.count("user_identities", &link).await, 1);
    assert_eq!(app.count("security_events", "kind = 'sso_link'").await, 1);
}

#[tokio::test]
async fn sso_refuses_a_forged_state_and_a_replayed_callback() {
    let sso = sso_app(
        json!({ "alice": person("alice@example.com", true) }),
        Value::Null,
        |_| {},
    )
    .await;
    let app = &sso.app;
    app.create_user("alice@example.com", false).await;

    // A callback whose state is not the one this browser sent.
    let b = browser();
    let callback = through_provider(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged-state-value".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let r = b.get(forged).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Start again"));
    assert!(!is_signed_in(app, &b).await);
    assert_eq!(refusals(app, "state_mismatch").await, 1);

    // A callback that worked once does not work again, in the same browser
    // or another (someone who saw the URL).
    let b = browser();
    let callback = through_provider(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(b.get(&callback).send().await.unwrap().status(), 303);
    let replay = b.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    let thief = browser();
    assert_eq!(thief.get(&callback).send().await.unwrap().status(), 400);
    assert!(!is_signed_in(app, &thief).await);
    assert_eq!(refusals(app, "no_pending_sign_in").await, 2);
    assert_eq!(
        app.count("security_events", "kind = 'sso_sign_in'").await,
        1
    );
}

#[tokio::test]
async fn sso_refuses_an_id_token_with_another_nonce() {
    let sso = sso_app(
        json!({ "alice": person("alice@example.com", true) }),
        json!("wrong_nonce"),
        |_| {},
    )
    .await;
    sso.app.create_user("alice@example.com", false).await;
    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("could not be verified"));
    assert!(!is_signed_in(&sso.app, &b).await);
    assert_eq!(refusals(&sso.app, "nonce_mismatch").await, 1);
}

#[tokio::test]
async fn sso_refuses_an_id_token_issued_to_another_client() {
    let sso = sso_app(
        json!({ "alice": person("alice@example.com", true) }),
        json!({ "audience": OTHER_CLIENT_ID }),
        |_| {},
    )
    .await;
    sso.app.create_user("alice@example.com", false).await;
    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 401);
    assert!(!is_signed_in(&sso.app, &b).await);
    assert_eq!(refusals(&sso.app, "wrong_audience").await, 1);
}

#[tokio::test]
async fn sso_with_the_provider_down_answers_a_clear_page_not_a_500() {
    let mut sso = sso_app(json!({}), Value::Null, |c| {
        c.metrics_bind_addr = Some("127.0.0.1:0".to_owned());
    })
    .await;
    sso.provider.stop();
    let app = &sso.app;
    // The sign-in page does not depend on the provider.
    let page = browser().get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let r = browser()
        .get(app.url("/auth/oidc/corp/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("Corp SSO could not be reached"), "{html}");
    assert!(html.contains("Try again"), "{html}");
    assert_eq!(refusals(app, "provider_unreachable").await, 1);
    let port = app.server.metrics_port.unwrap();
    let metrics = get_text(&app.cli, format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(
        metrics.contains("envshield_sso_refused_total{reason=\"provider_unreachable\"}"),
        "{metrics}"
    );
    // An unknown provider is a 404 page.
    let r = browser()
        .get(app.url("/auth/oidc/nope/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn sso_picks_up_a_rotated_signing_key_but_refetches_keys_at_most_once_a_minute() {
    let mut sso = sso_app(
        json!({ "alice": person("alice@example.com", true) }),
        Value::Null,
        |_| {},
    )
    .await;
    sso.app.create_user("alice@example.com", false).await;
    let r = sign_in_as(&sso, &browser(), "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 303);

    // The provider restarts with a new key: the cached keys lack it, so
    // they are fetched again and the sign-in succeeds.
    sso.provider.restart().unwrap();
    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 303);
    assert!(is_signed_in(&sso.app, &b).await);

    // Another new key within the minute: no refetch, the token is refused.
    sso.provider.restart().unwrap();
    let b = browser();
    let r = sign_in_as(&sso, &b, "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 401);
    assert_eq!(refusals(&sso.app, "bad_signature").await, 1);
}

#[tokio::test]
async fn sso_only_servers_refuse_passwords_with_a_clear_message() {
    let sso = sso_app(json!({}), Value::Null, |c| {
        c.password_login = false;
        c.allow_signup = true;
    })
    .await;
    let app = &sso.app;
    app.create_user("admin@example.com", true).await;
    let b = browser();
    let page = get_text(&b, app.url("/login")).await;
    assert!(page.contains("Sign in with Corp SSO"));
    assert!(!page.contains("type=\"password\""), "{page}");
    // No form on the page, so no CSRF token: the refusal comes first anyway.
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("email", "admin@example.com"),
            ("password", PASSWORD),
            ("csrf_token", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Password sign-in is turned off"));
    assert!(!is_signed_in(app, &b).await);
    assert_eq!(
        app.count("security_events", "kind = 'login_succeeded'")
            .await,
        0
    );
    assert_eq!(
        b.get(app.url("/signup")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn sso_makes_admins_from_groups_on_every_sign_in_but_keeps_the_last_admin() {
    let admins = json!({ "alice": {
        "email": "alice@example.com", "email_verified": true, "groups": ["staff", "envshield-admins"]
    }});
    let sso = sso_app(admins, Value::Null, |c| {
        c.oidc_providers[0].admin_groups = vec!["envshield-admins".into()];
        c.oidc_providers[0].create_accounts = true;
    })
    .await;
    let app = &sso.app;
    let role = "SELECT role FROM users WHERE email = 'alice@example.com'";
    let r = sign_in_as(&sso, &browser(), "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.scalar(role).await, "admin");

    // Out of the group while the only admin: kept, so someone can still
    // administer the server.
    let staff = json!({ "alice": {
        "email": "alice@example.com", "email_verified": true, "groups": ["staff"]
    }});
    set_accounts(&sso, staff).await;
    let r = sign_in_as(&sso, &browser(), "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.scalar(role).await, "admin");

    // With another admin, the next sign-in demotes.
    app.create_user("other-admin@example.com", true).await;
    let r = sign_in_as(&sso, &browser(), "/auth/oidc/corp/start", "alice").await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.scalar(role).await, "user");
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'role_changed' AND details->>'by' = 'sso:corp' AND details->>'to' = 'user'"
        )
        .await,
        1
    );
}
