//! Security notices outside the browser (issue 15): mail through a real
//! SMTP server (aiosmtpd, see `envshield_server::testing::mail`) and the
//! signed webhook, sent from the outbox, retried when the server is down.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use envshield_server::config::{Environment, Smtp, Webhook};
use envshield_server::testing::mail::{free_port, MailSink};
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{fresh_target_dir, get_text, spawn_app_with, TestApp, PASSWORD};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const WEBHOOK_KEY: &str = "test-webhook-key-0123456789abcdef";

/// Mails through the SMTP server on `port` (nothing need listen there yet).
fn mail_to(port: u16) -> impl FnOnce(&mut envshield_server::config::Config) + Send + 'static {
    move |c| {
        c.notices.smtp = Some(
            Smtp::parse(
                &format!("smtp://127.0.0.1:{port}"),
                Some("EnvShield <noreply@envshield.test>"),
                &c.app_url,
            )
            .unwrap(),
        );
    }
}

/// A sink on a free port, writing to `target/<name>`.
fn sink(name: &str) -> MailSink {
    MailSink::start_on(free_port().unwrap(), &fresh_target_dir(name))
        .expect("the mail sink starts (tests/mail/install installs aiosmtpd)")
}

/// Waits until the sink holds `n` messages (bounded: ten seconds is far past
/// the worker's wake-up after a commit).
async fn messages(sink: &MailSink, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = sink.messages();
        if found.len() >= n {
            assert_eq!(found.len(), n, "more mail than expected: {found:#?}");
            return found.into_iter().map(readable).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} messages after ten seconds",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message as a person reads it: quoted-printable (which the mail uses
/// once a line, such as a long revoke link, passes 76 characters) decoded.
fn readable(message: String) -> String {
    if !message.contains("Content-Transfer-Encoding: quoted-printable") {
        return message;
    }
    let joined = message.replace("=\r\n", "");
    let mut out = Vec::with_capacity(joined.len());
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn subject(message: &str) -> &str {
    message
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}

/// A CLI login approved by `email`'s browser; returns the poll's answer.
async fn approved_login(app: &TestApp, email: &str) -> Value {
    let (_, browser) = app.signed_in_browser(email, false).await;
    let started = app
        .start(
            serde_json::json!({ "tokenName": "build box", "scopes": ["envs:read", "tokens:read"] }),
        )
        .await;
    assert_eq!(started.status(), 200);
    let started: Value = started.json().await.unwrap();
    let r = app
        .approve(&browser, started["userCode"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app.poll(started["deviceCode"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn approving_a_cli_login_mails_the_account_what_from_where_and_how_to_revoke() {
    let sink = sink("notices-approve");
    let app = spawn_app_with(mail_to(sink.port)).await;
    let login = approved_login(&app, "ada@example.com").await;
    let token = login["token"].as_str().unwrap();
    let token_id = login["tokenId"].as_str().unwrap();

    let mail = messages(&sink, 1).await.remove(0);
    assert!(mail.starts_with("X-Envelope-To: ada@example.com"), "{mail}");
    assert_eq!(
        subject(&mail),
        "New token \"build box\" for your EnvShield account"
    );
    for needle in [
        "From: EnvShield <noreply@envshield.test>",
        "Token name:      build box",
        "Scopes:          envs:read tokens:read",
        "Requested from:  127.0.0.1",
        "Client:          envshield-test/1.0",
        "Approved from:   127.0.0.1",
        "Expires:         ",
        &format!("{}/settings/tokens/{token_id}/revoke", app.server.address),
    ] {
        assert!(mail.contains(needle), "missing {needle:?} in\n{mail}");
    }
    assert!(!mail.contains(token), "the token itself is never mailed");
    assert!(!mail.contains("esh_"), "nor anything like it");
    // Marked sent once the relay accepted it (just after the sink saw it).
    app.count_settles("notice_outbox", "sent_at IS NOT NULL AND attempts = 1", 1)
        .await;
}

#[tokio::test]
async fn a_reused_refresh_token_is_mailed() {
    let sink = sink("notices-refresh");
    let mail_config = mail_to(sink.port);
    let app = spawn_app_with(move |c| {
        mail_config(c);
        c.refresh_reuse_grace = Duration::ZERO;
    })
    .await;
    let (_, browser) = app.signed_in_browser("ada@example.com", false).await;
    let auth: Value = app
        .cli
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", "envshield-cli")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .approve(&browser, auth["user_code"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), 200);
    let token = |params: Vec<(&'static str, String)>| {
        let request = app.cli.post(app.url("/oauth/token")).form(&params);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, login) = token(vec![
        ("grant_type", DEVICE_GRANT.to_owned()),
        (
            "device_code",
            auth["device_code"].as_str().unwrap().to_owned(),
        ),
        ("client_id", "envshield-cli".to_owned()),
    ])
    .await;
    assert_eq!(s, 200, "{login}");
    messages(&sink, 1).await; // the new sign-in
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with = |t: String| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", t),
            ("client_id", "envshield-cli".to_owned()),
        ]
    };
    assert_eq!(token(refresh_with(refresh.clone())).await.0, 200);
    let (s, reused) = token(refresh_with(refresh.clone())).await;
    assert_eq!(s, 400, "{reused}");

    let mail = messages(&sink, 2).await.remove(1);
    assert_eq!(
        subject(&mail),
        "A sign-in to your EnvShield account was revoked"
    );
    assert!(mail.contains("used a second"), "{mail}");
    assert!(mail.contains("Client:          envshield-cli"), "{mail}");
    assert!(
        !mail.contains(&refresh),
        "the refresh token is never mailed"
    );
}

#[tokio::test]
async fn a_password_change_is_mailed() {
    let sink = sink("notices-password");
    let app = spawn_app_with(mail_to(sink.port)).await;
    let (_, browser) = app.signed_in_browser("ada@example.com", false).await;
    let page = get_text(&browser, app.url("/settings/password")).await;
    let csrf = crate::helpers::csrf_from(&page);
    let new = "a brand new passphrase for ada";
    let r = browser
        .post(app.url("/settings/password"))
        .form(&[
            ("current_password", PASSWORD),
            ("new_password", new),
            ("new_password_confirm", new),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    let mail = messages(&sink, 1).await.remove(0);
    assert_eq!(subject(&mail), "Your EnvShield password was changed");
    assert!(mail.contains("Changed from:  127.0.0.1"), "{mail}");
    assert!(!mail.contains(new), "never the password");
    assert!(!mail.contains(PASSWORD), "nor the old one");
}

#[tokio::test]
async fn with_the_mail_server_down_the_approval_succeeds_and_the_notice_is_retried() {
    let port = free_port().unwrap();
    let mail_config = mail_to(port);
    let app = spawn_app_with(move |c| {
        mail_config(c);
        c.metrics_bind_addr = Some("127.0.0.1:0".to_owned());
    })
    .await;
    let login = approved_login(&app, "ada@example.com").await;
    assert!(
        login["token"].as_str().unwrap().starts_with("esh_"),
        "the CLI got its token: {login}"
    );

    // The worker tried, failed and scheduled a retry, about 30 s out.
    app.count_settles(
        "notice_outbox",
        "sent_at IS NULL AND failed_at IS NULL AND attempts = 1 AND last_error IS NOT NULL \
         AND next_attempt_at > now() + interval '20 seconds'",
        1,
    )
    .await;
    let error = app.scalar("SELECT last_error FROM notice_outbox").await;
    assert!(
        error.contains(&format!("smtp://127.0.0.1:{port}")),
        "the error names the server: {error}"
    );

    // The server comes up; the retry falls due and the worker is woken.
    let sink =
        MailSink::start_on(port, &fresh_target_dir("notices-retry")).expect("the mail sink starts");
    app.sql("UPDATE notice_outbox SET next_attempt_at = now()")
        .await;
    app.server.deliver_notices_now();
    let mail = messages(&sink, 1).await.remove(0);
    assert_eq!(
        subject(&mail),
        "New token \"build box\" for your EnvShield account"
    );
    app.count_settles(
        "notice_outbox",
        "sent_at IS NOT NULL AND attempts = 2 AND last_error IS NULL",
        1,
    )
    .await;

    // Counted for the operator (the counters are the process's, shared by
    // the tests running beside this one: present, not exact).
    let metrics_port = app.server.metrics_port.unwrap();
    let text = get_text(&app.cli, format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    for outcome in ["retried", "sent"] {
        let line = format!("envshield_notices_total{{channel=\"mail\",outcome=\"{outcome}\"}} ");
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn without_smtp_url_or_webhook_nothing_is_queued() {
    let app = crate::helpers::spawn_app().await;
    approved_login(&app, "ada@example.com").await;
    assert_eq!(
        app.count("security_events", "kind = 'cli_token_created'")
            .await,
        1
    );
    assert_eq!(app.count("notice_outbox", "true").await, 0);
}

/// One request received by [`receiver`]: its headers (names lower-cased)
/// and body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A loopback HTTP receiver: answers each request 200 and hands it over.
fn receiver() -> (u16, std::sync::mpsc::Receiver<Received>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(Received { headers, body }).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

#[tokio::test]
async fn the_webhook_posts_each_notice_signed() {
    let (port, received) = receiver();
    let app = spawn_app_with(move |c| {
        c.notices.webhook = Some(
            Webhook::parse(
                &format!("http://127.0.0.1:{port}/hooks/envshield"),
                SecretString::from(WEBHOOK_KEY.to_owned()),
                Environment::Local,
            )
            .unwrap(),
        );
    })
    .await;
    let login = approved_login(&app, "ada@example.com").await;
    let request =
        tokio::task::spawn_blocking(move || received.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("the webhook is called");

    // The receiver's check, as docs/SECURITY.md describes it.
    let signature = request.header("x-envshield-signature");
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header: {signature:?}"));
    let t: i64 = t.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 300,
        "signed just now"
    );
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = hex::encode(envshield_server::crypto::hmac_sha256_plain(
        WEBHOOK_KEY.as_bytes(),
        &signed,
    ));
    assert_eq!(v1, expected, "the HMAC of \"t.body\" under the key");
    let wrong = hex::encode(envshield_server::crypto::hmac_sha256_plain(
        b"another key entirely, 0123456789",
        &signed,
    ));
    assert_ne!(v1, wrong);

    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-envshield-event"), "cli_token_created");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(request.header("x-envshield-delivery"), body["id"]);
    assert_eq!(body["kind"], "cli_token_created");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["ip"], "127.0.0.1");
    assert_eq!(body["token_id"], login["tokenId"]);
    assert_eq!(body["details"]["token_name"], "build box");
    assert_eq!(body["details"]["requested_from"], "127.0.0.1");
    let text = String::from_utf8(request.body.clone()).unwrap();
    assert!(
        !text.contains(login["token"].as_str().unwrap()),
        "never the token"
    );
    app.count_settles(
        "notice_outbox",
        "channel = 'webhook' AND sent_at IS NOT NULL",
        1,
    )
    .await;
}

#[tokio::test]
async fn a_rolled_back_event_queues_nothing_and_a_committed_one_wakes_the_worker() {
    use diesel::Connection;
    use envshield_server::db::models::notice_outbox::Channels;
    use envshield_server::db::Db;
    use envshield_server::service::events::{self, Event, EventKind, Severity};

    let app = crate::helpers::spawn_app().await;
    let user = app.create_user("ada@example.com", false).await;
    let url = app.server.db.url.clone();
    let channels = std::sync::Arc::new(Channels {
        mail: true,
        webhook: true,
        wake: tokio::sync::Notify::new(),
    });
    let on = channels.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        let mut db = Db::with_notices(&mut conn, Some(on));
        let event = || {
            Event::new(EventKind::PasskeyAdded, Severity::Medium, Some("192.0.2.8"))
                .user(user.id)
                .details(serde_json::json!({ "name": "YubiKey 5" }))
        };
        let rolled_back: Result<(), diesel::result::Error> = db.transaction(|db| {
            events::record(db, event())?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(rolled_back.is_err());
        db.transaction(|db| events::record(db, event())).unwrap();
    })
    .await
    .unwrap();
    // One notice per channel, for the committed event only.
    assert_eq!(
        app.count(
            "notice_outbox",
            "kind = 'passkey_added' AND recipient = 'ada@example.com' AND channel = 'mail' \
             AND payload->'details'->>'name' = 'YubiKey 5'"
        )
        .await,
        1
    );
    assert_eq!(app.count("notice_outbox", "channel = 'webhook'").await, 1);
    assert_eq!(app.count("notice_outbox", "true").await, 2);
    tokio::time::timeout(Duration::from_secs(1), channels.wake.notified())
        .await
        .expect("the commit woke the worker");
}

#[tokio::test]
async fn after_the_last_attempt_the_notice_is_kept_as_failed() {
    let app = spawn_app_with(mail_to(free_port().unwrap())).await;
    approved_login(&app, "ada@example.com").await;
    app.count_settles(
        "notice_outbox",
        "attempts = 1 AND last_error IS NOT NULL",
        1,
    )
    .await;
    // Seven attempts failed; the eighth, the last, is due now.
    app.sql("UPDATE notice_outbox SET attempts = 7, next_attempt_at = now()")
        .await;
    app.server.deliver_notices_now();
    app.count_settles(
        "notice_outbox",
        "attempts = 8 AND failed_at IS NOT NULL AND sent_at IS NULL AND last_error IS NOT NULL",
        1,
    )
    .await;
}
