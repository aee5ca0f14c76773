//! A map split over independent locks, so concurrent requests for
//! different keys rarely wait for each other.

use std::sync::{Mutex, MutexGuard};

/// How many locks each cache is split over.
pub const SHARDS: usize = 16;

/// `SHARDS` values of `T`, each behind its own lock.
pub struct Sharded<T> {
    shards: Vec<Mutex<T>>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// The shard a key lands in, from one byte of it (keys are uniformly
/// random: UUIDs, digests, HMACs).
pub fn shard_of(byte: u8) -> usize {
    usize::from(byte) % SHARDS
}

impl<T> Sharded<T> {
    /// Locks shard `index`; `None` if a panic poisoned it (the caches then
    /// answer as if empty, which only costs a database read).
    pub fn lock(&self, index: usize) -> Option<MutexGuard<'_, T>> {
        self.shards.get(index)?.lock().ok()
    }

    /// Runs `f` on every shard in turn.
    pub fn each(&self, mut f: impl FnMut(&mut T)) {
        for shard in &self.shards {
            if let Ok(mut guard) = shard.lock() {
                f(&mut guard);
            }
        }
    }

    /// Adds up `count` over every shard.
    pub fn sum(&self, count: impl Fn(&T) -> usize) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |g| count(&g)))
            .sum()
    }
}
