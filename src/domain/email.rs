//! Sign-in email addresses.

/// A plausible email address, trimmed, at most 254 bytes. Uniqueness is
/// case-insensitive in the database; the address is kept as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks the shape `local@domain.tld` without trying to be RFC 5322.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let Some((local, domain)) = s.split_once('@') else {
            return Err("Enter an email address like name@example.com.".to_owned());
        };
        let ok = !local.is_empty()
            && s.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("Enter an email address like name@example.com.".to_owned())
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_addresses_and_trims() {
        assert_eq!(Email::parse(" a@b.io ").unwrap().as_str(), "a@b.io");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "a", "a@b", "@b.io", "a@b.io@c", "a b@c.io", "a@.io", "a@io.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
