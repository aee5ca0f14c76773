//! `login --clipboard`: putting the user code on the system clipboard.
//!
//! The system's own clipboard tools do the work (`pbcopy`, `clip.exe`,
//! `wl-copy`, `xclip`, `xsel`), the text going in on their standard input.
//! On X11 a clipboard is owned by a running program and lost when it exits;
//! `xclip` and `xsel` stay in the background to keep serving it, which a
//! library in this short-lived process could not do.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a clipboard tool may take to take the text.
const TOOL_WAIT: Duration = Duration::from_secs(3);

/// A clipboard tool: the program and its arguments.
pub type Tool = (&'static str, &'static [&'static str]);

/// The clipboard tools to try, best first; `var` reads an environment
/// variable. Empty when this session has no clipboard (no display on Linux
/// and the BSDs, and not WSL).
pub fn tools(var: &dyn Fn(&str) -> Option<String>) -> Vec<Tool> {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if cfg!(target_os = "macos") {
        return vec![("pbcopy", &[])];
    }
    if cfg!(windows) {
        return vec![("clip.exe", &[])];
    }
    let mut tools: Vec<Tool> = Vec::new();
    if set("WAYLAND_DISPLAY") {
        tools.push(("wl-copy", &[]));
    }
    if set("DISPLAY") {
        tools.push(("xclip", &["-selection", "clipboard", "-in"]));
        tools.push(("xsel", &["--clipboard", "--input"]));
    }
    if set("WSL_DISTRO_NAME") {
        tools.push(("clip.exe", &[]));
    }
    tools
}

/// Copies `text` to the clipboard with the first tool that works; returns
/// its name, or why none did (one clause).
pub fn copy(text: &str) -> Result<&'static str, String> {
    let tools = tools(&|name| std::env::var(name).ok());
    if tools.is_empty() {
        return Err("no clipboard in this session: no display".into());
    }
    let mut failures = Vec::new();
    for (program, args) in tools {
        match run(program, args, text) {
            Ok(()) => return Ok(program),
            Err(why) => failures.push(format!("{program}: {why}")),
        }
    }
    Err(failures.join("; "))
}

/// Runs one tool with `text` on its standard input and waits for it to
/// take it (a tool that keeps serving the clipboard forks and the first
/// process exits).
fn run(program: &str, args: &[&str], text: &str) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "not installed".to_string()
            } else {
                e.to_string()
            }
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()))
        .transpose();
    // Dropping stdin above closed it: the tool sees the end of the text.
    let deadline = Instant::now() + TOOL_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("did not finish in time".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    // A tool that failed says why by its status, even when it exited
    // before reading the text (the write then met a closed pipe).
    if !status.success() {
        return Err(format!("failed ({status})"));
    }
    written.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::env;

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn tools_follow_the_display() {
        assert!(tools(&env(&[])).is_empty());
        let names = |t: Vec<Tool>| t.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(tools(&env(&[("DISPLAY", ":0")]))), ["xclip", "xsel"]);
        assert_eq!(
            names(tools(&env(&[
                ("WAYLAND_DISPLAY", "wayland-0"),
                ("DISPLAY", ":0")
            ]))),
            ["wl-copy", "xclip", "xsel"]
        );
        assert_eq!(
            names(tools(&env(&[("WSL_DISTRO_NAME", "Debian")]))),
            ["clip.exe"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_tool_is_reported_not_fatal() {
        assert_eq!(
            run("false", &[], "x"),
            Err("failed (exit status: 1)".into())
        );
        assert_eq!(
            run("envshield-no-such-tool", &[], "x"),
            Err("not installed".into())
        );
        assert_eq!(run("cat", &[], "BCDF-GHJK"), Ok(()));
    }
}
