//! Polling against a canned server.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::*;
use crate::api::{POLL_HEADROOM, REQUEST_TIMEOUT};
use crate::commands::login::fixtures::{approved, fast, handoff, start, APPROVED_IN_THE_CLEAR};
use crate::test_support::{canned_server, closed_port_url, http, json};

/// What one wait did: its end, the progress it showed, the requests made.
struct Waited {
    outcome: Result<Approved, WaitEnd>,
    seen: Vec<Progress>,
    requests: Vec<String>,
}

/// Waits, with fast timing, on a server that answers with the responses
/// `make` writes for this login's handoff key.
fn wait_on(poll_interval: u64, make: impl FnOnce(&Handoff) -> Vec<String>) -> Waited {
    let handoff = handoff();
    let (base, server) = canned_server(make(&handoff));
    let client = ApiClient::new(&base).unwrap();
    let mut seen = Vec::new();
    let outcome = wait_for_approval(
        &client,
        &start(poll_interval),
        &handoff,
        &fast(),
        &AtomicBool::new(false),
        &mut |p| seen.push(p),
    );
    let requests = server.join().unwrap();
    Waited {
        outcome,
        seen,
        requests,
    }
}

/// How a wait ends when the only poll is answered with `status` and the
/// JSON `body`.
fn end_after(status: &str, body: &str) -> WaitEnd {
    wait_on(0, |_| vec![json(status, body)])
        .outcome
        .unwrap_err()
}

#[test]
fn pending_slow_down_then_approved() {
    let waited = wait_on(0, |h| {
        vec![
            json("200 OK", r#"{"status":"pending","pollInterval":0}"#),
            json(
                "429 Too Many Requests",
                r#"{"status":"slow_down","error":"slow_down","message":"m","pollInterval":0}"#,
            ),
            json("200 OK", &approved(h, "esh_tok", None)),
        ]
    });
    let approved = waited.outcome.unwrap();
    assert_eq!(approved.token, "esh_tok");
    assert_eq!(approved.scopes, vec!["read"]);
    assert_eq!(waited.requests.len(), 3);
    assert!(waited
        .requests
        .iter()
        .all(|r| r.starts_with("POST /api/v1/cli/auth/device/poll ")));
    assert!(matches!(waited.seen[0], Progress::SlowDown { .. }));
}

/// The `wait` a poll request asked the server to hold it for.
fn asked_hold(request: &str) -> Duration {
    let body = &request[request.find('{').unwrap()..];
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    Duration::from_secs(body["wait"].as_u64().unwrap())
}

#[test]
fn the_hold_asked_for_leaves_headroom_under_the_request_timeout() {
    for (interval, expected) in [(5, Some(5)), (30, None), (60, None), (120, None)] {
        let waited = wait_on(interval, |h| {
            vec![json("200 OK", &approved(h, "esh_tok", None))]
        });
        waited.outcome.unwrap();
        let hold = asked_hold(&waited.requests[0]);
        assert!(
            hold + POLL_HEADROOM <= REQUEST_TIMEOUT,
            "interval {interval} s: a hold of {hold:?} leaves no headroom under {REQUEST_TIMEOUT:?}"
        );
        assert!(!hold.is_zero(), "interval {interval} s");
        if let Some(secs) = expected {
            assert_eq!(hold, Duration::from_secs(secs), "interval {interval} s");
        }
    }
}

#[test]
fn slow_down_never_shortens_the_interval() {
    // Interval 1 s from start, slow_down says 2 s: the wait grows.
    let began = Instant::now();
    let waited = wait_on(1, |h| {
        vec![
            json(
                "429 Too Many Requests",
                r#"{"status":"slow_down","error":"slow_down","message":"m","pollInterval":2}"#,
            ),
            json("200 OK", &approved(h, "esh_tok", None)),
        ]
    });
    waited.outcome.unwrap();
    // The first poll goes at once (the server holds it); after
    // slow_down the client waits the longer interval.
    assert!(began.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        waited.seen,
        vec![Progress::SlowDown {
            interval: Duration::from_secs(2)
        }]
    );
}

#[test]
fn denied_and_expired_end_the_wait() {
    assert_eq!(
        end_after(
            "403 Forbidden",
            r#"{"status":"denied","error":"access_denied","message":"Denied by you."}"#,
        ),
        WaitEnd::Denied("Denied by you.".into())
    );
    assert_eq!(
        end_after(
            "410 Gone",
            r#"{"status":"expired","error":"expired_token","message":"Gone."}"#,
        ),
        WaitEnd::Expired("Gone.".into())
    );
}

#[test]
fn brief_server_errors_are_retried_with_backoff() {
    let waited = wait_on(0, |h| {
        vec![
            json(
                "503 Service Unavailable",
                r#"{"error":"unavailable","message":"busy"}"#,
            ),
            http("502 Bad Gateway", "text/html", "<html></html>"),
            json("200 OK", &approved(h, "esh_tok", None)),
        ]
    });
    assert!(waited.outcome.is_ok());
    assert_eq!(
        waited.seen,
        vec![
            Progress::Retrying {
                attempt: 1,
                delay: Duration::from_millis(5)
            },
            Progress::Retrying {
                attempt: 2,
                delay: Duration::from_millis(10)
            },
            Progress::Recovered,
        ]
    );
}

#[test]
fn gives_up_after_max_retries() {
    let client = ApiClient::new(&closed_port_url()).unwrap();
    let mut retries = 0;
    let end = wait_for_approval(
        &client,
        &start(0),
        &handoff(),
        &fast(),
        &AtomicBool::new(false),
        &mut |p| {
            if let Progress::Retrying { .. } = p {
                retries += 1;
            }
        },
    )
    .unwrap_err();
    assert_eq!(retries, MAX_RETRIES);
    let WaitEnd::Failed(err) = &end else {
        panic!("{end:?}")
    };
    assert_eq!(err.code(), "unreachable");
}

#[test]
fn ctrl_c_and_timeout_stop_the_wait() {
    let client = ApiClient::new("http://127.0.0.1:9/api/v1").unwrap();
    let wait = |options: &WaitOptions, interrupted: bool| {
        wait_for_approval(
            &client,
            &start(5),
            &handoff(),
            options,
            &AtomicBool::new(interrupted),
            &mut |_| {},
        )
        .unwrap_err()
    };
    assert_eq!(wait(&fast(), true), WaitEnd::Interrupted);

    let options = WaitOptions {
        hard_timeout: Duration::from_millis(30),
        ..fast()
    };
    assert_eq!(wait(&options, false), WaitEnd::TimedOut);
}

#[test]
fn a_poll_asking_for_the_confirmation_code_ends_polling() {
    assert_eq!(
        end_after(
            "200 OK",
            r#"{"status":"confirmation_required","message":"Type the code."}"#,
        ),
        WaitEnd::ConfirmationRequired("Type the code.".into())
    );
}

#[test]
fn a_token_in_the_clear_is_refused_and_revoked() {
    let waited = wait_on(0, |_| {
        vec![
            json("200 OK", APPROVED_IN_THE_CLEAR),
            http("204 No Content", "text/plain", ""),
        ]
    });
    let end = waited.outcome.unwrap_err();
    let WaitEnd::HandoffRefused { why, revoked, .. } = &end else {
        panic!("{end:?}")
    };
    assert!(why.contains("in the clear"), "{why}");
    assert!(revoked);
    assert!(
        waited.requests[1].starts_with("POST /api/v1/cli/auth/logout "),
        "{:?}",
        waited.requests
    );
    assert!(waited.requests[1].contains("esh_tok"));
}

#[test]
fn a_sealed_token_for_another_key_is_refused() {
    let thief = handoff();
    let waited = wait_on(0, |_| {
        vec![json("200 OK", &approved(&thief, "esh_tok", None))]
    });
    let end = waited.outcome.unwrap_err();
    let WaitEnd::HandoffRefused { why, revoked, .. } = &end else {
        panic!("{end:?}")
    };
    assert!(why.contains("does not open"), "{why}");
    assert!(!revoked);
    assert_eq!(waited.requests.len(), 1, "nothing else is sent");
}

#[test]
fn a_token_collected_elsewhere_ends_the_wait() {
    const REUSED: &str =
        r#"{"status":"expired","error":"device_code_reused","message":"Collected."}"#;
    assert_eq!(
        end_after("410 Gone", REUSED),
        WaitEnd::Collected {
            after_a_lost_answer: false
        }
    );
    // After a poll that failed on the way, its answer may have been ours.
    let waited = wait_on(0, |_| {
        vec![
            json(
                "503 Service Unavailable",
                r#"{"error":"unavailable","message":"busy"}"#,
            ),
            json("410 Gone", REUSED),
        ]
    });
    assert_eq!(
        waited.outcome.unwrap_err(),
        WaitEnd::Collected {
            after_a_lost_answer: true
        }
    );
}
