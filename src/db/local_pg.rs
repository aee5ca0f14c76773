//! A private PostgreSQL cluster for running without `DATABASE_URL`.
//!
//! The cluster lives in a directory of our own (`pgdata/`, `run/`,
//! `postgres.log`) and is served by the machine's installed PostgreSQL
//! binaries. It listens only on a Unix socket in a 0700 directory, so "trust"
//! authentication admits nobody but the owning OS user (and root).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Database role created by `initdb`; the URLs we hand out connect as it.
const DB_USER: &str = "envshield";
/// The socket lives in a private directory, so the default port cannot clash
/// with a system-wide server.
const PORT: u16 = 5432;
/// `initdb` and `postgres` refuse to run as root; this is who runs them then.
const SERVER_OS_USER: &str = "postgres";
/// Debian/Ubuntu install server binaries here, outside PATH.
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";
/// `sun_path` holds 108 bytes on Linux (104 on the BSDs); stay well below.
const MAX_SOCKET_PATH: usize = 100;
/// Bounds both `pg_ctl -w` and our own waits for a server someone else started.
const TIMEOUT_SECS: u64 = 60;
/// What a directory must hold to run a cluster; `pg_ctl` and `initdb` look for
/// `postgres` next to themselves.
const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// How much of a failing command's stderr (or the server log) errors carry.
const TAIL_LINES: usize = 20;

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
    started: bool,
    keep_running: bool,
}

/// Why the local PostgreSQL cluster could not be set up, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    /// No directory with `initdb`, `pg_ctl` and `postgres` was found.
    #[error(
        "no PostgreSQL server binaries found (looked on PATH, in `pg_config --bindir` and \
         under /usr/lib/postgresql/*/bin). Install PostgreSQL (Debian/Ubuntu: `apt-get install \
         postgresql`) or set DATABASE_URL to an existing database."
    )]
    BinariesNotFound,

    /// Running as root, but there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as \
         (initdb and postgres refuse to run as root). Install PostgreSQL from your \
         distribution's packages (which creates that user), run as an ordinary user, \
         or set DATABASE_URL to an existing database."
    )]
    NoPostgresUser,

    /// The cluster directory cannot be used as it is.
    #[error("cannot use {} for the local PostgreSQL cluster: {reason}", .path.display())]
    UnusablePath {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        reason: String,
    },

    /// A filesystem operation failed.
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        /// What we were doing, e.g. "create directory".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// An external command could not be run at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        source: io::Error,
    },

    /// An external command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its stderr (or stdout when stderr was empty).
        stderr: String,
    },

    /// `pg_ctl start` failed; the server log usually says why.
    #[error(
        "could not start PostgreSQL: `{command}` failed ({status}): {stderr}\n\
         last lines of {}:\n{log_tail}",
        .log.display()
    )]
    Start {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its stderr.
        stderr: String,
        /// The server log file.
        log: PathBuf,
        /// The last lines of the server log.
        log_tail: String,
    },

    /// A server already running in the cluster cannot be used.
    #[error("the PostgreSQL server running in {} cannot be used: {reason}", .pgdata.display())]
    ServerUnusable {
        /// The cluster's data directory.
        pgdata: PathBuf,
        /// Why, and what to do about it.
        reason: String,
    },

    /// The database name cannot be used.
    #[error("invalid database name {name:?}: {reason}")]
    InvalidDatabaseName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}

/// An OS account, as far as we need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OsUser {
    uid: u32,
    gid: u32,
}

/// What `pg_ctl status` plus `postmaster.pid` tell us about the cluster.
#[derive(Debug)]
enum ServerState {
    Stopped,
    /// `postmaster.pid` names a live process that is not this cluster's
    /// postmaster (typically a PID reused after a crash or container restart).
    StalePidFile(u32),
    Running(PidFile),
}

/// The fields of `postmaster.pid` we use.
#[derive(Debug)]
struct PidFile {
    pid: u32,
    port: Option<u16>,
    socket_dir: Option<PathBuf>,
    /// "starting", "ready", "stopping" or "standby"; absent early in startup.
    status: Option<String>,
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
        let bin_dir = find_bin_dir()?;
        let euid = effective_uid()?;
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
            port: PORT,
            run_as,
            euid,
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
        if !self.started {
            return Ok(());
        }
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t"])
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

    /// The server user must reach `pgdata/`; only the parent and the cluster
    /// directory itself are adjusted, as loosening further up is not ours to do.
    fn make_reachable_by_server_user(&self) -> Result<(), LocalPgError> {
        if let Some(parent) = self.cluster_dir.parent() {
            add_other_search_permission(parent)?;
        }
        add_other_search_permission(&self.cluster_dir)?;

        let mut cmd = self.wrap(Command::new("test"));
        cmd.arg("-x").arg(&self.cluster_dir);
        let out = run(&mut cmd)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LocalPgError::UnusablePath {
                path: self.cluster_dir.clone(),
                reason: format!(
                    "the `{SERVER_OS_USER}` system user (which runs PostgreSQL because we are \
                     root) cannot reach it; make its ancestor directories traversable \
                     (`chmod o+x`) or choose a directory elsewhere"
                ),
            })
        }
    }

    /// The owner PostgreSQL files must have: the server user when we are
    /// root, otherwise ourselves.
    fn server_owner(&self) -> u32 {
        self.run_as.map_or(self.euid, |u| u.uid)
    }

    fn chown_to_server_user(&self, path: &Path) -> Result<(), LocalPgError> {
        match self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(io_err("change owner of", path)),
            None => Ok(()),
        }
    }

    /// Creates (or checks) a 0700 directory owned by the server user. An
    /// existing one must already belong to us or to the server user: under
    /// /tmp anyone could have planted it to intercept our connections.
    fn prepare_private_dir(&self, dir: &Path) -> Result<(), LocalPgError> {
        match fs::symlink_metadata(dir) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(LocalPgError::UnusablePath {
                        path: dir.to_path_buf(),
                        reason: "it exists but is not a directory; remove it".into(),
                    });
                }
                if meta.uid() != self.server_owner() && meta.uid() != self.euid {
                    return Err(LocalPgError::UnusablePath {
                        path: dir.to_path_buf(),
                        reason: format!(
                            "it is owned by uid {}, not by uid {}; remove it",
                            meta.uid(),
                            self.server_owner()
                        ),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_err("create directory", dir))?;
            }
            Err(e) => return Err(io_err("inspect", dir)(e)),
        }
        self.chown_to_server_user(dir)?;
        // The umask may have widened nothing, but an existing directory might
        // have been loosened by hand.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("set permissions of", dir))
    }

    fn prepare_log_file(&self) -> Result<(), LocalPgError> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.log_file)
            .map_err(io_err("create", &self.log_file))?;
        self.chown_to_server_user(&self.log_file)
    }

    /// Runs `initdb` unless `pgdata/` already holds a cluster. The cluster is
    /// built beside `pgdata/` and renamed into place, so an interrupted initdb
    /// never leaves a half-made cluster that later starts would trust.
    fn ensure_cluster(&self) -> Result<(), LocalPgError> {
        let version_file = self.pgdata.join("PG_VERSION");
        if version_file
            .try_exists()
            .map_err(io_err("inspect", &version_file))?
        {
            return Ok(());
        }
        if self
            .pgdata
            .try_exists()
            .map_err(io_err("inspect", &self.pgdata))?
            && fs::remove_dir(&self.pgdata).is_err()
        {
            return Err(LocalPgError::UnusablePath {
                path: self.pgdata.clone(),
                reason: "it exists but holds no PostgreSQL cluster (no PG_VERSION); \
                         move it away so a new cluster can be created"
                    .into(),
            });
        }

        let building = self.cluster_dir.join("pgdata.initdb");
        if building
            .try_exists()
            .map_err(io_err("inspect", &building))?
        {
            fs::remove_dir_all(&building).map_err(io_err("remove leftover", &building))?;
        }
        self.prepare_private_dir(&building)?;

        tracing::info!(pgdata = %self.pgdata.display(), "creating local PostgreSQL cluster");
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D").arg(&building).args([
            "--auth=trust",
            &format!("--username={DB_USER}"),
            "--encoding=UTF8",
            "--locale=C",
        ]);
        if let Err(e) = run_checked(&mut cmd) {
            let _ = fs::remove_dir_all(&building);
            return Err(e);
        }
        fs::rename(&building, &self.pgdata).map_err(io_err("rename into place", &building))
    }

    fn start_or_reuse(&mut self) -> Result<(), LocalPgError> {
        let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
        loop {
            match self.server_state()? {
                ServerState::Stopped => return self.start_server(),
                ServerState::StalePidFile(pid) => {
                    tracing::warn!(
                        pid,
                        pgdata = %self.pgdata.display(),
                        "removing stale postmaster.pid (its PID belongs to another process)"
                    );
                    let pid_file = self.pgdata.join("postmaster.pid");
                    fs::remove_file(&pid_file).map_err(io_err("remove", &pid_file))?;
                    return self.start_server();
                }
                ServerState::Running(info) if info.status.as_deref() == Some("ready") => {
                    return self.adopt(info);
                }
                ServerState::Running(info) => {
                    if Instant::now() >= deadline {
                        return Err(LocalPgError::ServerUnusable {
                            pgdata: self.pgdata.clone(),
                            reason: format!(
                                "it (PID {}) did not become ready within {TIMEOUT_SECS} \
                                 seconds (status {:?}); see {}",
                                info.pid,
                                info.status.as_deref().unwrap_or("unknown"),
                                self.log_file.display()
                            ),
                        });
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Uses a server someone else started. Its socket directory and port come
    /// from `postmaster.pid`, since it may have been started with other ones.
    fn adopt(&mut self, info: PidFile) -> Result<(), LocalPgError> {
        let (Some(socket_dir), Some(port)) = (info.socket_dir, info.port) else {
            return Err(LocalPgError::ServerUnusable {
                pgdata: self.pgdata.clone(),
                reason: format!(
                    "it (PID {}) listens on no Unix socket; stop it (`pg_ctl stop -D {}`)",
                    info.pid,
                    self.pgdata.display()
                ),
            });
        };
        tracing::info!(
            pid = info.pid,
            pgdata = %self.pgdata.display(),
            "reusing running local PostgreSQL"
        );
        self.socket_dir = socket_dir;
        self.port = port;
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), LocalPgError> {
        // No server of this cluster runs and the socket directory is ours
        // alone, so leftover socket lock files can only be stale; the server
        // would refuse to start if one named a PID that is alive again.
        for name in [format!(".s.PGSQL.{PORT}.lock"), format!(".s.PGSQL.{PORT}")] {
            let path = self.socket_dir.join(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove stale", &path)(e));
                }
                _ => {}
            }
        }

        // pg_ctl hands these to `/bin/sh -c`, hence the shell quoting.
        let options = format!(
            "-c listen_addresses='' -c port={PORT} -c unix_socket_directories={} \
             -c max_connections=200 -c shared_buffers=64MB",
            shell_quote(&guc_list_item(&self.socket_dir.to_string_lossy()))
        );
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t"])
            .arg(TIMEOUT_SECS.to_string())
            .arg("-o")
            .arg(options)
            .arg("start");
        tracing::info!(pgdata = %self.pgdata.display(), "starting local PostgreSQL");
        let out = run(&mut cmd)?;
        if !out.status.success() {
            // A server that missed the deadline keeps starting; nobody would
            // own it, so stop it rather than leave it behind.
            if let Ok(ServerState::Running(_)) = self.server_state() {
                let mut stop = self.pg_command("pg_ctl");
                stop.arg("stop")
                    .arg("-D")
                    .arg(&self.pgdata)
                    .args(["-m", "fast"]);
                if let Err(e) = run_checked(&mut stop) {
                    tracing::warn!(error = %e, "could not stop the server that failed to start");
                }
            }
            return Err(LocalPgError::Start {
                command: command_line(&cmd),
                status: out.status,
                stderr: output_tail(&out),
                log: self.log_file.clone(),
                log_tail: file_tail(&self.log_file),
            });
        }
        self.started = true;
        self.port = PORT;
        Ok(())
    }

    fn server_state(&self) -> Result<ServerState, LocalPgError> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("status").arg("-D").arg(&self.pgdata);
        let out = run(&mut cmd)?;
        match out.status.code() {
            Some(3) => Ok(ServerState::Stopped),
            Some(0) => {
                let path = self.pgdata.join("postmaster.pid");
                let text = match fs::read_to_string(&path) {
                    Ok(text) => text,
                    // It exited between pg_ctl's look and ours.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Ok(ServerState::Stopped);
                    }
                    Err(e) => return Err(io_err("read", &path)(e)),
                };
                let info = parse_pid_file(&text).ok_or_else(|| LocalPgError::ServerUnusable {
                    pgdata: self.pgdata.clone(),
                    reason: format!("{} is not a valid PID file", path.display()),
                })?;
                if self.is_other_process(info.pid) {
                    Ok(ServerState::StalePidFile(info.pid))
                } else {
                    Ok(ServerState::Running(info))
                }
            }
            _ => Err(command_failed(&cmd, &out)),
        }
    }

    /// pg_ctl only checks that the PID is alive. A postmaster's working
    /// directory is its data directory, so any other working directory
    /// proves the PID was reused. Without /proc we trust pg_ctl.
    fn is_other_process(&self, pid: u32) -> bool {
        match (
            fs::read_link(format!("/proc/{pid}/cwd")),
            fs::canonicalize(&self.pgdata),
        ) {
            (Ok(cwd), Ok(pgdata)) => cwd != pgdata,
            _ => false,
        }
    }

    /// `bin_dir/<program>`, run as the server user when we are root.
    fn pg_command(&self, program: &str) -> Command {
        self.wrap(Command::new(self.bin_dir.join(program)))
    }

    fn wrap(&self, inner: Command) -> Command {
        let mut cmd = match self.run_as {
            Some(_) => {
                let mut cmd = Command::new(runuser_path());
                cmd.args(["-u", SERVER_OS_USER, "--"])
                    .arg(inner.get_program())
                    .args(inner.get_args());
                cmd
            }
            None => inner,
        };
        // The cluster directory is reachable by the server user, unlike
        // e.g. /root, which initdb and postgres would fail to chdir back to.
        cmd.current_dir(&self.cluster_dir).stdin(Stdio::null());
        // PG* variables (PGHOST, PGOPTIONS, PGDATA, ...) would silently
        // redirect or alter what the tools do.
        for (name, _) in std::env::vars_os() {
            if name.as_bytes().starts_with(b"PG") {
                cmd.env_remove(name);
            }
        }
        cmd
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

/// Searches the real PATH, `pg_config` and the Debian layout.
fn find_bin_dir() -> Result<PathBuf, LocalPgError> {
    find_bin_dir_in(
        std::env::var_os("PATH").as_deref(),
        Path::new(VERSIONED_ROOT),
    )
}

/// Binary discovery with injectable search roots, so tests can simulate a
/// machine without PostgreSQL.
fn find_bin_dir_in(
    path_var: Option<&OsStr>,
    versioned_root: &Path,
) -> Result<PathBuf, LocalPgError> {
    let path_dirs: Vec<PathBuf> = path_var
        .map(|p| {
            std::env::split_paths(p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();

    for dir in &path_dirs {
        let initdb = dir.join("initdb");
        if !is_executable(&initdb) {
            continue;
        }
        // PATH often holds symlinks to some of the tools only (e.g.
        // /usr/local/bin/initdb); the directory they point into is complete.
        if let Some(real_dir) = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if has_server_binaries(&real_dir) {
                return Ok(real_dir);
            }
        }
        if has_server_binaries(dir) {
            return Ok(canonical_or_same(dir));
        }
    }

    if let Some(pg_config) = path_dirs
        .iter()
        .map(|d| d.join("pg_config"))
        .find(|p| is_executable(p))
    {
        let output = Command::new(&pg_config)
            .arg("--bindir")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        // pg_config comes with client development packages too; when it
        // fails or points at client tools only we keep looking.
        if let Ok(out) = output {
            if out.status.success() {
                let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
                if has_server_binaries(&dir) {
                    return Ok(canonical_or_same(&dir));
                }
            }
        }
    }

    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(versioned_root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(&entry.file_name().to_string_lossy())?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| has_server_binaries(dir))
        .map(|dir| canonical_or_same(&dir))
        .ok_or(LocalPgError::BinariesNotFound)
}

/// "15" -> [15], "9.6" -> [9, 6]; anything else (e.g. "16beta1") is skipped.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|b| is_executable(&dir.join(b)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

fn canonical_or_same(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The effective uid decides whether we must hand the binaries to the
/// `postgres` user. Read without libc: the crate forbids `unsafe`.
fn effective_uid() -> Result<u32, LocalPgError> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        // "Uid:\treal\teffective\tsaved\tfs"
        let euid = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok());
        if let Some(euid) = euid {
            return Ok(euid);
        }
    }
    let mut cmd = Command::new("id");
    cmd.arg("-u").stdin(Stdio::null());
    let out = run_checked(&mut cmd)?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| command_failed(&cmd, &out))
}

/// Looks `name` up through NSS (`getent`), falling back to /etc/passwd where
/// getent is missing. `None` if the user does not exist.
fn lookup_os_user(name: &str) -> Result<Option<OsUser>, LocalPgError> {
    let mut cmd = Command::new("getent");
    cmd.args(["passwd", name]).stdin(Stdio::null());
    match cmd.output() {
        Ok(out) if out.status.success() => {
            Ok(parse_passwd(&String::from_utf8_lossy(&out.stdout), name))
        }
        // getent's documented "key not found".
        Ok(out) if out.status.code() == Some(2) => Ok(None),
        Ok(out) => Err(command_failed(&cmd, &out)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let passwd = Path::new("/etc/passwd");
            let text = fs::read_to_string(passwd).map_err(io_err("read", passwd))?;
            Ok(parse_passwd(&text, name))
        }
        Err(source) => Err(LocalPgError::Spawn {
            command: command_line(&cmd),
            source,
        }),
    }
}

fn parse_passwd(text: &str, name: &str) -> Option<OsUser> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [user, _, uid, gid, ..] if *user == name => Some(OsUser {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    })
}

fn add_other_search_permission(dir: &Path) -> Result<(), LocalPgError> {
    let mode = fs::metadata(dir).map_err(io_err("inspect", dir))?.mode() & 0o7777;
    if mode & 0o001 == 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001))
            .map_err(io_err("set permissions of", dir))?;
        tracing::warn!(
            dir = %dir.display(),
            "added o+x so the `postgres` system user can reach the local PostgreSQL cluster"
        );
    }
    Ok(())
}

/// pg_ctl pastes the data directory and log path into a `/bin/sh -c` line
/// inside double quotes, so characters special there would break (or
/// inject into) that command; other tools need a valid UTF-8 socket path.
fn check_path_is_safe(path: &Path) -> Result<(), LocalPgError> {
    let unusable = |reason: &str| LocalPgError::UnusablePath {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let text = path
        .to_str()
        .ok_or_else(|| unusable("the path is not valid UTF-8"))?;
    if text
        .chars()
        .any(|c| matches!(c, '"' | '$' | '`' | '\\') || c.is_control())
    {
        return Err(unusable(
            "the path contains a character (\", $, `, \\ or a control character) that \
             pg_ctl cannot pass through its shell; choose another directory",
        ));
    }
    Ok(())
}

/// `<cluster>/run`, unless the socket path would not fit in `sun_path`; then
/// a directory under /tmp named after the cluster, stable across builds (a
/// std hasher is not) so every process finds the same one.
fn socket_dir_for(cluster_dir: &Path) -> PathBuf {
    let run = cluster_dir.join("run");
    let socket = run.join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return run;
    }
    PathBuf::from(format!(
        "/tmp/envshield-pg-{:016x}",
        fnv1a(cluster_dir.as_os_str().as_bytes())
    ))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Takes an exclusive lock, waiting for any other holder.
fn lock_file(path: &Path) -> Result<File, LocalPgError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    file.lock().map_err(io_err("lock", path))?;
    Ok(file)
}

fn parse_pid_file(text: &str) -> Option<PidFile> {
    // Line 1 PID, 4 port, 5 first socket directory, 8 status; lines appear
    // as startup proceeds.
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pid = lines.first()?.parse().ok()?;
    let field = |i: usize| lines.get(i).copied().filter(|s| !s.is_empty());
    Some(PidFile {
        pid,
        port: field(3).and_then(|p| p.parse().ok()),
        socket_dir: field(4).map(PathBuf::from),
        status: field(7).map(str::to_owned),
    })
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

/// Everything but RFC 3986 unreserved characters, so any path or name
/// survives as one URL component.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Quotes one element of a list setting such as `unix_socket_directories`,
/// where commas and spaces separate elements.
fn guc_list_item(value: &str) -> String {
    if value.contains(|c: char| c == ',' || c == '"' || c.is_whitespace()) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// /usr/sbin is not on every root PATH (e.g. `su` without `-`).
fn runuser_path() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| is_executable(p))
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LocalPgError + 'a {
    move |source| LocalPgError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn run(cmd: &mut Command) -> Result<Output, LocalPgError> {
    cmd.output().map_err(|source| LocalPgError::Spawn {
        command: command_line(cmd),
        source,
    })
}

fn run_checked(cmd: &mut Command) -> Result<Output, LocalPgError> {
    let out = run(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(command_failed(cmd, &out))
    }
}

fn command_failed(cmd: &Command, out: &Output) -> LocalPgError {
    LocalPgError::Command {
        command: command_line(cmd),
        status: out.status,
        stderr: output_tail(out),
    }
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"".contains(c)) {
                format!("{arg:?}")
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Some tools report errors on stdout, so fall back to it.
fn output_tail(out: &Output) -> String {
    let text = if out.stderr.iter().all(u8::is_ascii_whitespace) {
        &out.stdout
    } else {
        &out.stderr
    };
    let tail = last_lines(&String::from_utf8_lossy(text));
    if tail.is_empty() {
        "(no output)".to_owned()
    } else {
        tail
    }
}

/// Reads only the end, as the log of a long-lived cluster grows without bound.
fn file_tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(last_lines(&String::from_utf8_lossy(&bytes)))
    };
    match read() {
        Ok(tail) if tail.is_empty() => "(empty)".to_owned(),
        Ok(tail) => tail,
        Err(e) => format!("(could not read it: {e})"),
    }
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A fresh directory under /tmp, removed (with any fallback socket
    /// directory) when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path = PathBuf::from(format!(
                "/tmp/localpg-test-{tag}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir(&path).unwrap();
            if effective_uid().unwrap() == 0 {
                // The postgres user must traverse it.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o711)).unwrap();
            }
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn pg_ctl_status(pg: &LocalPostgres) -> Option<i32> {
        pg.pg_command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&pg.pgdata)
            .output()
            .unwrap()
            .status
            .code()
    }

    fn psql(pg: &LocalPostgres, database: &str, sql: &str) -> String {
        let out = Command::new(pg.bin_dir().join("psql"))
            .arg(pg.url(database))
            .args(["-X", "-Atc", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql failed: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A live process of the server's OS user that is not a postmaster, for
    /// faking a postmaster.pid whose PID was reused. It exits when its stdin
    /// (the returned child's) is closed.
    fn foreign_process(pg: &LocalPostgres) -> (std::process::Child, u32) {
        let mut cmd = pg.wrap(Command::new("sh"));
        cmd.args(["-c", "echo $$; exec cat"])
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(char::from(byte[0]));
        }
        (child, line.trim().parse().unwrap())
    }

    #[test]
    fn cluster_lifecycle() {
        let tmp = TempDir::new("life");
        let dir = tmp.0.clone();

        // Two concurrent starts: one creates and starts, the other reuses.
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let dir = dir.clone();
                thread::spawn(move || LocalPostgres::start(&dir))
            })
            .collect();
        let mut values: Vec<LocalPostgres> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert_eq!(values.iter().filter(|p| p.started).count(), 1);
        let owner = values.iter().position(|p| p.started).unwrap();
        let mut pg = values.swap_remove(owner);
        let other = values.pop().unwrap();
        assert_eq!(other.url("x"), pg.url("x"));
        drop(other);
        assert_eq!(
            pg_ctl_status(&pg),
            Some(0),
            "dropping a reuser must not stop it"
        );

        // Layout and permissions.
        let canonical = fs::canonicalize(&dir).unwrap();
        assert_eq!(pg.socket_dir, canonical.join("run"));
        let socket_meta = fs::metadata(&pg.socket_dir).unwrap();
        assert_eq!(socket_meta.mode() & 0o777, 0o700);
        assert_eq!(socket_meta.uid(), pg.server_owner());
        assert_eq!(fs::metadata(&pg.pgdata).unwrap().uid(), pg.server_owner());
        assert!(canonical.join("postgres.log").is_file());
        assert!(pg
            .url("x")
            .starts_with("postgres://envshield@/x?host=%2Ftmp%2F"));
        assert!(pg.url("x").ends_with("%2Frun&port=5432"));

        pg.ensure_database("x").unwrap();
        pg.ensure_database("x").unwrap();
        assert_eq!(psql(&pg, "x", "select 1"), "1");
        assert_eq!(psql(&pg, "x", "select current_user"), "envshield");
        assert_eq!(psql(&pg, "x", "show listen_addresses"), "");
        pg.ensure_database("Odd name-'quoted'\"").unwrap();
        assert_eq!(
            psql(
                &pg,
                "postgres",
                "select count(*) from pg_database where datname like 'Odd%'"
            ),
            "1"
        );
        assert!(matches!(
            pg.ensure_database(""),
            Err(LocalPgError::InvalidDatabaseName { .. })
        ));

        let again = LocalPostgres::start(&dir).unwrap();
        assert!(!again.started);
        assert_eq!(again.url("x"), pg.url("x"));
        drop(again);
        assert_eq!(psql(&pg, "x", "select 1"), "1");

        pg.stop().unwrap();
        assert!(!pg.started);
        assert_eq!(
            pg_ctl_status(&pg),
            Some(3),
            "pg_ctl status must report no server"
        );
        pg.stop().unwrap();

        // A postmaster.pid naming a live, unrelated process must not block.
        let (mut sleeper, pid) = foreign_process(&pg);
        fs::write(
            pg.pgdata.join("postmaster.pid"),
            format!("{pid}\n{}\n0\n5432\n\n\n\n", pg.pgdata.display()),
        )
        .unwrap();
        assert_eq!(pg_ctl_status(&pg), Some(0), "pg_ctl believes the fake PID");
        let mut restarted = LocalPostgres::start(&dir).unwrap();
        drop(sleeper.stdin.take());
        assert!(sleeper.wait().unwrap().success());
        assert!(restarted.started);
        assert_eq!(psql(&restarted, "x", "select 1"), "1");
        restarted.stop().unwrap();
        assert_eq!(pg_ctl_status(&restarted), Some(3));
    }

    #[test]
    fn long_cluster_path_uses_socket_dir_under_tmp() {
        let tmp = TempDir::new("long");
        let dir = tmp.0.join("a".repeat(50)).join("b".repeat(50));
        let mut pg = LocalPostgres::start(&dir).unwrap();
        let fallback = pg.socket_dir.clone();
        assert!(fallback.to_string_lossy().starts_with("/tmp/envshield-pg-"));
        assert!(fallback.join(".s.PGSQL.5432").as_os_str().len() <= MAX_SOCKET_PATH);
        assert_eq!(fs::metadata(&fallback).unwrap().mode() & 0o777, 0o700);
        pg.ensure_database("x").unwrap();
        assert_eq!(psql(&pg, "x", "select 1"), "1");
        pg.stop().unwrap();
        assert_eq!(pg_ctl_status(&pg), Some(3));
        drop(pg);
        let _ = fs::remove_dir_all(fallback);
    }

    #[test]
    fn keep_running_leaves_server_up_on_drop() {
        let tmp = TempDir::new("keep");
        let mut pg = LocalPostgres::start(&tmp.0).unwrap();
        pg.keep_running();
        let pgdata = pg.pgdata.clone();
        drop(pg);
        let mut again = LocalPostgres::start(&tmp.0).unwrap();
        assert!(!again.started);
        assert_eq!(again.pgdata, pgdata);
        // Take over ownership so the server is stopped before cleanup.
        again.started = true;
        again.stop().unwrap();
        assert_eq!(pg_ctl_status(&again), Some(3));
    }

    #[test]
    fn missing_binaries_error_names_both_fixes() {
        let err = find_bin_dir_in(
            Some(OsStr::new("")),
            Path::new("/nonexistent/localpg-test/usr/lib/postgresql"),
        )
        .unwrap_err();
        assert!(matches!(err, LocalPgError::BinariesNotFound));
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(find_bin_dir_in(None, Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn discovery_prefers_path_then_highest_version() {
        let tmp = TempDir::new("discover");
        let make_bins = |dir: &Path, names: &[&str]| {
            fs::create_dir_all(dir).unwrap();
            for name in names {
                let path = dir.join(name);
                fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
        };
        let root = tmp.0.join("lib");
        make_bins(&root.join("9.6/bin"), &SERVER_BINARIES);
        make_bins(&root.join("15/bin"), &SERVER_BINARIES);
        make_bins(&root.join("16/bin"), &["initdb"]); // incomplete: skipped
        make_bins(&root.join("17beta1/bin"), &SERVER_BINARIES); // not a version
        let found = find_bin_dir_in(Some(OsStr::new("")), &root).unwrap();
        assert_eq!(found, fs::canonicalize(root.join("15/bin")).unwrap());

        // A PATH entry exposing only symlinks resolves to their directory.
        let on_path = tmp.0.join("path");
        fs::create_dir(&on_path).unwrap();
        let real = tmp.0.join("real");
        make_bins(&real, &SERVER_BINARIES);
        std::os::unix::fs::symlink(real.join("initdb"), on_path.join("initdb")).unwrap();
        let path_var = std::env::join_paths([&on_path]).unwrap();
        let found = find_bin_dir_in(Some(&path_var), &root).unwrap();
        assert_eq!(found, fs::canonicalize(&real).unwrap());
    }

    #[test]
    fn helpers() {
        assert_eq!(percent_encode(b"/a b/c%"), "%2Fa%20b%2Fc%25");
        assert_eq!(guc_list_item("/a,b"), "\"/a,b\"");
        assert_eq!(guc_list_item("/plain"), "/plain");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert!(parse_version("9.6") < parse_version("10"));
        assert_eq!(
            parse_passwd(
                "root:x:0:0::/root:/bin/sh\npostgres:x:101:104::/:/bin/sh\n",
                "postgres"
            ),
            Some(OsUser { uid: 101, gid: 104 })
        );
        let info = parse_pid_file("42\n/d\n1\n5432\n/s\n\n  1 2\nready   \n").unwrap();
        assert_eq!(info.pid, 42);
        assert_eq!(info.port, Some(5432));
        assert_eq!(info.socket_dir, Some(PathBuf::from("/s")));
        assert_eq!(info.status.as_deref(), Some("ready"));
        let short = socket_dir_for(Path::new("/data/cluster"));
        assert_eq!(short, Path::new("/data/cluster/run"));
        let long = Path::new("/x").join("y".repeat(100));
        assert_eq!(socket_dir_for(&long), socket_dir_for(&long));
        assert!(socket_dir_for(&long)
            .to_string_lossy()
            .starts_with("/tmp/envshield-pg-"));
        assert!(check_path_is_safe(Path::new("/tmp/a\"b")).is_err());
        assert!(check_path_is_safe(Path::new("/tmp/a b'c")).is_ok());
    }
}
