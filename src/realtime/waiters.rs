//! Polls waiting for a change of their device session, keyed by the
//! device-code hash. A waiting poll holds no database connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Per device-code hash: the wake-up and how many polls wait on it.
type Waiting = HashMap<[u8; 32], (Arc<Notify>, usize)>;

/// The polls waiting on this instance.
#[derive(Default)]
pub struct Waiters {
    waiting: Arc<Mutex<Waiting>>,
    /// Held polls woken so far.
    woken: std::sync::atomic::AtomicU64,
}

/// A poll's place in the waiting list; leaving (drop) frees it.
pub struct Subscription {
    waiting: Arc<Mutex<Waiting>>,
    key: [u8; 32],
    /// Signalled when the session changes.
    pub notify: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut map) = self.waiting.lock() {
            if let Some(entry) = map.get_mut(&self.key) {
                entry.1 = entry.1.saturating_sub(1);
                if entry.1 == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

impl Waiters {
    /// Registers interest in the session with this device-code hash. Call
    /// before reading the session, so a change committed between the read
    /// and the wait still wakes the poll.
    pub fn subscribe(&self, device_code_hash: &[u8; 32]) -> Subscription {
        let key = *device_code_hash;
        let notify = match self.waiting.lock() {
            Ok(mut map) => {
                let entry = map
                    .entry(key)
                    .or_insert_with(|| (Arc::new(Notify::new()), 0));
                entry.1 += 1;
                entry.0.clone()
            }
            // A poisoned map: this poll simply waits out its timeout.
            Err(_) => Arc::new(Notify::new()),
        };
        Subscription {
            waiting: self.waiting.clone(),
            key,
            notify,
        }
    }

    /// Wakes every poll waiting on this device-code hash.
    pub fn wake(&self, device_code_hash: &[u8; 32]) {
        if let Ok(map) = self.waiting.lock() {
            if let Some((notify, held)) = map.get(device_code_hash) {
                notify.notify_waiters();
                self.count_woken(*held);
            }
        }
    }

    /// Wakes every waiting poll, to read its session again.
    pub fn wake_all(&self) {
        if let Ok(map) = self.waiting.lock() {
            for (notify, held) in map.values() {
                notify.notify_waiters();
                self.count_woken(*held);
            }
        }
    }

    fn count_woken(&self, polls: usize) {
        let polls = u64::try_from(polls).unwrap_or(u64::MAX);
        self.woken
            .fetch_add(polls, std::sync::atomic::Ordering::Relaxed);
    }

    /// Held polls woken so far.
    pub fn woken(&self) -> u64 {
        self.woken.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many polls are waiting.
    pub fn count(&self) -> usize {
        self.waiting
            .lock()
            .map(|m| m.values().map(|(_, n)| n).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_only_subscribers_of_the_key_and_forgets_them() {
        let w = Waiters::default();
        let a = w.subscribe(&[0xa; 32]);
        let b = w.subscribe(&[0xb; 32]);
        assert_eq!(w.count(), 2);
        {
            let woken_a = a.notify.notified();
            let woken_b = b.notify.notified();
            tokio::pin!(woken_a, woken_b);
            woken_a.as_mut().enable();
            woken_b.as_mut().enable();
            w.wake(&[0xa; 32]);
            tokio::time::timeout(Duration::from_secs(1), woken_a)
                .await
                .unwrap();
            assert!(tokio::time::timeout(Duration::from_millis(50), woken_b)
                .await
                .is_err());
        }
        drop(a);
        drop(b);
        assert_eq!(w.count(), 0);
    }
}
