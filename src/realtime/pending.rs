//! Pending sessions kept in memory per instance, so the next polls of a
//! pending session are answered without the database. Only "pending" is
//! ever cached. Every state change out of pending sends a `NOTIFY` in its
//! transaction, which evicts the entry on every instance (the instance that
//! made the change also evicts it right after its commit); entries live a
//! few seconds at most, and the cache is off whenever the notification
//! listener is down. A stale entry can only delay an answer, never give a
//! wrong one: approval, denial and expiry are always read from PostgreSQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::shards::{shard_of, Sharded, SHARDS};
use crate::domain::Flow;

/// A pending session, as much of it as a poll needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// Session id.
    pub session_id: Uuid,
    /// The client the device code belongs to.
    pub client_id: String,
    /// Which API started it.
    pub flow: Flow,
    /// End of life.
    pub expires_at: DateTime<Utc>,
    /// Stored interval, in seconds.
    pub interval_secs: i32,
}

/// Permission to cache what a read is about to see; taken before the read,
/// it is refused if an eviction for the same shard came in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    shard: usize,
    epoch: u64,
}

#[derive(Default)]
struct CacheShard {
    /// Bumped by every eviction, so a read that started earlier cannot put
    /// back what the eviction removed.
    epoch: u64,
    rows: HashMap<[u8; 32], (PendingRow, Instant)>,
}

/// Pending sessions by device-code hash; see the module documentation.
pub struct PendingCache {
    /// Polls answered from memory, and polls that read PostgreSQL.
    pub lookups: crate::metrics::HitsAndMisses,
    shards: Sharded<CacheShard>,
    enabled: AtomicBool,
    ttl: Duration,
    max_rows_per_shard: usize,
}

impl PendingCache {
    /// A cache whose entries live `ttl` (zero: never caches). It starts
    /// disabled until the notification listener switches it on.
    pub fn new(ttl: Duration) -> Self {
        Self {
            lookups: crate::metrics::HitsAndMisses::default(),
            shards: Sharded::default(),
            enabled: AtomicBool::new(false),
            ttl,
            max_rows_per_shard: 100_000 / SHARDS,
        }
    }

    fn active(&self) -> bool {
        !self.ttl.is_zero() && self.enabled.load(Ordering::Acquire)
    }

    /// The cached pending row for `key`, if fresh.
    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<PendingRow> {
        self.lookups.count(self.lookup(key, now))
    }

    fn lookup(&self, key: &[u8; 32], now: Instant) -> Option<PendingRow> {
        if !self.active() {
            return None;
        }
        let mut shard = self.shards.lock(shard_of(key[0]))?;
        match shard.rows.get(key) {
            Some((row, at)) if now.saturating_duration_since(*at) < self.ttl => Some(row.clone()),
            Some(_) => {
                shard.rows.remove(key);
                None
            }
            None => None,
        }
    }

    /// Taken before reading `key` from the database.
    pub fn ticket(&self, key: &[u8; 32]) -> Option<Ticket> {
        if !self.active() {
            return None;
        }
        let shard = shard_of(key[0]);
        let epoch = self.shards.lock(shard)?.epoch;
        Some(Ticket { shard, epoch })
    }

    /// Caches `row`, read as pending after `ticket` was taken, unless an
    /// eviction came in since.
    pub fn insert(&self, key: [u8; 32], ticket: Ticket, row: PendingRow, now: Instant) {
        if !self.active() || shard_of(key[0]) != ticket.shard {
            return;
        }
        let Some(mut shard) = self.shards.lock(ticket.shard) else {
            return;
        };
        if shard.epoch == ticket.epoch && shard.rows.len() < self.max_rows_per_shard {
            shard.rows.insert(key, (row, now));
        }
    }

    /// The session changed: forget it.
    pub fn evict(&self, key: &[u8; 32]) {
        if let Some(mut shard) = self.shards.lock(shard_of(key[0])) {
            shard.epoch = shard.epoch.wrapping_add(1);
            shard.rows.remove(key);
        }
    }

    /// Switches the cache on (listener connected) or off, forgetting
    /// everything either way: notifications may have been missed.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(false, Ordering::Release);
        self.shards.each(|shard| {
            shard.epoch = shard.epoch.wrapping_add(1);
            shard.rows.clear();
        });
        self.enabled.store(on, Ordering::Release);
    }

    /// Drops entries past their lifetime.
    pub fn forget_stale(&self, now: Instant) {
        self.shards.each(|shard| {
            shard
                .rows
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
        });
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards.sum(|s| s.rows.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn row() -> PendingRow {
        PendingRow {
            session_id: Uuid::new_v4(),
            client_id: "envshield-cli".to_owned(),
            flow: Flow::V1,
            expires_at: Utc::now(),
            interval_secs: 5,
        }
    }

    fn enabled_cache() -> PendingCache {
        let cache = PendingCache::new(Duration::from_secs(5));
        cache.set_enabled(true);
        cache
    }

    #[test]
    fn caches_until_evicted_or_stale() {
        let cache = enabled_cache();
        let (key, r, t0) = ([1u8; 32], row(), Instant::now());
        let ticket = cache.ticket(&key).unwrap();
        cache.insert(key, ticket, r.clone(), t0);
        assert_eq!(cache.get(&key, t0 + S), Some(r.clone()));
        assert_eq!(cache.get(&key, t0 + 5 * S), None, "past its lifetime");
        let ticket = cache.ticket(&key).unwrap();
        cache.insert(key, ticket, r.clone(), t0);
        cache.evict(&key);
        assert_eq!(cache.get(&key, t0), None);
    }

    #[test]
    fn a_read_that_raced_an_eviction_is_not_cached() {
        let cache = enabled_cache();
        let (key, t0) = ([2u8; 32], Instant::now());
        let ticket = cache.ticket(&key).unwrap();
        // The session changes (NOTIFY) while the read is under way.
        cache.evict(&key);
        cache.insert(key, ticket, row(), t0);
        assert_eq!(cache.get(&key, t0), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn off_while_the_listener_is_down_and_emptied_on_reconnect() {
        let cache = PendingCache::new(Duration::from_secs(5));
        let (key, t0) = ([3u8; 32], Instant::now());
        assert!(cache.ticket(&key).is_none(), "starts off");
        cache.set_enabled(true);
        let ticket = cache.ticket(&key).unwrap();
        cache.insert(key, ticket, row(), t0);
        assert_eq!(cache.len(), 1);
        cache.set_enabled(false);
        assert_eq!(cache.get(&key, t0), None);
        cache.set_enabled(true);
        assert!(cache.is_empty(), "what was missed while down is gone");
        cache.insert(key, ticket, row(), t0);
        assert!(
            cache.is_empty(),
            "a ticket from before the reconnect is refused"
        );
        let off = PendingCache::new(Duration::ZERO);
        off.set_enabled(true);
        assert!(off.ticket(&key).is_none(), "a zero lifetime disables it");
    }
}
