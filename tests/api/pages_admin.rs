//! `/admin/*`, the navigation, and the error pages.

use crate::helpers::{browser, spawn_app};
use crate::pages_support::{assert_security_headers, get, post};

#[tokio::test]
async fn admin_pages_send_signed_out_visitors_to_sign_in() {
    let app = spawn_app().await;
    let b = browser();
    for (path, back) in [
        ("/admin/tokens", "/admin/tokens"),
        ("/admin/events?page=2", "/admin/events%3Fpage%3D2"),
        (
            "/admin/tokens?email=a&status=active",
            "/admin/tokens%3Femail%3Da%26status%3Dactive",
        ),
    ] {
        let page = get(&b, &app, path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/login?redirect={back}").as_str())
        );
    }
    let page = get(&b, &app, "/admin").await;
    assert_eq!(page.location.as_deref(), Some("/admin/tokens"));
}

#[tokio::test]
async fn admin_pages_are_forbidden_to_other_accounts() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let login = app.login_token(&b).await;
    let id = login["tokenId"].as_str().unwrap();
    for path in [
        "/admin/tokens".to_owned(),
        "/admin/events".to_owned(),
        format!("/admin/tokens/{id}/revoke"),
    ] {
        let page = get(&b, &app, &path).await;
        assert_eq!(page.status, 403, "{path}");
        page.assert_has(&["<h1>Not allowed</h1>", "This page is for admins only."]);
        assert_security_headers(&page);
    }
    let csrf = get(&b, &app, "/settings/tokens").await.csrf();
    let r = post(
        &b,
        &app,
        &format!("/admin/tokens/{id}/revoke"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        app.whoami(login["token"].as_str().unwrap()).await.status(),
        200
    );
}

#[tokio::test]
async fn the_nav_shows_admin_only_to_admins_and_signs_out_by_post() {
    let app = spawn_app().await;
    let (_, user) = app.signed_in_browser("dev@example.com", false).await;
    let (_, admin) = app.signed_in_browser("root@example.com", true).await;
    let page = get(&user, &app, "/").await;
    page.assert_has(&[
        "<nav class=\"nav\" aria-label=\"Account\">",
        "href=\"/settings/tokens\"",
        "<form method=\"post\" action=\"/logout\"",
        "Signed in as <strong>dev@example.com</strong>",
    ]);
    page.assert_lacks(&["href=\"/admin/tokens\""]);
    assert_security_headers(&page);
    get(&admin, &app, "/")
        .await
        .assert_has(&["href=\"/admin/tokens\""]);
    get(&browser(), &app, "/login")
        .await
        .assert_lacks(&["<nav class=\"nav\""]);

    let r = post(&user, &app, "/logout", &[]).await;
    assert_eq!(r.status, 403, "no CSRF token, no sign-out");
    let r = post(&user, &app, "/logout", &[("csrf_token", &page.csrf())]).await;
    assert_eq!(r.status, 303);
    assert_eq!(get(&user, &app, "/settings/tokens").await.status, 303);
}

#[tokio::test]
async fn admins_see_and_filter_every_token() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_browser("Alice@Example.com", false).await;
    let (_, bob) = app.signed_in_browser("bob@example.org", false).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let a = app.login_token(&alice).await;
    let _b = app.login_token(&bob).await;
    let revoked = app.login_token(&bob).await;
    app.sql(&format!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = '{}'",
        revoked["tokenId"].as_str().unwrap()
    ))
    .await;

    let all = get(&admin, &app, "/admin/tokens").await;
    assert_eq!(all.status, 200);
    assert_security_headers(&all);
    all.assert_has(&[
        "Alice@Example.com",
        "bob@example.org",
        "<label for=\"filter-email\">",
        "<label for=\"filter-status\">",
        "<caption id=\"tokens-caption\">",
        &format!(
            "href=\"/admin/tokens/{}/revoke\"",
            a["tokenId"].as_str().unwrap()
        ),
    ]);
    assert_eq!(all.table_rows(), 3);

    let alice_only = get(&admin, &app, "/admin/tokens?email=aLiCe").await;
    assert_eq!(alice_only.table_rows(), 1);
    alice_only.assert_has(&["Alice@Example.com", "value=\"aLiCe\"", "Clear filters"]);
    alice_only.assert_lacks(&["bob@example.org"]);

    let by_domain = get(
        &admin,
        &app,
        "/admin/tokens?email=example.org&status=active",
    )
    .await;
    assert_eq!(by_domain.table_rows(), 1);
    by_domain.assert_has(&["<option value=\"active\" selected>"]);
    let gone = get(&admin, &app, "/admin/tokens?status=revoked").await;
    assert_eq!(gone.table_rows(), 1);
    gone.assert_has(&["badge-revoked\">revoked<"]);
    assert_eq!(
        get(&admin, &app, "/admin/tokens?status=expired")
            .await
            .table_rows(),
        0
    );
    // LIKE wildcards are matched literally.
    get(&admin, &app, "/admin/tokens?email=%25")
        .await
        .assert_has(&["No tokens match."]);
    get(&admin, &app, "/admin/tokens?email=_")
        .await
        .assert_has(&["No tokens match."]);

    let bad = get(&admin, &app, "/admin/tokens?status=lost").await;
    assert_eq!(bad.status, 400);
    bad.assert_has(&["Filter by status active, expired or revoked"]);
}

#[tokio::test]
async fn admins_revoke_any_token_after_confirming() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_browser("alice@example.com", false).await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let login = app.login_token(&alice).await;
    let token = login["token"].as_str().unwrap();
    let id = login["tokenId"].as_str().unwrap();

    let list = get(&admin, &app, "/admin/tokens?email=alice").await;
    list.assert_has(&[&format!("href=\"/admin/tokens/{id}/revoke?email=alice\"")]);
    let confirm = get(
        &admin,
        &app,
        &format!("/admin/tokens/{id}/revoke?email=alice"),
    )
    .await;
    assert_eq!(confirm.status, 200);
    confirm.assert_has(&[
        "Revoke this token?",
        "<dt>Owner</dt><dd>alice@example.com</dd>",
        "name=\"email\" value=\"alice\"",
        "href=\"/admin/tokens?email=alice\"",
    ]);

    let forged = post(
        &admin,
        &app,
        &format!("/admin/tokens/{id}/revoke"),
        &[("csrf_token", "forged")],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(app.whoami(token).await.status(), 200);

    let r = post(
        &admin,
        &app,
        &format!("/admin/tokens/{id}/revoke"),
        &[("csrf_token", &confirm.csrf()), ("email", "alice")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.location.as_deref(),
        Some("/admin/tokens?email=alice&revoked=1")
    );
    assert_eq!(app.whoami(token).await.status(), 401);
    let after = get(&admin, &app, "/admin/tokens?email=alice&revoked=1").await;
    after.assert_has(&["Token revoked.", "badge-revoked\">revoked<"]);
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'cli_token_revoked' AND details->>'by_admin' = 'true'"
        )
        .await,
        1
    );
    let missing = get(&admin, &app, "/admin/tokens/not-a-token/revoke").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_event_log_is_newest_first_and_paginated() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    app.sql(
        "INSERT INTO security_events (kind, severity, ip, details, created_at) \
         SELECT 'test_event', 'low', '198.51.100.' || n, jsonb_build_object('n', n), \
                now() - interval '1 hour' + n * interval '1 second' \
         FROM generate_series(1, 120) AS n",
    )
    .await;
    let total = app.count("security_events", "true").await;
    assert!(total > 120);

    let first = get(&admin, &app, "/admin/events").await;
    assert_eq!(first.status, 200);
    assert_security_headers(&first);
    assert_eq!(first.table_rows(), 50);
    first.assert_has(&[
        "<th scope=\"col\">Time</th>",
        "<th scope=\"col\">Kind</th>",
        "<th scope=\"col\">Severity</th>",
        "<th scope=\"col\">User</th>",
        "<th scope=\"col\">IP</th>",
        "<th scope=\"col\">Details</th>",
        "href=\"/admin/events?page=2\"",
        "{&#34;n&#34;:120}",
        "198.51.100.120",
        // The sign-in just now is the newest event, and names its account.
        "login_succeeded",
        "admin@example.com",
    ]);
    first.assert_lacks(&["rel=\"prev\"", "{&#34;n&#34;:1}<"]);
    let signed_in = first.html.find("login_succeeded").unwrap();
    let newest = first.html.find("{&#34;n&#34;:120}").unwrap();
    let older = first.html.find("{&#34;n&#34;:119}").unwrap();
    assert!(signed_in < newest && newest < older, "newest first");

    let second = get(&admin, &app, "/admin/events?page=2").await;
    assert_eq!(second.table_rows(), 50);
    second.assert_has(&[
        "href=\"/admin/events?page=1\"",
        "href=\"/admin/events?page=3\"",
    ]);
    second.assert_lacks(&["{&#34;n&#34;:120}"]);
    let last_page = (total + 49) / 50;
    let last = get(&admin, &app, &format!("/admin/events?page={last_page}")).await;
    assert_eq!(last.table_rows() as i64, total - (last_page - 1) * 50);
    last.assert_has(&["{&#34;n&#34;:1}<", "rel=\"prev\""]);
    last.assert_lacks(&["rel=\"next\""]);
    let beyond = get(
        &admin,
        &app,
        &format!("/admin/events?page={}", last_page + 1),
    )
    .await;
    assert_eq!(beyond.status, 200);
    beyond.assert_has(&["No events on this page."]);

    for bad in ["0", "-1", "two", "99999999999"] {
        let page = get(&admin, &app, &format!("/admin/events?page={bad}")).await;
        assert_eq!(page.status, 400, "{bad}");
        page.assert_has(&["The page number must be a whole number from 1."]);
    }
}

#[tokio::test]
async fn unknown_pages_and_unreadable_forms_get_styled_html_errors() {
    let app = spawn_app().await;
    let page = get(&browser(), &app, "/no/such/page").await;
    assert_eq!(page.status, 404);
    assert_security_headers(&page);
    page.assert_has(&[
        "<link rel=\"stylesheet\" href=\"/static/css/app.css\">",
        "Error 404",
        "<h1>Page not found</h1>",
    ]);
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let r = b
        .post(app.url("/cli/device"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let css = browser()
        .get(app.url("/static/css/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.text().await.unwrap().contains(":focus-visible"));
}
