//! Poll mode: asking the server, at the pace it sets, until the request is
//! approved, denied or expired.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use envshield_api_types::StartDeviceResponse;

use super::backoff::{pause, Backoff, Retry, HARD_TIMEOUT, MAX_RETRIES};
use super::handoff::Handoff;
use super::outcome::{refuse, Answer, Approved, WaitEnd};
use crate::api::{ApiClient, ApiError, LONGEST_HOLD};

/// Something worth showing while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The server asked to poll less often.
    SlowDown {
        /// The new interval.
        interval: Duration,
    },
    /// A poll failed; trying again after `delay`.
    Retrying {
        /// Which retry this is (1-based).
        attempt: u32,
        /// How long until it.
        delay: Duration,
    },
    /// Polling works again after a failure.
    Recovered,
}

impl From<Retry> for Progress {
    fn from(Retry { attempt, delay }: Retry) -> Self {
        Self::Retrying { attempt, delay }
    }
}

impl Progress {
    /// A short line for the spinner.
    pub fn describe(&self) -> String {
        match self {
            Self::SlowDown { interval } => format!(
                "Waiting for approval in the browser (checking every {} s; Ctrl-C to cancel)",
                interval.as_secs()
            ),
            Self::Retrying { attempt, delay } => format!(
                "Cannot reach the server; retry {attempt} of {MAX_RETRIES} in {} s (Ctrl-C to cancel)",
                delay.as_secs().max(1)
            ),
            Self::Recovered => {
                "Waiting for approval in the browser (Ctrl-C to cancel)".to_string()
            }
        }
    }
}

/// Timing knobs of [`wait_for_approval`]; tests shrink them.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long.
    pub hard_timeout: Duration,
    /// Never poll more often than this, whatever the server says.
    pub min_interval: Duration,
    /// Pause before the first retry; doubles each time.
    pub backoff_base: Duration,
    /// Sleep granularity, so Ctrl-C is noticed quickly.
    pub slice: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            hard_timeout: HARD_TIMEOUT,
            min_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            slice: Duration::from_millis(100),
        }
    }
}

/// Polls until the request is approved, denied or expired, the hard timeout
/// passes, or `interrupted` is set. Waits the server's interval between
/// polls (longer after `slow_down`), and retries network and server errors
/// with exponential backoff, at most [`MAX_RETRIES`] times in a row. The
/// token is taken only sealed to `handoff`.
pub fn wait_for_approval(
    client: &ApiClient,
    start: &StartDeviceResponse,
    handoff: &Handoff,
    options: &WaitOptions,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Approved, WaitEnd> {
    let deadline = Instant::now() + options.hard_timeout;
    let at_least = |secs: u64| Duration::from_secs(secs).max(options.min_interval);
    let mut interval = at_least(start.poll_interval);
    let mut backoff = Backoff::new(options.backoff_base);
    // Long-poll: the server holds each poll for up to one interval (see
    // `hold_for`) and answers the moment the request is approved or denied.
    let mut next_wait = Duration::ZERO;
    // A poll failed on the way: the server may have answered it.
    let mut lost_an_answer = false;

    loop {
        pause(next_wait, deadline, options.slice, interrupted)?;
        let asked_at = Instant::now();
        next_wait = match client.poll_device(&start.device_code, Some(hold_for(interval))) {
            Ok(answer) => {
                if backoff.recovered() {
                    progress(Progress::Recovered);
                }
                match Answer::read(answer, handoff) {
                    Answer::Approved(approved) => return Ok(approved),
                    Answer::Refused { refused, token_id } => {
                        return Err(refuse(client, refused, token_id))
                    }
                    Answer::Collected => {
                        return Err(WaitEnd::Collected {
                            after_a_lost_answer: lost_an_answer,
                        })
                    }
                    Answer::Pending(secs) => {
                        interval = at_least(secs);
                        // The server may have held the request that long
                        // already; wait only for what is left.
                        interval.saturating_sub(asked_at.elapsed())
                    }
                    Answer::SlowDown(secs) => {
                        interval = at_least(secs).max(interval);
                        progress(Progress::SlowDown { interval });
                        interval
                    }
                    Answer::ConfirmationRequired(m) => {
                        return Err(WaitEnd::ConfirmationRequired(m))
                    }
                    Answer::Denied(m) => return Err(WaitEnd::Denied(m)),
                    Answer::Expired(m) => return Err(WaitEnd::Expired(m)),
                }
            }
            // A generic rate limiter in front of the poll endpoint: back off
            // as if told to slow down.
            Err(ApiError::Api {
                status: 429,
                retry_after,
                ..
            }) => {
                let asked = retry_after.map_or(interval * 2, Duration::from_secs);
                interval = asked.max(interval).max(options.min_interval);
                progress(Progress::SlowDown { interval });
                interval
            }
            Err(err) => {
                lost_an_answer = true;
                let retry = backoff.retry(&err).ok_or(WaitEnd::Failed(err))?;
                progress(retry.into());
                retry.delay
            }
        };
    }
}

/// How long to ask the server to hold a poll: one `interval`, but at most
/// [`LONGEST_HOLD`], so that a held poll ends well within the request's own
/// timeout instead of failing as a timeout.
fn hold_for(interval: Duration) -> u32 {
    u32::try_from(interval.min(LONGEST_HOLD).as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
