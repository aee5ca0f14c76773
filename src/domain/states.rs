//! The small closed sets stored in `text` columns: account roles, how a
//! token was minted, which API started a device login, how its token is
//! collected, what a WebAuthn ceremony is for, and how a step-up passed.

use envshield_api_types::ConfirmationMode;

use super::text_enum::text_enum;

text_enum! {
    /// An account's role (`users.role`).
    pub enum Role {
        /// An ordinary account.
        User => "user",
        /// May see and revoke every token, and read the audit log.
        Admin => "admin",
    }
}

text_enum! {
    /// How a token was minted (`api_tokens.source`).
    pub enum TokenSource {
        /// Approved through a device login.
        Device => "device",
        /// Rotated through the OAuth refresh grant.
        OAuth => "oauth",
        /// Created by an operator.
        Manual => "manual",
    }
}

text_enum! {
    /// Which API started a device login (`cli_device_sessions.flow`).
    pub enum Flow {
        /// `/api/v1/cli/auth/device/start`.
        V1 => "v1",
        /// `/oauth/device_authorization`.
        OAuth => "oauth",
    }
}

text_enum! {
    /// How an approved device login's token is collected
    /// (`cli_device_sessions.confirmation`).
    pub enum Confirmation {
        /// The next poll picks it up.
        Poll => "poll",
        /// Only the confirmation code shown in the browser releases it.
        Paste => "paste",
        /// `DEVICE_CONFIRMATION=risk`, not decided yet: approving stores
        /// `poll` or `paste` in its place.
        Risk => "risk",
    }
}

text_enum! {
    /// What a WebAuthn ceremony is for (`webauthn_ceremonies.purpose`).
    pub enum CeremonyPurpose {
        /// A signed-in person registers a passkey.
        Register => "register",
        /// Someone signs in with a passkey, no account named beforehand.
        SignIn => "sign_in",
        /// A signed-in person proves it is them again, to approve a CLI login.
        StepUp => "step_up",
    }
}

text_enum! {
    /// How a step-up was passed (`step_up_proofs.method`).
    pub enum StepUpMethod {
        /// A fresh passkey assertion.
        Passkey => "passkey",
        /// The account's password, typed again.
        Password => "password",
    }
}

impl From<ConfirmationMode> for Confirmation {
    fn from(mode: ConfirmationMode) -> Self {
        match mode {
            ConfirmationMode::Poll => Self::Poll,
            ConfirmationMode::Paste => Self::Paste,
        }
    }
}

/// What the client is told at start: an undecided login is polled, and a
/// poll answers `confirmation_required` if approving asked for the code.
impl From<Confirmation> for ConfirmationMode {
    fn from(mode: Confirmation) -> Self {
        match mode {
            Confirmation::Poll | Confirmation::Risk => Self::Poll,
            Confirmation::Paste => Self::Paste,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips_and_others_are_refused() {
        assert!(Role::every_spelling_round_trips());
        assert!(Flow::every_spelling_round_trips());
        assert!(TokenSource::every_spelling_round_trips());
        assert!(Confirmation::every_spelling_round_trips());
        assert!(CeremonyPurpose::every_spelling_round_trips());
        assert!(StepUpMethod::every_spelling_round_trips());
        for c in [Confirmation::Poll, Confirmation::Paste] {
            assert_eq!(Confirmation::from(ConfirmationMode::from(c)), c);
        }
        assert_eq!(
            ConfirmationMode::from(Confirmation::Risk),
            ConfirmationMode::Poll,
            "undecided: the client polls"
        );
        assert_eq!(Role::parse("Admin"), None, "spellings are exact");
        assert_eq!(Flow::parse(""), None);
    }
}
