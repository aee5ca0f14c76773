//! Builds the application: pool, migrations, state, middleware, listener.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServerHandle};
use actix_web::error::{InternalError, JsonPayloadError};
use actix_web::http::header;
use actix_web::middleware::{Condition, DefaultHeaders};
use actix_web::{web, App, HttpServer, ResponseError};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tracing_actix_web::TracingLogger;

use crate::auth::session::SESSION_COOKIE;
use crate::config::Config;
use crate::db;
use crate::error::AppError;
use crate::rate_limit::RateLimiters;
use crate::realtime::Realtime;
use crate::service::AppState;
use crate::telemetry::RedactedRootSpan;

pub use crate::routes::MAX_BODY_BYTES;
/// `Strict-Transport-Security` when `APP_URL` is https: one year.
const HSTS: &str = "max-age=31536000";
/// How often expired sessions are purged.
const PURGE_EVERY: Duration = Duration::from_secs(30);
/// How often poll intervals grown by `slow_down` are stored.
const STORE_INTERVALS_EVERY: Duration = Duration::from_secs(1);
/// How long ended device sessions are kept for audit.
const KEEP_ENDED_SESSIONS: chrono::Duration = chrono::Duration::days(7);

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on `METRICS_BIND_ADDR`, with its bound port.
    metrics: Option<(Server, u16)>,
    purge: tokio::task::JoinHandle<()>,
    /// Stores grown poll intervals.
    pacing: tokio::task::JoinHandle<()>,
    /// Inserts started device sessions.
    start_writer: tokio::task::JoinHandle<()>,
    listener: tokio::task::JoinHandle<()>,
    realtime: Arc<Realtime>,
    /// Sends security notices, when `SMTP_URL` or `SECURITY_WEBHOOK_URL` is set.
    notices: Option<tokio::task::JoinHandle<()>>,
    /// Where notices go, and the worker's wake-up.
    notice_channels: Option<Arc<crate::db::models::notice_outbox::Channels>>,
}

impl Application {
    /// Connects, migrates, binds `config.bind_addr` (port 0 picks one) and
    /// builds the server without running it yet.
    pub async fn build(config: Config, database_url: SecretString) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.bind_addr)
            .with_context(|| format!("cannot listen on {} (BIND_ADDR)", config.bind_addr))?;
        Self::build_on(config, database_url, listener).await
    }

    /// Like [`Application::build`], on a listener the caller already bound.
    pub async fn build_on(
        config: Config,
        database_url: SecretString,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let notice_channels = crate::service::notices::channels(&config.notices);
        let pool = db::build_pool(
            database_url.expose_secret(),
            config.db_pool_size,
            config.db_timeout,
        )
        .with_notices(notice_channels.clone());
        let migrate_pool = pool.clone();
        let applied = web::block(move || -> anyhow::Result<usize> {
            let mut conn = migrate_pool
                .get()
                .context("cannot connect to the database (check DATABASE_URL)")?;
            db::run_migrations(&mut conn)
        })
        .await??;
        if applied > 0 {
            tracing::info!(applied, "applied database migrations");
        }
        let cost = config.bcrypt_cost;
        let dummy_hash = web::block(move || {
            let random = SecretString::from(hex::encode(crate::crypto::random_bytes::<16>()));
            crate::auth::password::hash_password(&random, cost)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;

        let port = listener.local_addr()?.port();
        let realtime = Arc::new(Realtime::new(config.poll_cache, config.bearer_cache));
        let metrics_listener = match &config.metrics_bind_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (METRICS_BIND_ADDR)"))?,
            ),
            None => None,
        };
        let notice_sender = match &notice_channels {
            Some(channels) => Some(crate::service::notices::Sender::new(
                &config,
                channels.clone(),
            )?),
            None => None,
        };
        let (starts, start_jobs) = crate::service::device::StartQueue::new();
        let oidc = Arc::new(crate::service::sso::Providers::new(&config)?);
        let webauthn = crate::service::passkeys::relying_party(&config).map(Arc::new);
        let state = web::Data::new(AppState {
            oidc,
            webauthn,
            http: crate::metrics::HttpMetrics::default(),
            limiters: RateLimiters::new(&config.rate_limits),
            config: Arc::new(config),
            pool,
            dummy_hash,
            realtime,
            starts,
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            )),
        });
        let purge = tokio::spawn(purge_loop(state.clone()));
        let pacing = tokio::spawn(store_intervals_loop(state.clone()));
        let start_writer = tokio::spawn(crate::service::device::write_starts(
            state.clone(),
            start_jobs,
        ));
        let notices = notice_sender
            .map(|sender| tokio::spawn(crate::service::notices::deliver(state.clone(), sender)));
        let listener_task = tokio::spawn(crate::realtime::listen(
            database_url.expose_secret().to_owned(),
            state.realtime.clone(),
        ));
        let realtime = state.realtime.clone();
        let metrics = match metrics_listener {
            Some(l) => {
                let port = l.local_addr()?.port();
                Some((metrics_server(state.clone(), l)?, port))
            }
            None => None,
        };
        let server = server(state, listener)?;
        Ok(Self {
            port,
            realtime,
            server,
            metrics,
            purge,
            pacing,
            start_writer,
            notices,
            notice_channels,
            listener: listener_task,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on, when `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// The realtime state of this instance (waiting polls, caches).
    pub fn realtime(&self) -> Arc<Realtime> {
        self.realtime.clone()
    }

    /// The security notice channels of this instance, if any is on: waking
    /// them makes the worker look for due notices at once.
    pub fn notice_channels(&self) -> Option<Arc<crate::db::models::notice_outbox::Channels>> {
        self.notice_channels.clone()
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// What stops this instance the way SIGTERM does.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            realtime: self.realtime.clone(),
            handle: self.server.handle(),
        }
    }

    /// Serves until stopped (Ctrl-C / SIGTERM, or the handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        self.purge.abort();
        self.pacing.abort();
        self.start_writer.abort();
        self.listener.abort();
        if let Some(notices) = self.notices {
            notices.abort();
        }
        result
    }
}

/// A graceful stop: held polls are released first (they answer `pending`
/// and the CLI polls again, elsewhere), then the server stops accepting and
/// finishes what is in flight (at most `SHUTDOWN_TIMEOUT_SECS`).
#[derive(Clone)]
pub struct Stopper {
    realtime: Arc<Realtime>,
    handle: ServerHandle,
}

impl Stopper {
    /// Drains the held polls, then stops gracefully.
    pub async fn stop(&self) {
        self.realtime.drain();
        self.handle.stop(true).await;
    }
}

/// Waits for SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: draining held polls and stopping"),
        _ = interrupt.recv() => tracing::info!("interrupted: draining held polls and stopping"),
    }
    Ok(())
}

/// How long a graceful stop waits for requests in flight.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

fn server(state: web::Data<AppState>, listener: TcpListener) -> anyhow::Result<Server> {
    let config = state.config.clone();
    let session_key = Key::from(config.keys.session.expose_secret().as_slice());
    let secure = config.secure_cookies();
    // Browsers that reached the service over HTTPS keep using it; a plain
    // http local setup must not pin it.
    let hsts = config.app_url.scheme() == "https";
    let workers = config.workers;
    let server = HttpServer::new(move || {
        App::new()
            .wrap({
                use actix_web::http::StatusCode;
                let said_again = crate::routes::html::framework_error;
                actix_web::middleware::ErrorHandlers::new()
                    .handler(StatusCode::METHOD_NOT_ALLOWED, said_again)
                    .handler(StatusCode::PAYLOAD_TOO_LARGE, said_again)
                    .handler(StatusCode::BAD_REQUEST, said_again)
            })
            .wrap(Condition::new(
                hsts,
                DefaultHeaders::new().add((header::STRICT_TRANSPORT_SECURITY, HSTS)),
            ))
            .wrap(
                DefaultHeaders::new()
                    .add((
                        "Content-Security-Policy",
                        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
                    ))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("X-Frame-Options", "DENY")),
            )
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), session_key.clone())
                    .cookie_name(SESSION_COOKIE.to_owned())
                    .cookie_secure(secure)
                    .cookie_http_only(true)
                    .cookie_same_site(SameSite::Lax)
                    .cookie_content_security(CookieContentSecurity::Private)
                    .build(),
            )
            .wrap(TracingLogger::<RedactedRootSpan>::new())
            .wrap_fn(crate::routes::metrics::observe)
            .wrap_fn(crate::routes::nonce::add_nonce)
            .app_data(state.clone())
            .app_data(json_config())
            .app_data(query_config())
            .app_data(form_config())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .configure(crate::routes::configure)
    })
    .workers(workers)
    // Signals are handled by `serve`, which drains held polls first.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The metrics listener: `/metrics` only, one worker.
fn metrics_server(state: web::Data<AppState>, listener: TcpListener) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(crate::routes::metrics::configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req| {
            let app_err = match &err {
                JsonPayloadError::ContentType => AppError::UnsupportedMediaType {
                    expected: "JSON (application/json)",
                },
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => AppError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                },
                JsonPayloadError::Deserialize(e) => {
                    AppError::bad_request("invalid_body", format!("The JSON body is invalid: {e}."))
                }
                _ => AppError::bad_request("invalid_body", "The request body could not be read."),
            };
            InternalError::from_response(err, app_err.error_response()).into()
        })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let app_err = AppError::bad_request(
            "invalid_query",
            format!("The query string is invalid: {err}."),
        );
        InternalError::from_response(err, app_err.error_response()).into()
    })
}

fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req| {
            let app_err = AppError::from_form_error(&err, MAX_BODY_BYTES);
            InternalError::from_response(err, app_err.error_response()).into()
        })
}

/// Expires due sessions and forgets idle rate-limit buckets, forever.
async fn purge_loop(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        state.limiters.retain_recent();
        state.realtime.forget_stale(std::time::Instant::now());
        let now = chrono::Utc::now();
        let device = crate::service::device::purge(&state, now, KEEP_ENDED_SESSIONS).await;
        logged(
            "device sessions expired, deleted",
            device.map(|(e, d)| e + d),
        );
        let browser = crate::service::sessions::purge(&state, now, KEEP_ENDED_SESSIONS).await;
        logged("browser sessions deleted", browser);
        let successors = crate::service::grants::purge_successors(&state, now).await;
        logged(
            "sealed refresh successors past the grace window wiped",
            successors,
        );
        let buckets = crate::service::limits::purge(&state).await;
        logged("full rate-limit buckets deleted", buckets);
        let ceremonies = crate::service::passkeys::purge(&state, now).await;
        logged(
            "expired passkey challenges and step-up proofs deleted",
            ceremonies,
        );
        let events = crate::service::audit::purge_events(&state, now).await;
        logged("security events past retention deleted", events);
        let proofs = crate::service::dpop::purge(&state, now).await;
        logged("DPoP proofs too old to replay deleted", proofs);
        let codes = crate::service::authorize::purge(&state, now).await;
        logged("ended authorization codes deleted", codes);
        let notices = crate::service::notices::purge(&state, now, KEEP_ENDED_SESSIONS).await;
        logged("security notices sent or given up on deleted", notices);
    }
}

/// Stores the poll intervals grown by `slow_down` on this instance, every
/// [`STORE_INTERVALS_EVERY`], forever: one statement a turn at most, off the
/// request path (see [`crate::realtime::PollPacer`]).
async fn store_intervals_loop(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(STORE_INTERVALS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match crate::service::device::store_grown_intervals(&state).await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "grown poll intervals stored"),
            Err(e) => tracing::warn!(error = ?e, "storing grown poll intervals failed; will retry"),
        }
    }
}

/// Logs what a purge did, or that it failed (it runs again next time).
fn logged(what: &str, result: Result<usize, crate::error::AppError>) {
    match result {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "purged: {what}"),
        Err(e) => tracing::warn!(error = ?e, "purge failed ({what}); will retry"),
    }
}

/// Raises this process's soft open-file limit to its hard limit and returns
/// it. Every held long-poll is a connection and so a descriptor, and the
/// usual soft default (1,024) would cap an instance at about a thousand
/// waiting CLIs; the hard limit is the one an operator set.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        // One below the hard limit: something to raise, and still plenty
        // for the tests running beside this one.
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        rlimit::Resource::NOFILE.set(hard - 1, hard).unwrap();
        let raised = raise_open_file_limit().unwrap();
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(soft, raised, "the answer is the limit now in force");
        assert_eq!(soft, hard, "the soft limit stays below the hard one");
    }
}
