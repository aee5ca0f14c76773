//! Waiting between attempts: the limits, the one backoff for network and
//! server failures, and sleeps that end early on Ctrl-C or a deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::api::ApiError;

/// How long `login` waits for approval at most, whatever the server says.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Retries after network or server errors, each waiting twice as long as
/// the one before (1 s, 2 s, 4 s, 8 s, 16 s).
pub const MAX_RETRIES: u32 = 5;

/// A retry to announce: which one, and how long until it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    /// Which retry this is (1-based).
    pub attempt: u32,
    /// How long until it.
    pub delay: Duration,
}

/// Failures in a row, and the pause each one earns: `base`, then twice as
/// long each time, for at most [`MAX_RETRIES`] retries in a row.
#[derive(Debug)]
pub(super) struct Backoff {
    base: Duration,
    failures: u32,
}

impl Backoff {
    /// No failures yet; the first retry waits `base`.
    pub(super) fn new(base: Duration) -> Self {
        Self { base, failures: 0 }
    }

    /// The retry after `err`, or `None` when `err` will not pass by waiting
    /// (the server refused) or the retries are used up.
    pub(super) fn retry(&mut self, err: &ApiError) -> Option<Retry> {
        if !err.is_transient() || self.failures >= MAX_RETRIES {
            return None;
        }
        self.failures += 1;
        Some(Retry {
            attempt: self.failures,
            delay: self.base * 2u32.pow(self.failures - 1),
        })
    }

    /// No attempt has failed yet.
    pub(super) fn untouched(&self) -> bool {
        self.failures == 0
    }

    /// Forgets the failures after a success; true when there were any.
    pub(super) fn recovered(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }
}

/// Why a wait stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Ctrl-C.
    Interrupted,
    /// The deadline passed.
    TimedOut,
}

/// Ends a wait early: Ctrl-C, or `deadline` passed.
pub(super) fn check(deadline: Instant, interrupted: &AtomicBool) -> Result<(), Stop> {
    if interrupted.load(Ordering::SeqCst) {
        Err(Stop::Interrupted)
    } else if Instant::now() >= deadline {
        Err(Stop::TimedOut)
    } else {
        Ok(())
    }
}

/// Sleeps `duration` in slices of at most `slice`, so that Ctrl-C is
/// noticed quickly; ends early on Ctrl-C or the deadline.
pub(super) fn pause(
    duration: Duration,
    deadline: Instant,
    slice: Duration,
    interrupted: &AtomicBool,
) -> Result<(), Stop> {
    let until = Instant::now() + duration;
    loop {
        check(deadline, interrupted)?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep(
            slice
                .min(until - now)
                .min(deadline.saturating_duration_since(now)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_gives_up_and_starts_over_after_a_success() {
        let down = ApiError::Timeout {
            base: "http://x".into(),
        };
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let delays: Vec<u64> = std::iter::from_fn(|| backoff.retry(&down))
            .map(|r| r.delay.as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16]);
        assert!(backoff.recovered());
        assert!(!backoff.recovered());
        assert_eq!(backoff.retry(&down).map(|r| r.attempt), Some(1));
    }

    #[test]
    fn refusals_are_not_retried() {
        let refused = ApiError::NotFound {
            base: "http://x".into(),
            path: "/p".into(),
        };
        assert_eq!(Backoff::new(Duration::ZERO).retry(&refused), None);
    }
}
