//! PostgreSQL access: the pool, the helper that runs queries off the async
//! workers, embedded migrations, and the private local cluster.

pub mod local_pg;
pub mod models;
pub mod schema;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tracing::Instrument;

use crate::error::AppError;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Pooled PostgreSQL connections.
pub type DbPool = Pool<ConnectionManager<PgConnection>>;

/// Builds the pool without connecting yet, so the server can start (and
/// answer 503) while the database is down.
pub fn build_pool(database_url: &str, size: u32, timeout: Duration) -> DbPool {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1.min(size)))
        .connection_timeout(timeout)
        // A checkout validates nothing on the hot path; broken connections are
        // detected by diesel and dropped by r2d2 when returned.
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(database_url))
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<usize> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("running migrations failed: {e}"))?;
    Ok(applied.len())
}

/// Runs `f` with a pooled connection on the blocking thread pool, inside the
/// caller's tracing span. Pool exhaustion and outages become 503.
pub async fn run<F, T>(pool: &DbPool, f: F) -> Result<T, AppError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    actix_web::web::block(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .instrument(tracing::Span::current())
    .await?
}
