//! Names people give their tokens.

/// Longest token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 128;

/// A trimmed, printable name of 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Trims and checks the name.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("The token name must not be empty.".to_owned());
        }
        if s.chars().count() > MAX_TOKEN_NAME_CHARS {
            return Err(format!(
                "The token name must be at most {MAX_TOKEN_NAME_CHARS} characters."
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("The token name must not contain control characters.".to_owned());
        }
        Ok(Self(s.to_owned()))
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
    fn trims_and_bounds() {
        assert_eq!(TokenName::parse("  laptop ").unwrap().as_str(), "laptop");
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse(&"x".repeat(129)).is_err());
        assert!(TokenName::parse(&"é".repeat(128)).is_ok());
        assert!(TokenName::parse("a\nb").is_err());
    }
}
