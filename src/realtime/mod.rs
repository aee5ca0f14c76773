//! What makes polls and Bearer checks fast and instant, per instance: the
//! polls waiting for a change, the pending-session cache, the poll pacer,
//! the Bearer-token cache, and the `LISTEN` connection that keeps them true
//! across instances.
//!
//! Every device-session change sends `NOTIFY envshield_device,
//! '<device-code hash>'` in its transaction
//! ([`notifications`](crate::db::models::notifications)); every change that
//! can end a token's validity makes a trigger send `NOTIFY envshield_tokens`.
//! The listener wakes the waiting polls and empties the caches on every
//! instance. The instance that made a change also tells its own caches right
//! after the commit, by an explicit call ([`Realtime::session_changed`],
//! [`Realtime::tokens_revoked`]). While the listener is down the caches are off
//! and polls do not wait (plain polling) until it reconnects.

mod listener;
pub mod pacer;
pub mod pending;
mod shards;
pub mod tls;
pub mod tokens;
mod waiters;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use listener::listen;
pub use pacer::{Pace, PollPacer};
pub use pending::{PendingCache, PendingRow, Ticket};
pub use tokens::TokenCache;
pub use waiters::Subscription;

use crate::db::models::api_tokens::Authenticated;
use crate::db::models::notifications::TOKENS_CHANNEL;
use waiters::Waiters;

/// The realtime state of one instance.
pub struct Realtime {
    waiters: Waiters,
    listening: AtomicBool,
    /// Set once the instance is shutting down: no poll waits any more.
    draining: AtomicBool,
    /// Sessions read as pending, answering the next polls from memory.
    pub pending: PendingCache,
    /// When each pending session was last polled here.
    pub pacer: PollPacer,
    /// Bearer tokens authenticated in the last moment.
    pub tokens: TokenCache<Authenticated>,
}

impl Default for Realtime {
    /// No caching: every poll and Bearer check reads PostgreSQL.
    fn default() -> Self {
        Self::new(Duration::ZERO, Duration::ZERO)
    }
}

impl Realtime {
    /// Pending sessions cached for `pending_ttl`, Bearer tokens for
    /// `token_ttl` (zero: off). Caches start off until the listener is up.
    pub fn new(pending_ttl: Duration, token_ttl: Duration) -> Self {
        Self {
            waiters: Waiters::default(),
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            pending: PendingCache::new(pending_ttl),
            pacer: PollPacer::default(),
            tokens: TokenCache::new(token_ttl),
        }
    }

    /// The listener connected or dropped: caches follow it, emptied either
    /// way (notifications missed while down are unknowable).
    pub(crate) fn set_listening(&self, on: bool) {
        if on {
            self.pending.set_enabled(true);
            self.tokens.set_enabled(true);
            self.listening.store(true, Ordering::Release);
            // Changes committed while it was down were not heard: polls
            // held across the outage read their sessions again.
            self.waiters.wake_all();
        } else {
            self.listening.store(false, Ordering::Release);
            self.pending.set_enabled(false);
            self.tokens.set_enabled(false);
        }
    }

    /// Whether notifications are being received.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Whether a poll may wait for a change: notifications are heard and
    /// the instance is not shutting down.
    pub fn may_wait(&self) -> bool {
        self.is_listening() && !self.draining.load(Ordering::Acquire)
    }

    /// The instance is shutting down: held polls answer now (they read
    /// their sessions once more), and no new poll waits, so a graceful stop
    /// finishes in moments rather than after the longest wait.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.waiters.wake_all();
    }

    /// A notification arrived (from any instance, this one included).
    pub fn received(&self, channel: &str, payload: &str) {
        if channel == TOKENS_CHANNEL {
            self.tokens.invalidate_all();
            return;
        }
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(payload, &mut hash).is_ok() {
            self.session_changed(&hash);
        }
    }

    /// A device session changed (committed): its cached pending row goes
    /// and the polls waiting on it wake up to read it again.
    pub fn session_changed(&self, device_code_hash: &[u8; 32]) {
        self.pending.evict(device_code_hash);
        self.waiters.wake(device_code_hash);
    }

    /// Tokens were revoked (committed): no cached authentication is served
    /// again on this instance. Other instances hear the trigger's NOTIFY.
    pub fn tokens_revoked(&self) {
        self.tokens.invalidate_all();
    }

    /// Waits for a change of the session with this device-code hash.
    pub fn subscribe(&self, device_code_hash: &[u8; 32]) -> Subscription {
        self.waiters.subscribe(device_code_hash)
    }

    /// Polls currently waiting on this instance (for metrics and tests).
    pub fn waiting(&self) -> usize {
        self.waiters.count()
    }

    /// Held polls woken so far (by a change, the listener's return or a
    /// drain).
    pub fn wake_ups(&self) -> u64 {
        self.waiters.woken()
    }

    /// Forgets idle pacing and entries past their lifetime, bounding memory.
    pub fn forget_stale(&self, now: Instant) {
        self.pacer.forget_idle(now);
        self.pending.forget_stale(now);
        self.tokens.forget_stale(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polls_held_across_a_listener_outage_re_read_when_it_returns() {
        let realtime = Realtime::default();
        realtime.set_listening(true);
        let held = realtime.subscribe(&[7; 32]);
        let woken = held.notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // Down: whatever changed meanwhile is not heard.
        realtime.set_listening(false);
        // Back: every held poll reads its session again.
        realtime.set_listening(true);
        tokio::time::timeout(Duration::from_secs(1), woken)
            .await
            .expect("the held poll is woken when the listener returns");
    }

    #[tokio::test]
    async fn draining_releases_held_polls_and_stops_new_waits() {
        let realtime = Realtime::default();
        realtime.set_listening(true);
        assert!(realtime.may_wait());
        let held = realtime.subscribe(&[9; 32]);
        let woken = held.notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        realtime.drain();
        tokio::time::timeout(Duration::from_secs(1), woken)
            .await
            .expect("a held poll is released when the instance drains");
        assert!(!realtime.may_wait(), "no new poll waits");
    }
}
