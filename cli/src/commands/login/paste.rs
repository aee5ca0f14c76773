//! Paste mode: the token is released only for the one-time confirmation
//! code the browser shows after approval, typed here and exchanged.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use envshield_api_types::StartDeviceResponse;

use super::backoff::{check, pause, Backoff, Retry};
use super::handoff::Handoff;
use super::outcome::{refuse, Answer, Approved, WaitEnd};
use super::wait::WaitOptions;
use crate::api::{ApiClient, ApiError};
use crate::text::one_line;

/// Most wrong-looking answers in a row that are refused locally, without
/// asking the server, before giving up (a stream of garbage on stdin).
const MAX_MALFORMED: u32 = 20;

/// A line of standard input, or its end.
#[derive(Debug)]
pub enum Line {
    /// One line, as read (with its newline).
    Text(String),
    /// End of input (or a read error: nothing more will come).
    End,
}

/// Reads standard input line by line on a thread of its own, so that the
/// waiting side notices Ctrl-C and deadlines while the person types.
pub(super) fn stdin_lines() -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let mut line = String::new();
        // No line of interest is longer; a longer one is cut and refused.
        let read = io::stdin().lock().take(1024).read_line(&mut line);
        let message = match read {
            Ok(0) | Err(_) => Line::End,
            Ok(_) => Line::Text(line),
        };
        let last = matches!(message, Line::End);
        if tx.send(message).is_err() || last {
            break;
        }
    });
    rx
}

/// A confirmation code as typed, without spaces and dashes: `482-193`,
/// `482 193` and `482193` are the same code. `None` when what is left is
/// not a plausible code (1 to 32 letters and digits).
pub fn normalize_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let plausible =
        !code.is_empty() && code.len() <= 32 && code.chars().all(|c| c.is_ascii_alphanumeric());
    plausible.then_some(code)
}

/// Why the last answer was not accepted, shown with the next prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `invalid_confirmation_code`, `authorization_pending`,
    /// `invalid_format`, or the server's code.
    pub code: String,
    /// For the person.
    pub message: String,
}

impl Rejection {
    /// A code sent before the request was approved in the browser.
    fn not_approved_yet() -> Self {
        Self {
            code: "authorization_pending".into(),
            message: "The request has not been approved yet: approve it in the browser first; the browser then shows the code.".into(),
        }
    }
}

/// What the person should see while [`confirm_with_code`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasteEvent {
    /// Ask for a code (again, after `rejected`).
    Prompt {
        /// Why the previous answer was refused; `None` the first time.
        rejected: Option<Rejection>,
    },
    /// The server could not be reached; trying the same code again.
    Retrying {
        /// Which retry (1-based).
        attempt: u32,
        /// How long until it.
        delay: Duration,
    },
}

impl From<Retry> for PasteEvent {
    fn from(Retry { attempt, delay }: Retry) -> Self {
        Self::Retrying { attempt, delay }
    }
}

/// Paste mode: asks for the confirmation code (through `progress`), reads
/// it from `lines`, and exchanges it for the token
/// (`POST /cli/auth/device/exchange`). A wrong code, or one sent before the
/// request was approved, asks again with the server's message (which
/// counts the attempts left). Ends on approval, denial, the request ending
/// (410: expired, or too many wrong codes), the end of input, Ctrl-C, the
/// hard timeout, or `session_end`. Does not poll while waiting. The token
/// is taken only sealed to `handoff`.
#[expect(
    clippy::too_many_arguments,
    reason = "each is a separate input of the wait"
)]
pub fn confirm_with_code(
    client: &ApiClient,
    start: &StartDeviceResponse,
    handoff: &Handoff,
    session_end: Instant,
    options: &WaitOptions,
    interrupted: &AtomicBool,
    lines: &Receiver<Line>,
    progress: &mut dyn FnMut(PasteEvent),
) -> Result<Approved, WaitEnd> {
    let hard_deadline = Instant::now() + options.hard_timeout;
    let mut rejected = None;
    let mut malformed = 0u32;
    loop {
        progress(PasteEvent::Prompt {
            rejected: rejected.take(),
        });
        let typed = next_line(
            lines,
            hard_deadline,
            session_end,
            options.slice,
            interrupted,
        )?;
        let Some(code) = normalize_code(&typed) else {
            if typed.trim().is_empty() {
                // Enter alone: ask again, quietly.
                continue;
            }
            malformed += 1;
            if malformed > MAX_MALFORMED {
                return Err(WaitEnd::NoCode {
                    required_by_server: false,
                });
            }
            rejected = Some(Rejection {
                code: "invalid_format".into(),
                message: "That is not a confirmation code: it is the code the browser shows after you approve, like 482-193.".into(),
            });
            continue;
        };
        match exchange(
            client,
            start,
            handoff,
            &code,
            options,
            interrupted,
            progress,
        )? {
            Ok(approved) => return Ok(approved),
            Err(why) => rejected = Some(why),
        }
    }
}

/// One exchange of `code`, retrying network and server failures. The
/// inner `Err` is a refusal worth asking again for.
fn exchange(
    client: &ApiClient,
    start: &StartDeviceResponse,
    handoff: &Handoff,
    code: &str,
    options: &WaitOptions,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(PasteEvent),
) -> Result<Result<Approved, Rejection>, WaitEnd> {
    let mut backoff = Backoff::new(options.backoff_base);
    let far = Instant::now() + options.hard_timeout;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(WaitEnd::Interrupted);
        }
        let err = match client.exchange_device(&start.device_code, code) {
            Ok(answer) => {
                return match Answer::read(answer, handoff) {
                    Answer::Approved(approved) => Ok(Ok(approved)),
                    Answer::Refused { refused, token_id } => Err(refuse(client, refused, token_id)),
                    Answer::Collected => Err(WaitEnd::Collected {
                        after_a_lost_answer: !backoff.untouched(),
                    }),
                    Answer::Denied(message) => Err(WaitEnd::Denied(message)),
                    Answer::Expired(message) => Err(WaitEnd::Ended(message)),
                    Answer::Pending(_) | Answer::SlowDown(_) | Answer::ConfirmationRequired(_) => {
                        Ok(Err(Rejection::not_approved_yet()))
                    }
                }
            }
            Err(ApiError::Api { status, body, .. }) => {
                let message = if body.message.trim().is_empty() {
                    format!("The server refused the code (HTTP {status}).")
                } else {
                    one_line(&body.message)
                };
                return match (status, body.error.as_str()) {
                    (403, _) => Err(WaitEnd::Denied(message)),
                    (410, _) => Err(WaitEnd::Ended(message)),
                    (409, _) | (_, "authorization_pending") => {
                        Ok(Err(Rejection::not_approved_yet()))
                    }
                    (400, "invalid_confirmation_code") | (429, _) => Ok(Err(Rejection {
                        code: body.error.clone(),
                        message: format!("That code was not accepted: {message}"),
                    })),
                    _ => Err(WaitEnd::Failed(ApiError::Api {
                        status,
                        body,
                        retry_after: None,
                    })),
                };
            }
            Err(err) => err,
        };
        let retry = backoff.retry(&err).ok_or(WaitEnd::Failed(err))?;
        progress(retry.into());
        pause(retry.delay, far, options.slice, interrupted)?;
    }
}

/// The next line of input; ends early on Ctrl-C, the hard deadline, or
/// when the request expires.
fn next_line(
    lines: &Receiver<Line>,
    hard_deadline: Instant,
    session_end: Instant,
    slice: Duration,
    interrupted: &AtomicBool,
) -> Result<String, WaitEnd> {
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(WaitEnd::Interrupted);
        }
        // The request's own end says more than the hard timeout.
        if Instant::now() >= session_end {
            return Err(WaitEnd::Ended(
                "it expired while waiting for the confirmation code".into(),
            ));
        }
        check(hard_deadline, interrupted)?;
        let left = hard_deadline
            .min(session_end)
            .saturating_duration_since(Instant::now());
        match lines.recv_timeout(slice.min(left)) {
            Ok(Line::Text(text)) => return Ok(text),
            Ok(Line::End) | Err(RecvTimeoutError::Disconnected) => {
                return Err(WaitEnd::NoCode {
                    required_by_server: false,
                })
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests;
