//! PostgreSQL access: the pool, the helper that runs queries off the async
//! workers, and embedded migrations. The private local cluster is the
//! `pg-local` crate.

pub mod models;
pub mod schema;
mod unit;

use std::sync::Arc;
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Semaphore;

use crate::error::AppError;
pub use unit::Db;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Pooled PostgreSQL connections, handed out first come, first served.
///
/// Requests queue for a connection on an async FIFO gate sized like the
/// pool, before they take a blocking thread, so each blocking thread finds
/// a free connection at once and no request is overtaken by later ones
/// (r2d2 alone lets a newcomer take a just-returned connection ahead of
/// threads already waiting, which stretches the tail latency).
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<ConnectionManager<PgConnection>>,
    gate: Arc<Semaphore>,
    timeout: Duration,
    /// Requests queued for a turn at the pool right now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// Where the security events of every unit of work queue notices.
    notices: Option<Arc<models::notice_outbox::Channels>>,
}

/// The pool right now, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    /// Open connections.
    pub open: u32,
    /// Of those, lent out.
    pub in_use: u32,
    /// Requests queued for a turn.
    pub waiting: usize,
    /// The most connections it opens.
    pub max: u32,
}

impl DbPool {
    /// A connection, waiting at most the pool's timeout (outside the gate:
    /// for start-up work, not for requests).
    pub fn get(
        &self,
    ) -> Result<PooledConnection<ConnectionManager<PgConnection>>, diesel::r2d2::PoolError> {
        self.pool.get()
    }

    /// The same pool, whose units of work queue security notices on
    /// `notices` (built once in `startup`).
    pub fn with_notices(mut self, notices: Option<Arc<models::notice_outbox::Channels>>) -> Self {
        self.notices = notices;
        self
    }

    /// Where security notices go, if anywhere.
    pub fn notices(&self) -> Option<&Arc<models::notice_outbox::Channels>> {
        self.notices.as_ref()
    }

    /// Connections open and lent out, and requests waiting.
    pub fn state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            open: state.connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
            max: self.pool.max_size(),
        }
    }
}

/// Builds the pool without connecting yet, so the server can start (and
/// answer 503) while the database is down.
pub fn build_pool(database_url: &str, size: u32, timeout: Duration) -> DbPool {
    let pool = Pool::builder()
        .max_size(size)
        .min_idle(Some(1.min(size)))
        .connection_timeout(timeout)
        // A checkout validates nothing on the hot path; a connection that
        // lost its server is marked broken by `run` and dropped by r2d2 when
        // returned.
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(with_liveness(database_url)));
    DbPool {
        pool,
        gate: Arc::new(Semaphore::new(usize::try_from(size).unwrap_or(1))),
        timeout,
        waiting: Arc::default(),
        notices: None,
    }
}

/// libpq settings that bound how long a pool connection can wait on a
/// server that vanished without a reset (a failover to a new address, a
/// partition): TCP keepalives notice a dead peer of an idle or waiting
/// connection within a minute, `tcp_user_timeout` drops one whose data goes
/// unacknowledged for 30 s, and `connect_timeout` bounds a connection
/// attempt. Without them the kernel's defaults (two hours of idleness, about
/// fifteen minutes of retransmissions) would hold a blocking thread and a
/// pool slot that long. Unix-socket connections ignore all but the last.
const LIVENESS: [(&str, &str); 6] = [
    ("keepalives", "1"),
    ("keepalives_idle", "30"),
    ("keepalives_interval", "10"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
    ("connect_timeout", "10"),
];

/// `database_url` with the [`LIVENESS`] settings it does not set itself, in
/// its own form (a `postgres://` URI or `key=value` words).
fn with_liveness(database_url: &str) -> String {
    let url = database_url.trim();
    let uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let sets = |key: &str| {
        if uri {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(key))
        } else {
            url.split_whitespace()
                .any(|word| word.split('=').next().map(str::trim) == Some(key))
        }
    };
    let mut out = url.to_owned();
    for (key, value) in LIVENESS.into_iter().filter(|(key, _)| !sets(key)) {
        match (uri, out.contains('?')) {
            (false, _) => out.push(' '),
            (true, false) => out.push('?'),
            (true, true) if out.ends_with(['?', '&']) => {}
            (true, true) => out.push('&'),
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// One round trip that needs nothing but a working connection.
pub fn ping(conn: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}

/// The advisory lock held while migrating ("envshiel" in ASCII).
const MIGRATION_LOCK: i64 = 0x656e_7673_6869_656c;

/// Applies pending migrations; returns how many ran. Instances starting
/// together (and a migration Job) take turns on an advisory lock, so each
/// migration runs once and the others then find nothing to do.
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<usize> {
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)
        .map_err(|e| anyhow::anyhow!("cannot take the migration lock: {e}"))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|applied| applied.len())
        .map_err(|e| anyhow::anyhow!("running migrations failed: {e}"));
    // Released with the session anyway; unlocking lets a pooled connection
    // be reused without holding it.
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn);
    let applied = applied?;
    unlocked.map_err(|e| anyhow::anyhow!("cannot release the migration lock: {e}"))?;
    Ok(applied)
}

/// Runs `f` with a pooled connection on the blocking thread pool, inside the
/// caller's tracing span. `f` gets the connection as a [`Db`], whose
/// `transaction` runs what was registered with [`Db::after_commit`] once
/// the changes are committed. Waiting longer than the pool timeout for a
/// turn, pool exhaustion and outages become 503.
pub async fn run<F, T>(pool: &DbPool, f: F) -> Result<T, AppError>
where
    F: FnOnce(&mut Db<'_>) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let started = tokio::time::Instant::now();
    let queued = Queued::join(&pool.waiting);
    let turn = tokio::time::timeout(pool.timeout, pool.gate.clone().acquire_owned()).await;
    drop(queued);
    let turn = turn
        .map_err(|_| AppError::Unavailable("timed out waiting for a database connection".into()))?
        .map_err(|_| AppError::Unavailable("the database pool is closed".into()))?;
    let inner = pool.pool.clone();
    let notices = pool.notices.clone();
    let left = pool.timeout.saturating_sub(started.elapsed());
    crate::telemetry::blocking(move || {
        let _turn = turn;
        let mut conn = inner.get_timeout(left.max(Duration::from_millis(1)))?;
        let result = f(&mut Db::with_notices(&mut conn, notices));
        if matches!(result, Err(AppError::Unavailable(_))) {
            discard(&mut conn);
        }
        result
    })
    .await?
}

/// Marks a connection that lost its server as broken, so the pool drops it
/// when it comes back instead of handing the dead connection out again (a
/// checkout does not test connections: that would cost a round trip on
/// every request). The pool opens a fresh one on demand.
fn discard(conn: &mut PgConnection) {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
}

/// A request in the queue for the pool, counted while it waits.
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a std::sync::atomic::AtomicUsize) -> Self {
        waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::with_liveness;

    #[test]
    fn a_uri_gets_the_liveness_settings_it_lacks() {
        assert_eq!(
            with_liveness("postgres://app@db.internal/envshield"),
            "postgres://app@db.internal/envshield?keepalives=1&keepalives_idle=30\
             &keepalives_interval=10&keepalives_count=3&tcp_user_timeout=30000&connect_timeout=10"
        );
        let own =
            with_liveness("postgresql://db/x?sslmode=require&keepalives_idle=5&connect_timeout=3");
        assert!(own.starts_with("postgresql://db/x?sslmode=require&keepalives_idle=5&connect_timeout=3&keepalives=1&"), "{own}");
        assert_eq!(own.matches("keepalives_idle").count(), 1, "{own}");
        assert_eq!(own.matches("connect_timeout").count(), 1, "{own}");
        assert!(with_liveness("postgres://db/x?").starts_with("postgres://db/x?keepalives=1&"));
    }

    #[test]
    fn keyword_value_strings_keep_their_form() {
        let out = with_liveness("host=/run/pg dbname=x tcp_user_timeout = 900");
        assert!(
            out.starts_with(
                "host=/run/pg dbname=x tcp_user_timeout = 900 keepalives=1 keepalives_idle=30"
            ),
            "{out}"
        );
        assert_eq!(out.matches("tcp_user_timeout").count(), 1, "{out}");
        assert!(out.ends_with(" connect_timeout=10"), "{out}");
    }
}
