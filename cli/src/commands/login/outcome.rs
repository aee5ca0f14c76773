//! How a sign-in ends: with a token (kept by [`super::saved`]), or with a
//! [`WaitEnd`] that becomes the error for the person.

use std::fmt;

use chrono::{DateTime, Utc};
use envshield_api_types::PollDeviceResponse;
use uuid::Uuid;

use super::backoff::{Stop, HARD_TIMEOUT, MAX_RETRIES};
use super::handoff::{Handoff, Refused};
use crate::api::{ApiClient, ApiError};
use crate::commands::context::Context;
use crate::error::{profile_flag, CliError};
use crate::text::{in_parentheses, redacted, REDACTED};

/// The token handed out on approval.
#[derive(Clone, PartialEq, Eq)]
pub struct Approved {
    /// The token in plaintext.
    pub token: String,
    /// Its id.
    pub token_id: Uuid,
    /// Its name.
    pub token_name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The refresh token, for short-lived access tokens.
    pub refresh_token: Option<String>,
    /// `DPoP` when the token is bound to the key that picked it up.
    pub token_type: Option<String>,
}

// Neither token ever appears in debug output.
impl fmt::Debug for Approved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approved")
            .field("token", &REDACTED)
            .field("refresh_token", &redacted(self.refresh_token.as_ref()))
            .field("token_id", &self.token_id)
            .field("token_name", &self.token_name)
            .finish_non_exhaustive()
    }
}

/// What a poll or an exchange answered, with the token of an approval
/// taken out in one place.
#[derive(Debug)]
pub(super) enum Answer {
    /// Approved: the token.
    Approved(Approved),
    /// Not decided yet; poll again after this many seconds.
    Pending(u64),
    /// Poll less often: every this many seconds.
    SlowDown(u64),
    /// Approved, but the token is released only for the confirmation code;
    /// the server's message.
    ConfirmationRequired(String),
    /// Denied; the server's message.
    Denied(String),
    /// Expired or unknown; the server's message.
    Expired(String),
    /// Someone else collected the token with this login's device code;
    /// the server revoked it.
    Collected,
    /// Approved, but the token did not come sealed to this login's key.
    Refused {
        /// Why.
        refused: Refused,
        /// The token's id, to report.
        token_id: Uuid,
    },
}

impl Answer {
    /// Reads a poll's or an exchange's answer; an approval's token is taken
    /// only sealed to this login's `handoff` key.
    pub(super) fn read(answer: PollDeviceResponse, handoff: &Handoff) -> Self {
        match answer {
            PollDeviceResponse::Approved {
                token,
                token_id,
                token_name,
                scopes,
                expires_at,
                refresh_token,
                token_type,
                sealed_token,
            } => {
                // A refresh token in the clear is as bad as a token.
                let clear = token.or(refresh_token);
                match handoff.open(clear, sealed_token.as_ref()) {
                    Ok(payload) => Self::Approved(Approved {
                        token: payload.token,
                        token_id,
                        token_name,
                        scopes,
                        expires_at,
                        refresh_token: payload.refresh_token,
                        token_type,
                    }),
                    Err(refused) => Self::Refused { refused, token_id },
                }
            }
            PollDeviceResponse::Pending { poll_interval } => Self::Pending(poll_interval),
            PollDeviceResponse::SlowDown { poll_interval, .. } => Self::SlowDown(poll_interval),
            PollDeviceResponse::ConfirmationRequired { message } => {
                Self::ConfirmationRequired(message)
            }
            PollDeviceResponse::Denied { message, .. } => Self::Denied(message),
            PollDeviceResponse::Expired { error, .. } if error == DEVICE_CODE_REUSED => {
                Self::Collected
            }
            PollDeviceResponse::Expired { message, .. } => Self::Expired(message),
        }
    }
}

/// The error code of a sealed login whose token someone already collected
/// with its device code (the server revoked the token).
pub const DEVICE_CODE_REUSED: &str = "device_code_reused";

/// Ends a login whose approval was refused (see [`Refused`]): a token that
/// came in the clear is revoked at once (best effort), since nothing will
/// use it.
pub(super) fn refuse(client: &ApiClient, refused: Refused, token_id: Uuid) -> WaitEnd {
    match refused {
        Refused::InTheClear(token) => WaitEnd::HandoffRefused {
            why: "the token came in the clear although this sign-in asked for it sealed to its key"
                .to_owned(),
            token_id,
            revoked: client.logout(&token).is_ok(),
        },
        Refused::DoesNotOpen(why) => WaitEnd::HandoffRefused {
            why: format!("the sealed token does not open: {why}"),
            token_id,
            revoked: false,
        },
    }
}

/// Why waiting ended without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// The person denied the request; the server's message.
    Denied(String),
    /// The request expired or is unknown; the server's message.
    Expired(String),
    /// Paste mode: the request ended before the token was exchanged (too
    /// many wrong codes, expired, cancelled); the server's message.
    Ended(String),
    /// The request was approved, but the token is only released for the
    /// confirmation code shown in the browser; the server's message.
    ConfirmationRequired(String),
    /// Paste mode: standard input ended without a code.
    NoCode {
        /// The server required paste mode (`--paste` was not given).
        required_by_server: bool,
    },
    /// Someone else collected the token with this login's device code, and
    /// the server revoked it.
    Collected {
        /// A poll of this CLI had failed on the way before, so the lost
        /// answer may have been its own pickup.
        after_a_lost_answer: bool,
    },
    /// The approval's token was not sealed to this login's key: refused.
    HandoffRefused {
        /// What was wrong, for the person.
        why: String,
        /// The token's id.
        token_id: Uuid,
        /// The token (sent in the clear) was revoked.
        revoked: bool,
    },
    /// [`HARD_TIMEOUT`] passed.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
    /// The server or network failed for good.
    Failed(ApiError),
}

impl From<Stop> for WaitEnd {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Interrupted => Self::Interrupted,
            Stop::TimedOut => Self::TimedOut,
        }
    }
}

impl WaitEnd {
    /// The request is of no use any more and should be cancelled on the
    /// server (it would otherwise stay pending until it expires).
    pub(super) fn abandons_the_request(&self) -> bool {
        matches!(
            self,
            Self::Interrupted | Self::TimedOut | Self::NoCode { .. }
        )
    }

    /// The error for the person; `paste` says whether the sign-in used
    /// paste mode, so the advice repeats it.
    pub(super) fn into_error(self, ctx: &Context, paste: bool) -> CliError {
        let flag = profile_flag(&ctx.profile);
        let paste_flag = if paste { " --paste" } else { "" };
        let again = format!("Run `envshield login{paste_flag}{flag}` to try again.");
        let ended = |code: &str, how: &str, said: &str| {
            CliError::new(
                code,
                format!("the sign-in request {how}{}. {again}", in_parentheses(said)),
            )
        };
        match self {
            Self::Denied(m) => ended("access_denied", "was denied in the browser", &m),
            Self::Expired(m) => ended("expired_token", "expired before it was approved", &m),
            Self::Ended(m) => ended("expired_token", "is no longer valid", &m),
            Self::ConfirmationRequired(m) => CliError::new(
                "confirmation_required",
                format!(
                    "the request was approved, but the server releases the token only for the confirmation code shown in the browser{}. Run `envshield login --paste{flag}` and type the code.",
                    in_parentheses(&m)
                ),
            ),
            Self::NoCode { required_by_server: true } => CliError::new(
                "confirmation_required",
                format!(
                    "the server requires the confirmation code shown in the browser, but standard input is not a terminal and held no code. Rerun with `envshield login --paste{flag}` in a terminal, or write the code to its standard input after approving (e.g. a pipe); the request was cancelled."
                ),
            ),
            Self::NoCode { required_by_server: false } => CliError::new(
                "confirmation_required",
                format!(
                    "standard input ended before a confirmation code was read; the request was cancelled. Run `envshield login --paste{flag}` in a terminal, or write the code shown in the browser to its standard input after approving."
                ),
            ),
            Self::Collected { after_a_lost_answer } => CliError::new(
                DEVICE_CODE_REUSED,
                format!(
                    "someone else collected this sign-in with its device code, so the server revoked the token; nothing was saved.{} Run `envshield login{paste_flag}{flag}` again and never share the code or this terminal's output; if it happens again, something on this machine or its network (a proxy, a log of API traffic) is leaking the device code.",
                    if after_a_lost_answer {
                        " (A poll had failed on the way before: it may have been this computer's own pickup whose answer was lost.)"
                    } else {
                        ""
                    }
                ),
            ),
            Self::HandoffRefused {
                why,
                token_id,
                revoked,
            } => CliError::new(
                "handoff_refused",
                format!(
                    "refused the token: {why}. The answer was not made by the server for this sign-in (a proxy or a look-alike server may have altered it); nothing was saved. {} Check --api-url and the network path, then run `envshield login{paste_flag}{flag}` again.",
                    if revoked {
                        "The token was revoked.".to_owned()
                    } else {
                        format!("Revoke token {token_id} in the web UI (/settings/tokens).")
                    }
                ),
            ),
            Self::TimedOut => CliError::new(
                "login_timeout",
                format!(
                    "gave up after waiting {} minutes for approval. {again}",
                    HARD_TIMEOUT.as_secs() / 60
                ),
            ),
            Self::Interrupted => CliError::interrupted("sign-in cancelled; nothing was saved."),
            Self::Failed(err) => {
                let transient = err.is_transient();
                let e = CliError::from(err);
                if transient {
                    CliError::new(
                        e.code,
                        format!("lost the server while waiting for approval, after {MAX_RETRIES} retries: {}", e.message),
                    )
                } else {
                    e
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::context;

    /// The error `end` becomes for a login with (`paste`) or without
    /// `--paste`, on the default profile.
    fn error_for(end: WaitEnd, paste: bool) -> CliError {
        let tmp = tempfile::tempdir().unwrap();
        end.into_error(&context(tmp.path()), paste)
    }

    #[test]
    fn paste_ends_become_clear_errors() {
        let forced = error_for(
            WaitEnd::NoCode {
                required_by_server: true,
            },
            true,
        );
        assert_eq!(forced.code, "confirmation_required");
        assert!(
            forced.message.contains("envshield login --paste"),
            "{}",
            forced.message
        );
        assert!(
            forced.message.contains("standard input"),
            "{}",
            forced.message
        );
        let ended = error_for(WaitEnd::Ended("Too many wrong codes.".into()), true);
        assert_eq!(ended.code, "expired_token");
        assert_eq!(
            ended.message,
            "the sign-in request is no longer valid (Too many wrong codes). Run `envshield login --paste` to try again."
        );
    }

    #[test]
    fn a_collected_or_tampered_handoff_becomes_a_security_error() {
        let collected = |after_a_lost_answer| {
            error_for(
                WaitEnd::Collected {
                    after_a_lost_answer,
                },
                false,
            )
        };
        let e = collected(false);
        assert_eq!(e.code, "device_code_reused");
        assert_eq!(e.exit_code, 1);
        assert!(
            e.message.starts_with(
                "someone else collected this sign-in with its device code, so the server revoked the token; nothing was saved. Run `envshield login` again and never share the code"
            ),
            "{}",
            e.message
        );
        let lost = collected(true);
        assert!(lost.message.contains("own pickup"), "{}", lost.message);

        let token_id = Uuid::from_u128(7);
        let refused = |why: &str, revoked, paste| {
            error_for(
                WaitEnd::HandoffRefused {
                    why: why.into(),
                    token_id,
                    revoked,
                },
                paste,
            )
        };
        let e = refused("the sealed token does not open: x", false, true);
        assert_eq!(e.code, "handoff_refused");
        assert_eq!(e.exit_code, 1);
        assert!(e.message.contains(&token_id.to_string()), "{}", e.message);
        assert!(
            e.message.contains("envshield login --paste"),
            "{}",
            e.message
        );
        let e = refused("in the clear", true, false);
        assert!(
            e.message.contains("The token was revoked."),
            "{}",
            e.message
        );
    }

    #[test]
    fn wait_ends_become_clear_errors() {
        let e = error_for(WaitEnd::Interrupted, false);
        assert_eq!(e.exit_code, 130);
        let e = error_for(WaitEnd::Denied("Denied.".into()), false);
        assert_eq!(e.code, "access_denied");
        assert_eq!(
            e.message,
            "the sign-in request was denied in the browser (Denied). Run `envshield login` to try again."
        );
        assert_eq!(error_for(WaitEnd::TimedOut, false).code, "login_timeout");
        assert_eq!(
            error_for(WaitEnd::Expired(String::new()), false).code,
            "expired_token"
        );
    }
}
