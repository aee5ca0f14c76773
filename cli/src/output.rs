//! Human output versus `--json`.
//!
//! Human mode: results on stdout, progress and warnings on stderr, errors as
//! `error: ...` on stderr. `--json` mode: one JSON document per line on
//! stdout (results and errors), nothing for people on stdout; warnings still
//! go to stderr. Write errors (a closed pipe) are ignored rather than
//! panicking.

use std::io::{self, IsTerminal, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::CliError;

/// Where and how the command talks.
#[derive(Debug, Clone)]
pub struct Output {
    json: bool,
    styled: bool,
}

impl Output {
    /// Output for `--json` when `json` is true. Bold text is used on stderr
    /// only when it is a terminal and `NO_COLOR` is unset.
    pub fn new(json: bool) -> Self {
        let styled = io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        Self { json, styled }
    }

    /// Output that never styles text, for tests.
    #[cfg(test)]
    pub fn plain(json: bool) -> Self {
        Self {
            json,
            styled: false,
        }
    }

    /// True with `--json`.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one compact JSON line on stdout.
    pub fn json_line(&self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(line) => write_line(&mut io::stdout().lock(), &line),
            Err(e) => write_line(
                &mut io::stderr().lock(),
                &format!("error: could not encode the JSON output ({e})."),
            ),
        }
    }

    /// A result line for people, on stdout; nothing with `--json`.
    pub fn result(&self, text: &str) {
        if !self.json {
            write_line(&mut io::stdout().lock(), text);
        }
    }

    /// Progress or instructions for people, on stderr; nothing with `--json`.
    pub fn note(&self, text: &str) {
        if !self.json {
            write_line(&mut io::stderr().lock(), text);
        }
    }

    /// A prompt on stderr, without a newline, so the answer is typed after
    /// it; in both modes (callers prompt only when stdin is a terminal).
    pub fn prompt(&self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "{text}");
        let _ = err.flush();
    }

    /// `warning: ...` on stderr, in both modes.
    pub fn warn(&self, text: &str) {
        write_line(&mut io::stderr().lock(), &format!("warning: {text}"));
    }

    /// Reports a failure: `{"error", "message", ...details}` on stdout with
    /// `--json`, `error: <message>` on stderr otherwise.
    pub fn error(&self, err: &CliError) {
        if self.json {
            self.json_line(&error_document(err));
        } else {
            write_line(&mut io::stderr().lock(), &format!("error: {}", err.message));
        }
    }

    /// `text` in bold when stderr is a styled terminal.
    pub fn bold(&self, text: &str) -> String {
        if self.styled {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The JSON document for an error: `error`, `message`, then any details.
pub fn error_document(err: &CliError) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert("error".into(), err.code.clone().into());
    doc.insert("message".into(), err.message.clone().into());
    if let Some(serde_json::Value::Object(extra)) = &err.details {
        for (k, v) in extra {
            doc.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    serde_json::Value::Object(doc)
}

fn write_line(w: &mut dyn Write, text: &str) {
    let _ = writeln!(w, "{text}");
    let _ = w.flush();
}

/// `2025-01-02 13:45 UTC`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `in 3 days`, `5 minutes ago`, `just now`: the distance from `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let abs = secs.unsigned_abs();
    let amount = match abs {
        0..=59 => return "just now".into(),
        60..=3_599 => plural(abs / 60, "minute"),
        3_600..=86_399 => plural(abs / 3_600, "hour"),
        _ => plural(abs / 86_400, "day"),
    };
    if secs > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A time with its distance from now, or `fallback` when absent:
/// `2026-01-02 13:45 UTC (in 364 days)`.
pub fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>, fallback: &str) -> String {
    match t {
        Some(t) => format!("{} ({})", format_time(t), relative(t, now)),
        None => fallback.to_string(),
    }
}

/// Lays out rows under headers, columns padded to the widest cell and
/// separated by two spaces; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad));
            }
        }
        line.trim_end().to_string()
    };
    let mut out = vec![render(headers.to_vec())];
    for row in rows {
        out.push(render(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        assert_eq!(relative(at(10), now), "just now");
        assert_eq!(relative(at(120), now), "in 2 minutes");
        assert_eq!(relative(at(-3_600), now), "1 hour ago");
        assert_eq!(relative(at(86_400 * 364), now), "in 364 days");
        assert_eq!(
            when(Some(at(86_400)), now, "never"),
            "2025-01-02 00:00 UTC (in 1 day)"
        );
        assert_eq!(when(None, now, "never"), "never");
    }

    #[test]
    fn table_pads_columns() {
        let text = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "short".into()],
                vec!["1234".into(), "x".into()],
            ],
        );
        assert_eq!(text, "ID    NAME\n1     short\n1234  x");
    }

    #[test]
    fn error_document_has_code_message_and_details() {
        let err = CliError::new("not_signed_in", "not signed in.")
            .with_details(serde_json::json!({"profile": "default", "error": "ignored"}));
        assert_eq!(
            error_document(&err),
            serde_json::json!({"error": "not_signed_in", "message": "not signed in.", "profile": "default"})
        );
    }

    #[test]
    fn plain_output_never_styles() {
        assert_eq!(Output::plain(false).bold("x"), "x");
    }
}
