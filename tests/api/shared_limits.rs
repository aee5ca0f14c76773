//! The limits that bound guessing hold across instances: two servers on one
//! database share one budget, instead of doubling it.

use envshield_server::testing::TestServer;
use reqwest::Client;
use serde_json::json;

use crate::helpers::{browser, spawn_app_with, TestApp, PASSWORD};
use crate::pages_support::{get, post};

/// A browser signed in as `email` on `instance`.
async fn signed_in_on(app: &TestApp, instance: &TestServer, email: &str) -> Client {
    let b = browser();
    let page = b
        .get(format!("{}/login", instance.address))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let csrf = crate::helpers::csrf_from(&html);
    let r = b
        .post(format!("{}/login", instance.address))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in on {}", instance.address);
    let _ = app;
    b
}

async fn second_instance(app: &TestApp) -> TestServer {
    let first = &app.server;
    tokio::task::block_in_place(|| TestServer::spawn_sharing(first)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_entry_per_account_is_one_budget_across_instances() {
    let app = spawn_app_with(|c| {
        c.rate_limits.code_entry_per_account_per_hour = 3;
    })
    .await;
    let other = second_instance(&app).await;
    app.create_user("dev@example.com", false).await;
    let on_first = signed_in_on(&app, &app.server, "dev@example.com").await;
    let on_second = signed_in_on(&app, &other, "dev@example.com").await;
    let guess = |client: &Client, base: &str, code: &str| {
        let (client, base, code) = (client.clone(), base.to_owned(), code.to_owned());
        async move {
            let page = client
                .get(format!("{base}/cli/device"))
                .send()
                .await
                .unwrap();
            let csrf = crate::helpers::csrf_from(&page.text().await.unwrap());
            client
                .post(format!("{base}/cli/device"))
                .form(&[("csrf_token", csrf.as_str()), ("code", code.as_str())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        guess(&on_first, &app.server.address, "BCDF-GHJK").await,
        400
    );
    assert_eq!(
        guess(&on_first, &app.server.address, "BCDF-GHJL").await,
        400
    );
    assert_eq!(guess(&on_second, &other.address, "BCDF-GHJM").await, 400);
    assert_eq!(
        guess(&on_second, &other.address, "BCDF-GHJN").await,
        429,
        "the second instance knows what the first counted"
    );
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_limits_are_one_budget_across_instances() {
    let app = spawn_app_with(|c| {
        c.rate_limits.login_per_account_per_hour = 2;
        c.rate_limits.login_per_min = 3;
    })
    .await;
    let other = second_instance(&app).await;
    app.create_user("victim@example.com", false).await;
    let attempt = |base: String| async move {
        let b = browser();
        let page = b.get(format!("{base}/login")).send().await.unwrap();
        let csrf = crate::helpers::csrf_from(&page.text().await.unwrap());
        b.post(format!("{base}/login"))
            .form(&[
                ("email", "victim@example.com"),
                ("password", "not the password"),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Per account and network: two attempts, wherever they land.
    assert_eq!(attempt(app.server.address.clone()).await, 401);
    assert_eq!(attempt(other.address.clone()).await, 401);
    assert_eq!(attempt(other.address.clone()).await, 429);
    // Per client network: three sign-in posts a minute in all.
    let r = attempt(app.server.address.clone()).await;
    assert_eq!(
        r, 429,
        "the fourth post from this network, on either instance"
    );
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_per_client_is_one_budget_across_instances() {
    let app = spawn_app_with(|c| c.rate_limits.complete_per_min = 2).await;
    let other = second_instance(&app).await;
    app.create_user("dev@example.com", false).await;
    let first_browser = signed_in_on(&app, &app.server, "dev@example.com").await;
    let second_browser = signed_in_on(&app, &other, "dev@example.com").await;
    let complete = |b: Client, base: String| async move {
        b.post(format!("{base}/api/v1/cli/auth/device/complete"))
            .header("Origin", &base)
            .json(&json!({ "userCode": "BCDF-GHJK", "decision": "approve" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        complete(first_browser.clone(), app.server.address.clone()).await,
        410
    );
    assert_eq!(
        complete(second_browser.clone(), other.address.clone()).await,
        410
    );
    assert_eq!(complete(second_browser, other.address.clone()).await, 429);
    let page = get(&first_browser, &app, "/cli/device").await;
    assert_eq!(page.status, 200, "showing the form is free");
    let r = post(
        &first_browser,
        &app,
        "/cli/device",
        &[("csrf_token", &page.csrf()), ("code", "BCDF-GHJK")],
    )
    .await;
    assert_eq!(r.status, 429, "and code entry shares the budget");
    drop(other);
}
