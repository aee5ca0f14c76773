//! A private PostgreSQL cluster for running without `DATABASE_URL`.
//!
//! The cluster lives in a directory of our own (`pgdata/`, `run/`,
//! `postgres.log`) and is served by the machine's installed PostgreSQL
//! binaries. It listens only on a Unix socket in a 0700 directory, so "trust"
//! authentication admits nobody but the owning OS user (and root).
//!
//! Used by `envshield-server` when no `DATABASE_URL` is set, and by its test
//! support, which shares one cluster under `target/` between test binaries.
//! When run as root, every PostgreSQL binary runs as the `postgres` system
//! user (`initdb` and `postgres` refuse root).

mod binaries;
mod cluster;
mod command;
mod error;
mod url;
mod user;

#[cfg(test)]
mod testdir;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use error::LocalPgError;

use binaries::find_bin_dir;
use cluster::{lock_file, ServerState};
use command::{command_failed, command_line, run};
use error::io_err;
use url::{check_path_is_safe, percent_encode, socket_dir_for};
use user::{effective_uid, lookup_os_user, OsUser, SERVER_OS_USER};

/// Database role created by `initdb`; the URLs we hand out connect as it.
const DB_USER: &str = "envshield";
/// The socket lives in a private directory, so the default port cannot clash
/// with a system-wide server.
const PORT: u16 = 5432;
/// Bounds both `pg_ctl -w` and our own waits for a server someone else started.
const TIMEOUT_SECS: u64 = 60;

/// How to start a cluster.
/// How [`LocalPostgres::stop_with`] stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect every client, then shut down cleanly.
    Fast,
    /// Quit at once, as in a crash (recovery runs at the next start).
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The port: the socket's name, and the TCP port if one is listened on.
    pub port: u16,
    /// Extra server settings, `(name, value)`, e.g. `listen_addresses`,
    /// `ssl`, `ssl_cert_file`.
    pub settings: Vec<(String, String)>,
    /// Whether a server already running on this cluster becomes ours, to
    /// stop when this value drops: for a sole user such as the server,
    /// whose previous process may have been killed and left it running.
    /// Off, a running server is shared and left running (the tests share
    /// one cluster between processes).
    pub take_over_running: bool,
}

impl Default for Options {
    /// A Unix socket only, on the default port.
    fn default() -> Self {
        Self {
            port: PORT,
            settings: Vec::new(),
            take_over_running: false,
        }
    }
}

/// A private PostgreSQL cluster run from the machine's installed binaries.
///
/// Dropping the value stops the server if this value started it, unless
/// [`LocalPostgres::keep_running`] was called.
#[derive(Debug)]
pub struct LocalPostgres {
    bin_dir: PathBuf,
    cluster_dir: PathBuf,
    pgdata: PathBuf,
    log_file: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// `Some` when we are root and every PostgreSQL binary runs as `postgres`.
    run_as: Option<OsUser>,
    euid: u32,
    /// Extra server settings (`-c name=value`), after ours.
    settings: Vec<(String, String)>,
    started: bool,
    keep_running: bool,
    take_over_running: bool,
}

impl LocalPostgres {
    /// Find binaries, `initdb` the cluster in `cluster_dir` if it has none, start the
    /// server if it is not already running there, wait until it accepts connections.
    ///
    /// Concurrent calls on the same directory (from any process) are
    /// serialised, so exactly one of them starts the server and the others
    /// reuse it.
    ///
    /// # Errors
    ///
    /// When no binaries are found, the directory cannot be prepared, or
    /// `initdb`/`pg_ctl` fail (the error carries their stderr and the log tail).
    pub fn start(cluster_dir: &Path) -> Result<LocalPostgres, LocalPgError> {
        Self::start_with(cluster_dir, &Options::default())
    }

    /// Like [`LocalPostgres::start`], with `options` (a port, server
    /// settings such as TCP listening and TLS). A server already running in
    /// the cluster is reused as it is.
    ///
    /// # Errors
    ///
    /// As [`LocalPostgres::start`].
    pub fn start_with(
        cluster_dir: &Path,
        options: &Options,
    ) -> Result<LocalPostgres, LocalPgError> {
        let bin_dir = find_bin_dir()?;
        let euid = effective_uid();
        let run_as = if euid == 0 {
            Some(lookup_os_user(SERVER_OS_USER)?.ok_or(LocalPgError::NoPostgresUser)?)
        } else {
            None
        };

        // Checked before creating anything, and again once symlinks are resolved.
        check_path_is_safe(
            &std::path::absolute(cluster_dir).map_err(io_err("resolve path", cluster_dir))?,
        )?;
        fs::create_dir_all(cluster_dir).map_err(io_err("create directory", cluster_dir))?;
        let cluster_dir =
            fs::canonicalize(cluster_dir).map_err(io_err("resolve path", cluster_dir))?;
        check_path_is_safe(&cluster_dir)?;

        let mut pg = LocalPostgres {
            bin_dir,
            pgdata: cluster_dir.join("pgdata"),
            log_file: cluster_dir.join("postgres.log"),
            socket_dir: socket_dir_for(&cluster_dir),
            cluster_dir,
            port: options.port,
            run_as,
            euid,
            settings: options.settings.clone(),
            take_over_running: options.take_over_running,
            started: false,
            keep_running: false,
        };
        if pg.run_as.is_some() {
            pg.make_reachable_by_server_user()?;
        }

        // Held until the server is ready, so a concurrent `start` finds it
        // running instead of racing us through initdb or pg_ctl.
        let lock = lock_file(&pg.cluster_dir.join(".lock"))?;
        pg.prepare_private_dir(&pg.socket_dir)?;
        pg.prepare_log_file()?;
        pg.ensure_cluster()?;
        pg.start_or_reuse()?;
        drop(lock);
        Ok(pg)
    }

    /// libpq connection URL for `database` (user `envshield`), e.g.
    /// `postgres://envshield@/DB?host=/abs/socket/dir&port=5432` (percent-encode the host path).
    #[must_use]
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{DB_USER}@/{}?host={}&port={}",
            percent_encode(database.as_bytes()),
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
            self.port
        )
    }

    /// Create `database` if it does not exist (run the cluster's own `psql`/`createdb` binary).
    ///
    /// Safe to call concurrently: losing a creation race to another process
    /// counts as success.
    ///
    /// # Errors
    ///
    /// When the name is unusable or `psql` fails (e.g. the server is down).
    pub fn ensure_database(&self, database: &str) -> Result<(), LocalPgError> {
        validate_database_name(database)?;
        // psql quotes `:'db'` itself and `%I` quotes the identifier, so any
        // name is safe; variables are only interpolated in scripts, hence stdin.
        let create = "SELECT format('CREATE DATABASE %I', :'db') \
                      WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \\gexec\n";
        match self.psql(database, create) {
            Ok(_) => Ok(()),
            Err(err) => {
                let exists = "SELECT 1 FROM pg_database WHERE datname = :'db';\n";
                match self.psql(database, exists) {
                    Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "1" => Ok(()),
                    _ => Err(err),
                }
            }
        }
    }

    /// Stop the server (`pg_ctl stop -m fast`) if this value started it.
    ///
    /// # Errors
    ///
    /// When `pg_ctl stop` fails and the server is still running.
    pub fn stop(&mut self) -> Result<(), LocalPgError> {
        self.stop_with(StopMode::Fast)
    }

    /// Stops the server the way `mode` says (`pg_ctl stop -m …`): `Fast`
    /// as in a clean shutdown, `Immediate` as in a crash.
    pub fn stop_with(&mut self, mode: StopMode) -> Result<(), LocalPgError> {
        if !self.started {
            return Ok(());
        }
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", mode.as_str(), "-w", "-t"])
            .arg(TIMEOUT_SECS.to_string());
        let out = run(&mut cmd)?;
        if !out.status.success() {
            // Someone else stopping it first is not a failure of ours.
            if matches!(self.server_state(), Ok(ServerState::Running(_)) | Err(_)) {
                return Err(command_failed(&cmd, &out));
            }
        }
        self.started = false;
        tracing::info!(pgdata = %self.pgdata.display(), "stopped local PostgreSQL");
        Ok(())
    }

    /// Starts the server again after [`LocalPostgres::stop_with`], on the
    /// same socket and settings.
    pub fn start_again(&mut self) -> Result<(), LocalPgError> {
        self.start_or_reuse()
    }

    /// A restart: stopped with `mode`, then started again.
    pub fn restart(&mut self, mode: StopMode) -> Result<(), LocalPgError> {
        self.stop_with(mode)?;
        self.start_again()
    }

    /// Stops the server once no process holds a shared lock on `users` any
    /// more: a detached `flock -x users pg_ctl stop` waits for them all to
    /// exit (the OS releases their locks however they end), then stops it.
    /// For servers shared between processes that come and go, such as test
    /// binaries: each holds a shared lock on `users` (taken before it starts
    /// or reuses the server) for as long as it uses the server. A process
    /// that finds the server stopped after that starts it again.
    pub fn stop_when_unused(&self, users: &Path) -> Result<(), LocalPgError> {
        use std::os::unix::process::CommandExt;
        let mut stop = self.pg_command("pg_ctl");
        stop.arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w"]);
        let mut cmd = Command::new("flock");
        cmd.arg("-x")
            .arg(users)
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir(&self.cluster_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: an interrupted test run leaves it to
            // do its job.
            .process_group(0);
        cmd.spawn().map_err(|source| LocalPgError::Spawn {
            command: command_line(&cmd),
            source,
        })?;
        Ok(())
    }

    /// Leave the server running when this value is dropped (used by the test harness, whose
    /// cluster is shared by several test processes).
    pub fn keep_running(&mut self) {
        self.keep_running = true;
    }

    /// Directory of the PostgreSQL binaries in use (e.g. for pgbench/psql users).
    #[must_use]
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    fn psql(&self, database: &str, script: &str) -> Result<Output, LocalPgError> {
        let mut cmd = self.pg_command("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v"])
            .arg(format!("db={database}"))
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", DB_USER, "-d", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LocalPgError::Spawn {
            command: command_line(&cmd),
            source,
        })?;
        let written = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(script.as_bytes()),
            None => Ok(()),
        };
        let out = child
            .wait_with_output()
            .map_err(|source| LocalPgError::Spawn {
                command: command_line(&cmd),
                source,
            })?;
        // A failed exit explains a broken pipe better than the pipe error does.
        if !out.status.success() {
            return Err(command_failed(&cmd, &out));
        }
        written.map_err(|source| LocalPgError::Spawn {
            command: command_line(&cmd),
            source,
        })?;
        Ok(out)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.keep_running {
            return;
        }
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, pgdata = %self.pgdata.display(), "could not stop local PostgreSQL");
        }
    }
}

fn validate_database_name(name: &str) -> Result<(), LocalPgError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 63 {
        // PostgreSQL would silently truncate it, and later lookups by the full
        // name would never match.
        "it is longer than 63 bytes"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(LocalPgError::InvalidDatabaseName {
        name: name.to_owned(),
        reason,
    })
}
