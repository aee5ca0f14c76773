//! Opening the verification page in the person's browser.

use std::process::{Command, Stdio};

/// Whether a browser can be expected here: not over SSH, and on Linux and
/// the BSDs only with a graphical display. `var` reads an environment
/// variable (passed in so tests need not touch the real environment).
pub fn can_open(var: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return false;
    }
    if cfg!(any(target_os = "macos", windows)) {
        return true;
    }
    set("DISPLAY") || set("WAYLAND_DISPLAY")
}

/// [`can_open`] with the process environment.
pub fn can_open_here() -> bool {
    can_open(&|name| std::env::var(name).ok())
}

/// Only plain http(s) URLs without spaces or control characters are handed
/// to the system opener: the URL comes from the server, and an opener
/// would happily run `file://` or other schemes.
pub fn is_safe_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Environment variable naming a program to open addresses with instead of
/// the system's opener (run with the address as its one argument, no
/// shell).
pub const BROWSER_ENV: &str = "ENVSHIELD_BROWSER";

/// Starts the system's opener for `url` without waiting for the browser:
/// the first of [`openers`] that can be started (or the program in
/// [`BROWSER_ENV`]). Fails when the URL is not safe or no opener can be
/// started.
pub fn open(url: &str) -> Result<(), String> {
    if !is_safe_url(url) {
        return Err("the address is not a plain http(s) URL".into());
    }
    let chosen = std::env::var(BROWSER_ENV)
        .ok()
        .filter(|p| !p.trim().is_empty())
        .map(|program| {
            let mut command = Command::new(program.trim());
            command.arg(url);
            vec![command]
        });
    let mut first_failure = None;
    for mut command in chosen.unwrap_or_else(|| openers(url)) {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match command.spawn() {
            Ok(mut child) => {
                // Reap the opener in the background so it never lingers as
                // a zombie.
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
                return Ok(());
            }
            Err(e) => {
                first_failure.get_or_insert_with(|| {
                    format!("could not start {:?} ({e})", command.get_program())
                });
            }
        }
    }
    Err(first_failure.unwrap_or_else(|| "this system has no known opener".into()))
}

/// The system's openers for `url`, best first (`open` on macOS, `xdg-open`
/// then other desktop launchers elsewhere, PowerShell then Explorer on
/// Windows), from the `open` crate. None puts the URL on a shell's command
/// line (it is a plain argument, or for PowerShell an environment variable
/// the script reads), so it cannot be read as commands: `cmd /C start`
/// would run what follows an unescaped `|` or `^` in it.
fn openers(url: &str) -> Vec<Command> {
    ::open::commands(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::env;

    #[test]
    fn no_browser_over_ssh() {
        assert!(!can_open(&env(&[
            ("DISPLAY", ":0"),
            ("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")
        ])));
        assert!(!can_open(&env(&[
            ("DISPLAY", ":0"),
            ("SSH_TTY", "/dev/pts/1")
        ])));
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn linux_needs_a_display() {
        assert!(!can_open(&env(&[])));
        assert!(!can_open(&env(&[("DISPLAY", "")])));
        assert!(can_open(&env(&[("DISPLAY", ":0")])));
        assert!(can_open(&env(&[("WAYLAND_DISPLAY", "wayland-0")])));
    }

    #[test]
    fn only_plain_web_urls_are_opened() {
        assert!(is_safe_url(
            "http://localhost:3000/cli/login?code=BCDF-GHJK"
        ));
        assert!(is_safe_url("https://e.example/cli/login?code=BCDF-GHJK"));
        assert!(!is_safe_url("file:///etc/passwd"));
        assert!(!is_safe_url("javascript:alert(1)"));
        assert!(!is_safe_url("https://e.example/a b"));
        assert!(open("file:///etc/passwd").is_err());
    }

    #[test]
    fn no_opener_is_a_shell() {
        let url = "https://e.example/cli/login?code=BCDF-GHJK&next=%7C|^x";
        for command in openers(url) {
            let program = command.get_program().to_string_lossy().to_lowercase();
            assert!(
                !["cmd", "cmd.exe", "sh", "bash"].contains(&program.as_str()),
                "{command:?}"
            );
        }
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn xdg_open_gets_the_address_as_one_argument_unchanged() {
        let url = "https://e.example/cli/login?code=BCDF-GHJK&next=%7C|^x";
        let commands = openers(url);
        let xdg = commands
            .iter()
            .find(|c| c.get_program() == "xdg-open")
            .unwrap();
        assert_eq!(xdg.get_args().collect::<Vec<_>>(), vec![url]);
    }
}
