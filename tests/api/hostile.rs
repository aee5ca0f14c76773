//! A hand-written hostile-input pass over every route: wrong methods and
//! content types, bodies over the cap, bidi, NUL and emoji, duplicated
//! parameters, long headers, bogus cookies and Authorization headers. No
//! answer may be a 5xx, and every refusal says something a person can read.

use reqwest::{Client, Method, StatusCode};

use crate::helpers::{spawn_app_with, TestApp};

/// Every path of the route table, with ids and codes filled in.
const PATHS: &[&str] = &[
    "/",
    "/login",
    "/logout",
    "/signup",
    "/cli/login?code=BCDF-GHJK",
    "/cli/login",
    "/cli/device",
    "/settings/tokens",
    "/settings/tokens/alerts/dismiss",
    "/settings/tokens/00000000-0000-0000-0000-000000000000/revoke",
    "/settings/tokens/not-an-id/revoke",
    "/settings/sessions",
    "/settings/sessions/end-all",
    "/settings/sessions/00000000-0000-0000-0000-000000000000/end",
    "/settings/password",
    "/settings/passkeys",
    "/settings/passkeys/register/start",
    "/settings/passkeys/register/finish",
    "/settings/passkeys/00000000-0000-0000-0000-000000000000/rename",
    "/settings/passkeys/not-an-id/remove",
    "/login/passkey/start",
    "/login/passkey/finish",
    "/cli/login/step-up/start",
    "/cli/login/step-up/finish",
    "/admin",
    "/admin/users?q=%00%E2%80%AE",
    "/admin/users/00000000-0000-0000-0000-000000000000/disable",
    "/admin/users/not-an-id/unknown-action",
    "/admin/tokens?status=%F0%9F%92%A5&page=-1",
    "/admin/tokens/00000000-0000-0000-0000-000000000000/revoke",
    "/admin/events?page=99999999999",
    "/api/v1/cli/auth/device/start",
    "/api/v1/cli/auth/device/poll?deviceCode=%00&wait=abc",
    "/api/v1/cli/auth/device/complete",
    "/api/v1/cli/auth/device/exchange",
    "/api/v1/cli/auth/refresh",
    "/api/v1/cli/auth/device/cancel",
    "/api/v1/cli/auth/logout",
    "/api/v1/cli/whoami",
    "/api/v1/cli/tokens",
    "/api/v1/cli/tokens/revoke",
    "/oauth/device_authorization",
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/.well-known/oauth-authorization-server",
    "/health",
    "/health/ready",
    "/static/css/app.css",
    "/static/js/passkeys.js",
    "/no/such/page",
];

/// Form and JSON bodies full of what breaks naive code.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let nasty = "\u{202e}evil\u{200b}\u{0}💥'\"<script>";
    let fields = [
        "csrf_token",
        "email",
        "password",
        "password_confirm",
        "current_password",
        "new_password",
        "new_password_confirm",
        "code",
        "decision",
        "scopes",
        "expires_in_days",
        "up_to",
        "role",
        "redirect",
        "client_id",
        "grant_type",
        "device_code",
        "refresh_token",
        "token",
        "token_type_hint",
        "scope",
        "name",
        "step_up_proof",
        "step_up_password",
    ];
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for field in fields {
        form.append_pair(field, nasty);
        form.append_pair(field, "again");
    }
    let json = serde_json::json!({
        "userCode": nasty, "decision": ["approve"], "scopes": [nasty, 1, null],
        "expiresInDays": 1e300, "deviceCode": {"x": nasty}, "wait": -1,
        "tokenName": nasty.repeat(100), "refreshToken": nasty, "tokenId": nasty,
        "stepUpProof": nasty, "name": nasty, "code": nasty, "redirect": nasty,
        "credential": { "id": nasty, "rawId": nasty, "type": "public-key",
            "response": { "clientDataJSON": nasty, "authenticatorData": [1, 2], "signature": null } },
    });
    vec![
        (
            "application/x-www-form-urlencoded",
            form.finish().into_bytes(),
        ),
        ("application/json", serde_json::to_vec(&json).unwrap()),
        ("application/json", b"{\"unterminated\": ".to_vec()),
        ("text/plain", nasty.as_bytes().to_vec()),
        ("application/x-www-form-urlencoded", vec![b'a'; 20 * 1024]),
        (
            "application/x-www-form-urlencoded",
            vec![0xff, 0xfe, 0x00, b'=', 0x80],
        ),
    ]
}

async fn send(
    client: &Client,
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&(&str, Vec<u8>)>,
    extra: &[(&str, String)],
) -> (StatusCode, String, String) {
    let mut req = client.request(method.clone(), app.url(path));
    for (name, value) in extra {
        req = req.header(*name, value);
    }
    if let Some((content_type, bytes)) = body {
        req = req
            .header("Content-Type", *content_type)
            .body(bytes.clone());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, r.text().await.unwrap_or_default())
}

/// A body (content type and bytes), if any, and extra headers.
type Case<'a> = (
    Option<&'a (&'static str, Vec<u8>)>,
    &'a Vec<(&'static str, String)>,
);

async fn assert_no_server_errors(app: &TestApp, client: &Client, who: &str) {
    let bodies = bodies();
    let long = "x".repeat(8 * 1024);
    let headers: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![(
            "Authorization",
            "Bearer esh_".to_owned() + &"A".repeat(4000),
        )],
        vec![("Authorization", "Basic Zm9vOmJhcg==".to_owned())],
        vec![("Authorization", "Bearer".to_owned())],
        vec![("Cookie", "envshield_session=garbage%00; other=1".to_owned())],
        vec![("User-Agent", long.clone()), ("Origin", app.origin())],
        vec![
            ("Origin", "null".to_owned()),
            ("Referer", "::not a url::".to_owned()),
        ],
    ];
    let mut checked = 0;
    for path in PATHS {
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            let mut cases: Vec<Case<'_>> = Vec::new();
            for h in &headers {
                cases.push((None, h));
            }
            if method != Method::GET {
                for b in &bodies {
                    cases.push((Some(b), &headers[0]));
                    cases.push((Some(b), &headers[5]));
                }
            }
            for (body, extra) in cases {
                let (status, content_type, text) =
                    send(client, app, method.clone(), path, body, extra).await;
                checked += 1;
                assert!(
                    status.as_u16() < 500,
                    "{who}: {method} {path} with {:?} and {:?} answered {status}: {text}",
                    body.map(|b| b.0),
                    extra.iter().map(|h| h.0).collect::<Vec<_>>()
                );
                if status.is_client_error() && status != StatusCode::NOT_FOUND {
                    assert!(
                        content_type.starts_with("application/json")
                            || content_type.starts_with("text/html"),
                        "{who}: {method} {path} answered {status} as {content_type:?}: {text}"
                    );
                    assert!(
                        !text.trim().is_empty(),
                        "{who}: {method} {path}: an empty {status}"
                    );
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hostile_request_gets_a_server_error() {
    // Limits off: every request reaches its handler. A host name, so the
    // passkey endpoints run past "passkeys are off".
    let app = spawn_app_with(|c| {
        c.app_url.set_host(Some("localhost")).unwrap();
        c.rate_limits.complete_per_min = 0;
        c.rate_limits.login_per_min = 0;
        c.rate_limits.login_per_account_per_hour = 0;
        c.rate_limits.code_entry_per_account_per_hour = 0;
        c.rate_limits.start_per_min = 0;
        c.rate_limits.start_global_per_min = 0;
        c.rate_limits.poll_per_min = 0;
        c.allow_signup = true;
    })
    .await;
    assert_no_server_errors(&app, &app.cli, "signed out").await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    assert_no_server_errors(&app, &admin, "an admin").await;
}
