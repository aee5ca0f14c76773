//! Errors and outages.

use envshield_api_types::ErrorBody;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn unknown_routes_get_404_json_under_api_and_html_elsewhere() {
    let app = spawn_app().await;
    let r = app
        .cli
        .get(app.url("/api/v1/cli/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().error, "not_found");
    let r = app.cli.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn database_outage_answers_503_and_recovers_by_itself() {
    let app = spawn_app().await;
    let name = app.server.db.name.clone();
    assert_eq!(
        app.cli
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Take the database away from the app: refuse new connections, and
    // terminate the pooled ones.
    app.admin_sql(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    ))
    .await;
    app.admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    for _ in 0..3 {
        let r = app.start(json!({})).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
        let e: ErrorBody = r.json().await.unwrap();
        assert_eq!(e.error, "service_unavailable");
        assert!(
            !e.message.contains("connection"),
            "no internals: {}",
            e.message
        );
    }
    assert_eq!(
        app.cli
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    app.admin_sql(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .await;
    assert_eq!(
        app.start(json!({})).await.status(),
        200,
        "recovered without a restart"
    );
}

#[tokio::test]
async fn finding_9_hsts_on_every_response_when_app_url_is_https() {
    let https = crate::helpers::spawn_app_with(|c| {
        c.app_url = url::Url::parse("https://auth.example.com").unwrap();
    })
    .await;
    for path in ["/health", "/login", "/api/v1/cli/whoami", "/no/such/page"] {
        let r = https.cli.get(https.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_owned())
                .as_deref(),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    let http = spawn_app().await;
    let r = http.cli.get(http.url("/health")).send().await.unwrap();
    assert!(
        r.headers().get("strict-transport-security").is_none(),
        "plain-http local setups must not pin HTTPS"
    );
}

/// Found by the schema fuzzer: `serde` reads a struct from an array, so
/// `[null, null]` started a login with the defaults.
#[tokio::test]
async fn a_json_body_must_be_an_object() {
    let app = spawn_app().await;
    for body in ["[null, null]", "[]", "null", "\"x\"", "7"] {
        let r = app
            .cli
            .post(app.url("/api/v1/cli/auth/device/start"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.json::<ErrorBody>().await.unwrap().error, "invalid_body");
    }
    assert_eq!(app.count("cli_device_sessions", "true").await, 0);
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/start"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

/// JSON has one number type: `wait: 2.0` is the integer 2 (as the schema
/// reads it); a fraction is refused.
#[tokio::test]
async fn a_whole_number_written_as_a_float_is_a_number_of_seconds() {
    let app = spawn_app().await;
    let s = app.start_ok().await;
    let poll = |wait: serde_json::Value| {
        app.cli
            .post(app.url("/api/v1/cli/auth/device/poll"))
            .json(&json!({ "deviceCode": s.device_code, "wait": wait }))
            .send()
    };
    assert_eq!(poll(json!(0.0)).await.unwrap().status(), 200);
    for bad in [json!(1.5), json!(-1), json!("2")] {
        let r = poll(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<ErrorBody>().await.unwrap().error, "invalid_body");
    }
}

/// A confirmation code that cannot be one is a bad request, whatever the
/// device code names.
#[tokio::test]
async fn a_malformed_confirmation_code_is_refused_before_any_lookup() {
    let app = spawn_app().await;
    let r = app
        .cli
        .post(app.url("/api/v1/cli/auth/device/exchange"))
        .json(&json!({ "deviceCode": "0".repeat(43), "confirmationCode": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().error,
        "invalid_confirmation_code"
    );
}
