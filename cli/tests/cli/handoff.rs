//! The token handoff sealed to the CLI (HPKE): every device login sends a
//! fresh key, the token comes back sealed to it, and a pickup by someone
//! else ends in a clear security error.
//!
//! The attacker is a relay on the network path between the CLI and the
//! server (as a logging or intercepting proxy would sit): it sees the
//! device code in `start`'s answer. A bare stolen device code is refused at
//! pickup anyway (the login is bound to the CLI's DPoP key), so the thief
//! here does what such a relay can: it takes one of the CLI's own polls,
//! which carries an unused proof, sends it to the server itself, keeps the
//! answer and tells the CLI "pending".

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use envshield_api_types::handoff::HandoffKey;
use envshield_api_types::PollDeviceResponse;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::helpers::{Running, TestEnv, TIMEOUT};

// ---------------------------------------------------------------------------
// The relay

/// One HTTP request as read off the socket.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// What the relay has seen and what the test asked it to do.
#[derive(Default)]
struct RelayState {
    /// The device code from `start`'s answer.
    device_code: Option<String>,
    /// Polls are held, not forwarded, while set.
    holding: bool,
    /// Polls held, oldest first, with the socket to answer on.
    held: VecDeque<(Request, TcpStream)>,
    /// Polls forwarded and not answered yet.
    in_flight: usize,
}

/// A relay on the network path between the CLI and the test server.
struct Relay {
    url: String,
    upstream: String,
    state: Arc<(Mutex<RelayState>, Condvar)>,
    http: Client,
}

impl Relay {
    /// Listens on a free port; forwards once [`Relay::forward_to`] is called.
    fn bind() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    fn forward_to(listener: TcpListener, url: String, upstream: &str) -> Arc<Self> {
        let relay = Arc::new(Self {
            url,
            upstream: upstream.to_owned(),
            state: Arc::default(),
            http: Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap(),
        });
        let serving = Arc::clone(&relay);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let relay = Arc::clone(&serving);
                thread::spawn(move || relay.serve(stream));
            }
        });
        relay
    }

    fn api_url(&self) -> String {
        format!("{}/api/v1", self.url)
    }

    /// One request per connection (answered with `Connection: close`).
    fn serve(&self, stream: TcpStream) {
        let Some(request) = read_request(&stream) else {
            return;
        };
        let is_poll = request.path.starts_with("/api/v1/cli/auth/device/poll");
        {
            let (lock, changed) = &*self.state;
            let mut state = lock.lock().unwrap();
            if is_poll && state.holding {
                state.held.push_back((request, stream));
                changed.notify_all();
                return;
            }
            if is_poll {
                state.in_flight += 1;
            }
        }
        let (status, body) = self.send(&request);
        if request.path == "/api/v1/cli/auth/device/start" {
            let started: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(code) = started["deviceCode"].as_str() {
                self.state.0.lock().unwrap().device_code = Some(code.to_owned());
            }
        }
        write_response(&stream, status, &body);
        if is_poll {
            let (lock, changed) = &*self.state;
            lock.lock().unwrap().in_flight -= 1;
            changed.notify_all();
        }
    }

    /// Sends `request` to the server as it came.
    fn send(&self, request: &Request) -> (u16, Vec<u8>) {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
        let mut builder = self
            .http
            .request(method, format!("{}{}", self.upstream, request.path))
            .body(request.body.clone());
        for (name, value) in &request.headers {
            let skip = ["host", "connection", "content-length", "transfer-encoding"];
            if !skip.contains(&name.to_ascii_lowercase().as_str()) {
                builder = builder.header(name, value);
            }
        }
        let response = builder.send().expect("the server answers the relay");
        let status = response.status().as_u16();
        (status, response.bytes().unwrap().to_vec())
    }

    /// Waits (bounded) until `ready` holds for the state.
    fn wait_until(&self, what: &str, ready: impl Fn(&RelayState) -> bool) {
        let (lock, changed) = &*self.state;
        let deadline = Instant::now() + TIMEOUT;
        let mut state = lock.lock().unwrap();
        while !ready(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for the relay: {what}");
            state = changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Holds the CLI's polls from now on, and returns once one is held and
    /// none is at the server: the CLI is waiting on the relay.
    fn hold_polls(&self) {
        self.state.0.lock().unwrap().holding = true;
        self.wait_until("a held poll and none at the server", |s| {
            !s.held.is_empty() && s.in_flight == 0
        });
    }

    /// The attack: sends the held poll to the server itself and keeps the
    /// answer; tells the CLI "pending"; forwards every later poll.
    fn hijack_held_poll(&self) -> (u16, Value) {
        let (request, stream) = {
            let mut state = self.state.0.lock().unwrap();
            state.holding = false;
            state.held.pop_front().expect("a held poll")
        };
        let (status, body) = self.send(&request);
        write_response(&stream, 200, br#"{"status":"pending","pollInterval":1}"#);
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn device_code(&self) -> String {
        self.state
            .0
            .lock()
            .unwrap()
            .device_code
            .clone()
            .expect("the relay saw start's answer")
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.trim_end().split_once(':')?;
        let value = value.trim().to_owned();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        }
        headers.push((name.to_owned(), value));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn write_response(mut stream: &TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // The CLI may have given up on this socket; nothing to do then.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// A test server whose public URL is the relay's (the CLI checks that the
/// sign-in pages are on the server it was given, and the server checks
/// each DPoP proof's `htu` against that URL), and the relay in front of it.
fn server_behind_a_relay() -> (TestEnv, Arc<Relay>) {
    let (listener, url) = Relay::bind();
    let app_url = reqwest::Url::parse(&url).unwrap();
    let env = TestEnv::spawn_with(|c| c.app_url = app_url);
    let relay = Relay::forward_to(listener, url, &env.server.address);
    (env, relay)
}

/// `login --json --no-browser` through the relay.
fn login_through(env: &TestEnv, relay: &Relay) -> Running {
    let api_url = relay.api_url();
    Running::spawn(
        env.sandbox
            .command(&["--api-url", &api_url, "--json", "login", "--no-browser"]),
        None,
    )
}

fn count(env: &TestEnv, table: &str, filter: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<Count> =
        diesel::sql_query(format!("SELECT count(*) AS n FROM {table} WHERE {filter}"))
            .load(&mut env.server.db.connect())
            .unwrap();
    rows[0].n
}

/// The handoff key the server stored for the test's one session.
fn stored_handoff_key(env: &TestEnv) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        handoff_key: Option<String>,
    }
    let mut rows: Vec<Row> = diesel::sql_query("SELECT handoff_key FROM cli_device_sessions")
        .load(&mut env.server.db.connect())
        .unwrap();
    assert_eq!(rows.len(), 1);
    rows.remove(0).handoff_key
}

/// Every file under `dir`, as text.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The tests

#[test]
fn a_device_login_takes_its_token_sealed_to_a_key_it_never_writes() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("sealed@example.com");

    let mut login = env.start(&["--json", "login", "--no-browser"]);
    let started = login.json_event("device_started");
    browser.approve(started["userCode"].as_str().unwrap());
    let done = login.finish();
    done.assert_code(0);

    // The server was given a handoff key (a 32-byte X25519 public key)
    // and handed the token out only sealed to it: the session is consumed
    // and the token the CLI saved works.
    let public = stored_handoff_key(&env).expect("the CLI sent a handoff key");
    assert_eq!(public.len(), 43, "{public}");
    assert_eq!(env.only_device_session().status, "CONSUMED");
    let token = env.saved_profile()["token"]
        .as_str()
        .expect("saved token")
        .to_owned();
    let (status, who) = env.whoami_as_saved(&token);
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["user"]["email"], "sealed@example.com");

    // The key lives in memory only: nothing the CLI wrote or printed
    // mentions it.
    for text in files_under(env.home()) {
        assert!(
            !text.contains(&public) && !text.contains("handoff"),
            "{text}"
        );
    }
    assert!(!done.stdout.contains(&public) && !done.stderr.contains(&public));
}

#[test]
fn a_bare_stolen_device_code_collects_nothing_and_the_cli_still_signs_in() {
    let (env, relay) = server_behind_a_relay();
    let browser = env.signed_in_browser("owner@example.com");
    let mut login = login_through(&env, &relay);
    let started = login.json_event("device_started");
    relay.hold_polls();
    browser.approve(started["userCode"].as_str().unwrap());

    // The code alone, polled first: refused (the login is bound to the
    // CLI's DPoP key), and recorded.
    let r = Client::new()
        .post(env.url("/api/v1/cli/auth/device/poll"))
        .json(&json!({ "deviceCode": relay.device_code() }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().unwrap().contains("esh_"));
    assert_eq!(
        count(&env, "security_events", "kind = 'dpop_pickup_refused'"),
        1
    );

    // The CLI's own poll, let through, collects the token.
    {
        let (lock, changed) = &*relay.state;
        let mut state = lock.lock().unwrap();
        state.holding = false;
        let held: Vec<_> = state.held.drain(..).collect();
        changed.notify_all();
        drop(state);
        for (request, stream) in held {
            let (status, body) = relay.send(&request);
            write_response(&stream, status, &body);
        }
    }
    let done = login.finish();
    done.assert_code(0);
    // The saved token works (through the relay: the server's public URL,
    // which the proofs name).
    assert!(env.saved_profile()["token"].is_string());
    let whoami = Running::spawn(env.sandbox.command(&["whoami"]), None).finish();
    whoami.assert_code(0);
    assert!(whoami.stdout.contains("owner@example.com"), "{whoami:?}");
}

#[test]
fn a_pickup_by_someone_else_ends_the_login_with_a_security_error() {
    let (env, relay) = server_behind_a_relay();
    let browser = env.signed_in_browser("victim@example.com");
    let mut login = login_through(&env, &relay);
    let started = login.json_event("device_started");
    relay.hold_polls();
    browser.approve(started["userCode"].as_str().unwrap());

    // The relay collects the approved token with the CLI's own poll: it
    // gets ciphertext only, which no other key opens.
    let (status, answer) = relay.hijack_held_poll();
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.to_string().contains("esh_"), "{answer}");
    let PollDeviceResponse::Approved {
        token: None,
        sealed_token: Some(sealed),
        token_id,
        ..
    } = serde_json::from_value(answer.clone()).unwrap()
    else {
        panic!("a sealed approval: {answer}")
    };
    let session_id = started_session(&env);
    assert!(HandoffKey::generate().open(&sealed, session_id).is_err());

    // The CLI's next poll learns that the token was collected: a clear
    // security error, exit 1, nothing saved.
    let done = login.finish();
    done.assert_code(1);
    let error = done.json_lines().pop().expect("an error line");
    assert_eq!(error["error"], "device_code_reused", "{done:?}");
    let message = error["message"].as_str().unwrap();
    for part in [
        "someone else collected this sign-in",
        "revoked the token",
        "nothing was saved",
        "envshield login",
        "never share the code",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(
        !message.contains("may have been this computer's own"),
        "{message}"
    );
    assert!(env.saved_profile()["token"].is_null(), "{done:?}");

    // The server's side: the alert, and the token revoked.
    assert_eq!(
        count(
            &env,
            "security_events",
            "kind = 'cli_device_code_reused' AND severity = 'high'"
        ),
        1
    );
    assert_eq!(
        count(
            &env,
            "api_tokens",
            &format!("id = '{token_id}' AND revoked_at IS NOT NULL")
        ),
        1
    );
}

/// The id of the test's one device session.
fn started_session(env: &TestEnv) -> uuid::Uuid {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    let mut rows: Vec<Row> = diesel::sql_query("SELECT id FROM cli_device_sessions")
        .load(&mut env.server.db.connect())
        .unwrap();
    assert_eq!(rows.len(), 1);
    rows.remove(0).id
}
