//! What the tests share: a sandbox (home and config folder) to run the
//! binary in, a real server next to it, a signed-in browser, and bounded
//! waits on the running binary.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use envshield_api_types::dpop::DpopKey;
use envshield_api_types::{PollDeviceResponse, StartDeviceResponse};
use envshield_server::config::Config;
use envshield_server::domain::Email;
use envshield_server::service::accounts;
use envshield_server::testing::TestServer;
use reqwest::blocking::{Client, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

/// The built binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_envshield");
/// Password of every account the tests create.
pub const PASSWORD: &str = "correct horse battery staple";
/// Longest any single wait (for output, for exit) may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Running the binary

/// A home folder and a config folder of the test's own. The config folder
/// does not exist until the CLI creates it.
pub struct Sandbox {
    home: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `$ENVSHIELD_CONFIG_DIR`.
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("envshield-config")
    }

    /// `$ENVSHIELD_CONFIG_DIR/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.config_dir().join("config.json")
    }

    /// The binary with `args`, isolated from the environment of the test
    /// run (no token, URL, profile or display from outside).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        isolate(&mut cmd, self);
        cmd.args(args);
        cmd
    }

    /// Runs to completion with stdin closed.
    pub fn run(&self, args: &[&str]) -> Finished {
        Running::spawn(self.command(args), None).finish()
    }

    /// The saved config, parsed; `None` when there is no file.
    pub fn saved_config(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.config_path()).ok()?;
        Some(serde_json::from_str(&text).expect("config.json is JSON"))
    }

    /// The default profile of the saved config (`Null` when absent).
    pub fn saved_profile(&self) -> Value {
        self.saved_config()
            .map(|c| c["profiles"]["default"].clone())
            .unwrap_or(Value::Null)
    }

    /// Asserts that the CLI created nothing at all.
    pub fn assert_nothing_written(&self) {
        assert!(
            !self.config_dir().exists(),
            "the config folder was created: {:?}",
            std::fs::read_dir(self.config_dir()).map(|d| d.count())
        );
    }
}

/// Environment for every run of the binary: this sandbox's home and config
/// folder, and nothing from the test runner's environment that changes
/// what the CLI does. Credentials go to the config file, where most tests
/// look at them, and never near the keyring of the person running the
/// tests; `tests/cli/keyring.rs` gives the binary a keyring of its own.
pub fn isolate(cmd: &mut Command, sandbox: &Sandbox) {
    cmd.env("HOME", sandbox.home())
        .env("ENVSHIELD_CONFIG_DIR", sandbox.config_dir())
        .env("ENVSHIELD_CREDENTIAL_STORE", "file")
        .env("NO_COLOR", "1");
    for var in [
        "DBUS_SESSION_BUS_ADDRESS",
        "WSL_DISTRO_NAME",
        "ENVSHIELD_API_URL",
        "ENVSHIELD_TOKEN",
        "ENVSHIELD_PROFILE",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "SSH_CONNECTION",
        "SSH_TTY",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
}

/// A process that ended, with everything it printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "envshield exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Finished {
    /// Asserts the exit code, showing the output when it is wrong.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.status.code(), Some(code), "{self:?}");
        self
    }

    /// Every stdout line, each parsed as JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line {l:?} is not JSON ({e}): {self:?}"))
            })
            .collect()
    }

    /// The one JSON document on stdout.
    pub fn json(&self) -> Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "one JSON document expected: {self:?}");
        lines.remove(0)
    }

    /// The human error: stderr must be exactly one line, `error: ...`.
    /// Returns it.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        lines[0]
    }

    /// The human error of a command that printed progress first (`login`):
    /// the last stderr line is `error: ...`, and no other line is.
    pub fn final_error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let errors = lines.iter().filter(|l| l.starts_with("error")).count();
        assert_eq!(errors, 1, "one error line expected: {self:?}");
        let last = lines.last().copied().unwrap_or_default();
        assert!(last.starts_with("error: "), "{self:?}");
        last
    }
}

/// A running `envshield` whose output is collected as it comes, so tests
/// can wait for a line (the user code) and then act, with a deadline on
/// every wait. Dropping it kills the process if it still runs.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    arrived: Receiver<()>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd`; stdin is `/dev/null` unless `stdin` says otherwise.
    pub fn spawn(mut cmd: Command, stdin: Option<Stdio>) -> Self {
        cmd.stdin(stdin.unwrap_or_else(Stdio::null))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        let (tx, arrived) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), &stdout, tx.clone()),
            collect(child.stderr.take().expect("stderr"), &stderr, tx),
        ];
        Self {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            arrived,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        text(&self.stdout)
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// Writes `input` to its stdin.
    pub fn type_text(&mut self, input: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(input.as_bytes()).expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until `found` (given stdout and stderr so far) returns
    /// something, for at most [`TIMEOUT`]. Fails, naming `what`, on timeout
    /// or when the process closes its output first.
    pub fn wait_for<T>(&mut self, what: &str, mut found: impl FnMut(&str, &str) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(t) = found(&self.stdout(), &self.stderr()) {
                return t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {TIMEOUT:?} waiting for {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
            match self.arrived.recv_timeout(left) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(t) = found(&self.stdout(), &self.stderr()) {
                        return t;
                    }
                    panic!(
                        "envshield closed its output before {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        self.stdout(),
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Waits for the `--json` line `{"event": <event>, ...}` on stdout.
    pub fn json_event(&mut self, event: &str) -> Value {
        self.wait_for(&format!("the {event} event"), |out, _| {
            complete_lines(out)
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["event"] == event)
        })
    }

    /// Waits for the user code the device flow shows (human output).
    pub fn user_code_in_stderr(&mut self) -> String {
        self.wait_for("the user code", |_, err| user_code_in(err))
    }

    /// Waits (at most [`TIMEOUT`]) for the process to exit and returns
    /// everything it printed. Kills it and fails on timeout.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "envshield did not exit within {TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        self.stdout(),
                        self.stderr()
                    );
                }
                None => {
                    // Wakes on output, or every 50 ms to check for exit.
                    let _ = self.arrived.recv_timeout(Duration::from_millis(50));
                }
            }
        };
        // The pipes close when the process is gone; the readers then end.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Copies everything `from` yields into `into`, signalling each chunk.
fn collect(
    mut from: impl Read + Send + 'static,
    into: &Arc<Mutex<Vec<u8>>>,
    arrived: mpsc::Sender<()>,
) -> JoinHandle<()> {
    let into = Arc::clone(into);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    into.lock()
                        .expect("output lock")
                        .extend_from_slice(&buf[..n]);
                    let _ = arrived.send(());
                }
            }
        }
    })
}

fn text(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().expect("output lock")).into_owned()
}

/// Lines that ended with a newline (a line still being written is left
/// out), without `\r`.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end].lines().map(|l| l.trim_end_matches('\r'))
}

/// Sends SIGINT to `pid`, as Ctrl-C in a terminal would (through kill(1):
/// the workspace forbids `unsafe`, so no libc::kill).
pub fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT {pid} failed: {status}");
}

/// Drops terminal escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The `XXXX-XXXX` after `Code:` in the human output, once it is there.
pub fn user_code_in(output: &str) -> Option<String> {
    complete_lines(output).find_map(|line| {
        let line = strip_ansi(line);
        let (_, rest) = line.split_once("Code:")?;
        let code = rest.trim();
        let ok = code.len() == 9
            && code.char_indices().all(|(i, c)| {
                if i == 4 {
                    c == '-'
                } else {
                    c.is_ascii_uppercase()
                }
            });
        ok.then(|| code.to_string())
    })
}

/// An API URL where nothing listens.
pub fn closed_port_api_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/api/v1")
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

// ---------------------------------------------------------------------------
// The server side

/// A server on a database of its own, and a sandbox for the CLI.
pub struct TestEnv {
    pub server: TestServer,
    pub sandbox: Sandbox,
    api: Client,
}

impl std::ops::Deref for TestEnv {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl TestEnv {
    /// A server that asks for a poll every second.
    pub fn spawn() -> Self {
        Self::spawn_with(|_| {})
    }

    /// Like [`TestEnv::spawn`], with more configuration.
    pub fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let server = TestServer::spawn(|c| {
            c.device_code_interval_secs = 1;
            customize(c);
        })
        .expect("test server starts");
        Self {
            server,
            sandbox: Sandbox::new(),
            api: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        }
    }

    pub fn api_url(&self) -> String {
        self.server.api_url()
    }

    /// The binary with `--api-url` pointing at this server, then `args`.
    pub fn cli(&self, args: &[&str]) -> Command {
        let api_url = self.api_url();
        let mut all = vec!["--api-url", api_url.as_str()];
        all.extend_from_slice(args);
        self.sandbox.command(&all)
    }

    /// Runs against this server to completion, stdin closed.
    pub fn run(&self, args: &[&str]) -> Finished {
        Running::spawn(self.cli(args), None).finish()
    }

    /// Runs against this server with one more environment variable.
    pub fn run_with_env(&self, args: &[&str], var: &str, value: &str) -> Finished {
        let mut cmd = self.cli(args);
        cmd.env(var, value);
        Running::spawn(cmd, None).finish()
    }

    /// Runs against this server with `input` on stdin (a pipe).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Finished {
        let mut running = Running::spawn(self.cli(args), Some(Stdio::piped()));
        running.type_text(input);
        running.close_stdin();
        running.finish()
    }

    /// Starts against this server, stdin `/dev/null`.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::spawn(self.cli(args), None)
    }

    /// Starts `login` where a browser can be expected on this machine (a
    /// display), the "browser" being a program that opens nothing: the
    /// test follows the address the CLI prints.
    pub fn start_with_browser(&self, args: &[&str]) -> Running {
        let mut cmd = self.cli(args);
        cmd.env("DISPLAY", ":0").env("ENVSHIELD_BROWSER", "true");
        Running::spawn(cmd, None)
    }

    /// Starts against this server with stdin a pipe the test types into
    /// ([`Running::type_text`]).
    pub fn start_with_stdin(&self, args: &[&str]) -> Running {
        Running::spawn(self.cli(args), Some(Stdio::piped()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.address)
    }

    /// A new account, and a browser signed in as it through the real form.
    pub fn signed_in_browser(&self, email: &str) -> Browser {
        let mut conn = self.server.db.connect();
        accounts::create_user(
            &mut conn,
            &Email::parse(email).expect("valid email"),
            &SecretString::from(PASSWORD.to_owned()),
            "user",
            4,
        )
        .expect("create user");

        let client = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let page = client
            .get(self.url("/login"))
            .send()
            .expect("GET /login")
            .text()
            .expect("login page");
        let csrf = csrf_from(&page);
        let r = client
            .post(self.url("/login"))
            .form(&[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ])
            .send()
            .expect("POST /login");
        assert_eq!(r.status(), 303, "sign-in redirects");
        Browser {
            client,
            complete_url: self.url("/api/v1/cli/auth/device/complete"),
            origin: self.server.config.app_origin(),
        }
    }

    /// `GET /cli/whoami` with `token` as Bearer: status and body.
    pub fn bearer_whoami(&self, token: &str) -> (u16, Value) {
        let r = self
            .api
            .get(self.url("/api/v1/cli/whoami"))
            .bearer_auth(token)
            .send()
            .expect("GET whoami");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The DPoP key saved in the default profile's file secrets, if any.
    pub fn saved_dpop_key(&self) -> Option<DpopKey> {
        let profile = self.saved_config()?["profiles"]["default"].clone();
        let stored = profile["secrets"]["dpop_private_key"].as_str()?.to_owned();
        Some(DpopKey::from_stored(&stored).expect("a readable saved DPoP key"))
    }

    /// `GET path` with `token` as `DPoP` and a proof of `key`.
    pub fn get_with_dpop(&self, path: &str, token: &str, key: &DpopKey) -> (u16, Value) {
        let url = self.url(path);
        let proof = key
            .proof("GET", &url, Some(token), chrono::Utc::now().timestamp())
            .expect("a proof");
        let r = self
            .api
            .get(url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .send()
            .expect("GET");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// `GET /cli/whoami` with `token`: as `DPoP` with a proof of `key`, or
    /// as Bearer without one.
    pub fn whoami_with(&self, token: &str, key: Option<&DpopKey>) -> (u16, Value) {
        match key {
            Some(key) => self.get_with_dpop("/api/v1/cli/whoami", token, key),
            None => self.bearer_whoami(token),
        }
    }

    /// `GET /cli/whoami` with `token` as the CLI sends it: `DPoP` with a
    /// proof of the default profile's saved key when the file holds one,
    /// else Bearer. Status and body.
    pub fn whoami_as_saved(&self, token: &str) -> (u16, Value) {
        let Some(key) = self.saved_dpop_key() else {
            return self.bearer_whoami(token);
        };
        let url = self.url("/api/v1/cli/whoami");
        let proof = key
            .proof("GET", &url, Some(token), chrono::Utc::now().timestamp())
            .expect("a proof");
        let r = self
            .api
            .get(url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .send()
            .expect("GET whoami");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// A token minted through the whole device flow over HTTP (start,
    /// approve in `browser`, poll), without the CLI: for `login --token`.
    pub fn mint_token(&self, browser: &Browser, name: &str) -> (String, Uuid) {
        let started: StartDeviceResponse = self
            .api
            .post(self.url("/api/v1/cli/auth/device/start"))
            .json(&json!({ "tokenName": name }))
            .send()
            .expect("start")
            .json()
            .expect("start answer");
        browser.approve(&started.user_code);
        let polled: PollDeviceResponse = self
            .api
            .post(self.url("/api/v1/cli/auth/device/poll"))
            .json(&json!({ "deviceCode": started.device_code }))
            .send()
            .expect("poll")
            .json()
            .expect("poll answer");
        match polled {
            PollDeviceResponse::Approved {
                token: Some(token),
                token_id,
                ..
            } => (token, token_id),
            other => panic!("not approved: {other:?}"),
        }
    }

    /// Every device session, oldest first.
    pub fn device_sessions(&self) -> Vec<SessionRow> {
        diesel::sql_query(
            "SELECT status, token_name FROM cli_device_sessions ORDER BY created_at, id",
        )
        .load(&mut self.server.db.connect())
        .expect("query device sessions")
    }

    /// The one device session of the test.
    pub fn only_device_session(&self) -> SessionRow {
        let mut rows = self.device_sessions();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0)
    }
}

/// A row of `cli_device_sessions`, the columns the tests look at.
#[derive(Debug, diesel::QueryableByName)]
pub struct SessionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub token_name: String,
}

/// A browser signed in to the test server.
pub struct Browser {
    client: Client,
    complete_url: String,
    origin: String,
}

impl Browser {
    /// `POST /api/v1/cli/auth/device/complete` from the site's own origin.
    pub fn complete(&self, user_code: &str, decision: &str) -> Response {
        self.client
            .post(&self.complete_url)
            .header("Origin", &self.origin)
            .json(&json!({ "userCode": user_code, "decision": decision }))
            .send()
            .expect("POST complete")
    }

    /// Approves, and checks the server agreed.
    pub fn approve(&self, user_code: &str) {
        let r = self.complete(user_code, "approve");
        let status = r.status();
        assert_eq!(status, 200, "approve: {}", r.text().unwrap_or_default());
    }

    /// Approves a paste-mode request, checks the server agreed, and returns
    /// the confirmation code the page shows (as the person would read it).
    pub fn approve_for_code(&self, user_code: &str) -> String {
        let r = self.complete(user_code, "approve");
        let status = r.status();
        let body: Value = r.json().expect("complete answers JSON");
        assert_eq!(status, 200, "approve: {body}");
        body["confirmationCode"]
            .as_str()
            .unwrap_or_else(|| panic!("no confirmationCode in {body}"))
            .to_owned()
    }

    /// Opens the consent page at `authorize_url` and submits `decision`
    /// (`approve` or `deny`) with its CSRF token, hidden inputs and
    /// `scopes` (none: the ones the page ticks); returns where the server
    /// redirects the browser (303).
    pub fn consent(&self, authorize_url: &str, decision: &str, scopes: &[&str]) -> String {
        let page = self
            .client
            .get(authorize_url)
            .send()
            .expect("GET authorize");
        assert_eq!(page.status(), 200, "the consent page");
        let html = page.text().expect("consent page");
        let mut form: Vec<(String, String)> = vec![
            ("csrf_token".into(), csrf_from(&html)),
            ("decision".into(), decision.into()),
        ];
        for scope in scopes {
            form.push(("scopes".into(), (*scope).into()));
        }
        if scopes.is_empty() {
            for input in html.split("name=\"scopes\" value=\"").skip(1) {
                let (value, rest) = input.split_once('"').expect("a scope");
                if rest.trim_start().starts_with("checked") {
                    form.push(("scopes".into(), html_unescape(value)));
                }
            }
        }
        for input in html.split("<input type=\"hidden\" name=\"").skip(1) {
            let name = input.split('"').next().expect("a name");
            let value = input
                .split("value=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .expect("a value");
            if name != "csrf_token" {
                form.push((name.into(), html_unescape(value)));
            }
        }
        let r = self
            .client
            .post(format!("{}/oauth/authorize", self.origin))
            .form(&form)
            .send()
            .expect("POST /oauth/authorize");
        let status = r.status();
        if status != 303 {
            panic!(
                "consent redirects, not {status}: {}",
                r.text().unwrap_or_default()
            );
        }
        r.headers()["location"]
            .to_str()
            .expect("a Location")
            .to_owned()
    }

    /// Denies, and checks the server agreed.
    pub fn deny(&self, user_code: &str) {
        let r = self.complete(user_code, "deny");
        let status = r.status();
        assert_eq!(status, 200, "deny: {}", r.text().unwrap_or_default());
    }
}

/// Undoes the HTML escaping of an attribute value.
fn html_unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#x3a;", ":")
        .replace("&#x3d;", "=")
        .replace("&#x2b;", "+")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The value of the hidden `csrf_token` input in a page.
fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a CSRF token") + marker.len();
    let end = html[start..].find('"').expect("end of CSRF token") + start;
    html[start..end].to_owned()
}

#[test]
fn user_codes_are_found_in_plain_and_bold_output() {
    assert_eq!(
        user_code_in("x\n    Code:  BCDF-GHJK\n").as_deref(),
        Some("BCDF-GHJK")
    );
    assert_eq!(
        user_code_in("    Code:  \x1b[1mBCDF-GHJK\x1b[0m\r\n").as_deref(),
        Some("BCDF-GHJK")
    );
    assert_eq!(user_code_in("    Code:  BCDF-GH"), None);
}
