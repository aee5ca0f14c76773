//! A short-lived cache of authenticated Bearer tokens, per instance.
//!
//! An entry lives at most `BEARER_CACHE_MS` (one second at most), so a
//! revocation takes effect everywhere within a second even if a
//! notification were lost. Sooner in practice:
//! - a revocation made by this instance invalidates the whole cache right
//!   after its commit (the revoking service calls `Realtime::revoked` from
//!   `Db::after_commit`), so the next request here reads PostgreSQL;
//! - a database trigger sends `NOTIFY envshield_tokens` for every change
//!   that can end a token's validity, made anywhere; the listener bumps
//!   the generation on every instance;
//! - the cache is off while the listener is down.
//!
//! Every entry carries the generation read before its database lookup, and
//! only entries of the current generation are served, so a lookup that
//! raced a revocation is never served afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use super::shards::{shard_of, Sharded, SHARDS};

/// Entries a shard holds at most, bounding memory.
const MAX_ENTRIES_PER_SHARD: usize = 100_000 / SHARDS;

type Shard<V> = HashMap<[u8; 32], (V, Instant, u64)>;

/// Authentications by token digest.
pub struct TokenCache<V> {
    /// Bearer checks answered from memory, and those that read PostgreSQL.
    pub lookups: crate::metrics::HitsAndMisses,
    generation: AtomicU64,
    shards: Sharded<Shard<V>>,
    ttl: Duration,
    enabled: AtomicBool,
}

impl<V: Clone> TokenCache<V> {
    /// A cache whose entries live `ttl` (zero: never caches), emptied by
    /// [`TokenCache::invalidate_all`]. Starts off until the listener is up.
    pub fn new(ttl: Duration) -> Self {
        Self {
            lookups: crate::metrics::HitsAndMisses::default(),
            generation: AtomicU64::new(0),
            shards: Sharded::default(),
            ttl,
            enabled: AtomicBool::new(false),
        }
    }

    fn shard(&self, digest: &[u8; 32]) -> Option<MutexGuard<'_, Shard<V>>> {
        self.shards.lock(shard_of(digest[0]))
    }

    fn active(&self) -> bool {
        !self.ttl.is_zero() && self.enabled.load(Ordering::Acquire)
    }

    /// Read before a database lookup; hand it to [`TokenCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached authentication for `digest`, if fresh and current.
    pub fn get(&self, digest: &[u8; 32], now: Instant) -> Option<V> {
        self.lookups.count(self.lookup(digest, now))
    }

    fn lookup(&self, digest: &[u8; 32], now: Instant) -> Option<V> {
        if !self.active() {
            return None;
        }
        let current = self.generation();
        let mut shard = self.shard(digest)?;
        match shard.get(digest) {
            Some((auth, at, generation))
                if *generation == current && now.saturating_duration_since(*at) < self.ttl =>
            {
                Some(auth.clone())
            }
            Some(_) => {
                shard.remove(digest);
                None
            }
            None => None,
        }
    }

    /// Caches a successful lookup that began at `generation`.
    pub fn insert(&self, digest: [u8; 32], generation: u64, auth: V, now: Instant) {
        if !self.active() || generation != self.generation() {
            return;
        }
        if let Some(mut shard) = self.shard(&digest) {
            if shard.len() < MAX_ENTRIES_PER_SHARD {
                shard.insert(digest, (auth, now, generation));
            }
        }
    }

    /// Something that may end a token's validity happened: forget all.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.shards.each(HashMap::clear);
    }

    /// On while the listener is connected; emptied on every switch.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(false, Ordering::Release);
        self.invalidate_all();
        self.enabled.store(on, Ordering::Release);
    }

    /// Drops entries past their lifetime.
    pub fn forget_stale(&self, now: Instant) {
        self.shards.each(|shard| {
            shard.retain(|_, (_, at, _)| now.saturating_duration_since(*at) < self.ttl)
        });
    }
}
