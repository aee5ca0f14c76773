//! Test support: a private PostgreSQL shared by test processes, a fresh
//! database per test cloned from a migrated template, and a real server on
//! its own thread. Enabled by the `testing` feature.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use diesel::{Connection, PgConnection, RunQueryDsl};
use pg_local::LocalPostgres;
use secrecy::SecretString;

use crate::config::Config;
use crate::crypto;
use crate::db;
use crate::startup::Application;

mod helper;
pub mod mail;
pub mod oidc;

struct Cluster {
    admin_url: String,
    template: String,
    _pg: LocalPostgres,
    /// This process's shared lock on `users.lock`, held until it exits.
    _user: std::fs::File,
}

/// Where the shared test cluster lives: `ENVSHIELD_TEST_PG_DIR`, or
/// `target/envshield-test-pg` (found from the running test binary).
fn cluster_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ENVSHIELD_TEST_PG_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test binary> → target/
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    target.join("envshield-test-pg")
}

fn cluster() -> Result<&'static Cluster, String> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| start_cluster().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn start_cluster() -> anyhow::Result<Cluster> {
    let dir = cluster_dir();
    std::fs::create_dir_all(&dir)?;
    // Shared by every test process (server and CLI suites): each holds
    // `users.lock` shared for its whole life, and a watcher stops the
    // cluster once the last of them has exited, so `cargo test` leaves
    // nothing running. The lock comes first: a process that finds the
    // cluster being stopped waits, then starts it again.
    let users = dir.join("users.lock");
    let user = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&users)?;
    user.lock_shared()?;
    let mut pg = LocalPostgres::start(&dir)?;
    pg.keep_running();
    pg.stop_when_unused(&users)?;
    let admin_url = pg.url("postgres");
    let template = ensure_template(&admin_url, &pg)?;
    Ok(Cluster {
        admin_url,
        template,
        _pg: pg,
        _user: user,
    })
}

/// A migrated template database named after the schema, built once.
fn ensure_template(admin_url: &str, pg: &LocalPostgres) -> anyhow::Result<String> {
    // Named after the schema and the migration list, so a new migration
    // (even one that changes no column) builds a new template.
    use diesel::migration::MigrationSource;
    let mut fingerprint = include_str!("db/schema.rs").to_owned();
    let migrations = MigrationSource::<diesel::pg::Pg>::migrations(&db::MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("reading embedded migrations: {e}"))?;
    for m in migrations {
        fingerprint.push_str(&m.name().to_string());
    }
    let digest = hex::encode(&crypto::sha256(fingerprint.as_bytes())[..6]);
    let name = format!("envshield_tmpl_{digest}");
    let mut admin = PgConnection::establish(admin_url).context("connect to test cluster")?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let exists: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut admin)?;
    if exists.exists {
        return Ok(name);
    }
    // Build under a private name, then rename: another process racing us
    // either wins the rename (we drop ours) or loses it.
    let building = format!("{name}_b{}", std::process::id());
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\"")).execute(&mut admin)?;
    diesel::sql_query(format!("CREATE DATABASE \"{building}\"")).execute(&mut admin)?;
    {
        let mut conn = PgConnection::establish(&pg.url(&building))?;
        db::run_migrations(&mut conn)?;
    }
    let renamed = diesel::sql_query(format!(
        "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
    ))
    .execute(&mut admin);
    if renamed.is_err() {
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\"")).execute(&mut admin)?;
    }
    Ok(name)
}

/// A database of its own for one test, dropped when this value drops.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// Connection URL.
    pub url: String,
    /// Whether dropping this value drops the database.
    owned: bool,
}

impl TestDatabase {
    /// Clones the migrated template (milliseconds).
    pub fn create() -> anyhow::Result<Self> {
        let cluster = cluster().map_err(anyhow::Error::msg)?;
        let name = format!(
            "envshield_test_{}",
            hex::encode(crypto::random_bytes::<8>())
        );
        let mut admin = PgConnection::establish(&cluster.admin_url)?;
        diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
            cluster.template
        ))
        .execute(&mut admin)?;
        let url = cluster._pg.url(&name);
        Ok(Self {
            name,
            url,
            owned: true,
        })
    }

    /// A direct connection, for arranging and inspecting rows.
    pub fn connect(&self) -> PgConnection {
        match PgConnection::establish(&self.url) {
            Ok(c) => c,
            Err(e) => panic!("cannot connect to test database {}: {e}", self.name),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Ok(cluster) = cluster() {
            if let Ok(mut admin) = PgConnection::establish(&cluster.admin_url) {
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .execute(&mut admin);
            }
        }
    }
}

/// Configuration for tests: fresh random keys (no files), cheap bcrypt,
/// generous rate limits, one worker.
pub fn test_config(port: u16) -> Config {
    let mut vars = HashMap::new();
    let key32 = || STANDARD.encode(crypto::random_bytes::<32>());
    vars.insert("TOKEN_SEAL_KEY".to_owned(), key32());
    vars.insert("CODE_HMAC_KEY".to_owned(), key32());
    vars.insert(
        "SESSION_KEY".to_owned(),
        STANDARD.encode(crypto::random_bytes::<64>()),
    );
    vars.insert("BIND_ADDR".to_owned(), format!("127.0.0.1:{port}"));
    vars.insert("APP_URL".to_owned(), format!("http://127.0.0.1:{port}"));
    vars.insert("BCRYPT_COST".to_owned(), "4".to_owned());
    vars.insert("WORKERS".to_owned(), "2".to_owned());
    vars.insert("RATE_LIMIT_START_PER_MIN".to_owned(), "10000".to_owned());
    vars.insert("RATE_LIMIT_POLL_PER_MIN".to_owned(), "10000".to_owned());
    vars.insert("RATE_LIMIT_COMPLETE_PER_MIN".to_owned(), "10000".to_owned());
    vars.insert("RATE_LIMIT_LOGIN_PER_MIN".to_owned(), "10000".to_owned());
    vars.insert(
        "RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_HOUR".to_owned(),
        "10000".to_owned(),
    );
    match Config::from_map(&vars) {
        Ok(c) => c,
        Err(e) => panic!("test configuration is invalid: {e}"),
    }
}

/// A real server on its own thread and runtime, on its own database.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// Where `/metrics` is served, when `metrics_bind_addr` is set.
    pub metrics_port: Option<u16>,
    /// The configuration it runs with.
    pub config: Arc<Config>,
    handle: actix_web::dev::ServerHandle,
    realtime: Arc<crate::realtime::Realtime>,
    notices: Option<Arc<crate::db::models::notice_outbox::Channels>>,
    thread: Option<JoinHandle<()>>,
    /// Its database (dropped after the server stops).
    pub db: TestDatabase,
}

impl TestServer {
    /// Starts a server with [`test_config`], adjusted by `customize`.
    pub fn spawn(customize: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Self::spawn_on(TestDatabase::create()?, customize, None)
    }

    /// A server on a database someone else runs (a fault test's own
    /// cluster), which it migrates; nothing is dropped afterwards.
    pub fn spawn_on_url(url: &str, customize: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let db = TestDatabase {
            name: String::new(),
            url: url.to_owned(),
            owned: false,
        };
        Self::spawn_on(db, customize, None)
    }

    /// A second instance on `first`'s database and keys, as behind a load
    /// balancer. Drop it before `first`, which owns the database.
    pub fn spawn_sharing(first: &TestServer) -> anyhow::Result<Self> {
        let db = TestDatabase {
            name: first.db.name.clone(),
            url: first.db.url.clone(),
            owned: false,
        };
        let limits = first.config.rate_limits;
        Self::spawn_on(
            db,
            |c| c.rate_limits = limits,
            Some(first.config.keys.clone()),
        )
    }

    fn spawn_on(
        db: TestDatabase,
        customize: impl FnOnce(&mut Config),
        keys: Option<crate::config::Keys>,
    ) -> anyhow::Result<Self> {
        crate::telemetry::init_test_subscriber();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut config = test_config(port);
        if let Some(keys) = keys {
            config.keys = keys;
        }
        customize(&mut config);
        let config = Arc::new(config);
        let url = SecretString::from(db.url.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = (*config).clone();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                match Application::build_on(cfg, url, listener).await {
                    Ok(app) => {
                        let _ = tx.send(Ok((
                            app.handle(),
                            app.realtime(),
                            app.metrics_port(),
                            app.notice_channels(),
                        )));
                        if let Err(e) = app.run_until_stopped().await {
                            tracing::error!(error = %e, "test server failed");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let (handle, realtime, metrics_port, notices) =
            rx.recv().context("test server thread died")??;
        // Tests start once the instance hears notifications, as a running
        // server does moments after start-up (bounded: a listener that
        // cannot connect fails the test here, with a reason).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !realtime.is_listening() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the test server's notification listener did not connect"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(Self {
            address: format!("http://127.0.0.1:{port}"),
            port,
            metrics_port,
            config,
            handle,
            realtime,
            notices,
            thread: Some(thread),
            db,
        })
    }

    /// Long-polls waiting on this instance right now.
    pub fn waiting_polls(&self) -> usize {
        self.realtime.waiting()
    }

    /// Makes the security notice worker look for due notices now (a test
    /// that moved a retry's due time forward calls it instead of waiting).
    pub fn deliver_notices_now(&self) {
        if let Some(channels) = &self.notices {
            channels.wake.notify_one();
        }
    }

    /// Base URL of the v1 API.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1", self.address)
    }
}

impl TestServer {
    /// Stops as SIGTERM stops a real instance: held polls are released,
    /// then requests in flight finish.
    pub fn stop_gracefully(&self) {
        self.realtime.drain();
        self.stop(true);
    }

    /// Stops from a thread and runtime of our own: the caller may be inside
    /// an async runtime, where blocking on a future is not allowed.
    fn stop(&self, graceful: bool) {
        let handle = self.handle.clone();
        let stopper = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(handle.stop(graceful));
            }
        });
        let _ = stopper.join();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop(false);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
