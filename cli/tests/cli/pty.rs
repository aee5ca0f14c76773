//! `envshield login` in a terminal: the token name prompt, bold code,
//! spinner. The terminal is a pseudo-terminal from script(1) (util-linux),
//! whose stdin is a pipe the test types into.

use std::process::{Command, Stdio};

use crate::helpers::{isolate, user_code_in, Running, TestEnv, BIN};

/// `text` quoted for `sh -c`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn the_typed_token_name_reaches_the_server_and_login_completes() {
    let env = TestEnv::spawn();
    let browser = env.signed_in_browser("dev@example.com");
    let api_url = env.api_url();
    let line = [BIN, "--api-url", &api_url, "login", "--no-browser"]
        .map(quote)
        .join(" ");
    let mut cmd = Command::new("script");
    // -q quiet, -f flush at once, -e the command's exit code, -c command;
    // no typescript file.
    cmd.args(["-qfec", &line, "/dev/null"]);
    isolate(&mut cmd, &env.sandbox);
    cmd.env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .env("SHELL", "/bin/sh");
    let mut login = Running::spawn(cmd, Some(Stdio::piped()));

    // Everything the CLI writes to the terminal comes out of script's stdout.
    login.wait_for("the token name prompt", |out, _| {
        out.contains("Token name [CLI Token - ").then_some(())
    });
    login.type_text("pty laptop\n");
    let code = login.wait_for("the user code", |out, _| user_code_in(out));

    // On a terminal the code is bold, and the session carries the typed name.
    assert!(
        login.stdout().contains(&format!("\x1b[1m{code}\x1b[0m")),
        "{:?}",
        login.stdout()
    );
    assert_eq!(env.only_device_session().token_name, "pty laptop");

    browser.approve(&code);
    let done = login.finish();

    done.assert_code(0);
    assert!(
        done.stdout.contains("Signed in as dev@example.com"),
        "{done:?}"
    );
    assert_eq!(env.saved_profile()["tokenName"], "pty laptop");
    let token = env.saved_profile()["token"]
        .as_str()
        .expect("saved token")
        .to_owned();
    let (status, who) = env.whoami_as_saved(&token);
    assert_eq!(status, 200);
    assert_eq!(who["token"]["name"], "pty laptop");
}
