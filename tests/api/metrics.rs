//! `/metrics` on its own listener, in the Prometheus text format.

use serde_json::json;

use crate::helpers::{browser, spawn_app_with};

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = spawn_app_with(|c| {
        c.metrics_bind_addr = Some("127.0.0.1:0".to_owned());
        c.rate_limits.start_per_min = 1;
    })
    .await;
    app.create_user("dev@example.com", false).await;
    let started = app.start_ok().await;
    assert_eq!(app.start(json!({})).await.status(), 429);
    assert_eq!(app.poll(&started.device_code).await.status(), 200);
    assert_eq!(app.whoami("esh_not_a_token").await.status(), 401);
    assert_eq!(
        app.sign_in(&browser(), "dev@example.com", "wrong password!")
            .await
            .status(),
        401
    );

    let port = app.server.metrics_port.expect("metrics listener bound");
    let r = app
        .cli
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for line in [
        "envshield_http_requests_total{route=\"/api/v1/cli/auth/device/start\",method=\"POST\",status=\"200\"} 1",
        "envshield_http_requests_total{route=\"/api/v1/cli/auth/device/start\",method=\"POST\",status=\"429\"} 1",
        "envshield_http_requests_total{route=\"/api/v1/cli/whoami\",method=\"GET\",status=\"401\"} 1",
        "envshield_http_request_duration_seconds_count{route=\"/api/v1/cli/auth/device/poll\"} 1",
        "envshield_polls_held 0",
        "envshield_listener_up 1",
        "envshield_rate_limited_total{limit=\"start\"} 1",
        "envshield_db_pool_connections{state=\"max\"} ",
        "envshield_db_pool_waiting 0",
        "envshield_cache_lookups_total{cache=\"pending\",result=\"miss\"} ",
        "envshield_cache_lookups_total{cache=\"token\",result=\"hit\"} ",
        "envshield_security_events_total{kind=\"login_failed\"} ",
        "# TYPE envshield_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Never on the public listener.
    let public = app.cli.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
}

#[tokio::test]
async fn without_metrics_bind_addr_nothing_listens() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(app.server.metrics_port, None);
}
