//! Typing the confirmation code, against a canned server.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::commands::login::fixtures::{approved, fast, handoff, start};
use crate::test_support::{canned_server, json};

#[test]
fn confirmation_codes_are_read_with_or_without_dash_and_spaces() {
    assert_eq!(normalize_code("482-193\n").as_deref(), Some("482193"));
    assert_eq!(normalize_code(" 482 193 ").as_deref(), Some("482193"));
    assert_eq!(normalize_code("482193").as_deref(), Some("482193"));
    assert_eq!(normalize_code(""), None);
    assert_eq!(normalize_code(" - \n"), None);
    assert_eq!(normalize_code("482;193"), None);
    assert_eq!(normalize_code(&"1".repeat(33)), None);
}

/// Lines for [`confirm_with_code`], then the end of input.
fn typed(lines: &[&str]) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    for line in lines {
        tx.send(Line::Text(format!("{line}\n"))).unwrap();
    }
    tx.send(Line::End).unwrap();
    rx
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

#[test]
fn a_wrong_code_asks_again_with_the_server_message_then_the_right_one_wins() {
    let handoff = handoff();
    let (base, server) = canned_server(vec![
        json(
            "409 Conflict",
            r#"{"error":"authorization_pending","message":"Not approved yet."}"#,
        ),
        json(
            "400 Bad Request",
            r#"{"error":"invalid_confirmation_code","message":"Wrong code. 4 attempts left."}"#,
        ),
        json("200 OK", &approved(&handoff, "esh_acc", Some("eshr_ref"))),
    ]);
    let client = ApiClient::new(&base).unwrap();
    let mut events = Vec::new();
    let approved = confirm_with_code(
        &client,
        &start(0),
        &handoff,
        far(),
        &fast(),
        &AtomicBool::new(false),
        // Enter alone and garbage never reach the server.
        &typed(&["111-111", "", "not a code!", "222 222", "482-193"]),
        &mut |e| events.push(e),
    )
    .unwrap();
    let requests = server.join().unwrap();

    assert_eq!(approved.token, "esh_acc");
    assert_eq!(approved.refresh_token.as_deref(), Some("eshr_ref"));
    assert!(!format!("{approved:?}").contains("eshr_ref"));
    assert_eq!(requests.len(), 3);
    assert!(requests[0].starts_with("POST /api/v1/cli/auth/device/exchange "));
    assert!(
        requests[0].ends_with(r#"{"deviceCode":"dev-secret","confirmationCode":"111111"}"#),
        "{}",
        requests[0]
    );
    assert!(requests[2].ends_with(r#""confirmationCode":"482193"}"#));

    let rejections: Vec<Option<String>> = events
        .iter()
        .map(|e| match e {
            PasteEvent::Prompt { rejected } => rejected.as_ref().map(|r| r.code.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        rejections,
        vec![
            None,
            Some("authorization_pending".into()),
            None,
            Some("invalid_format".into()),
            Some("invalid_confirmation_code".into()),
        ]
    );
    let PasteEvent::Prompt {
        rejected: Some(wrong),
    } = &events[4]
    else {
        panic!()
    };
    assert_eq!(
        wrong.message,
        "That code was not accepted: Wrong code. 4 attempts left."
    );
}

#[test]
fn the_exchange_ends_on_gone_denied_end_of_input_and_ctrl_c() {
    let (base, server) = canned_server(vec![
        json(
            "410 Gone",
            r#"{"error":"expired_token","message":"Too many wrong codes; the request was cancelled."}"#,
        ),
        json(
            "403 Forbidden",
            r#"{"status":"denied","error":"access_denied","message":"Denied."}"#,
        ),
    ]);
    let client = ApiClient::new(&base).unwrap();
    let flag = AtomicBool::new(false);
    let run = |lines: &[&str], flag: &AtomicBool| {
        confirm_with_code(
            &client,
            &start(0),
            &handoff(),
            far(),
            &fast(),
            flag,
            &typed(lines),
            &mut |_| {},
        )
        .unwrap_err()
    };
    assert_eq!(
        run(&["123456"], &flag),
        WaitEnd::Ended("Too many wrong codes; the request was cancelled.".into())
    );
    assert_eq!(run(&["123456"], &flag), WaitEnd::Denied("Denied.".into()));
    server.join().unwrap();
    assert_eq!(
        run(&[], &flag),
        WaitEnd::NoCode {
            required_by_server: false
        }
    );
    assert_eq!(
        run(&["123456"], &AtomicBool::new(true)),
        WaitEnd::Interrupted
    );
}

#[test]
fn waiting_for_the_code_stops_when_the_request_expires() {
    let client = ApiClient::new("http://127.0.0.1:9/api/v1").unwrap();
    let (_tx, lines) = mpsc::channel();
    let end = confirm_with_code(
        &client,
        &start(0),
        &handoff(),
        Instant::now() + Duration::from_millis(30),
        &fast(),
        &AtomicBool::new(false),
        &lines,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(end, WaitEnd::Ended(_)), "{end:?}");
}
