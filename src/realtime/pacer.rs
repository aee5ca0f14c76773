//! Poll pacing (RFC 8628 §3.5), in memory per instance: when each pending
//! session was last polled here, so a poll writes nothing to the database.
//! A grown interval (`slow_down`) is noted here too, and stored off the
//! request path: a background task takes every interval that grew since its
//! last turn and writes them all in one statement, so other instances and
//! the OAuth endpoint see it a moment later, and a flood of early polls
//! costs the database at most one write a second. Behind a load balancer
//! each instance paces the polls it sees: a client that polls too fast is
//! still told to slow down, since every instance sees its polls arrive too
//! close together.

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

/// An interval that grew and is not stored yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grown {
    /// The session.
    pub session_id: Uuid,
    /// Its new interval.
    pub interval_secs: i32,
    /// When it grew.
    pub at: Instant,
}

/// One shard of the pacer: the last polls, and the growth not yet stored.
#[derive(Default)]
struct PacerShard {
    seen: HashMap<Uuid, Seen>,
    grown: HashMap<Uuid, (i32, Instant)>,
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
    shards: Sharded<PacerShard>,
}

impl PollPacer {
    fn shard(&self, id: &Uuid) -> Option<MutexGuard<'_, PacerShard>> {
        self.shards.lock(shard_of(id.as_bytes()[15]))
    }

    /// Records a poll of session `id` at `now`, whose stored interval is
    /// `stored_interval_secs`, and says whether it came too early. An
    /// interval that grows is kept for [`PollPacer::take_grown`].
    pub fn poll(&self, id: Uuid, stored_interval_secs: i32, now: Instant) -> Pace {
        let Some(mut shard) = self.shard(&id) else {
            // A poisoned shard only loses pacing, never an answer.
            return Pace {
                interval_secs: stored_interval_secs,
                too_fast: false,
            };
        };
        let (interval_secs, too_fast, grew) = match shard.seen.get(&id) {
            Some(seen) => {
                let interval = seen.interval_secs.max(stored_interval_secs);
                let wanted = Duration::from_secs(u64::try_from(interval).unwrap_or(0));
                let too_fast = now.saturating_duration_since(seen.at) + GRACE < wanted;
                if too_fast {
                    let grown = (interval + SLOW_DOWN_STEP_SECS).min(MAX_POLL_INTERVAL_SECS);
                    (grown, true, grown > interval)
                } else {
                    (interval, false, false)
                }
            }
            None => (stored_interval_secs, false, false),
        };
        shard.seen.insert(
            id,
            Seen {
                at: now,
                interval_secs,
            },
        );
        if grew {
            shard.grown.insert(id, (interval_secs, now));
        }
        Pace {
            interval_secs,
            too_fast,
        }
    }

    /// Forgets a session that left the pending state on this instance.
    pub fn forget(&self, id: Uuid) {
        if let Some(mut shard) = self.shard(&id) {
            shard.seen.remove(&id);
            shard.grown.remove(&id);
        }
    }

    /// Takes every interval that grew since the last call, to be stored.
    pub fn take_grown(&self) -> Vec<Grown> {
        let mut taken = Vec::new();
        self.shards.each(|shard| {
            taken.extend(
                shard
                    .grown
                    .drain()
                    .map(|(session_id, (interval_secs, at))| Grown {
                        session_id,
                        interval_secs,
                        at,
                    }),
            );
        });
        taken
    }

    /// Puts back growth that could not be stored, so the next turn tries
    /// again; growth noted since then (always larger) wins.
    pub fn give_back(&self, grown: Vec<Grown>) {
        for g in grown {
            if let Some(mut shard) = self.shard(&g.session_id) {
                if shard.seen.contains_key(&g.session_id) {
                    shard
                        .grown
                        .entry(g.session_id)
                        .or_insert((g.interval_secs, g.at));
                }
            }
        }
    }

    /// Forgets sessions not polled for longer than the longest interval:
    /// their next poll is on time whatever they were told.
    pub fn forget_idle(&self, now: Instant) {
        let longest = Duration::from_secs(u64::try_from(MAX_POLL_INTERVAL_SECS).unwrap_or(60));
        self.shards.each(|shard| {
            shard
                .seen
                .retain(|_, seen| now.saturating_duration_since(seen.at) <= longest);
        });
    }

    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.shards.sum(|shard| shard.seen.len())
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
    fn each_growth_is_taken_once_and_only_the_latest_per_session() {
        let pacer = PollPacer::default();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        for id in [a, b, c] {
            pacer.poll(id, 5, t0);
        }
        assert!(pacer.take_grown().is_empty(), "on-time polls grow nothing");
        pacer.poll(a, 5, t0 + S);
        pacer.poll(a, 5, t0 + 2 * S);
        pacer.poll(b, 5, t0 + 2 * S);
        let mut taken = pacer.take_grown();
        taken.sort_by_key(|g| g.interval_secs);
        assert_eq!(
            taken,
            [
                Grown {
                    session_id: b,
                    interval_secs: 10,
                    at: t0 + 2 * S
                },
                Grown {
                    session_id: a,
                    interval_secs: 15,
                    at: t0 + 2 * S
                },
            ]
        );
        assert!(pacer.take_grown().is_empty(), "taken once");

        // At the cap an early poll is still slowed down, but nothing grows.
        let mut t = t0 + 2 * S;
        for _ in 0..20 {
            t += Duration::from_millis(100);
            pacer.poll(c, 5, t);
        }
        let capped = pacer.take_grown();
        assert_eq!(capped.len(), 1);
        assert_eq!(capped[0].interval_secs, MAX_POLL_INTERVAL_SECS);
        t += Duration::from_millis(100);
        assert!(pacer.poll(c, 5, t).too_fast);
        assert!(pacer.take_grown().is_empty());
    }

    #[test]
    fn growth_not_stored_is_given_back_unless_newer_growth_came() {
        let pacer = PollPacer::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        for id in [a, b] {
            pacer.poll(id, 5, t0);
            pacer.poll(id, 5, t0 + S);
        }
        let failed = pacer.take_grown();
        pacer.poll(a, 5, t0 + 2 * S);
        pacer.forget(b);
        pacer.give_back(failed);
        let again = pacer.take_grown();
        assert_eq!(again.len(), 1, "b left pending: nothing to store");
        assert_eq!((again[0].session_id, again[0].interval_secs), (a, 15));
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
