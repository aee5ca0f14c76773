//! The OAuth 2.0 surface: discovery, device authorization, token (device
//! code and refresh), revocation, introspection, and paste-back mode.

use envshield_server::config::TokenPolicy;
use envshield_server::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{get_json, spawn_app, spawn_app_with, TestApp};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn form(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = app
        .cli
        .post(app.url(path))
        .form(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

async fn authorize(app: &TestApp, scope: Option<&str>) -> Value {
    let mut params = vec![("client_id", "envshield-cli")];
    if let Some(s) = scope {
        params.push(("scope", s));
    }
    let (status, body, headers) = form(app, "/oauth/device_authorization", &params).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    body
}

async fn token(app: &TestApp, device_code: &str) -> (u16, Value) {
    let (status, body, headers) = form(
        app,
        "/oauth/token",
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", "envshield-cli"),
        ],
    )
    .await;
    assert_eq!(headers["cache-control"], "no-store", "{body}");
    (status, body)
}

async fn approve_code(app: &TestApp, browser: &reqwest::Client, user_code: &str) {
    let r = app.approve(browser, user_code).await;
    assert_eq!(r.status(), 200);
}

fn refresh_clients(c: &mut envshield_server::config::Config) {
    c.clients[0].token_policy = TokenPolicy::AccessRefresh;
}

/// Refresh tokens with no grace window: any second use is reuse.
fn refresh_clients_without_grace(c: &mut envshield_server::config::Config) {
    refresh_clients(c);
    c.refresh_reuse_grace = std::time::Duration::ZERO;
}

#[tokio::test]
async fn discovery_names_every_endpoint() {
    let app = spawn_app().await;
    let d: Value = get_json(&app.cli, app.url("/.well-known/oauth-authorization-server")).await;
    let base = &app.server.address;
    assert_eq!(d["issuer"], *base);
    assert_eq!(
        d["device_authorization_endpoint"],
        format!("{base}/oauth/device_authorization")
    );
    assert_eq!(d["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(d["revocation_endpoint"], format!("{base}/oauth/revoke"));
    assert_eq!(
        d["introspection_endpoint"],
        format!("{base}/oauth/introspect")
    );
    assert_eq!(
        d["grant_types_supported"],
        json!([DEVICE_GRANT, "authorization_code", "refresh_token"])
    );
    assert!(d["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("envs:read")));
    assert_eq!(d["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert!(d["response_types_supported"].is_array());
}

#[tokio::test]
async fn device_authorization_answers_rfc_8628_fields_and_errors() {
    let app = spawn_app().await;
    let body = authorize(&app, Some("envs:read tokens:read")).await;
    let base = &app.server.address;
    assert_eq!(body["verification_uri"], format!("{base}/cli/device"));
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(
        body["verification_uri_complete"],
        format!("{base}/cli/login?code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    assert_eq!(body["device_code"].as_str().unwrap().len(), 43);
    assert_eq!(
        app.count(
            "cli_device_sessions",
            "client_id = 'envshield-cli' AND scopes = '{envs:read,tokens:read}'"
        )
        .await,
        1
    );

    for (params, status, error) in [
        (vec![], 400, "invalid_request"),
        (vec![("client_id", "nobody")], 401, "invalid_client"),
        (
            vec![("client_id", "envshield-cli"), ("scope", "root")],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("client_id", "envshield-cli"),
                ("client_id", "envshield-cli"),
            ],
            400,
            "invalid_request",
        ),
    ] {
        let (s, b, _) = form(&app, "/oauth/device_authorization", &params).await;
        assert_eq!(
            (s, b["error"].as_str().unwrap()),
            (status, error),
            "{params:?}"
        );
        assert!(b["error_description"].is_string());
    }
    let r = app
        .cli
        .post(app.url("/oauth/device_authorization"))
        .json(&json!({"client_id": "envshield-cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "JSON is not a form");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn token_endpoint_walks_every_device_code_state() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let auth = authorize(&app, None).await;
    let code = auth["device_code"].as_str().unwrap();

    let (s, body) = token(&app, code).await;
    assert_eq!(
        (s, body["error"].as_str().unwrap()),
        (400, "authorization_pending")
    );
    let (s, body) = token(&app, code).await;
    assert_eq!((s, body["error"].as_str().unwrap()), (400, "slow_down"));
    // The interval grew for this code, and reaches the database.
    app.count_settles("cli_device_sessions", "poll_interval_sec = 10", 1)
        .await;

    approve_code(&app, &b, auth["user_code"].as_str().unwrap()).await;
    let (s, body) = token(&app, code).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!(
        (3500..=3600).contains(&expires_in),
        "OAuth clients get short access tokens: {expires_in}"
    );
    assert_eq!(
        body["scope"],
        "envs:read envs:write tokens:read tokens:write"
    );
    assert!(body["refresh_token"].as_str().unwrap().starts_with("eshr_"));
    assert_eq!(
        app.whoami(body["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let (s, body) = token(&app, code).await;
    assert_eq!(
        (s, body["error"].as_str().unwrap()),
        (400, "expired_token"),
        "used once"
    );

    // Denied and expired.
    let denied = authorize(&app, None).await;
    app.complete(
        &b,
        json!({ "userCode": denied["user_code"], "decision": "deny" }),
    )
    .await;
    let (s, body) = token(&app, denied["device_code"].as_str().unwrap()).await;
    assert_eq!((s, body["error"].as_str().unwrap()), (400, "access_denied"));
    let expired = authorize(&app, None).await;
    app.sql("UPDATE cli_device_sessions SET expires_at = now() - interval '1 second' WHERE status = 'PENDING'").await;
    let (s, body) = token(&app, expired["device_code"].as_str().unwrap()).await;
    assert_eq!((s, body["error"].as_str().unwrap()), (400, "expired_token"));
}

#[tokio::test]
async fn token_endpoint_request_errors() {
    let app = spawn_app().await;
    let auth = authorize(&app, None).await;
    let code = auth["device_code"].as_str().unwrap();
    for (params, status, error) in [
        (
            vec![("device_code", code), ("client_id", "envshield-cli")],
            400,
            "invalid_request",
        ),
        (
            vec![("grant_type", "password"), ("client_id", "envshield-cli")],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", DEVICE_GRANT), ("client_id", "envshield-cli")],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", DEVICE_GRANT),
                ("device_code", "nope"),
                ("client_id", "envshield-cli"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", DEVICE_GRANT),
                ("device_code", &"A".repeat(43)),
                ("client_id", "envshield-cli"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![("grant_type", DEVICE_GRANT), ("device_code", code)],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", DEVICE_GRANT),
                ("device_code", code),
                ("client_id", "nobody"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "eshr_nope"),
                ("client_id", "envshield-cli"),
            ],
            400,
            "invalid_grant",
        ),
    ] {
        let (s, b, h) = form(&app, "/oauth/token", &params).await;
        assert_eq!(
            (s, b["error"].as_str().unwrap_or("")),
            (status, error),
            "{params:?}: {b}"
        );
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["pragma"], "no-cache");
    }
    let r = app
        .cli
        .post(app.url("/oauth/token"))
        .body("grant_type=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no content type");
}

#[tokio::test]
async fn finding_1_a_paste_policy_holds_on_the_oauth_endpoints() {
    let app = spawn_app_with(|c| {
        c.device_confirmation = envshield_api_types::ConfirmationMode::Paste;
        for (id, confirmation) in [
            ("third-party", None),
            (
                "trusted-kiosk",
                Some(envshield_api_types::ConfirmationMode::Poll),
            ),
        ] {
            c.clients.push(envshield_server::config::OAuthClient {
                client_id: id.to_owned(),
                grants: vec![DEVICE_GRANT.to_owned()],
                scopes: vec!["envs:read".to_owned()],
                token_policy: TokenPolicy::ApiToken,
                confirmation,
                require_dpop: false,
            });
        }
    })
    .await;
    // A client that cannot type a code back is refused up front.
    let (s, b, _) = form(
        &app,
        "/oauth/device_authorization",
        &[("client_id", "third-party")],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unauthorized_client")));
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("DEVICE_CONFIRMATION=paste"),
        "{b}"
    );
    // The CLI's own client can paste: approval alone releases nothing.
    let (_, browser) = app.signed_in_browser("dev@example.com", false).await;
    let auth = authorize(&app, None).await;
    approve_code(&app, &browser, auth["user_code"].as_str().unwrap()).await;
    let (s, b) = token(&app, auth["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    assert!(b.get("access_token").is_none());
    // An operator may exempt a client by name.
    let (s, _, _) = form(
        &app,
        "/oauth/device_authorization",
        &[("client_id", "trusted-kiosk")],
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_device_code_only_works_for_its_own_client() {
    let app = spawn_app_with(|c| {
        c.clients.push(envshield_server::config::OAuthClient {
            client_id: "other-tool".to_owned(),
            grants: vec![DEVICE_GRANT.to_owned()],
            scopes: vec!["envs:read".to_owned()],
            token_policy: TokenPolicy::ApiToken,
            confirmation: None,
            require_dpop: false,
        })
    })
    .await;
    let auth = authorize(&app, None).await;
    let (s, b, _) = form(
        &app,
        "/oauth/token",
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", auth["device_code"].as_str().unwrap()),
            ("client_id", "other-tool"),
        ],
    )
    .await;
    assert_eq!((s, b["error"].as_str().unwrap()), (400, "invalid_grant"));
    let (s, b, _) = form(
        &app,
        "/oauth/device_authorization",
        &[("client_id", "other-tool"), ("scope", "tokens:read")],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str().unwrap()),
        (400, "invalid_scope"),
        "outside the client's scopes"
    );
    let (s, b, _) = form(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "other-tool"),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str().unwrap()),
        (400, "unauthorized_client")
    );
}

/// A device login over OAuth for a refresh client; returns the token body.
async fn refresh_login(app: &TestApp, browser: &reqwest::Client) -> Value {
    let auth = authorize(app, None).await;
    approve_code(app, browser, auth["user_code"].as_str().unwrap()).await;
    let (s, body) = token(app, auth["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn refresh(app: &TestApp, refresh_token: &str, scope: Option<&str>) -> (u16, Value) {
    let mut params = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "envshield-cli"),
    ];
    if let Some(s) = scope {
        params.push(("scope", s));
    }
    let (s, b, _) = form(app, "/oauth/token", &params).await;
    (s, b)
}

#[tokio::test]
async fn finding_7_a_refresh_applies_the_current_role_rules() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let auth = authorize(&app, Some("tokens:introspect")).await;
    approve_code(&app, &admin, auth["user_code"].as_str().unwrap()).await;
    let (s, login) = token(&app, auth["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{login}");
    app.sql("UPDATE users SET role = 'user' WHERE email = 'admin@example.com'")
        .await;
    let (s, body) = refresh(&app, login["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(
        app.count("refresh_tokens", "revoked_at IS NULL").await,
        0,
        "the family the account may no longer hold is revoked"
    );
}

#[tokio::test]
async fn finding_11_revoking_a_half_revoked_family_finishes_the_job() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = refresh_login(&app, &b).await;
    // Half revoked: the access token is, its refresh token is not.
    app.sql("UPDATE api_tokens SET revoked_at = now()").await;
    assert_eq!(app.count("refresh_tokens", "revoked_at IS NULL").await, 1);
    let access = login["access_token"].as_str().unwrap();
    let (s, _, _) = form(
        &app,
        "/oauth/revoke",
        &[("token", access), ("client_id", "envshield-cli")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.count("refresh_tokens", "revoked_at IS NULL").await,
        0,
        "the refresh token of the family is revoked too"
    );
    let (s, _) = refresh(&app, login["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(s, 400, "and no longer refreshes");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let first = refresh_login(&app, &b).await;
    let access1 = first["access_token"].as_str().unwrap();
    let refresh1 = first["refresh_token"].as_str().unwrap();
    assert!(refresh1.starts_with("eshr_"));
    let expires_in = first["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&expires_in), "{expires_in}");

    let (s, second) = refresh(&app, refresh1, None).await;
    assert_eq!(s, 200, "{second}");
    let refresh2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh1);
    let access2 = second["access_token"].as_str().unwrap();
    assert_eq!(app.whoami(access2).await.status(), 200);
    assert_eq!(
        app.whoami(access1).await.status(),
        200,
        "earlier access tokens live out their short life"
    );

    let (s, narrowed) = refresh(&app, refresh2, Some("envs:read")).await;
    assert_eq!(s, 200);
    assert_eq!(narrowed["scope"], "envs:read");
    let refresh3 = narrowed["refresh_token"].as_str().unwrap().to_owned();
    let (s, wide) = refresh(&app, &refresh3, Some("envs:read root")).await;
    assert_eq!((s, wide["error"].as_str().unwrap()), (400, "invalid_scope"));

    // refresh1 was spent: presenting it again revokes every token of the family.
    let (s, reused) = refresh(&app, refresh1, None).await;
    assert_eq!(
        (s, reused["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'refresh_token_reused' AND severity = 'high'"
        )
        .await,
        1
    );
    assert_eq!(app.whoami(access2).await.status(), 401);
    assert_eq!(
        app.whoami(narrowed["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let (s, _) = refresh(&app, &refresh3, None).await;
    assert_eq!(s, 400, "the newest refresh token died with its family");
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle_and_access_tokens_say_so() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = refresh_login(&app, &b).await;
    let access = login["access_token"].as_str().unwrap();
    app.sql("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .await;
    let r = app.whoami(access).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "token_expired");
    app.sql("UPDATE refresh_tokens SET idle_expires_at = now() - interval '1 second'")
        .await;
    let (s, body) = refresh(&app, login["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!((s, body["error"].as_str().unwrap()), (400, "invalid_grant"));
}

#[tokio::test]
async fn v1_refresh_uses_the_same_rotation() {
    let app = spawn_app_with(refresh_clients_without_grace).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let p = app.login_token(&b).await;
    let refresh1 = p["refreshToken"].as_str().unwrap();
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/refresh"))
        .json(&json!({ "refreshToken": refresh1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        app.whoami(body["token"].as_str().unwrap()).await.status(),
        200
    );
    assert_ne!(body["refreshToken"], p["refreshToken"]);
    let again = app
        .cli
        .post(app.url("/api/v1/cli/auth/refresh"))
        .json(&json!({ "refreshToken": refresh1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.whoami(body["token"].as_str().unwrap()).await.status(),
        401,
        "family revoked"
    );
}

#[tokio::test]
async fn revocation_answers_200_and_honours_the_hint() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (s, _, h) = form(
        &app,
        "/oauth/revoke",
        &[("token", "esh_unknown"), ("client_id", "envshield-cli")],
    )
    .await;
    assert_eq!(s, 200, "unknown tokens are fine");
    assert_eq!(h["cache-control"], "no-store");
    let (s, body, _) = form(&app, "/oauth/revoke", &[("client_id", "envshield-cli")]).await;
    assert_eq!(
        (s, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );

    let one = refresh_login(&app, &b).await;
    let access = one["access_token"].as_str().unwrap();
    // A wrong hint still finds the token.
    let (s, _, _) = form(
        &app,
        "/oauth/revoke",
        &[
            ("token", access),
            ("token_type_hint", "refresh_token"),
            ("client_id", "envshield-cli"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(app.whoami(access).await.status(), 401);
    let (s, body) = refresh(&app, one["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(
        (s, body["error"].as_str().unwrap()),
        (400, "invalid_grant"),
        "the grant ended with it"
    );

    let two = refresh_login(&app, &b).await;
    let (s, _, _) = form(
        &app,
        "/oauth/revoke",
        &[
            ("token", two["refresh_token"].as_str().unwrap()),
            ("token_type_hint", "refresh_token"),
            ("client_id", "envshield-cli"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.whoami(two["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "revoking the refresh token ends the family"
    );
}

/// A token with only the `tokens:introspect` scope, approved by `admin`.
async fn introspect_token(app: &TestApp, admin: &reqwest::Client) -> String {
    crate::helpers::token_with_scopes(app, admin, &["tokens:introspect"]).await
}

#[tokio::test]
async fn finding_6_introspection_needs_the_introspect_scope_even_for_admins() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let admin_login = refresh_login(&app, &admin).await;
    let without_scope = admin_login["access_token"].as_str().unwrap();
    let r = app
        .cli
        .post(app.url("/oauth/introspect"))
        .bearer_auth(without_scope)
        .form(&[("token", without_scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an admin's token without the scope");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    let with_scope = introspect_token(&app, &admin).await;
    let r = app
        .cli
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&with_scope)
        .form(&[("token", without_scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn introspection_is_for_introspect_tokens_only() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, user) = app.signed_in_browser("dev@example.com", false).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let user_login = refresh_login(&app, &user).await;
    let target = user_login["access_token"].as_str().unwrap();

    let introspect = |bearer: Option<String>, token: String| {
        let mut req = app
            .cli
            .post(app.url("/oauth/introspect"))
            .form(&[("token", token)]);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(introspect(None, target.to_owned()).await.0, 401);
    let (s, body) = introspect(Some(target.to_owned()), target.to_owned()).await;
    assert_eq!(
        (s, body["error"].as_str().unwrap()),
        (403, "insufficient_scope")
    );

    let admin_token = introspect_token(&app, &admin).await;
    let (s, claims) = introspect(Some(admin_token.clone()), target.to_owned()).await;
    assert_eq!(s, 200);
    assert_eq!(claims["active"], true);
    assert_eq!(claims["username"], "dev@example.com");
    assert_eq!(claims["client_id"], "envshield-cli");
    assert_eq!(claims["token_type"], "Bearer");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    let (_, claims) = introspect(
        Some(admin_token.clone()),
        user_login["refresh_token"].as_str().unwrap().to_owned(),
    )
    .await;
    assert_eq!(
        (claims["active"].clone(), claims["token_type"].clone()),
        (json!(true), json!("refresh_token"))
    );
    let (_, claims) = introspect(Some(admin_token.clone()), "garbage".to_owned()).await;
    assert_eq!(claims, json!({ "active": false }));
    app.sql("UPDATE api_tokens SET revoked_at = now() WHERE user_id = (SELECT id FROM users WHERE email = 'dev@example.com')").await;
    let (_, claims) = introspect(Some(admin_token), target.to_owned()).await;
    assert_eq!(claims, json!({ "active": false }));
}

#[tokio::test]
async fn scopes_follow_role_rules() {
    let app = spawn_app().await;
    let (_, user) = app.signed_in_browser("dev@example.com", false).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let s: Value = app
        .start(json!({ "scopes": ["tokens:introspect"] }))
        .await
        .json()
        .await
        .unwrap();
    let r = app.approve(&user, s["userCode"].as_str().unwrap()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "scope_not_allowed"
    );
    assert_eq!(
        app.approve(&admin, s["userCode"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let admins_only = spawn_app_with(|c| c.token_roles = vec![Role::Admin]).await;
    let (_, user) = admins_only
        .signed_in_browser("dev@example.com", false)
        .await;
    let s = admins_only.start_ok().await;
    let r = admins_only.approve(&user, &s.user_code).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "role_not_allowed"
    );
}

#[tokio::test]
async fn paste_mode_releases_the_token_only_with_the_confirmation_code() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s: Value = app
        .start(json!({ "confirmation": "paste" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["confirmation"], "paste");
    let device = s["deviceCode"].as_str().unwrap();
    let exchange = |code: &str| {
        app.cli
            .post(app.url("/api/v1/cli/auth/device/exchange"))
            .json(&json!({ "deviceCode": device, "confirmationCode": code }))
            .send()
    };
    let r = exchange("123-456").await.unwrap();
    assert_eq!(r.status(), 409, "not approved yet");

    let r = app.approve(&b, s["userCode"].as_str().unwrap()).await;
    let approved: Value = r.json().await.unwrap();
    let code = approved["confirmationCode"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 7);

    let p: Value = app.poll(device).await.json().await.unwrap();
    assert_eq!(
        p["status"], "confirmation_required",
        "polling never releases it"
    );
    assert!(p.get("token").is_none());

    let wrong = if code == "000-000" {
        "111-111"
    } else {
        "000-000"
    };
    let r = exchange(wrong).await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_confirmation_code");
    assert!(
        e["message"].as_str().unwrap().contains("4 attempts left"),
        "{e}"
    );

    let r = exchange(&code.replace('-', "")).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["status"], "approved");
    assert_eq!(app.whoami(t["token"].as_str().unwrap()).await.status(), 200);
    assert_eq!(exchange(&code).await.unwrap().status(), 410, "once only");
}

#[tokio::test]
async fn paste_mode_cancels_after_five_wrong_codes_and_the_server_can_require_it() {
    let app =
        spawn_app_with(|c| c.device_confirmation = envshield_api_types::ConfirmationMode::Paste)
            .await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    assert_eq!(
        s.confirmation,
        envshield_api_types::ConfirmationMode::Paste,
        "required by the server"
    );
    let r = app.approve(&b, &s.user_code).await;
    let code = r.json::<Value>().await.unwrap()["confirmationCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = if code == "000-000" {
        "111-111"
    } else {
        "000-000"
    };
    let mut statuses = vec![];
    for _ in 0..5 {
        let r = app
            .cli
            .post(app.url("/api/v1/cli/auth/device/exchange"))
            .json(&json!({ "deviceCode": s.device_code, "confirmationCode": wrong }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 410]);
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/exchange"))
        .json(&json!({ "deviceCode": s.device_code, "confirmationCode": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410, "even the right code is too late");
    assert_eq!(app.count("api_tokens", "revoked_at IS NOT NULL").await, 1);
    assert_eq!(
        app.count("cli_device_sessions", "status = 'CANCELLED'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_third_party_oauth_client_completes_the_flow_from_discovery() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthType, ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse,
        TokenResponse, TokenUrl,
    };

    let app = spawn_app_with(|c| {
        refresh_clients_without_grace(c);
        c.device_code_interval_secs = 1;
    })
    .await;
    let (_, browser) = app.signed_in_browser("dev@example.com", false).await;
    let discovery: Value =
        get_json(&app.cli, app.url("/.well-known/oauth-authorization-server")).await;

    let client = BasicClient::new(ClientId::new("envshield-cli".to_owned()))
        .set_auth_type(AuthType::RequestBody)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(
                discovery["device_authorization_endpoint"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .unwrap(),
        )
        .set_token_uri(
            TokenUrl::new(discovery["token_endpoint"].as_str().unwrap().to_owned()).unwrap(),
        );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("envs:read".to_owned()))
        .request_async(&http)
        .await
        .unwrap();
    // The person approves in the browser while the library polls.
    let user_code = details.user_code().secret().to_owned();
    let approve = async {
        let r = app.approve(&browser, &user_code).await;
        assert_eq!(r.status(), 200);
    };
    let poll = client.exchange_device_access_token(&details).request_async(
        &http,
        tokio::time::sleep,
        None,
    );
    let (token, ()) = tokio::join!(poll, approve);
    let token = token.unwrap();
    assert_eq!(
        app.whoami(token.access_token().secret()).await.status(),
        200
    );
    assert_eq!(token.scopes().unwrap()[0].as_str(), "envs:read");

    let refreshed = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(
        refreshed.access_token().secret(),
        token.access_token().secret()
    );
    assert_eq!(
        app.whoami(refreshed.access_token().secret()).await.status(),
        200
    );
    // The library sees RFC error codes too: reusing the spent refresh token.
    let err = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .request_async(&http)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
}

#[tokio::test]
async fn the_oauth_policy_of_the_cli_client_is_configurable() {
    let app = spawn_app_with(|c| c.cli_oauth_token_policy = TokenPolicy::ApiToken).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let auth = authorize(&app, None).await;
    approve_code(&app, &b, auth["user_code"].as_str().unwrap()).await;
    let (s, body) = token(&app, auth["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    assert!(
        body["expires_in"].as_i64().unwrap() > 364 * 86_400,
        "long-lived API token"
    );
    assert!(body.get("refresh_token").is_none());
    // The v1 flow keeps long-lived tokens by default.
    let v1 = app.login_token(&b).await;
    assert!(v1.get("refreshToken").is_none());
}

#[tokio::test]
async fn racing_refreshes_within_the_grace_window_share_one_successor() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = refresh_login(&app, &b).await;
    let spent = login["refresh_token"].as_str().unwrap().to_owned();
    let answers = futures::future::join_all((0..20).map(|_| refresh(&app, &spent, None))).await;
    let first = &answers[0].1;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body["refresh_token"], first["refresh_token"],
            "one successor"
        );
        assert_eq!(body["access_token"], first["access_token"]);
    }
    assert_eq!(
        app.count("refresh_tokens", "used_at IS NULL AND revoked_at IS NULL")
            .await,
        1,
        "one live successor, one family"
    );
    assert_eq!(
        app.count("security_events", "kind = 'refresh_token_reused'")
            .await,
        0
    );
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.whoami(access).await.status(), 200);
    let (s, next) = refresh(&app, first["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(s, 200, "the successor rotates as usual: {next}");
    // Once the successor is spent, the first token is plain reuse.
    let (s, _) = refresh(&app, &spent, None).await;
    assert_eq!(s, 400);
    assert_eq!(
        app.whoami(next["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_replay_after_the_grace_window_revokes_the_family() {
    let app = spawn_app_with(refresh_clients).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = refresh_login(&app, &b).await;
    let spent = login["refresh_token"].as_str().unwrap().to_owned();
    let (s, rotated) = refresh(&app, &spent, None).await;
    assert_eq!(s, 200);
    let grace = app.server.config.refresh_reuse_grace.as_secs() + 1;
    app.sql(&format!(
        "UPDATE refresh_tokens SET used_at = used_at - interval '{grace} seconds' WHERE used_at IS NOT NULL"
    ))
    .await;
    let (s, body) = refresh(&app, &spent, None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        app.whoami(rotated["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(
        app.count("refresh_tokens", "successor_sealed IS NOT NULL")
            .await,
        0,
        "no sealed successor outlives its family"
    );
}

#[tokio::test]
async fn without_a_grace_window_racing_refreshes_leave_one_family_at_most() {
    let app = spawn_app_with(refresh_clients_without_grace).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = refresh_login(&app, &b).await;
    let spent = login["refresh_token"].as_str().unwrap().to_owned();
    let answers = futures::future::join_all((0..20).map(|_| refresh(&app, &spent, None))).await;
    let won = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 400));
    assert_eq!(
        app.count("refresh_tokens", "used_at IS NULL AND revoked_at IS NULL")
            .await,
        0,
        "the losers' reuse revoked the family: never two live families"
    );
    assert_eq!(
        app.count("refresh_tokens", "successor_sealed IS NOT NULL")
            .await,
        0,
        "without a grace window no successor is kept"
    );
}
