//! Poll pacing (RFC 8628 §3.5), in memory per instance: when each pending
//! session was last polled here, so a poll writes nothing to the database.
//! Only a grown interval (`slow_down`) is written, so every instance and the
//! OAuth endpoint see it; that is at most a dozen writes in a session's
//! life. Behind a load balancer each instance paces the polls it sees: a
//! client that polls too fast is still told to slow down, since every
//! instance sees its polls arrive too close together.

use std::collections::HashMap;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::shards::{shard_of, Sharded};

/// Seconds added to the interval each time a client polls too fast.
pub const SLOW_DOWN_STEP_SECS: i32 = 5;
/// The interval never grows past this.
pub const MAX_POLL_INTERVAL_SECS: i32 = 60;
/// A poll this much earlier than the interval is still accepted (network jitter).
const GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    interval_secs: i32,
}

/// What a poll of a pending session is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Seconds the client must wait from now on.
    pub interval_secs: i32,
    /// The poll came before the interval was up: answer `slow_down`.
    pub too_fast: bool,
}

/// Last poll of each recently polled pending session.
#[derive(Default)]
pub struct PollPacer {
    shards: Sharded<HashMap<Uuid, Seen>>,
}

impl PollPacer {
    fn shard(&self, id: &Uuid) -> Option<MutexGuard<'_, HashMap<Uuid, Seen>>> {
        self.shards.lock(shard_of(id.as_bytes()[15]))
    }

    /// Records a poll of session `id` at `now`, whose stored interval is
    /// `stored_interval_secs`, and says whether it came too early.
    pub fn poll(&self, id: Uuid, stored_interval_secs: i32, now: Instant) -> Pace {
        let Some(mut map) = self.shard(&id) else {
            // A poisoned shard only loses pacing, never an answer.
            return Pace {
                interval_secs: stored_interval_secs,
                too_fast: false,
            };
        };
        let (interval_secs, too_fast) = match map.get(&id) {
            Some(seen) => {
                let interval = seen.interval_secs.max(stored_interval_secs);
                let wanted = Duration::from_secs(u64::try_from(interval).unwrap_or(0));
                let too_fast = now.saturating_duration_since(seen.at) + GRACE < wanted;
                if too_fast {
                    (
                        (interval + SLOW_DOWN_STEP_SECS).min(MAX_POLL_INTERVAL_SECS),
                        true,
                    )
                } else {
                    (interval, false)
                }
            }
            None => (stored_interval_secs, false),
        };
        map.insert(
            id,
            Seen {
                at: now,
                interval_secs,
            },
        );
        Pace {
            interval_secs,
            too_fast,
        }
    }

    /// Forgets a session that left the pending state on this instance.
    pub fn forget(&self, id: Uuid) {
        if let Some(mut map) = self.shard(&id) {
            map.remove(&id);
        }
    }

    /// Forgets sessions not polled for longer than the longest interval:
    /// their next poll is on time whatever they were told.
    pub fn forget_idle(&self, now: Instant) {
        let longest = Duration::from_secs(u64::try_from(MAX_POLL_INTERVAL_SECS).unwrap_or(60));
        self.shards
            .each(|map| map.retain(|_, seen| now.saturating_duration_since(seen.at) <= longest));
    }

    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.shards.sum(HashMap::len)
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_poll_is_on_time_and_an_early_one_grows_the_interval() {
        let pacer = PollPacer::default();
        let id = Uuid::new_v4();
        let t0 = Instant::now();
        let first = pacer.poll(id, 5, t0);
        assert_eq!(
            first,
            Pace {
                interval_secs: 5,
                too_fast: false
            }
        );
        let early = pacer.poll(id, 5, t0 + S);
        assert_eq!(
            early,
            Pace {
                interval_secs: 10,
                too_fast: true
            }
        );
        // The grown interval holds even if the caller still sees the old one.
        let still_early = pacer.poll(id, 5, t0 + 6 * S);
        assert_eq!(
            still_early,
            Pace {
                interval_secs: 15,
                too_fast: true
            }
        );
        // Waiting the whole interval is fine again, and keeps it.
        let on_time = pacer.poll(id, 5, t0 + 21 * S);
        assert_eq!(
            on_time,
            Pace {
                interval_secs: 15,
                too_fast: false
            }
        );
    }

    #[test]
    fn jitter_within_the_grace_is_on_time_and_the_interval_is_capped() {
        let pacer = PollPacer::default();
        let id = Uuid::new_v4();
        let t0 = Instant::now();
        pacer.poll(id, 5, t0);
        let jittered = pacer.poll(id, 5, t0 + Duration::from_millis(4_600));
        assert!(!jittered.too_fast);
        let mut t = t0 + 5 * S;
        let mut last = jittered;
        for _ in 0..20 {
            t += Duration::from_millis(100);
            last = pacer.poll(id, 5, t);
        }
        assert_eq!(last.interval_secs, MAX_POLL_INTERVAL_SECS);
        assert!(last.too_fast);
    }

    #[test]
    fn a_larger_stored_interval_wins_and_sessions_are_independent() {
        let pacer = PollPacer::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        pacer.poll(a, 5, t0);
        // Another instance raised the interval to 10 in the database.
        let p = pacer.poll(a, 10, t0 + 7 * S);
        assert_eq!(
            p,
            Pace {
                interval_secs: 15,
                too_fast: true
            }
        );
        assert!(!pacer.poll(b, 5, t0 + 7 * S).too_fast);
    }

    #[test]
    fn idle_and_finished_sessions_are_forgotten() {
        let pacer = PollPacer::default();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        pacer.poll(a, 5, t0);
        pacer.poll(b, 5, t0 + 30 * S);
        pacer.poll(c, 5, t0 + 30 * S);
        pacer.forget(c);
        assert_eq!(pacer.len(), 2);
        pacer.forget_idle(t0 + 61 * S);
        assert_eq!(pacer.len(), 1, "only b was polled within a minute");
        assert!(!pacer.poll(a, 5, t0 + 61 * S).too_fast);
    }
}
