//! Running external commands and reporting their failures with the tail
//! of their output.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Output};

use crate::LocalPgError;

/// How much of a failing command's stderr (or the server log) errors carry.
const TAIL_LINES: usize = 20;

/// Quotes `value` as one `/bin/sh` word.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Runs `cmd` to completion, capturing its output.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, LocalPgError> {
    cmd.output().map_err(|source| LocalPgError::Spawn {
        command: command_line(cmd),
        source,
    })
}

/// Runs `cmd`; a failed exit becomes [`LocalPgError::Command`].
pub(crate) fn run_checked(cmd: &mut Command) -> Result<Output, LocalPgError> {
    let out = run(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(command_failed(cmd, &out))
    }
}

/// The error for `cmd` having exited unsuccessfully with `out`.
pub(crate) fn command_failed(cmd: &Command, out: &Output) -> LocalPgError {
    LocalPgError::Command {
        command: command_line(cmd),
        status: out.status,
        stderr: output_tail(out),
    }
}

/// `cmd` as one line for messages, arguments with spaces or quotes quoted.
pub(crate) fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"".contains(c)) {
                format!("{arg:?}")
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Some tools report errors on stdout, so fall back to it.
pub(crate) fn output_tail(out: &Output) -> String {
    let text = if out.stderr.iter().all(u8::is_ascii_whitespace) {
        &out.stdout
    } else {
        &out.stderr
    };
    let tail = last_lines(&String::from_utf8_lossy(text));
    if tail.is_empty() {
        "(no output)".to_owned()
    } else {
        tail
    }
}

/// Reads only the end, as the log of a long-lived cluster grows without bound.
pub(crate) fn file_tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(last_lines(&String::from_utf8_lossy(&bytes)))
    };
    match read() {
        Ok(tail) if tail.is_empty() => "(empty)".to_owned(),
        Ok(tail) => tail,
        Err(e) => format!("(could not read it: {e})"),
    }
}

/// The last few lines of `text`.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = last_lines(&text);
        assert!(tail.starts_with("line 11\n"), "{tail}");
        assert!(tail.ends_with("line 30"), "{tail}");
    }
}
