//! The client against canned HTTP answers: every kind of failure becomes
//! the right [`ApiError`], with a one-line message that says what to do.

use envshield_api_types::{PollDeviceResponse, StartDeviceRequest};
use uuid::Uuid;

use super::*;
use crate::test_support::{canned_server, closed_port_url, http};

#[test]
fn token_format_only_requires_printable_without_spaces() {
    assert!(check_token_format("esh_abc").is_ok());
    assert!(check_token_format("acme_XYZ123").is_ok());
    assert!(check_token_format("").is_err());
    assert!(check_token_format("esh abc").is_err());
    assert!(check_token_format("esh_abc\n").is_err());
    assert!(check_token_format("esh_é").is_err());
}

#[test]
fn user_agent_names_version_and_os() {
    let ua = user_agent();
    assert!(ua.starts_with("envshield/0."), "{ua}");
    assert!(ua.ends_with(&format!("({})", std::env::consts::OS)));
}

#[test]
fn unreachable_server_is_a_one_line_error_with_advice() {
    let base = closed_port_url();
    let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
    assert_eq!(err.code(), "unreachable");
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(message.starts_with("could not reach the EnvShield server at http://127.0.0.1:"));
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(message.contains("Check that the server is running"));
    assert!(!message.contains('\n'));
}

#[test]
fn html_answer_is_reported_as_wrong_url() {
    let (base, server) = canned_server(vec![http(
        "200 OK",
        "text/html; charset=utf-8",
        "<!doctype html><html><body>Welcome</body></html>",
    )]);
    let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
    server.join().unwrap();
    assert_eq!(err.code(), "bad_response");
    let message = err.to_string();
    assert!(
        message.contains("with an HTML page (HTTP 200)"),
        "{message}"
    );
    assert!(message.contains("Check --api-url"), "{message}");
}

#[test]
fn non_json_text_is_reported() {
    let (base, server) = canned_server(vec![http("200 OK", "text/plain", "hello")]);
    let err = ApiClient::new(&base)
        .unwrap()
        .list_tokens("esh_x", false)
        .unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, ApiError::BadResponse { html: false, .. }));
    assert!(err.to_string().contains("not EnvShield JSON"), "{err}");
}

#[test]
fn server_error_is_transient_and_shows_the_message() {
    let (base, server) = canned_server(vec![
        http(
            "503 Service Unavailable",
            "application/json",
            r#"{"error":"unavailable","message":"Database is down."}"#,
        ),
        http("502 Bad Gateway", "text/html", "<html>bad gateway</html>"),
    ]);
    let client = ApiClient::new(&base).unwrap();
    let first = client.whoami("esh_x").unwrap_err();
    let second = client.whoami("esh_x").unwrap_err();
    server.join().unwrap();

    assert_eq!(first.code(), "server_error");
    assert!(first.is_transient());
    assert_eq!(
        first.to_string(),
        format!("the server at {base} failed (HTTP 503: Database is down). Try again in a minute; if it keeps failing, tell the server's operator.")
    );
    assert!(second.to_string().contains("failed (HTTP 502)"), "{second}");
}

#[test]
fn unauthorized_carries_the_server_message() {
    let (base, server) = canned_server(vec![http(
        "401 Unauthorized",
        "application/json",
        r#"{"error":"invalid_token","message":"The token is revoked."}"#,
    )]);
    let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
    let requests = server.join().unwrap();
    assert!(err.is_unauthorized());
    assert_eq!(err.code(), "invalid_token");
    assert_eq!(
        err.to_string(),
        "The token is revoked. Run `envshield login` to sign in again."
    );
    let request = requests[0].to_lowercase();
    assert!(request.starts_with("get /api/v1/cli/whoami "), "{request}");
    assert!(request.contains("authorization: bearer esh_x"));
    assert!(request.contains("user-agent: envshield/"));
}

#[test]
fn rate_limit_reports_retry_after() {
    let body = r#"{"error":"rate_limited","message":"Too many sign-ins."}"#;
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 42\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (base, server) = canned_server(vec![response.to_string()]);
    let err = ApiClient::new(&base)
        .unwrap()
        .start_device(&StartDeviceRequest::default())
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(
        err.to_string(),
        "Too many sign-ins. Try again in 42 seconds."
    );
}

#[test]
fn not_found_without_body_points_at_the_url() {
    let (base, server) = canned_server(vec![http("404 Not Found", "text/plain", "")]);
    let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, ApiError::NotFound { .. }));
    assert!(err.to_string().contains("has no /cli/whoami endpoint"));
}

#[test]
fn json_404_points_at_the_url_except_on_revoke() {
    let not_found = || {
        http(
            "404 Not Found",
            "application/json",
            r#"{"error":"not_found","message":"No such token."}"#,
        )
    };
    let (base, server) = canned_server(vec![not_found(), not_found()]);
    let client = ApiClient::new(&base).unwrap();
    let wrong_url = client.whoami("esh_x").unwrap_err();
    let no_token = client.revoke_token("esh_x", Uuid::nil()).unwrap_err();
    server.join().unwrap();
    assert!(
        matches!(wrong_url, ApiError::NotFound { .. }),
        "{wrong_url:?}"
    );
    assert_eq!(no_token.to_string(), "No such token.");
}

#[test]
fn redirects_are_not_followed() {
    let response = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere/api/v1/cli/whoami\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (base, server) = canned_server(vec![response.to_string()]);
    let err = ApiClient::new(&base).unwrap().whoami("esh_x").unwrap_err();
    server.join().unwrap();
    assert!(
        err.to_string()
            .contains("redirect (HTTP 301 to https://elsewhere"),
        "{err}"
    );
}

#[test]
fn poll_answers_of_every_status_decode() {
    let (base, server) = canned_server(vec![
        http(
            "200 OK",
            "application/json",
            r#"{"status":"pending","pollInterval":5}"#,
        ),
        http(
            "429 Too Many Requests",
            "application/json",
            r#"{"status":"slow_down","error":"slow_down","message":"Slow down.","pollInterval":10}"#,
        ),
        http(
            "403 Forbidden",
            "application/json",
            r#"{"status":"denied","error":"access_denied","message":"Denied."}"#,
        ),
        http(
            "410 Gone",
            "application/json",
            r#"{"status":"expired","error":"expired_token","message":"Expired."}"#,
        ),
    ]);
    let client = ApiClient::new(&base).unwrap();
    assert_eq!(
        client.poll_device("dc", None).unwrap(),
        PollDeviceResponse::Pending { poll_interval: 5 }
    );
    assert!(matches!(
        client.poll_device("dc", None).unwrap(),
        PollDeviceResponse::SlowDown {
            poll_interval: 10,
            ..
        }
    ));
    assert!(matches!(
        client.poll_device("dc", None).unwrap(),
        PollDeviceResponse::Denied { .. }
    ));
    assert!(matches!(
        client.poll_device("dc", None).unwrap(),
        PollDeviceResponse::Expired { .. }
    ));
    let requests = server.join().unwrap();
    assert!(requests[0].starts_with("POST /api/v1/cli/auth/device/poll "));
    assert!(
        requests[0].ends_with(r#"{"deviceCode":"dc"}"#),
        "{}",
        requests[0]
    );
}

#[test]
fn a_client_with_a_dpop_key_sends_the_token_as_dpop_with_a_proof() {
    let key = std::sync::Arc::new(envshield_api_types::dpop::DpopKey::generate_p256().unwrap());
    let (base, server) = canned_server(vec![http(
        "401 Unauthorized",
        "application/json",
        r#"{"error":"invalid_dpop_proof","message":"The DPoP proof's iat is too far from this server's clock; check the system clock."}"#,
    )]);
    let client = ApiClient::new(&base).unwrap().with_dpop(Some(key));
    let err = client.whoami("esh_x").unwrap_err();
    let requests = server.join().unwrap();
    let request = requests[0].to_ascii_lowercase();
    assert!(request.contains("authorization: dpop esh_x"), "{request}");
    assert!(request.contains("\r\ndpop: ey"), "{request}");
    assert!(!request.contains("bearer"), "{request}");
    assert_eq!(err.code(), "invalid_dpop_proof");
    let message = err.to_string();
    assert!(message.contains("clock"), "{message}");
    assert!(message.contains("(DPoP:"), "{message}");
}
