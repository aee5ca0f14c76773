//! Text helpers for messages shown to the person. They depend on nothing
//! else in the crate, so every other module may use them.

/// Squeezes text onto one line and drops control characters, so a message
/// (possibly from the server) cannot break the one-line error format or
/// smuggle terminal escape sequences.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !last_space && !out.is_empty() {
                out.push(' ');
            }
            last_space = true;
        } else if !c.is_control() {
            out.push(c);
            last_space = false;
        }
    }
    out.trim_end().to_string()
}

/// A server sentence without its final full stop, so it can be embedded in
/// one of ours.
pub fn clause(text: &str) -> String {
    let line = one_line(text);
    line.trim_end_matches(['.', ' ']).to_string()
}

/// ` (<clause>)`, or nothing when `text` says nothing: a server's words
/// appended to one of our sentences.
pub fn in_parentheses(text: &str) -> String {
    let said = clause(text);
    if said.is_empty() {
        String::new()
    } else {
        format!(" ({said})")
    }
}

/// `<before><text>` when there is a text, else nothing; for optional parts
/// of a message such as ` to <location>`.
pub fn prefixed(before: &str, text: Option<String>) -> String {
    text.map(|t| format!("{before}{t}")).unwrap_or_default()
}

/// What debug output shows in place of a token, refresh token or device
/// code.
pub const REDACTED: &str = "<redacted>";

/// [`REDACTED`] when a secret is present, `None` when it is not: the debug
/// view of an optional secret, which still tells whether there is one.
pub fn redacted<T>(secret: Option<&T>) -> Option<&'static str> {
    secret.map(|_| REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_newlines_and_escapes() {
        assert_eq!(one_line("a\nb\r\n  c\x1b[31m"), "a b c[31m");
        assert_eq!(one_line("  x  "), "x");
    }

    #[test]
    fn clause_drops_the_final_stop() {
        assert_eq!(clause("Token expired."), "Token expired");
        assert_eq!(clause("ok"), "ok");
    }

    #[test]
    fn in_parentheses_is_empty_for_nothing_said() {
        assert_eq!(in_parentheses("Denied."), " (Denied)");
        assert_eq!(in_parentheses(" . "), "");
        assert_eq!(prefixed(" to ", Some("x".into())), " to x");
        assert_eq!(prefixed(" to ", None), "");
    }

    #[test]
    fn redacted_says_only_whether_there_is_a_secret() {
        assert_eq!(redacted(Some(&"esh_secret")), Some(REDACTED));
        assert_eq!(redacted::<String>(None), None);
    }
}
