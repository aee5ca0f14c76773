//! What can go wrong, each with the path, command or log tail that explains it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

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

    /// The users database could not be searched for the `postgres` user.
    #[error("could not look up the `{name}` system user: {source}")]
    UserLookup {
        /// The user looked for.
        name: String,
        /// The underlying error.
        source: io::Error,
    },

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

/// Wraps an I/O error with what we were doing and to which path.
pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LocalPgError + 'a {
    move |source| LocalPgError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
