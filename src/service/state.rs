//! What every request shares: configuration, the pool, the rate limiters
//! and the realtime caches. Built once in `startup`, injected as
//! `web::Data<AppState>`, so each test server gets its own.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{self, Db, DbPool};
use crate::error::AppError;
use crate::rate_limit::RateLimiters;
use crate::realtime::Realtime;

/// Shared by every handler and service.
pub struct AppState {
    /// Requests answered, by route (for `/metrics`).
    pub http: crate::metrics::HttpMetrics,
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Database pool.
    pub pool: DbPool,
    /// Rate limiters.
    pub limiters: RateLimiters,
    /// bcrypt hash of a random password at the configured cost, so unknown
    /// emails cost the same as wrong passwords.
    pub dummy_hash: String,
    /// Waiting polls, the pending and token caches, the poll pacer.
    pub realtime: Arc<Realtime>,
    /// Where `start` queues new device sessions for the start writer.
    pub starts: super::device::StartQueue,
    /// Caps concurrent bcrypt work at half the cores, so a burst of
    /// sign-ins cannot take every core from polls and token checks.
    pub bcrypt_slots: Arc<tokio::sync::Semaphore>,
    /// The OpenID Connect providers' cached discovery and HTTP client.
    pub oidc: Arc<super::sso::Providers>,
    /// The WebAuthn relying party of `APP_URL` (passkeys); `None` when
    /// `APP_URL` names an IP address, which WebAuthn does not allow.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

/// What the synchronous half of a service needs beside its connection.
pub struct Context {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The realtime caches, told what changed once it commits.
    pub realtime: Arc<Realtime>,
}

impl AppState {
    /// Runs `f` on a pooled connection off the async workers (see
    /// [`db::run`]), with the configuration and the realtime caches at hand.
    pub async fn run<F, T>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut Db<'_>, &Context) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let context = Context {
            config: self.config.clone(),
            realtime: self.realtime.clone(),
        };
        db::run(&self.pool, move |conn| f(conn, &context)).await
    }
}
