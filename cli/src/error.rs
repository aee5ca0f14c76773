//! The one error type every command returns, and the exit codes.

use std::fmt;

use crate::api::ApiError;
use crate::config::{ConfigError, DEFAULT_PROFILE};
use crate::text::one_line;

/// Exit code for a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code after Ctrl-C, as a shell reports a SIGINT death.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A failure shown to the person as `error: <message>` (or as
/// `{"error": code, "message": message}` with `--json`).
///
/// `message` is one line in the form "what happened. What to do."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Stable snake_case code, for `--json` output and scripts.
    pub code: String,
    /// One sentence on what happened, one on what to do.
    pub message: String,
    /// The process exit code.
    pub exit_code: u8,
    /// Extra fields for the `--json` error document (an object), if any.
    pub details: Option<serde_json::Value>,
}

impl CliError {
    /// A failure with exit code 1.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: one_line(&message.into()),
            exit_code: EXIT_FAILURE,
            details: None,
        }
    }

    /// Ctrl-C: exit code 130.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self {
            code: "cancelled".into(),
            message: one_line(&message.into()),
            exit_code: EXIT_INTERRUPTED,
            details: None,
        }
    }

    /// Adds fields to the `--json` error document.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Appends a sentence to the message.
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.message = one_line(&format!("{} {hint}", self.message));
        self
    }

    /// The person is not signed in on `profile`.
    pub fn not_signed_in(profile: &str) -> Self {
        let flag = profile_flag(profile);
        Self::new(
            "not_signed_in",
            format!("not signed in (profile '{profile}'). Run `envshield login{flag}` to sign in."),
        )
    }
}

/// ` --profile NAME` when the profile is not the default one, else nothing;
/// for the commands suggested in messages.
pub fn profile_flag(profile: &str) -> String {
    if profile == DEFAULT_PROFILE {
        String::new()
    } else {
        format!(" --profile {profile}")
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<ApiError> for CliError {
    fn from(err: ApiError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<ConfigError> for CliError {
    fn from(err: ConfigError) -> Self {
        Self::new("config_error", err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_signed_in_names_the_profile_flag_only_when_needed() {
        assert!(CliError::not_signed_in("default")
            .message
            .contains("`envshield login`"));
        assert!(CliError::not_signed_in("work")
            .message
            .contains("`envshield login --profile work`"));
    }
}
