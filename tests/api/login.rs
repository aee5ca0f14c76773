//! Browser sign-in: CSRF, generic failures, cookies, redirects, headers.

use crate::helpers::{browser, csrf_from, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn login_form_carries_a_csrf_token_and_security_headers() {
    let app = spawn_app().await;
    let r = browser().get(app.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(csrf_from(&html).len() >= 40);
    assert!(html.contains("<label for=\"email\">"));
}

#[tokio::test]
async fn login_without_a_valid_csrf_token_is_refused() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let b = browser();
    let _ = b.get(app.url("/login")).send().await.unwrap();
    for token in ["", "forged"] {
        let r = b
            .post(app.url("/login"))
            .form(&[
                ("email", "dev@example.com"),
                ("password", PASSWORD),
                ("csrf_token", token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{token:?}");
        assert!(r.text().await.unwrap().contains("Reload the page"));
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    let wrong = app
        .sign_in(&browser(), "dev@example.com", "wrong password!")
        .await;
    let unknown = app
        .sign_in(&browser(), "nobody@example.com", PASSWORD)
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let strip = |html: String| {
        let c = csrf_from(&html);
        html.replace(&c, "")
            .replace("dev@example.com", "")
            .replace("nobody@example.com", "")
    };
    let (a, b) = (
        strip(wrong.text().await.unwrap()),
        strip(unknown.text().await.unwrap()),
    );
    assert_eq!(a, b);
    assert!(a.contains("Incorrect email or password."));
    assert_eq!(
        app.count("security_events", "kind = 'login_failed'").await,
        2
    );
}

#[tokio::test]
async fn sign_in_sets_a_hardened_cookie_renews_the_session_and_sign_out_ends_it() {
    let app = spawn_app().await;
    app.create_user("Dev@Example.com", false).await;
    let b = browser();
    let page = b.get(app.url("/login")).send().await.unwrap();
    let before = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    let csrf = csrf_from(&page.text().await.unwrap());
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("email", "dev@example.com"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "email is case-insensitive");
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-http localhost");
    assert_ne!(
        cookie.split(';').next(),
        before.split(';').next(),
        "new session"
    );

    let home = b.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("Dev@Example.com"));
    let csrf = csrf_from(&html);
    let r = b
        .post(app.url("/logout"))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let after = b.get(app.url("/")).send().await.unwrap();
    assert_eq!(after.status(), 303, "signed out");
    assert_eq!(after.headers()["location"], "/login");
}

#[tokio::test]
async fn secure_cookies_outside_localhost() {
    let app =
        spawn_app_with(|c| c.app_url = url::Url::parse("https://auth.example.com").unwrap()).await;
    let r = browser().get(app.url("/login")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn redirect_after_sign_in_stays_on_this_site() {
    let app = spawn_app().await;
    app.create_user("dev@example.com", false).await;
    for (target, expected) in [
        ("/cli/login?code=BCDF-GHJK", "/cli/login?code=BCDF-GHJK"),
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
    ] {
        let b = browser();
        let page = b
            .get(app.url("/login"))
            .query(&[("redirect", target)])
            .send()
            .await
            .unwrap();
        let csrf = csrf_from(&page.text().await.unwrap());
        let r = b
            .post(app.url("/login"))
            .form(&[
                ("email", "dev@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("redirect", target),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], expected, "{target}");
    }
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let app = spawn_app_with(|c| c.rate_limits.login_per_min = 2).await;
    let b = browser();
    for _ in 0..2 {
        assert_eq!(
            app.sign_in(&b, "x@example.com", "nope nope nope")
                .await
                .status(),
            401
        );
    }
    let r = app.sign_in(&b, "x@example.com", "nope nope nope").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("Too many"));
}

#[tokio::test]
async fn sign_in_attempts_are_also_limited_per_account() {
    let app = spawn_app_with(|c| c.rate_limits.login_per_account_per_hour = 2).await;
    app.create_user("dev@example.com", false).await;
    for _ in 0..2 {
        let r = app
            .sign_in(&browser(), "dev@example.com", "wrong password!")
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = app.sign_in(&browser(), "DEV@example.com", PASSWORD).await;
    assert_eq!(
        r.status(),
        429,
        "even the right password waits, in any case"
    );
    let r = app
        .sign_in(&browser(), "other@example.com", "wrong password!")
        .await;
    assert_eq!(r.status(), 401, "other accounts are unaffected");
}

#[tokio::test]
async fn signup_is_off_unless_allowed() {
    let app = spawn_app().await;
    assert_eq!(
        browser()
            .get(app.url("/signup"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn signup_checks_the_form_and_signs_the_new_account_in() {
    let app = spawn_app_with(|c| c.allow_signup = true).await;
    app.create_user("taken@example.com", false).await;
    let b = browser();
    let page = b.get(app.url("/signup")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_from(&page.text().await.unwrap());
    let post = |email: &str, pw: &str, again: &str, csrf: &str| {
        b.post(app.url("/signup"))
            .form(&[
                ("email", email),
                ("password", pw),
                ("password_confirm", again),
                ("csrf_token", csrf),
            ])
            .send()
    };
    for (email, pw, again, needle) in [
        (
            "new@example.com",
            "long enough pw",
            "different pw 1",
            "do not match",
        ),
        ("new@example.com", "short", "short", "at least 10"),
        (
            "not-an-email",
            "long enough pw",
            "long enough pw",
            "like name@example.com",
        ),
        (
            "Taken@example.com",
            "long enough pw",
            "long enough pw",
            "already exists",
        ),
    ] {
        let r = post(email, pw, again, &csrf).await.unwrap();
        assert_eq!(r.status(), 400, "{email} {pw}");
        assert!(r.text().await.unwrap().contains(needle), "{needle}");
    }
    let r = post(
        "new@example.com",
        "long enough pw",
        "long enough pw",
        "forged",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = post("new@example.com", "long enough pw", "long enough pw", &csrf)
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let home = b.get(app.url("/")).send().await.unwrap();
    assert!(home.text().await.unwrap().contains("new@example.com"));
    assert_eq!(
        app.count("users", "email = 'new@example.com' AND role = 'user'")
            .await,
        1
    );
}

#[tokio::test]
async fn finding_13_failed_sign_ins_name_the_account_that_was_tried() {
    let app = spawn_app().await;
    let user = app.create_user("dev@example.com", false).await;
    app.sign_in(&browser(), "dev@example.com", "wrong password!")
        .await;
    app.sign_in(&browser(), "nobody@example.com", PASSWORD)
        .await;
    assert_eq!(
        app.count(
            "security_events",
            &format!("kind = 'login_failed' AND user_id = '{}'", user.id)
        )
        .await,
        1,
        "the real account's owner can see the attempt"
    );
    assert_eq!(
        app.count(
            "security_events",
            "kind = 'login_failed' AND user_id IS NULL"
        )
        .await,
        1,
        "an unknown email names no account"
    );
}

#[tokio::test]
async fn finding_2_failures_from_another_network_do_not_lock_the_owner_out() {
    let app =
        crate::helpers::spawn_app_with(|c| c.rate_limits.login_per_account_per_hour = 2).await;
    app.create_user("dev@example.com", false).await;
    let attacker = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = app
            .sign_in(&attacker, "dev@example.com", "guess guess guess")
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 429],
        "guessing from one network is bounded"
    );
    let owner = app.sign_in(&browser(), "dev@example.com", PASSWORD).await;
    assert_eq!(
        owner.status(),
        303,
        "the owner, from their own network, signs in"
    );
}
