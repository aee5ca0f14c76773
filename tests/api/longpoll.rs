//! Long-poll delivery through LISTEN/NOTIFY, within and across instances.

use envshield_server::testing::TestServer;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// Sends a waiting poll to `instance` and returns once that instance holds
/// it (subscribed to the session's changes), handing back the pending
/// request.
async fn held_poll(
    app: &TestApp,
    instance: &TestServer,
    device_code: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let client = app.cli.clone();
    let url = format!("{}/api/v1/cli/auth/device/poll", instance.address);
    let body = json!({ "deviceCode": device_code, "wait": 20 });
    let handle = tokio::spawn(async move {
        let r = client.post(url).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    });
    // Bounded wait for the instance to be holding the request.
    for _ in 0..500 {
        if instance.waiting_polls() == 1 {
            return handle;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the poll was never held");
}

#[tokio::test]
async fn a_waiting_poll_gets_the_token_as_soon_as_it_is_approved() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let poll = held_poll(&app, &app.server, &s.device_code).await;
    assert!(!poll.is_finished(), "still held: nothing changed yet");
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["status"], "approved",
        "woken by the approval, not the 20-s timeout: {body}"
    );
    assert!(body["token"].as_str().unwrap().starts_with("esh_"));
}

#[tokio::test]
async fn a_waiting_poll_hears_a_denial_and_wait_is_bounded() {
    let app = spawn_app().await;
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let poll = held_poll(&app, &app.server, &s.device_code).await;
    let r = app
        .complete(&b, json!({ "userCode": s.user_code, "decision": "deny" }))
        .await;
    assert_eq!(r.status(), 200);
    let (status, body) = poll.await.unwrap();
    assert_eq!((status, body["status"].as_str().unwrap()), (403, "denied"));

    let other = app.start_ok().await;
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/poll"))
        .json(&json!({ "deviceCode": other.device_code, "wait": 31 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_wait");
}

#[tokio::test]
async fn approval_on_one_instance_wakes_a_poll_on_another_and_revocation_is_shared() {
    let app = spawn_app().await;
    let first = &app.server;
    // Blocking is fine here: nothing else runs on this test's runtime yet.
    let second = TestServer::spawn_sharing(first).unwrap();
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    // The CLI waits on the second instance; the browser approves on the first.
    let poll = held_poll(&app, &second, &s.device_code).await;
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    let (status, body) = poll.await.unwrap();
    assert_eq!(
        (status, body["status"].as_str().unwrap()),
        (200, "approved"),
        "{body}"
    );
    let token = body["token"].as_str().unwrap().to_owned();

    // Revoked on the first instance, refused on the second at once.
    let whoami_second = |t: String| {
        let url = format!("{}/api/v1/cli/whoami", second.address);
        let client = app.cli.clone();
        async move {
            client
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(whoami_second(token.clone()).await, 200);
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The second instance hears of it by notification: within a second
    // (in practice milliseconds).
    let since = std::time::Instant::now();
    loop {
        match whoami_second(token.clone()).await {
            401 => break,
            200 => assert!(
                since.elapsed() < std::time::Duration::from_secs(1),
                "the second instance still accepts the token after a second"
            ),
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(second);
}

#[tokio::test]
async fn an_interval_grown_on_one_instance_holds_on_another() {
    let app = spawn_app().await;
    let second = TestServer::spawn_sharing(&app.server).unwrap();
    let s = app.start_ok().await;
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
    let r = app.poll(&s.device_code).await;
    assert_eq!(r.status(), 429, "too fast on the first instance");
    // The first instance stores the grown interval off the request path.
    app.count_settles("cli_device_sessions", "poll_interval_sec = 10", 1)
        .await;
    let r = app
        .cli
        .post(format!("{}/api/v1/cli/auth/device/poll", second.address))
        .json(&json!({ "deviceCode": s.device_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "status": "pending", "pollInterval": 10 }),
        "the second instance keeps the grown interval"
    );
    drop(second);
}

/// Marks every session denied by hand, without the notification the
/// server's own state changes send.
const DENY_UNNOTIFIED: &str = "UPDATE cli_device_sessions SET status = 'DENIED'";

#[tokio::test]
async fn a_pending_session_answers_from_memory_until_a_notification_evicts_it() {
    let app = spawn_app().await;
    let s = app.start_ok().await;
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
    app.sql(DENY_UNNOTIFIED).await;
    let r = app.poll(&s.device_code).await;
    assert_eq!(
        r.status(),
        429,
        "answered from the cached pending row (paced: too soon), not from the denied row"
    );
    app.sql("SELECT pg_notify('envshield_device', encode(device_code_hash, 'hex')) FROM cli_device_sessions")
        .await;
    // The notification reaches the listener asynchronously: bounded wait.
    for _ in 0..200 {
        if app.poll(&s.device_code).await.status() == 403 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the notification never evicted the cached session");
}

#[tokio::test]
async fn without_the_cache_every_poll_reads_postgresql() {
    let app = spawn_app_with(|c| c.poll_cache = std::time::Duration::ZERO).await;
    let s = app.start_ok().await;
    assert_eq!(app.poll(&s.device_code).await.status(), 200);
    app.sql(DENY_UNNOTIFIED).await;
    assert_eq!(app.poll(&s.device_code).await.status(), 403);
}

#[tokio::test]
async fn a_decision_on_another_instance_reaches_a_cached_poll() {
    let app = spawn_app().await;
    let second = TestServer::spawn_sharing(&app.server).unwrap();
    let (_, b) = app.signed_in_browser("dev@example.com", false).await;
    let s = app.start_ok().await;
    let poll_second = || {
        let client = app.cli.clone();
        let url = format!("{}/api/v1/cli/auth/device/poll", second.address);
        let body = json!({ "deviceCode": s.device_code });
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        poll_second().await.0,
        200,
        "cached as pending on the second"
    );
    assert_eq!(app.approve(&b, &s.user_code).await.status(), 200);
    for _ in 0..200 {
        let (status, body) = poll_second().await;
        if body["status"] == "approved" {
            assert_eq!(status, 200);
            drop(second);
            return;
        }
        assert_eq!(
            status, 429,
            "only pacing answers until the approval is heard: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the approval never reached the second instance's cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_every_held_poll_pending() {
    let app = spawn_app().await;
    let mut held = Vec::new();
    for _ in 0..100 {
        let s = app.start_ok().await;
        let client = app.cli.clone();
        let url = app.url("/api/v1/cli/auth/device/poll");
        let body = json!({ "deviceCode": s.device_code, "wait": 25 });
        held.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for _ in 0..1000 {
        if app.server.waiting_polls() == 100 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(app.server.waiting_polls(), 100, "all 100 held");
    // As on SIGTERM. Without the drain the stop would wait out its timeout
    // and then cut the held connections, so no poll would answer.
    let server = &app.server;
    tokio::task::block_in_place(|| server.stop_gracefully());
    for poll in held {
        let (status, body) = poll.await.unwrap();
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("pending")),
            "{body}"
        );
    }
}
