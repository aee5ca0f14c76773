//! The cluster itself: `initdb`, starting the server or adopting one that
//! already runs, and reading `postmaster.pid`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::command::{
    command_failed, command_line, file_tail, output_tail, run, run_checked, shell_quote,
};
use crate::error::io_err;
use crate::url::guc_list_item;
use crate::{LocalPgError, LocalPostgres, DB_USER, TIMEOUT_SECS};

/// What `pg_ctl status` plus `postmaster.pid` tell us about the cluster.
#[derive(Debug)]
pub(crate) enum ServerState {
    Stopped,
    /// `postmaster.pid` names a live process that is not this cluster's
    /// postmaster (typically a PID reused after a crash or container restart).
    StalePidFile(u32),
    Running(PidFile),
}

/// The fields of `postmaster.pid` we use.
#[derive(Debug)]
pub(crate) struct PidFile {
    pub(crate) pid: u32,
    pub(crate) port: Option<u16>,
    pub(crate) socket_dir: Option<PathBuf>,
    /// "starting", "ready", "stopping" or "standby"; absent early in startup.
    pub(crate) status: Option<String>,
}

impl LocalPostgres {
    /// Runs `initdb` unless `pgdata/` already holds a cluster. The cluster is
    /// built beside `pgdata/` and renamed into place, so an interrupted initdb
    /// never leaves a half-made cluster that later starts would trust.
    pub(crate) fn ensure_cluster(&self) -> Result<(), LocalPgError> {
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

    /// Starts the server, or waits for and adopts one that is already
    /// running in this cluster; a stale `postmaster.pid` is removed first.
    pub(crate) fn start_or_reuse(&mut self) -> Result<(), LocalPgError> {
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
            take_over = self.take_over_running,
            "reusing running local PostgreSQL"
        );
        self.socket_dir = socket_dir;
        self.port = port;
        self.started = self.take_over_running;
        Ok(())
    }

    /// `pg_ctl start` on our socket directory only; on success this value
    /// owns the server.
    fn start_server(&mut self) -> Result<(), LocalPgError> {
        // No server of this cluster runs and the socket directory is ours
        // alone, so leftover socket lock files can only be stale; the server
        // would refuse to start if one named a PID that is alive again.
        let port = self.port;
        for name in [format!(".s.PGSQL.{port}.lock"), format!(".s.PGSQL.{port}")] {
            let path = self.socket_dir.join(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove stale", &path)(e));
                }
                _ => {}
            }
        }

        // pg_ctl hands these to `/bin/sh -c`, hence the shell quoting.
        let mut options = format!(
            "-c listen_addresses='' -c port={port} -c unix_socket_directories={} \
             -c max_connections=200 -c shared_buffers=64MB",
            shell_quote(&guc_list_item(&self.socket_dir.to_string_lossy()))
        );
        for (name, value) in &self.settings {
            options.push_str(&format!(" -c {name}={}", shell_quote(value)));
        }
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
        Ok(())
    }

    /// Whether the cluster's server runs, and if so what its pid file says.
    pub(crate) fn server_state(&self) -> Result<ServerState, LocalPgError> {
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
}

/// Takes an exclusive lock, waiting for any other holder.
pub(crate) fn lock_file(path: &Path) -> Result<File, LocalPgError> {
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

/// The fields we use from `postmaster.pid`; `None` without a PID line.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};

    use crate::testdir::TempDir;
    use crate::url::MAX_SOCKET_PATH;

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
    fn a_shared_server_stops_when_its_last_user_is_gone() {
        let tmp = TempDir::new("users");
        let users = tmp.0.join("users.lock");
        let open_lock = || {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&users)
                .unwrap()
        };
        let first = open_lock();
        first.lock_shared().unwrap();
        let mut pg = LocalPostgres::start(&tmp.0).unwrap();
        pg.keep_running();
        pg.stop_when_unused(&users).unwrap();
        let second = open_lock();
        second.lock_shared().unwrap();
        drop(first);
        // One user is left: the server keeps running.
        assert_eq!(pg_ctl_status(&pg), Some(0));
        drop(second);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pg_ctl_status(&pg) != Some(3) {
            assert!(
                std::time::Instant::now() < deadline,
                "the server was not stopped"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn a_server_left_running_by_a_killed_owner_is_taken_over_and_stopped() {
        let tmp = TempDir::new("orphan");
        // The first owner is killed: its value never stops the server.
        let mut killed = LocalPostgres::start(&tmp.0).unwrap();
        killed.keep_running();
        drop(killed);
        let owner = crate::Options {
            take_over_running: true,
            ..crate::Options::default()
        };
        let next = LocalPostgres::start_with(&tmp.0, &owner).unwrap();
        assert!(next.started, "the running server is adopted as ours");
        assert_eq!(pg_ctl_status(&next), Some(0));
        let probe = LocalPostgres::start(&tmp.0).unwrap();
        drop(next);
        assert_eq!(pg_ctl_status(&probe), Some(3), "a clean stop stops it");
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
    fn pid_file_fields() {
        let info = parse_pid_file("42\n/d\n1\n5432\n/s\n\n  1 2\nready   \n").unwrap();
        assert_eq!(info.pid, 42);
        assert_eq!(info.port, Some(5432));
        assert_eq!(info.socket_dir, Some(PathBuf::from("/s")));
        assert_eq!(info.status.as_deref(), Some("ready"));
    }
}
