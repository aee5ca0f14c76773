//! `login --clipboard`, `login --qr`, and the refusal of a sign-in page on
//! another host than the server's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{user_code_in, Running, Sandbox, TestEnv};

/// Fails, naming the Debian package, when a program is missing: these
/// tests never skip.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed: this test needs the Debian package `{package}` (.ci/run installs it)"
    );
}

/// A virtual X display (Xvfb) of the test's own; stopped when dropped.
struct Display {
    server: Child,
    name: String,
}

impl Display {
    fn start() -> Self {
        require("Xvfb", "xvfb");
        require("xclip", "xclip");
        // Xvfb picks a free display number and writes it on stdout.
        let mut server = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "320x240x24",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let stdout = server.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let number = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
            "Xvfb did not start (said {number:?})"
        );
        Self {
            server,
            name: format!(":{number}"),
        }
    }

    /// What the clipboard holds, read with `xclip -o`, once it holds
    /// something: the copying `xclip` may still be taking the selection
    /// over in the background when the CLI says it copied. Fails after 10 s.
    fn clipboard(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("xclip")
                .args(["-o", "-selection", "clipboard"])
                .env("DISPLAY", &self.name)
                .stdin(Stdio::null())
                .output()
                .expect("run xclip -o");
            if out.status.success() && !out.stdout.is_empty() {
                return String::from_utf8(out.stdout).expect("UTF-8 clipboard");
            }
            assert!(
                Instant::now() < deadline,
                "the clipboard stayed empty: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn clipboard_holds_the_code_while_the_login_waits() {
    let display = Display::start();
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut cmd = env.cli(&["login", "--no-browser", "--clipboard"]);
    cmd.env("DISPLAY", &display.name);
    let mut login = Running::spawn(cmd, None);
    let code = login.user_code_in_stderr();
    login.wait_for("the clipboard note", |_, err| {
        err.contains("Copied the code to the clipboard")
            .then_some(())
    });
    assert_eq!(display.clipboard(), code);

    browser.approve(&code);
    let done = login.finish();
    done.assert_code(0);
    assert!(!done.stderr.contains("warning"), "{done:?}");
}

#[test]
fn without_a_clipboard_the_login_says_so_and_goes_on() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    // No display: no clipboard.
    let mut login = env.start(&["login", "--no-browser", "--clipboard"]);
    let code = login.user_code_in_stderr();
    browser.approve(&code);
    let done = login.finish();

    done.assert_code(0);
    let warnings: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        ["warning: could not copy the code to the clipboard (no clipboard in this session: no display); type it by hand."],
        "{done:?}"
    );
    assert!(env.saved_profile()["token"].as_str().is_some());
}

/// The QR code printed on `stderr`, decoded: the lines made only of half
/// blocks and spaces are turned back into modules (two per character, one
/// above the other, light where drawn), scaled up into a picture, and read
/// by a QR decoder.
fn decode_qr(stderr: &str) -> String {
    let block: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' '))
                && l.contains('█')
        })
        .collect();
    assert!(block.len() > 10, "no QR code in:\n{stderr}");
    let width = block[0].chars().count();
    assert!(
        block.iter().all(|l| l.chars().count() == width),
        "{block:#?}"
    );
    // true = light.
    let mut modules: Vec<Vec<bool>> = Vec::new();
    for line in &block {
        let (top, bottom): (Vec<bool>, Vec<bool>) = line
            .chars()
            .map(|c| match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            })
            .unzip();
        modules.push(top);
        modules.push(bottom);
    }
    const SCALE: usize = 4;
    let height = modules.len();
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width * SCALE, height * SCALE, |x, y| {
            if modules[y / SCALE][x / SCALE] {
                255
            } else {
                0
            }
        });
    let grids = image.detect_grids();
    assert_eq!(
        grids.len(),
        1,
        "one QR code expected in:\n{}",
        block.join("\n")
    );
    let (_, content) = grids[0].decode().expect("the QR code decodes");
    content
}

#[test]
fn qr_shows_the_complete_address_for_a_phone() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start(&["login", "--no-browser", "--qr"]);
    let code = login.user_code_in_stderr();
    let stderr = login.wait_for("the QR code", |_, err| {
        err.contains("Open the address above")
            .then(|| err.to_owned())
    });
    assert_eq!(
        decode_qr(&stderr),
        format!("{}/cli/login?code={code}", env.server.address)
    );
    browser.approve(&code);
    login.finish().assert_code(0);
}

/// A "server" on the loopback that answers `start` with a sign-in page on
/// another host, as a malicious or misconfigured server would, and
/// records the requests it got.
fn foreign_page_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            record.lock().expect("lock").push(first.trim().to_owned());
            let body = if first.contains("/device/start") {
                serde_json::json!({
                    "deviceCode": "d".repeat(43),
                    "userCode": "BCDF-GHJK",
                    "verificationUrl": "https://login.evil.example/cli/login?code=BCDF-GHJK",
                    "verificationUri": "https://login.evil.example/cli/device",
                    "expiresAt": "2099-01-01T00:00:00Z",
                    "expiresIn": 600,
                    "pollInterval": 5,
                    "tokenName": "n",
                    "scopes": [],
                })
                .to_string()
            } else {
                r#"{"status":"ok","message":"Cancelled."}"#.to_owned()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, seen)
}

#[test]
fn a_sign_in_page_on_another_host_is_refused() {
    let (api_url, seen) = foreign_page_server();
    let sandbox = Sandbox::new();
    let done = sandbox.run(&[
        "--api-url",
        &api_url,
        "login",
        "--no-browser",
        "--qr",
        "--clipboard",
    ]);

    done.assert_code(1);
    let error = done.error_line();
    let ours = api_url.trim_end_matches("/api/v1");
    assert!(
        error.contains(&format!(
            "the server at {ours} asked to open a sign-in page on https://login.evil.example:443"
        )),
        "{done:?}"
    );
    assert!(error.contains("refusing to open or show it"), "{done:?}");
    // Neither shown nor handed on: no address, no code, no QR code.
    assert!(!done.stderr.contains("/cli/login"), "{done:?}");
    assert_eq!(user_code_in(&done.stderr), None, "{done:?}");
    assert!(!done.stderr.contains('█'), "{done:?}");
    sandbox.assert_nothing_written();
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("POST /api/v1/cli/auth/device/start "),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("POST /api/v1/cli/auth/device/cancel "),
        "{seen:?}"
    );
}
