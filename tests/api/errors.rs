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
