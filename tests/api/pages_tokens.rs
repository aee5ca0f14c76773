//! `/settings/tokens`: the list, revoking with a confirmation, the new-token banner.

use crate::helpers::{browser, spawn_app};
use crate::pages_support::{approve_via_form, assert_security_headers, get, post};

#[tokio::test]
async fn the_tokens_page_needs_sign_in() {
    let app = spawn_app().await;
    let page = get(&browser(), &app, "/settings/tokens").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?redirect=/settings/tokens")
    );
    assert_security_headers(&page);
}

#[tokio::test]
async fn the_tokens_page_lists_your_tokens_and_only_yours() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (_, other) = app.signed_in_browser("other@example.com", false).await;
    let active = app.login_token(&b).await;
    let revoked = app.login_token(&b).await;
    let expired = app.login_token(&b).await;
    let _theirs = app.login_token(&other).await;
    app.sql(&format!(
        "UPDATE api_tokens SET revoked_at = now(), name = 'old laptop' WHERE id = '{}'",
        revoked["tokenId"].as_str().unwrap()
    ))
    .await;
    app.sql(&format!(
        "UPDATE api_tokens SET expires_at = now() - interval '1 day', name = 'ci box' WHERE id = '{}'",
        expired["tokenId"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        app.whoami(active["token"].as_str().unwrap()).await.status(),
        200
    );

    let page = get(&b, &app, "/settings/tokens").await;
    assert_eq!(page.status, 200);
    assert_security_headers(&page);
    let token = active["token"].as_str().unwrap();
    let hint_tail = &token[token.len() - 4..];
    page.assert_has(&[
        "<h1>Your API tokens</h1>",
        "test laptop",
        "old laptop",
        "ci box",
        hint_tail,
        "esh_",
        "envs:read, envs:write, tokens:read, tokens:write",
        "badge-active\">active<",
        "badge-revoked\">revoked<",
        "badge-expired\">expired<",
        " UTC</dd>",
        &format!(
            "href=\"/settings/tokens/{}/revoke\"",
            active["tokenId"].as_str().unwrap()
        ),
    ]);
    // Last used is shown once the token is used.
    assert!(
        page.html.contains("<dt>Last used</dt><dd>2"),
        "whoami used it"
    );
    page.assert_lacks(&[
        token,
        &format!(
            "href=\"/settings/tokens/{}/revoke\"",
            revoked["tokenId"].as_str().unwrap()
        ),
    ]);
    assert_eq!(
        page.html.matches("class=\"token\"").count(),
        3,
        "not theirs"
    );
}

#[tokio::test]
async fn revoking_asks_first_then_the_bearer_token_gets_401() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = app.login_token(&b).await;
    let token = login["token"].as_str().unwrap();
    let id = login["tokenId"].as_str().unwrap();
    assert_eq!(app.whoami(token).await.status(), 200);

    let confirm = get(&b, &app, &format!("/settings/tokens/{id}/revoke")).await;
    assert_eq!(confirm.status, 200);
    assert_security_headers(&confirm);
    confirm.assert_has(&[
        "Revoke this token?",
        "test laptop",
        &format!("action=\"/settings/tokens/{id}/revoke\""),
        "Cancel",
    ]);
    assert_eq!(
        app.whoami(token).await.status(),
        200,
        "asking changes nothing"
    );

    for forged in ["", "forged"] {
        let r = post(
            &b,
            &app,
            &format!("/settings/tokens/{id}/revoke"),
            &[("csrf_token", forged)],
        )
        .await;
        assert_eq!(r.status, 403);
        r.assert_has(&["Reload the page"]);
    }
    assert_eq!(app.whoami(token).await.status(), 200);

    let r = post(
        &b,
        &app,
        &format!("/settings/tokens/{id}/revoke"),
        &[("csrf_token", &confirm.csrf())],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/settings/tokens?revoked=1"));
    assert_eq!(app.whoami(token).await.status(), 401);

    let page = get(&b, &app, "/settings/tokens?revoked=1").await;
    page.assert_has(&["Token revoked.", "badge-revoked\">revoked<"]);
    assert_eq!(
        app.count("security_events", "kind = 'cli_token_revoked'")
            .await,
        1
    );
    let again = get(&b, &app, &format!("/settings/tokens/{id}/revoke")).await;
    again.assert_has(&["Token already revoked"]);
    again.assert_lacks(&["Revoke token</button>"]);
}

#[tokio::test]
async fn someone_elses_or_a_made_up_token_is_not_found() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let theirs = app.login_token(&admin).await;
    let id = theirs["tokenId"].as_str().unwrap();
    let csrf = get(&b, &app, "/settings/tokens").await.csrf();
    for path in [
        format!("/settings/tokens/{id}/revoke"),
        "/settings/tokens/00000000-0000-0000-0000-000000000000/revoke".to_owned(),
        "/settings/tokens/not-a-uuid/revoke".to_owned(),
    ] {
        let page = get(&b, &app, &path).await;
        assert_eq!(page.status, 404, "{path}");
        page.assert_has(&["<h1>Page not found</h1>", "The token was not found."]);
        assert_security_headers(&page);
        let r = post(&b, &app, &path, &[("csrf_token", &csrf)]).await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Even an admin manages other people's tokens under /admin, not here.
    let mine = app.login_token(&b).await;
    let path = format!(
        "/settings/tokens/{}/revoke",
        mine["tokenId"].as_str().unwrap()
    );
    assert_eq!(get(&admin, &app, &path).await.status, 404);
    assert_eq!(
        app.whoami(theirs["token"].as_str().unwrap()).await.status(),
        200
    );
}

#[tokio::test]
async fn new_tokens_show_a_banner_until_dismissed() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let empty = get(&b, &app, "/settings/tokens").await;
    empty.assert_lacks(&["New tokens were created"]);
    empty.assert_has(&["You have no tokens yet."]);

    let s = app.start_ok().await;
    assert_eq!(approve_via_form(&app, &b, &s.user_code).await.status, 200);
    let page = get(&b, &app, "/settings/tokens").await;
    page.assert_has(&[
        "New tokens were created for your account",
        "<strong>test laptop</strong> on ",
        "requested from 127.0.0.1",
        "approved from 127.0.0.1",
        "action=\"/settings/tokens/alerts/dismiss\"",
    ]);

    // A token minted after the page was shown is not dismissed unseen.
    let later = app.start_ok().await;
    app.sql("UPDATE cli_device_sessions SET token_name = 'later box' WHERE status = 'PENDING'")
        .await;
    assert_eq!(
        approve_via_form(&app, &b, &later.user_code).await.status,
        200
    );

    let up_to = {
        let marker = "name=\"up_to\" value=\"";
        let start = page.html.find(marker).unwrap() + marker.len();
        let end = page.html[start..].find('"').unwrap() + start;
        page.html[start..end].to_owned()
    };
    for forged in ["", "forged"] {
        let r = post(
            &b,
            &app,
            "/settings/tokens/alerts/dismiss",
            &[("csrf_token", forged), ("up_to", &up_to)],
        )
        .await;
        assert_eq!(r.status, 403);
    }
    let r = post(
        &b,
        &app,
        "/settings/tokens/alerts/dismiss",
        &[("csrf_token", &page.csrf()), ("up_to", &up_to)],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/settings/tokens"));
    let after = get(&b, &app, "/settings/tokens").await;
    after.assert_has(&["New tokens were created", "<strong>later box</strong>"]);
    after.assert_lacks(&["<strong>test laptop</strong>"]);
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'cli_token_created' AND seen_at IS NOT NULL"
        )
        .await,
        1
    );

    let fetch_up_to = |html: &str| {
        let marker = "name=\"up_to\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        let end = html[start..].find('"').unwrap() + start;
        html[start..end].to_owned()
    };
    let r = post(
        &b,
        &app,
        "/settings/tokens/alerts/dismiss",
        &[
            ("csrf_token", &after.csrf()),
            ("up_to", &fetch_up_to(&after.html)),
        ],
    )
    .await;
    assert_eq!(r.status, 303);
    get(&b, &app, "/settings/tokens")
        .await
        .assert_lacks(&["New tokens were created"]);
}

#[tokio::test]
async fn finding_10_the_new_token_alert_names_where_the_request_came_from() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    // The CLI asks from another address than the approving browser's.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .user_agent("envshield/9.9 (phisher-box)")
        .build()
        .unwrap();
    let s: envshield_api_types::StartDeviceResponse = elsewhere
        .post(app.url("/api/v1/cli/auth/device/start"))
        .json(&serde_json::json!({ "tokenName": "shared doc" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approve_via_form(&app, &b, &s.user_code).await.status, 200);
    let page = get(&b, &app, "/settings/tokens").await;
    page.assert_has(&[
        "<strong>shared doc</strong>",
        "requested from 127.0.0.2",
        "envshield/9.9 (phisher-box)",
        "approved from 127.0.0.1",
    ]);
    page.assert_lacks(&["change your password"]);
}
