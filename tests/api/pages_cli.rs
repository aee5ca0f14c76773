//! The approval page (`/cli/login`) and typing the code (`/cli/device`).

use envshield_api_types::{PollDeviceResponse, StartDeviceResponse};
use serde_json::{json, Value};

use crate::helpers::{browser, spawn_app, spawn_app_with, PASSWORD};
use crate::pages_support::{
    approval_page, approve_via_form, assert_security_headers, decide, get, post,
};

const INVALID: &str = "Invalid CLI login request";
const EXPIRED: &str = "This CLI login request has expired. Run <code>envshield login</code> again.";

#[tokio::test]
async fn missing_or_malformed_codes_are_an_invalid_request() {
    let app = spawn_app().await;
    let (_, signed_in) = app.signed_in_browser("dev@example.com", false).await;
    for client in [browser(), signed_in] {
        let page = get(&client, &app, "/cli/login").await;
        assert_eq!(page.status, 400);
        page.assert_has(&[INVALID]);
        assert_security_headers(&page);
        for bad in ["", "BCDF", "AAAA-AAAA", "BCDF-GHJK-LMNP", "<script>"] {
            let page = approval_page(&app, &client, bad).await;
            assert_eq!(page.status, 400, "{bad:?}");
            page.assert_has(&[INVALID]);
            page.assert_lacks(&["<script>"]);
        }
    }
}

#[tokio::test]
async fn unknown_expired_consumed_denied_and_cancelled_requests_have_expired() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;

    let unknown = approval_page(&app, &b, "BCDF-GHJK").await;
    assert_eq!(unknown.status, 410);
    unknown.assert_has(&[EXPIRED]);
    assert_security_headers(&unknown);

    let expired = app.start_ok().await;
    app.sql("UPDATE cli_device_sessions SET expires_at = now() - interval '1 second'")
        .await;
    assert_eq!(
        approval_page(&app, &b, &expired.user_code).await.status,
        410
    );

    let consumed = app.start_ok().await;
    assert_eq!(app.approve(&b, &consumed.user_code).await.status(), 200);
    assert_eq!(app.poll(&consumed.device_code).await.status(), 200);
    let page = approval_page(&app, &b, &consumed.user_code).await;
    assert_eq!(page.status, 410);
    page.assert_has(&[EXPIRED]);

    let denied = app.start_ok().await;
    let r = app
        .complete(
            &b,
            json!({ "userCode": denied.user_code, "decision": "deny" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(approval_page(&app, &b, &denied.user_code).await.status, 410);

    let cancelled = app.start_ok().await;
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/cancel"))
        .json(&json!({ "deviceCode": cancelled.device_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = approval_page(&app, &b, &cancelled.user_code).await;
    assert_eq!(page.status, 410);
    page.assert_has(&[EXPIRED]);
}

#[tokio::test]
async fn signed_out_visitors_sign_in_first_and_come_back() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let s = app.start_ok().await;
    let b = browser();

    // Any spelling of the code; the redirect carries the normalised one.
    let lower = s.user_code.to_lowercase().replace('-', "");
    for code in [s.user_code.as_str(), lower.as_str()] {
        let page = approval_page(&app, &b, code).await;
        assert_eq!(page.status, 303);
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/login?redirect=/cli/login%3Fcode%3D{}", s.user_code).as_str())
        );
        assert_security_headers(&page);
    }

    let login = get(
        &b,
        &app,
        &format!("/login?redirect=/cli/login%3Fcode%3D{}", s.user_code),
    )
    .await;
    assert_eq!(login.status, 200);
    let target = format!("/cli/login?code={}", s.user_code);
    login.assert_has(&[&format!("name=\"redirect\" value=\"{target}\"")]);
    let signed_in = post(
        &b,
        &app,
        "/login",
        &[
            ("email", "dev@example.com"),
            ("password", PASSWORD),
            ("csrf_token", &login.csrf()),
            ("redirect", &target),
        ],
    )
    .await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.location.as_deref(), Some(target.as_str()));

    let page = get(&b, &app, &target).await;
    assert_eq!(page.status, 200);
    page.assert_has(&["CLI login request", &s.user_code, "dev@example.com"]);
}

#[tokio::test]
async fn a_pending_request_shows_everything_needed_to_decide() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s: StartDeviceResponse = app
        .start(json!({ "tokenName": "ci <box>", "scopes": ["envs:read", "tokens:read"] }))
        .await
        .json()
        .await
        .unwrap();

    let page = approval_page(&app, &b, &s.user_code).await;
    assert_eq!(page.status, 200);
    assert_security_headers(&page);
    assert_eq!(page.headers["cache-control"], "no-store");
    page.assert_has(&[
        "<h1>CLI login request</h1>",
        "<strong>dev@example.com</strong>",
        &format!("<p class=\"user-code\">{}</p>", s.user_code),
        "Check that this code matches the one in your terminal",
        "ci &#60;box&#62;",
        "<fieldset",
        "<legend>Scopes to grant</legend>",
        "name=\"scopes\" value=\"envs:read\" checked",
        "name=\"scopes\" value=\"tokens:read\" checked",
        "<label for=\"scope-0\">envs:read <span class=\"hint\">— Read environment variables and secrets</span></label>",
        "<label for=\"expires_in_days\">",
        "<option value=\"7\">7 days</option>",
        "<option value=\"30\">30 days</option>",
        "<option value=\"90\">90 days</option>",
        "<option value=\"\" selected>365 days (default)</option>",
        "127.0.0.1",
        "envshield-test/1.0",
        " UTC</dd>",
        "<button type=\"submit\" name=\"decision\" value=\"approve\" class=\"decision\">Approve</button>",
        "<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"decision\">Deny</button>",
        &format!("name=\"code\" value=\"{}\"", s.user_code),
    ]);
    page.assert_lacks(&["ci <box>", "another network", "envs:write"]);
    assert!(page.csrf().len() >= 40);
}

#[tokio::test]
async fn a_request_from_another_network_is_flagged() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    app.sql("UPDATE cli_device_sessions SET client_ip = '203.0.113.7'")
        .await;
    let page = approval_page(&app, &b, &s.user_code).await;
    assert_eq!(page.status, 200);
    page.assert_has(&[
        "This request came from another network: 203.0.113.7. Approve only if you started it yourself.",
    ]);
}

#[tokio::test]
async fn approving_in_the_form_hands_the_token_to_the_cli() {
    let app = spawn_app().await;
    let (user, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;

    let result = approve_via_form(&app, &b, &s.user_code).await;
    assert_eq!(result.status, 200);
    result.assert_has(&["CLI login approved. You can return to your terminal."]);
    assert_security_headers(&result);

    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 200);
    let PollDeviceResponse::Approved {
        token: Some(token),
        scopes,
        ..
    } = r.json().await.unwrap()
    else {
        panic!("expected approved");
    };
    assert_eq!(scopes, app.server.config.default_scopes);
    let me: Value = app.whoami(&token).await.json().await.unwrap();
    assert_eq!(me["user"]["id"], user.id.to_string());
    assert_eq!(
        app.count("security_events", "kind = 'cli_device_approved'")
            .await,
        1
    );
}

#[tokio::test]
async fn denying_in_the_form_makes_the_poll_answer_403() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let page = approval_page(&app, &b, &s.user_code).await;
    let result = decide(&app, &b, &s.user_code, &page.csrf(), "deny", &[], "").await;
    assert_eq!(result.status, 200);
    result.assert_has(&["CLI login denied."]);
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "denied");
    assert_eq!(app.count("api_tokens", "true").await, 0);
}

#[tokio::test]
async fn the_approver_can_narrow_scopes_and_expiry_but_not_widen_them() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s: StartDeviceResponse = app
        .start(json!({ "tokenName": "laptop", "scopes": ["envs:read", "envs:write"] }))
        .await
        .json()
        .await
        .unwrap();
    let page = approval_page(&app, &b, &s.user_code).await;
    let csrf = page.csrf();

    // Nothing ticked, a scope not asked for, an expiry too long, garbage:
    // the form comes back with the reason and the choices kept.
    let none = decide(&app, &b, &s.user_code, &csrf, "approve", &[], "").await;
    assert_eq!(none.status, 400);
    none.assert_has(&[
        "Keep at least one scope ticked, or choose Deny.",
        "Check that this code matches",
    ]);
    none.assert_lacks(&["checked"]);
    let wider = decide(
        &app,
        &b,
        &s.user_code,
        &csrf,
        "approve",
        &["envs:read", "tokens:write"],
        "30",
    )
    .await;
    assert_eq!(wider.status, 400);
    wider.assert_has(&[
        "You can only remove scopes from this request, not add them.",
        "name=\"scopes\" value=\"envs:read\" checked",
        "<option value=\"30\" selected>30 days</option>",
    ]);
    wider.assert_lacks(&["value=\"envs:write\" checked"]);
    let long = decide(
        &app,
        &b,
        &s.user_code,
        &csrf,
        "approve",
        &["envs:read"],
        "1000",
    )
    .await;
    assert_eq!(long.status, 400);
    long.assert_has(&["The token can live at most 365 days."]);
    let junk = decide(
        &app,
        &b,
        &s.user_code,
        &csrf,
        "approve",
        &["envs:read"],
        "soon",
    )
    .await;
    assert_eq!(junk.status, 400);
    let odd = decide(&app, &b, &s.user_code, &csrf, "maybe", &["envs:read"], "").await;
    assert_eq!(odd.status, 400);
    assert_eq!(app.count("api_tokens", "true").await, 0);

    let ok = decide(
        &app,
        &b,
        &s.user_code,
        &csrf,
        "approve",
        &["envs:read"],
        "7",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.html);
    let r = app.poll(&s.device_code).await;
    let PollDeviceResponse::Approved {
        scopes, expires_at, ..
    } = r.json().await.unwrap()
    else {
        panic!("expected approved");
    };
    assert_eq!(scopes, ["envs:read"]);
    let days = (expires_at.unwrap() - chrono::Utc::now()).num_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&days), "{days}");
}

#[tokio::test]
async fn approving_twice_is_harmless_and_a_revisit_shows_the_result() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let page = approval_page(&app, &b, &s.user_code).await;
    let scopes = ["envs:read"];
    for _ in 0..2 {
        let r = decide(&app, &b, &s.user_code, &page.csrf(), "approve", &scopes, "").await;
        assert_eq!(r.status, 200);
        r.assert_has(&["CLI login approved. You can return to your terminal."]);
    }
    assert_eq!(app.count("api_tokens", "true").await, 1);
    let again = approval_page(&app, &b, &s.user_code).await;
    assert_eq!(again.status, 200);
    again.assert_has(&["CLI login approved. You can return to your terminal."]);
    again.assert_lacks(&["name=\"decision\""]);
    // Denying after approving is refused, and changes nothing.
    let deny = decide(&app, &b, &s.user_code, &page.csrf(), "deny", &[], "").await;
    assert_eq!(deny.status, 409);
    deny.assert_has(&["You already approved this request."]);
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
}

#[tokio::test]
async fn another_account_cannot_decide_a_request_already_approved() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_browser("alice@example.com", false).await;
    let (_, mallory) = app.signed_in_browser("mallory@example.com", false).await;
    let s = app.start_ok().await;
    assert_eq!(
        approve_via_form(&app, &alice, &s.user_code).await.status,
        200
    );

    let page = approval_page(&app, &mallory, &s.user_code).await;
    assert_eq!(page.status, 403);
    page.assert_has(&["already approved by another account"]);
    assert_security_headers(&page);
    let csrf = get(&mallory, &app, "/cli/device").await.csrf();
    for decision in ["approve", "deny"] {
        let r = decide(
            &app,
            &mallory,
            &s.user_code,
            &csrf,
            decision,
            &["envs:read"],
            "",
        )
        .await;
        assert_eq!(r.status, 403, "{decision}");
        r.assert_has(&["already approved by another account"]);
    }
    assert_eq!(app.count("api_tokens", "true").await, 1);
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
}

#[tokio::test]
async fn decisions_without_a_valid_csrf_token_are_refused() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let _ = approval_page(&app, &b, &s.user_code).await;
    for token in ["", "forged"] {
        for decision in ["approve", "deny"] {
            let r = decide(&app, &b, &s.user_code, token, decision, &["envs:read"], "").await;
            assert_eq!(r.status, 403, "{token:?} {decision}");
            r.assert_has(&["Reload the page"]);
            assert_security_headers(&r);
        }
    }
    let missing = post(
        &b,
        &app,
        "/cli/login",
        &[("code", &s.user_code), ("decision", "approve")],
    )
    .await;
    assert_eq!(missing.status, 403);
    // A cross-site form post arrives without the session cookie at all.
    let other = decide(
        &app,
        &browser(),
        &s.user_code,
        "x",
        "approve",
        &["envs:read"],
        "",
    )
    .await;
    assert_eq!(other.status, 403);
    assert_eq!(
        app.count("cli_device_sessions", "status = 'PENDING'").await,
        1
    );
}

#[tokio::test]
async fn code_entry_needs_sign_in_and_accepts_any_spelling() {
    let app = spawn_app().await;
    let signed_out = get(&browser(), &app, "/cli/device").await;
    assert_eq!(signed_out.status, 303);
    assert_eq!(
        signed_out.location.as_deref(),
        Some("/login?redirect=/cli/device")
    );

    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let form = get(&b, &app, "/cli/device").await;
    assert_eq!(form.status, 200);
    assert_security_headers(&form);
    form.assert_has(&["<label for=\"code\">", "id=\"code\" name=\"code\""]);
    let s = app.start_ok().await;
    let plain = s.user_code.replace('-', "");
    let spellings = [
        s.user_code.clone(),
        s.user_code.to_lowercase().replace('-', ""),
        format!(" {} {} ", &plain[..4], &plain[4..]).to_lowercase(),
    ];
    for typed in &spellings {
        let r = post(
            &b,
            &app,
            "/cli/device",
            &[("code", typed), ("csrf_token", &form.csrf())],
        )
        .await;
        assert_eq!(r.status, 303, "{typed:?}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("/cli/login?code={}", s.user_code).as_str())
        );
    }
}

#[tokio::test]
async fn code_entry_refuses_wrong_codes_with_one_clear_message() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let csrf = get(&b, &app, "/cli/device").await.csrf();
    let expired = app.start_ok().await;
    app.sql("UPDATE cli_device_sessions SET expires_at = now() - interval '1 second'")
        .await;
    let mut bodies = Vec::new();
    for typed in ["hello", "ZXCV-BNML", "", &expired.user_code] {
        let r = post(
            &b,
            &app,
            "/cli/device",
            &[("code", typed), ("csrf_token", &csrf)],
        )
        .await;
        assert_eq!(r.status, 400, "{typed:?}");
        r.assert_has(&[
            "That code is not valid or has expired. Check the code in your terminal.",
            "aria-invalid=\"true\"",
        ]);
        bodies.push(r.html.replace(typed, ""));
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );

    let forged = post(
        &b,
        &app,
        "/cli/device",
        &[("code", &expired.user_code), ("csrf_token", "forged")],
    )
    .await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn code_guesses_and_approval_posts_are_rate_limited_per_ip() {
    let app = spawn_app_with(|c| c.rate_limits.complete_per_min = 3).await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let csrf = get(&b, &app, "/cli/device").await.csrf();
    for _ in 0..3 {
        let r = post(
            &b,
            &app,
            "/cli/device",
            &[("code", "BCDF-GHJK"), ("csrf_token", &csrf)],
        )
        .await;
        assert_eq!(r.status, 400);
    }
    let limited = post(
        &b,
        &app,
        "/cli/device",
        &[("code", "BCDF-GHJK"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    limited.assert_has(&["<h1>Too many attempts</h1>", "Try again in"]);
    assert_security_headers(&limited);
    let s = app.start_ok().await;
    assert_eq!(approval_page(&app, &b, &s.user_code).await.status, 429);
    let r = decide(&app, &b, &s.user_code, &csrf, "approve", &["envs:read"], "").await;
    assert_eq!(r.status, 429);
    assert_eq!(
        app.count("security_events", "kind = 'cli_rate_limit_exceeded'")
            .await,
        1
    );
}
