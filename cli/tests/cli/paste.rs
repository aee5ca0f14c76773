//! `envshield login --paste`, and servers that require paste mode: after
//! approval the browser shows a confirmation code, which the person types
//! into the CLI (here: writes to its stdin, a pipe); polling alone never
//! releases the token.

use std::process::{Command, Stdio};

use envshield_api_types::ConfirmationMode;
use serde_json::Value;

use crate::helpers::{interrupt, isolate, user_code_in, Running, TestEnv, BIN};
use crate::pty::quote;

/// A code that is certainly not `right`: its first digit changed.
fn wrong_code(right: &str, n: u32) -> String {
    let mut chars: Vec<char> = right.chars().collect();
    let i = chars
        .iter()
        .position(char::is_ascii_digit)
        .expect("a digit in the code");
    let digit = chars[i].to_digit(10).expect("digit");
    chars[i] = char::from_digit((digit + n) % 10, 10).expect("digit");
    chars.into_iter().collect()
}

fn events(lines: &[Value], event: &str) -> usize {
    lines.iter().filter(|l| l["event"] == event).count()
}

#[test]
fn paste_login_takes_the_code_typed_after_approval() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_stdin(&["--json", "login", "--no-browser", "--paste"]);
    let started = login.json_event("device_started");
    assert_eq!(started["confirmation"], "paste", "{started}");
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    // The CLI asks for the code before anyone approved; it waits for it.
    let asked = login.json_event("confirmation_required");
    assert!(asked.get("error").is_none(), "{asked}");

    let code = browser.approve_for_code(&user_code);
    assert_eq!(code.len(), 7, "{code}");
    assert_eq!(&code[3..4], "-", "{code}");
    // Typed as shown, dash and all, with stray spaces.
    login.type_text(&format!("  {code} \n"));
    let done = login.finish();

    done.assert_code(0);
    let lines = done.json_lines();
    assert_eq!(lines.len(), 3, "{done:?}");
    assert_eq!(lines[0]["event"], "device_started");
    assert_eq!(lines[1]["event"], "confirmation_required");
    let signed_in = &lines[2];
    assert_eq!(signed_in["event"], "signed_in");
    assert_eq!(signed_in["user"]["email"], "dev@example.com");

    let profile = env.saved_profile();
    let token = profile["token"].as_str().expect("saved token");
    assert_eq!(profile["tokenId"], signed_in["token"]["id"]);
    let (status, who) = env.whoami_as_saved(token);
    assert_eq!(status, 200, "{who}");
    assert!(!done.stdout.contains(token) && !done.stderr.contains(token));
    assert_eq!(env.only_device_session().status, "CONSUMED");
}

#[test]
fn a_wrong_code_is_refused_with_the_attempts_left_then_the_right_one_works() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_stdin(&["login", "--no-browser", "--paste"]);
    let user_code = login.user_code_in_stderr();
    login.wait_for("the code prompt", |_, err| {
        err.contains("Enter the confirmation code shown in your browser:")
            .then_some(())
    });
    let code = browser.approve_for_code(&user_code);

    login.type_text(&format!("{}\n", wrong_code(&code, 1)));
    login.wait_for("the refusal", |_, err| {
        err.contains("That code was not accepted").then_some(())
    });
    login.type_text(&format!("{code}\n"));
    let done = login.finish();

    done.assert_code(0);
    assert!(
        done.stderr.contains("4 attempts left"),
        "the server's count is shown: {done:?}"
    );
    assert!(
        done.stdout.contains("Signed in as dev@example.com"),
        "{done:?}"
    );
    assert!(env.saved_profile()["token"].is_string());
}

#[test]
fn five_wrong_codes_end_the_sign_in() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_stdin(&["--json", "login", "--no-browser", "--paste"]);
    let started = login.json_event("device_started");
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    login.json_event("confirmation_required");
    let code = browser.approve_for_code(&user_code);

    // Five wrong codes, then the right one: too late by then.
    let mut input = String::new();
    for n in 1..=5 {
        input.push_str(&format!("{}\n", wrong_code(&code, n)));
    }
    input.push_str(&format!("{code}\n"));
    login.type_text(&input);
    let done = login.finish();

    done.assert_code(1);
    let lines = done.json_lines();
    let last = lines.last().expect("a final line");
    assert_eq!(last["error"], "expired_token", "{done:?}");
    let message = last["message"].as_str().expect("message");
    assert!(message.contains("no longer valid"), "{message}");
    assert!(message.contains("envshield login --paste"), "{message}");
    // Each refusal asked again, with the server's count.
    let refusals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["error"] == "invalid_confirmation_code")
        .collect();
    assert!((4..=5).contains(&refusals.len()), "{done:?}");
    assert!(
        refusals[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4 attempts left"),
        "{done:?}"
    );
    assert!(events(&lines, "confirmation_required") >= 5, "{done:?}");
    env.assert_nothing_written();
}

#[test]
fn a_server_that_requires_paste_mode_gets_the_code_prompt_without_the_flag() {
    let env = TestEnv::spawn_with(|c| c.device_confirmation = ConfirmationMode::Paste);
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_stdin(&["--json", "login", "--no-browser"]);
    let started = login.json_event("device_started");
    assert_eq!(started["confirmation"], "paste", "{started}");
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    login.json_event("confirmation_required");
    let code = browser.approve_for_code(&user_code);
    login.type_text(&format!("{}\n", code.replace('-', "")));
    let done = login.finish();

    done.assert_code(0);
    let lines = done.json_lines();
    assert_eq!(
        lines.last().expect("line")["event"],
        "signed_in",
        "{done:?}"
    );
    assert!(env.saved_profile()["token"].is_string());
}

#[test]
fn required_paste_mode_without_a_code_on_stdin_fails_clearly() {
    let env = TestEnv::spawn_with(|c| c.device_confirmation = ConfirmationMode::Paste);

    // stdin is /dev/null: no code can ever come.
    let done = env.run(&["login", "--no-browser"]);

    done.assert_code(1);
    let error = done.final_error_line();
    assert!(
        error.contains("the server requires the confirmation code"),
        "{done:?}"
    );
    assert!(error.contains("--paste"), "{done:?}");
    assert!(error.contains("standard input"), "{done:?}");
    assert_eq!(env.only_device_session().status, "CANCELLED");
    env.assert_nothing_written();
}

#[test]
fn paste_mode_without_a_code_on_stdin_fails_clearly() {
    let env = TestEnv::spawn();

    let done = env.run(&["--json", "login", "--no-browser", "--paste"]);

    done.assert_code(1);
    let lines = done.json_lines();
    assert_eq!(lines.len(), 3, "{done:?}");
    assert_eq!(lines[1]["event"], "confirmation_required");
    assert_eq!(lines[2]["error"], "confirmation_required", "{done:?}");
    let message = lines[2]["message"].as_str().expect("message");
    assert!(message.contains("standard input ended"), "{message}");
    assert_eq!(env.only_device_session().status, "CANCELLED");
    env.assert_nothing_written();
}

#[test]
fn ctrl_c_at_the_code_prompt_cancels_the_request_on_the_server() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");

    let mut login = env.start_with_stdin(&["--json", "login", "--no-browser", "--paste"]);
    let started = login.json_event("device_started");
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    login.json_event("confirmation_required");
    interrupt(login.pid());
    let done = login.finish();

    done.assert_code(130);
    let lines = done.json_lines();
    assert_eq!(
        lines.last().expect("line")["error"],
        "cancelled",
        "{done:?}"
    );
    assert_eq!(env.only_device_session().status, "CANCELLED");
    let r = browser.complete(&user_code, "approve");
    assert_eq!(r.status(), 410);
    env.assert_nothing_written();
}

#[test]
fn in_a_terminal_the_code_is_typed_at_the_prompt() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");
    let api_url = env.api_url();
    let line = [
        BIN,
        "--api-url",
        &api_url,
        "login",
        "--no-browser",
        "--paste",
        "--name",
        "pty paste",
    ]
    .map(quote)
    .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    isolate(&mut cmd, &env.sandbox);
    cmd.env("TERM", "xterm").env("SHELL", "/bin/sh");
    let mut login = Running::spawn(cmd, Some(Stdio::piped()));

    // Everything the CLI writes to the terminal comes out of script's stdout.
    let user_code = login.wait_for("the user code", |out, _| user_code_in(out));
    login.wait_for("the prompt", |out, _| {
        out.contains("Enter the confirmation code shown in your browser: ")
            .then_some(())
    });
    let code = browser.approve_for_code(&user_code);
    login.type_text(&format!("{code}\n"));
    let done = login.finish();

    done.assert_code(0);
    assert!(
        done.stdout.contains("Signed in as dev@example.com"),
        "{done:?}"
    );
    assert_eq!(env.saved_profile()["tokenName"], "pty paste");
}
