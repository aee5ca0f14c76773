//! The account life cycle: server-side browser sessions (security review
//! finding 5), your sessions, password change, the per-account cap on code
//! entry (finding 3), and the admin users page.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::Client;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, token_with_scopes, TestApp, PASSWORD};
use crate::pages_support::{get, post, Page};

/// A browser with its own address on the loopback network (127.0.0.N),
/// user agent and inspectable cookie jar.
fn browser_at(last_octet: u8, user_agent: &str) -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)))
        .user_agent(user_agent)
        .build()
        .unwrap();
    (client, jar)
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

async fn signed_in_at(app: &TestApp, email: &str, octet: u8, ua: &str) -> (Client, Arc<Jar>) {
    let (client, jar) = browser_at(octet, ua);
    let r = app.sign_in(&client, email, PASSWORD).await;
    assert_eq!(r.status(), 303, "signed in");
    (client, jar)
}

/// The `Cookie` header this jar sends to the app: what a thief copies.
fn copied_cookie(app: &TestApp, jar: &Jar) -> String {
    let url = reqwest::Url::parse(&app.url("/")).unwrap();
    jar.cookies(&url)
        .expect("signed in")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A page fetched by someone else holding `cookie`.
async fn with_cookie(app: &TestApp, cookie: &str, path: &str) -> Page {
    let r = app
        .cli
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    Page::from(r).await
}

#[tokio::test]
async fn finding_5_a_copied_session_cookie_stops_working_after_sign_out() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let (browser, jar) = signed_in_at(&app, "dev@example.com", 1, FIREFOX).await;
    let stolen = copied_cookie(&app, &jar);
    assert_eq!(
        with_cookie(&app, &stolen, "/settings/tokens").await.status,
        200
    );

    let page = get(&browser, &app, "/settings/tokens").await;
    let out = post(&browser, &app, "/logout", &[("csrf_token", &page.csrf())]).await;
    assert_eq!(out.location.as_deref(), Some("/login"));

    let replayed = with_cookie(&app, &stolen, "/settings/tokens").await;
    assert_eq!(replayed.status, 303, "{}", replayed.html);
    assert!(replayed.location.unwrap().starts_with("/login"));
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/complete"))
        .header("Cookie", &stolen)
        .header("Origin", app.origin())
        .json(&json!({ "userCode": "BCDF-GHJK", "decision": "approve" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the JSON API refuses the ended session too"
    );
}

#[tokio::test]
async fn the_sessions_page_shows_each_browser_and_ends_one() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let (laptop, _) = signed_in_at(&app, "dev@example.com", 1, FIREFOX).await;
    let (phone, _) = signed_in_at(&app, "dev@example.com", 2, PHONE).await;

    let page = get(&laptop, &app, "/settings/sessions").await;
    assert_eq!(page.status, 200);
    page.assert_has(&[
        "Firefox on Linux",
        "Safari on iOS",
        "127.0.0.1",
        "127.0.0.2",
        "this browser",
        "Sign out everywhere",
    ]);
    assert_eq!(page.html.matches("this browser").count(), 1);

    // The phone's session is the one without the "this browser" badge.
    let phone_id = app
        .scalar("SELECT id::text FROM user_sessions WHERE ip = '127.0.0.2'")
        .await;
    let ended = post(
        &laptop,
        &app,
        &format!("/settings/sessions/{phone_id}/end"),
        &[("csrf_token", &page.csrf())],
    )
    .await;
    assert_eq!(
        ended.location.as_deref(),
        Some("/settings/sessions?ended=1")
    );
    assert_eq!(get(&phone, &app, "/settings/tokens").await.status, 303);
    assert_eq!(get(&laptop, &app, "/settings/tokens").await.status, 200);

    // Someone else's session is not yours to end.
    app.create_user("other@example.com", false).await;
    let (other, _) = signed_in_at(&app, "other@example.com", 3, FIREFOX).await;
    let laptop_id = app
        .scalar("SELECT id::text FROM user_sessions WHERE ip = '127.0.0.1' AND ended_at IS NULL")
        .await;
    let page = get(&other, &app, "/settings/sessions").await;
    let refused = post(
        &other,
        &app,
        &format!("/settings/sessions/{laptop_id}/end"),
        &[("csrf_token", &page.csrf())],
    )
    .await;
    assert_eq!(refused.status, 404);
    assert_eq!(get(&laptop, &app, "/settings/tokens").await.status, 200);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_browser() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let (laptop, _) = signed_in_at(&app, "dev@example.com", 1, FIREFOX).await;
    let (phone, _) = signed_in_at(&app, "dev@example.com", 2, PHONE).await;
    let page = get(&phone, &app, "/settings/sessions").await;
    let r = post(
        &phone,
        &app,
        "/settings/sessions/end-all",
        &[("csrf_token", &page.csrf())],
    )
    .await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    for browser in [&laptop, &phone] {
        assert_eq!(get(browser, &app, "/settings/tokens").await.status, 303);
    }
    assert_eq!(
        app.count("security_events", "kind = 'sessions_ended'")
            .await,
        1
    );
}

#[tokio::test]
async fn changing_the_password_checks_the_old_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let (laptop, _) = signed_in_at(&app, "dev@example.com", 1, FIREFOX).await;
    let (phone, _) = signed_in_at(&app, "dev@example.com", 2, PHONE).await;
    let new = "a much longer new passphrase";
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        let laptop = laptop.clone();
        let app = &app;
        async move {
            let page = get(&laptop, app, "/settings/password").await;
            assert_eq!(page.status, 200);
            post(
                &laptop,
                app,
                "/settings/password",
                &[
                    ("csrf_token", &page.csrf()),
                    ("current_password", current),
                    ("new_password", new),
                    ("new_password_confirm", again),
                ],
            )
            .await
        }
    };
    let wrong = change("not my password", new, new).await;
    assert_eq!(wrong.status, 400);
    wrong.assert_has(&["Your current password is not right."]);
    let mismatch = change(PASSWORD, new, "something else entirely").await;
    mismatch.assert_has(&["The two new passwords do not match."]);
    let short = change(PASSWORD, "short", "short").await;
    short.assert_has(&["at least 10 characters"]);
    assert_eq!(
        get(&phone, &app, "/settings/tokens").await.status,
        200,
        "nothing changed yet"
    );

    let ok = change(PASSWORD, new, new).await;
    assert_eq!(ok.location.as_deref(), Some("/settings/password?changed=1"));
    assert_eq!(
        get(&laptop, &app, "/settings/tokens").await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        get(&phone, &app, "/settings/tokens").await.status,
        303,
        "others end"
    );
    let (fresh, _) = browser_at(4, FIREFOX);
    assert_eq!(
        app.sign_in(&fresh, "dev@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.sign_in(&fresh, "dev@example.com", new).await.status(),
        303
    );
    assert_eq!(
        app.count("security_events", "kind = 'password_changed'")
            .await,
        1
    );
}

#[tokio::test]
async fn finding_3_code_entry_is_capped_per_account_across_addresses() {
    let app = spawn_app_with(|c| {
        c.rate_limits.code_entry_per_account_per_hour = 3;
        c.rate_limits.complete_per_min = 0;
    })
    .await;
    app.create_user("dev@example.com", false).await;
    let (first, _) = signed_in_at(&app, "dev@example.com", 1, FIREFOX).await;
    let (second, _) = signed_in_at(&app, "dev@example.com", 2, PHONE).await;
    let (third, _) = signed_in_at(&app, "dev@example.com", 3, FIREFOX).await;
    let guess = |client: Client, code: &'static str| {
        let app = &app;
        async move {
            let page = get(&client, app, "/cli/device").await;
            post(
                &client,
                app,
                "/cli/device",
                &[("csrf_token", &page.csrf()), ("code", code)],
            )
            .await
        }
    };
    // Three wrong guesses from three addresses use up the account's entries.
    assert_eq!(guess(first.clone(), "BCDF-GHJK").await.status, 400);
    assert_eq!(guess(second.clone(), "BCDF-GHJL").await.status, 400);
    let r = app.approve(&third, "BCDF-GHJM").await;
    assert_eq!(r.status(), 410, "an unknown code, counted");
    let limited = guess(second, "BCDF-GHJN").await;
    assert_eq!(limited.status, 429, "{}", limited.html);
    assert!(limited.headers.contains_key("retry-after"));
    let r = app.approve(&third, "BCDF-GHJP").await;
    assert_eq!(r.status(), 429, "the JSON approval counts too");
    let page = get(&first, &app, "/cli/login?code=BCDF-GHJQ").await;
    assert_eq!(page.status, 429, "and the approval page");
    assert!(
        app.count(
            "security_events",
            "kind = 'cli_rate_limit_exceeded' AND user_id IS NOT NULL"
        )
        .await
            >= 1
    );

    // Another account is not affected.
    app.create_user("other@example.com", false).await;
    let (other, _) = signed_in_at(&app, "other@example.com", 1, FIREFOX).await;
    assert_eq!(guess(other, "BCDF-GHJK").await.status, 400);
}

/// Confirms `action` on account `id` through its confirmation page.
async fn admin_action(app: &TestApp, admin: &Client, id: &str, action: &str) -> Page {
    let path = format!("/admin/users/{id}/{action}");
    let confirm = get(admin, app, &path).await;
    assert_eq!(confirm.status, 200, "{}", confirm.html);
    post(admin, app, &path, &[("csrf_token", &confirm.csrf())]).await
}

#[tokio::test]
async fn an_admin_disables_an_account_ending_its_sessions_and_tokens() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let dev = app.create_user("dev@example.com", false).await;
    let (browser, _) = signed_in_at(&app, "dev@example.com", 2, FIREFOX).await;
    let token = token_with_scopes(&app, &browser, &["tokens:read"]).await;
    assert_eq!(app.whoami(&token).await.status(), 200);

    let list = get(&admin, &app, "/admin/users?q=DEV@").await;
    list.assert_has(&["dev@example.com", "Disable", "Make admin"]);
    list.assert_lacks(&["<td>admin@example.com</td>"]);
    let confirm = get(&admin, &app, &format!("/admin/users/{}/disable", dev.id)).await;
    confirm.assert_has(&["every API and refresh token it holds is revoked"]);
    let done = admin_action(&app, &admin, &dev.id.to_string(), "disable").await;
    assert_eq!(done.location.as_deref(), Some("/admin/users?done=disable"));

    assert_eq!(
        app.whoami(&token).await.status(),
        401,
        "tokens revoked at once"
    );
    assert_eq!(get(&browser, &app, "/settings/tokens").await.status, 303);
    let (fresh, _) = browser_at(3, FIREFOX);
    assert_eq!(
        app.sign_in(&fresh, "dev@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.count("security_events", "kind = 'account_disabled'")
            .await,
        1
    );

    admin_action(&app, &admin, &dev.id.to_string(), "enable").await;
    assert_eq!(
        app.sign_in(&fresh, "dev@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.whoami(&token).await.status(),
        401,
        "old tokens stay revoked"
    );
}

#[tokio::test]
async fn demoting_an_admin_revokes_what_only_admins_may_hold() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let other = app.create_user("second@example.com", true).await;
    let (second, _) = signed_in_at(&app, "second@example.com", 2, FIREFOX).await;
    let introspect = token_with_scopes(&app, &second, &["tokens:introspect"]).await;
    let plain = token_with_scopes(&app, &second, &["tokens:read"]).await;

    let done = admin_action(&app, &admin, &other.id.to_string(), "make-user").await;
    assert_eq!(
        done.location.as_deref(),
        Some("/admin/users?done=make-user")
    );
    assert_eq!(app.whoami(&introspect).await.status(), 401);
    assert_eq!(app.whoami(&plain).await.status(), 200);
    assert_eq!(get(&second, &app, "/admin/users").await.status, 403);
    assert_eq!(
        app.count("security_events", "kind = 'role_changed'").await,
        1
    );
}

#[tokio::test]
async fn the_last_admin_cannot_demote_or_disable_themself() {
    let app = spawn_app().await;
    let (me, admin) = app.signed_in_browser("admin@example.com", true).await;
    for action in ["make-user", "disable"] {
        let r = admin_action(&app, &admin, &me.id.to_string(), action).await;
        assert_eq!(r.status, 409, "{action}");
        r.assert_has(&["only enabled admin account"]);
    }
    assert_eq!(
        app.count("users", "role = 'admin' AND disabled_at IS NULL")
            .await,
        1
    );
    // With a second admin, stepping down is fine, and leads out of the
    // admin pages.
    app.create_user("second@example.com", true).await;
    let r = admin_action(&app, &admin, &me.id.to_string(), "make-user").await;
    assert_eq!(r.location.as_deref(), Some("/"));
    assert_eq!(get(&admin, &app, "/admin/users").await.status, 403);
}

#[tokio::test]
async fn an_admin_creates_an_account_whose_password_is_shown_once() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in_browser("admin@example.com", true).await;
    let list = get(&admin, &app, "/admin/users").await;
    let created = post(
        &admin,
        &app,
        "/admin/users",
        &[
            ("csrf_token", &list.csrf()),
            ("email", "new@example.com"),
            ("role", "user"),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.html);
    assert_eq!(created.headers["cache-control"], "no-store");
    let marker = "class=\"mono password-once\" aria-labelledby=\"password-label\">";
    let start = created.html.find(marker).unwrap() + marker.len();
    let password = &created.html[start..start + created.html[start..].find('<').unwrap()];
    let (fresh, _) = browser_at(2, FIREFOX);
    assert_eq!(
        app.sign_in(&fresh, "new@example.com", password)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.count("security_events", "kind = 'account_created'")
            .await,
        1
    );

    let again = post(
        &admin,
        &app,
        "/admin/users",
        &[
            ("csrf_token", &list.csrf()),
            ("email", "NEW@example.com"),
            ("role", "user"),
        ],
    )
    .await;
    assert_eq!(again.status, 409);
    again.assert_has(&["already exists"]);
    let bad = post(
        &admin,
        &app,
        "/admin/users",
        &[
            ("csrf_token", &list.csrf()),
            ("email", "x@example.com"),
            ("role", "root"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400);
    bad.assert_has(&["Choose the role user or admin."]);
}

#[tokio::test]
async fn only_admins_reach_the_users_page() {
    let app = spawn_app().await;
    let (_, user) = app.signed_in_browser("dev@example.com", false).await;
    let target = app.create_user("other@example.com", false).await;
    assert_eq!(get(&user, &app, "/admin/users").await.status, 403);
    let page = get(&user, &app, "/settings/tokens").await;
    let r = post(
        &user,
        &app,
        &format!("/admin/users/{}/disable", target.id),
        &[("csrf_token", &page.csrf())],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.count("users", "disabled_at IS NOT NULL").await, 0);
}

/// Runs `envshield-server users ...` against the test database.
fn server_cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    // Removed when this returns: the command keeps nothing there.
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_envshield-server"))
        .arg("users")
        .args(args)
        .env("DATABASE_URL", &app.server.db.url)
        .env("BCRYPT_COST", "4")
        .env("ENVSHIELD_DATA_DIR", data_dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn operators_manage_accounts_from_the_command_line() {
    let app = spawn_app().await;
    app.create_user("admin@example.com", true).await;
    app.create_user("dev@example.com", false).await;
    let (browser, _) = signed_in_at(&app, "dev@example.com", 2, FIREFOX).await;
    let token = token_with_scopes(&app, &browser, &["tokens:read"]).await;
    let app = std::sync::Arc::new(app);
    let run = |args: &'static [&'static str], stdin: Option<&'static str>| {
        let app = app.clone();
        async move {
            tokio::task::spawn_blocking(move || server_cli(&app, args, stdin))
                .await
                .unwrap()
        }
    };

    let (ok, out) = run(&["list"], None).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("admin@example.com") && out.contains("dev@example.com"),
        "{out}"
    );
    assert!(out.contains("2 account(s)"), "{out}");

    let (ok, out) = run(&["disable", "--email", "DEV@example.com"], None).await;
    assert!(ok, "{out}");
    assert!(out.contains("disabled; 1 token(s)"), "{out}");
    app.whoami_settles(&token, 401).await;
    assert_eq!(get(&browser, &app, "/settings/tokens").await.status, 303);
    let (_, out) = run(&["list", "--search", "dev"], None).await;
    assert!(
        out.contains("disabled") && out.contains("1 account(s)"),
        "{out}"
    );

    let (ok, out) = run(&["enable", "--email", "dev@example.com"], None).await;
    assert!(ok && out.contains("active"), "{out}");
    let (ok, out) = run(
        &["set-role", "--email", "dev@example.com", "--role", "admin"],
        None,
    )
    .await;
    assert!(ok && out.contains("role admin"), "{out}");
    let (ok, out) = run(
        &["reset-password", "--email", "dev@example.com"],
        Some("an operator's new password\n"),
    )
    .await;
    assert!(ok, "{out}");
    let (fresh, _) = browser_at(3, FIREFOX);
    assert_eq!(
        app.sign_in(&fresh, "dev@example.com", "an operator's new password")
            .await
            .status(),
        303
    );

    let (ok, out) = run(
        &["set-role", "--email", "dev@example.com", "--role", "root"],
        None,
    )
    .await;
    assert!(!ok && out.contains("`user` or `admin`"), "{out}");
    let (ok, out) = run(&["disable", "--email", "nobody@example.com"], None).await;
    assert!(!ok && out.contains("no account has the email"), "{out}");
    let (ok, out) = run(
        &["set-role", "--email", "admin@example.com", "--role", "user"],
        None,
    )
    .await;
    assert!(ok, "another admin exists now: {out}");
    let (ok, out) = run(&["disable", "--email", "dev@example.com"], None).await;
    assert!(!ok && out.contains("only enabled admin"), "{out}");
    assert_eq!(
        app.count("security_events", "details->>'by' = 'operator'")
            .await,
        5
    );
}

#[tokio::test]
async fn signing_in_again_leaves_one_live_session() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    app.create_user("other@example.com", false).await;
    let (browser, jar) = signed_in_at(&app, "dev@example.com", 1, FIREFOX).await;
    let before = copied_cookie(&app, &jar);
    // Posting the sign-in form again, as another account.
    let csrf = get(&browser, &app, "/settings/tokens").await.csrf();
    let r = post(
        &browser,
        &app,
        "/login",
        &[
            ("csrf_token", &csrf),
            ("email", "other@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(app.count("user_sessions", "ended_at IS NULL").await, 1);
    assert_eq!(
        with_cookie(&app, &before, "/settings/tokens").await.status,
        303
    );
    let page = get(&browser, &app, "/settings/sessions").await;
    page.assert_has(&["other@example.com"]);
}
