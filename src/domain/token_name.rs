//! Names people give their tokens.

/// Invisible characters that change how the text around them reads
/// (Unicode's format characters: direction overrides and isolates,
/// zero-width spaces and joiners, tag characters, …). A name or user agent
/// carrying them could show a person something other than what it is.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// What is wrong with a name a person typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Nothing but white space.
    Empty,
    /// Longer than allowed.
    TooLong,
    /// Holds a control character.
    Control,
    /// Holds an invisible formatting character ([`is_format_char`]).
    Format,
}

/// `raw` trimmed, if it is 1 to `max_chars` characters with no control or
/// invisible formatting characters: the rule for every name a person gives
/// a thing here (tokens, passkeys).
pub fn check_name(raw: &str, max_chars: usize) -> Result<&str, NameProblem> {
    let name = raw.trim();
    if name.is_empty() {
        Err(NameProblem::Empty)
    } else if name.chars().count() > max_chars {
        Err(NameProblem::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(NameProblem::Control)
    } else if name.chars().any(is_format_char) {
        Err(NameProblem::Format)
    } else {
        Ok(name)
    }
}

/// Longest token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 128;

/// A trimmed, printable name of 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Trims and checks the name.
    pub fn parse(input: &str) -> Result<Self, String> {
        match check_name(input, MAX_TOKEN_NAME_CHARS) {
            Ok(name) => Ok(Self(name.to_owned())),
            Err(NameProblem::Empty) => Err("The token name must not be empty.".to_owned()),
            Err(NameProblem::TooLong) => Err(format!(
                "The token name must be at most {MAX_TOKEN_NAME_CHARS} characters."
            )),
            Err(NameProblem::Control) => {
                Err("The token name must not contain control characters.".to_owned())
            }
            Err(NameProblem::Format) => Err(
                "The token name must not contain invisible formatting characters (such as direction overrides or zero-width spaces)."
                    .to_owned(),
            ),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the inner string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_13_invisible_formatting_is_refused() {
        for name in [
            "laptop\u{202E}gnp.exe",
            "a\u{200B}b",
            "\u{2066}x\u{2069}",
            "x\u{E0041}",
        ] {
            let err = TokenName::parse(name).unwrap_err();
            assert!(err.contains("invisible"), "{name:?}: {err}");
        }
        assert!(
            TokenName::parse("Übung – laptop 🚀").is_ok(),
            "ordinary text stays"
        );
    }

    #[test]
    fn trims_and_bounds() {
        assert_eq!(TokenName::parse("  laptop ").unwrap().as_str(), "laptop");
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse(&"x".repeat(129)).is_err());
        assert!(TokenName::parse(&"é".repeat(128)).is_ok());
        assert!(TokenName::parse("a\nb").is_err());
    }
}
