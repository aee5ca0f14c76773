//! The device-session state machine.
//!
//! `PENDING → APPROVED → CONSUMED`, `PENDING → DENIED`, `PENDING → CANCELLED`,
//! `PENDING | APPROVED → EXPIRED`. Every move is one conditional UPDATE on
//! the expected state, so two racing requests can never both win.

/// Where a device session stands; stored as upper-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for a person to decide.
    Pending,
    /// Approved; the sealed token waits for the one poll that consumes it.
    Approved,
    /// Refused in the browser.
    Denied,
    /// The token was handed to the CLI.
    Consumed,
    /// The CLI gave up (Ctrl-C).
    Cancelled,
    /// Past its expiry.
    Expired,
}

impl SessionStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Denied => "DENIED",
            Self::Consumed => "CONSUMED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Reads the stored spelling; the CHECK constraint guarantees one of these.
    pub fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "APPROVED" => Self::Approved,
            "DENIED" => Self::Denied,
            "CONSUMED" => Self::Consumed,
            "CANCELLED" => Self::Cancelled,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether the session can still change (before its expiry time).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Approved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            SessionStatus::Pending,
            SessionStatus::Approved,
            SessionStatus::Denied,
            SessionStatus::Consumed,
            SessionStatus::Cancelled,
            SessionStatus::Expired,
        ] {
            assert_eq!(SessionStatus::from_db(s.as_str()), Some(s));
        }
        assert_eq!(SessionStatus::from_db("pending"), None);
    }
}
