//! The device-session state machine.
//!
//! `PENDING → APPROVED → CONSUMED`, `PENDING → DENIED`, `PENDING → CANCELLED`,
//! `PENDING | APPROVED → EXPIRED`. Every move is one conditional UPDATE on
//! the expected state, so two racing requests can never both win.

use super::text_enum::text_enum;

text_enum! {
    /// Where a device session stands (`cli_device_sessions.status`).
    pub enum SessionStatus {
        /// Waiting for a person to decide.
        Pending => "PENDING",
        /// Approved; the sealed token waits for the one poll that consumes it.
        Approved => "APPROVED",
        /// Refused in the browser.
        Denied => "DENIED",
        /// The token was handed to the CLI.
        Consumed => "CONSUMED",
        /// The CLI gave up (Ctrl-C).
        Cancelled => "CANCELLED",
        /// Past its expiry.
        Expired => "EXPIRED",
    }
}

impl SessionStatus {
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
        assert!(SessionStatus::every_spelling_round_trips());
        assert_eq!(SessionStatus::parse("pending"), None);
        assert!(SessionStatus::Approved.is_live());
        assert!(!SessionStatus::Consumed.is_live());
    }
}
