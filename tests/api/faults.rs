//! Faults: the database restarted or stopped under a running server. Each
//! test runs its own PostgreSQL cluster, so stopping it disturbs no other.

use std::path::PathBuf;
use std::time::Duration;

use envshield_server::testing::TestServer;
use pg_local::{LocalPostgres, StopMode};
use reqwest::Client;

use crate::helpers::{fresh_target_dir, TestApp};

/// A fresh cluster directory under `target/` for one fault test.
fn cluster_dir(name: &str) -> PathBuf {
    fresh_target_dir(&format!("envshield-test-pg-{name}"))
}

/// A server on a cluster of its own; the cluster comes back too, so the
/// test can stop and start it.
async fn app_on_own_cluster(name: &str, pool_size: u32) -> (TestApp, LocalPostgres) {
    let dir = cluster_dir(name);
    let (pg, url) = tokio::task::spawn_blocking(move || {
        let pg = LocalPostgres::start(&dir).expect("fault-test cluster starts");
        pg.ensure_database("envshield").unwrap();
        let url = pg.url("envshield");
        (pg, url)
    })
    .await
    .unwrap();
    let server = tokio::task::spawn_blocking(move || {
        TestServer::spawn_on_url(&url, |c| {
            c.db_pool_size = pool_size;
            c.db_timeout = Duration::from_secs(2);
        })
    })
    .await
    .unwrap()
    .expect("test server starts");
    let app = TestApp {
        server,
        cli: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    (app, pg)
}

/// One round of what people do: a Bearer call, a page, readiness.
async fn round(app: &TestApp, browser: &Client, token: &str) -> Vec<u16> {
    let whoami = app.whoami(token).await.status().as_u16();
    let page = browser
        .get(app.url("/settings/tokens"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let ready = app
        .cli
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    vec![whoami, page, ready]
}

async fn restart_answers_503_at_most_then_recovers(mode: StopMode, name: &str) {
    let pool_size = 4;
    let (app, mut pg) = app_on_own_cluster(name, pool_size).await;
    let (_, browser) = app.signed_in_browser("dev@example.com", false).await;
    let token = app.login_token(&browser).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Warm every pooled connection.
    for _ in 0..pool_size {
        assert_eq!(round(&app, &browser, &token).await, [200, 200, 200]);
    }

    let mut pg = tokio::task::spawn_blocking(move || {
        pg.restart(mode).expect("cluster restarts");
        pg
    })
    .await
    .unwrap();

    let mut seen = Vec::new();
    for _ in 0..15 {
        seen.extend(round(&app, &browser, &token).await);
    }
    assert!(
        seen.iter().all(|s| *s == 200 || *s == 503),
        "only 200 or 503 after a restart ({mode:?}): {seen:?}"
    );
    eprintln!("after a {mode:?} restart: {seen:?}");
    let unavailable = seen.iter().filter(|s| **s == 503).count();
    assert!(
        unavailable <= pool_size as usize,
        "each dead connection fails at most once, then leaves the pool: {seen:?}"
    );
    assert!(
        seen[seen.len() - 9..].iter().all(|s| *s == 200),
        "recovered by itself: {seen:?}"
    );
    drop(app);
    tokio::task::spawn_blocking(move || pg.stop().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_database_restart_gives_no_500s() {
    restart_answers_503_at_most_then_recovers(StopMode::Fast, "restart-fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_restart_of_the_database_gives_no_500s() {
    restart_answers_503_at_most_then_recovers(StopMode::Immediate, "restart-immediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_every_route_answers_503_promptly_and_recovers() {
    let (app, mut pg) = app_on_own_cluster("outage", 4).await;
    let (_, browser) = app.signed_in_browser("dev@example.com", false).await;
    let token = app.login_token(&browser).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut pg = tokio::task::spawn_blocking(move || {
        pg.stop_with(StopMode::Fast).unwrap();
        pg
    })
    .await
    .unwrap();

    // While the database is down: 503 with Retry-After, JSON or a page,
    // each answered within the pool timeout.
    let bound = app.server.config.db_timeout + Duration::from_secs(1);
    for _ in 0..3 {
        let since = std::time::Instant::now();
        let r = app.whoami(&token).await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "service_unavailable");
        let page = browser
            .get(app.url("/settings/tokens"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 503);
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let started = app.start(serde_json::json!({})).await;
        assert_eq!(started.status(), 503);
        assert!(since.elapsed() < bound * 3, "answered promptly");
    }
    // Starts queued together share one statement: each gets the 503.
    let since = std::time::Instant::now();
    let starts: Vec<u16> = futures::future::join_all(
        (0..8).map(|_| async { app.start(serde_json::json!({})).await.status().as_u16() }),
    )
    .await;
    assert_eq!(starts, [503; 8]);
    assert!(
        since.elapsed() < bound * 2,
        "none held past the database timeout"
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again().unwrap();
        pg
    })
    .await
    .unwrap();
    let back = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut recovered_after = None;
    for _ in 0..10 {
        let this = round(&app, &browser, &token).await;
        if recovered_after.is_none() && this.iter().all(|s| *s == 200) {
            recovered_after = Some(back.elapsed());
        }
        seen.extend(this);
    }
    eprintln!("after the outage: {seen:?}; every route 200 again {recovered_after:?} after the database was back");
    assert!(seen.iter().all(|s| *s == 200 || *s == 503), "{seen:?}");
    assert!(seen[seen.len() - 9..].iter().all(|s| *s == 200), "{seen:?}");
    app.start_ok().await;
    drop(app);
    let mut pg = pg;
    tokio::task::spawn_blocking(move || pg.stop().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_held_across_a_restart_receives_the_approval() {
    let (app, pg) = app_on_own_cluster("longpoll", 4).await;
    let (_, browser) = app.signed_in_browser("dev@example.com", false).await;
    let started = app.start_ok().await;
    let held = {
        let (client, url) = (app.cli.clone(), app.url("/api/v1/cli/auth/device/poll"));
        let body = serde_json::json!({ "deviceCode": started.device_code, "wait": 20 });
        tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        })
    };
    while app.server.waiting_polls() == 0 {
        tokio::task::yield_now().await;
    }
    let mut pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.restart(StopMode::Fast).unwrap();
        pg
    })
    .await
    .unwrap();
    // Approved as soon as the database takes writes again (the first tries
    // may meet connections that lost the old server: 503, retried).
    let mut approved = app.approve(&browser, &started.user_code).await.status();
    for _ in 0..10 {
        if approved != 503 {
            break;
        }
        approved = app.approve(&browser, &started.user_code).await.status();
    }
    assert_eq!(approved, 200);
    let (status, body) = held.await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("approved")),
        "{body}"
    );
    assert_eq!(
        app.count("api_tokens", "revoked_at IS NULL").await,
        1,
        "delivered once"
    );
    drop(app);
    tokio::task::spawn_blocking(move || pg.stop().unwrap())
        .await
        .unwrap();
}
