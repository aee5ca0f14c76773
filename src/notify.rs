//! Instant delivery of device-session changes to waiting polls, across
//! instances, through PostgreSQL `LISTEN/NOTIFY`.
//!
//! Every state change sends `NOTIFY envshield_device, '<device-code hash>'`
//! in the same transaction. Each instance keeps one listening connection and
//! wakes the polls waiting on that hash. Waiting polls hold no database
//! connection. If the listener is down, polls do not wait (plain polling)
//! until it reconnects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::{PgConnection, RunQueryDsl};
use tokio::sync::Notify;

use crate::service::pacing::PendingCache;
use crate::service::token_cache::TokenCache;

/// The channel of device-session changes (payload: device-code hash, hex).
pub const CHANNEL: &str = "envshield_device";
/// The channel of token and account changes, sent by database triggers
/// (payload: token digest, hex, or `account`).
pub const TOKENS_CHANNEL: &str = "envshield_tokens";

/// Sends the change notification for a session; delivered at commit.
pub fn notify_change(conn: &mut PgConnection, device_code_hash: &[u8]) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(CHANNEL)
        .bind::<diesel::sql_types::Text, _>(hex::encode(device_code_hash))
        .execute(conn)
        .map(|_| ())
}

/// Per device-code hash: the wake-up and how many polls wait on it.
type Waiters = HashMap<[u8; 32], (Arc<Notify>, usize)>;

/// Polls waiting for a change, keyed by device-code hash, and the
/// pending sessions known from the notifications.
pub struct Notifier {
    waiters: Mutex<Waiters>,
    listening: AtomicBool,
    /// Sessions read as pending; each notification evicts its session.
    pub pending: PendingCache,
    /// Authenticated Bearer tokens; every token notification empties it.
    pub tokens: TokenCache,
}

impl Default for Notifier {
    /// No caches.
    fn default() -> Self {
        Self::new(Duration::ZERO, Duration::ZERO, Arc::default())
    }
}

/// A registered interest in one session; unregisters on drop.
pub struct Subscription {
    notifier: Arc<Notifier>,
    key: [u8; 32],
    /// Woken on every change of the session.
    pub notify: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut map) = self.notifier.waiters.lock() {
            if let Some(entry) = map.get_mut(&self.key) {
                entry.1 = entry.1.saturating_sub(1);
                if entry.1 == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

impl Notifier {
    /// A notifier whose pending cache keeps entries `pending_ttl` and whose
    /// token cache keeps them `token_ttl`, invalidated whenever
    /// `revocations` moves (see [`crate::db::DbPool::revocations`]).
    pub fn new(pending_ttl: Duration, token_ttl: Duration, revocations: Arc<AtomicU64>) -> Self {
        Self {
            waiters: Mutex::default(),
            listening: AtomicBool::new(false),
            pending: PendingCache::new(pending_ttl),
            tokens: TokenCache::new(token_ttl, revocations),
        }
    }

    fn set_listening(&self, on: bool) {
        if on {
            // Whatever was cached may have changed while nobody listened.
            self.pending.set_enabled(true);
            self.tokens.set_enabled(true);
            self.listening.store(true, Ordering::Release);
        } else {
            self.listening.store(false, Ordering::Release);
            self.pending.set_enabled(false);
            self.tokens.set_enabled(false);
        }
    }

    /// Handles one notification.
    pub fn received(&self, channel: &str, payload: &str) {
        if channel == TOKENS_CHANNEL {
            self.tokens.invalidate_all();
        } else {
            self.wake(payload);
        }
    }

    /// Whether the listener is connected, so waiting is worth it.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Registers interest in the session with this device-code hash.
    pub fn subscribe(self: &Arc<Self>, device_code_hash: &[u8; 32]) -> Subscription {
        let key = *device_code_hash;
        let notify = match self.waiters.lock() {
            Ok(mut map) => {
                let entry = map
                    .entry(key)
                    .or_insert_with(|| (Arc::new(Notify::new()), 0));
                entry.1 += 1;
                entry.0.clone()
            }
            // A poisoned map only loses wake-ups: the poll times out and the
            // client polls again.
            Err(_) => Arc::new(Notify::new()),
        };
        Subscription {
            notifier: self.clone(),
            key,
            notify,
        }
    }

    /// Wakes every poll waiting on the session whose device-code hash is
    /// `key` (hex) and forgets the cached session.
    pub fn wake(&self, key: &str) {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(key, &mut hash).is_err() {
            return;
        }
        self.pending.evict(&hash);
        if let Ok(map) = self.waiters.lock() {
            if let Some((notify, _)) = map.get(&hash) {
                notify.notify_waiters();
            }
        }
    }

    /// Polls currently waiting (for metrics and tests).
    pub fn waiting(&self) -> usize {
        self.waiters
            .lock()
            .map(|m| m.values().map(|(_, n)| n).sum())
            .unwrap_or(0)
    }
}

/// Keeps one `LISTEN` connection open, reconnecting with backoff, and
/// forwards notifications to the notifier. Runs until aborted.
pub async fn listen(database_url: String, notifier: Arc<Notifier>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match listen_once(&database_url, &notifier).await {
            Ok(()) => tracing::warn!("notification listener disconnected; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "notification listener failed; reconnecting"),
        }
        notifier.set_listening(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn listen_once(
    database_url: &str,
    notifier: &Arc<Notifier>,
) -> Result<(), tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = database_url.parse()?;
    // A connection that died without a word (a network partition) is
    // noticed within about a minute, which bounds how long the pending
    // cache can miss notifications before it is switched off.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    // The connection yields notifications only while it is polled.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx
                        .send((n.channel().to_owned(), n.payload().to_owned()))
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "notification connection error");
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {TOKENS_CHANNEL}"))
        .await?;
    notifier.set_listening(true);
    tracing::info!("listening for device-session changes");
    while let Some((channel, payload)) = rx.recv().await {
        notifier.received(&channel, &payload);
    }
    driver.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_only_subscribers_of_the_key_and_forgets_them() {
        let n = Arc::new(Notifier::default());
        let a = n.subscribe(&[0xa; 32]);
        let b = n.subscribe(&[0xb; 32]);
        assert_eq!(n.waiting(), 2);
        {
            let woken_a = a.notify.notified();
            let woken_b = b.notify.notified();
            tokio::pin!(woken_a, woken_b);
            woken_a.as_mut().enable();
            woken_b.as_mut().enable();
            n.wake(&hex::encode([0xa; 32]));
            tokio::time::timeout(Duration::from_secs(1), woken_a)
                .await
                .unwrap();
            assert!(tokio::time::timeout(Duration::from_millis(50), woken_b)
                .await
                .is_err());
        }
        drop(a);
        drop(b);
        assert_eq!(n.waiting(), 0);
    }
}
