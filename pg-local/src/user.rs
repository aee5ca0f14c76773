//! Running as the `postgres` system user when we are root: who that is,
//! what it must own and reach, and how commands run as it.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::binaries::is_executable;
use crate::command::run;
use crate::error::io_err;
use crate::{LocalPgError, LocalPostgres};

/// `initdb` and `postgres` refuse to run as root; this is who runs them then.
pub(crate) const SERVER_OS_USER: &str = "postgres";

/// An OS account, as far as we need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OsUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl LocalPostgres {
    /// The server user must reach `pgdata/`; only the parent and the cluster
    /// directory itself are adjusted, as loosening further up is not ours to do.
    pub(crate) fn make_reachable_by_server_user(&self) -> Result<(), LocalPgError> {
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
    pub(crate) fn server_owner(&self) -> u32 {
        self.run_as.map_or(self.euid, |u| u.uid)
    }

    /// Hands `path` to the server user when we are root.
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
    pub(crate) fn prepare_private_dir(&self, dir: &Path) -> Result<(), LocalPgError> {
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

    /// Creates the server log (0600), owned by the server user.
    pub(crate) fn prepare_log_file(&self) -> Result<(), LocalPgError> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.log_file)
            .map_err(io_err("create", &self.log_file))?;
        self.chown_to_server_user(&self.log_file)
    }

    /// `bin_dir/<program>`, run as the server user when we are root.
    pub(crate) fn pg_command(&self, program: &str) -> Command {
        self.wrap(Command::new(self.bin_dir.join(program)))
    }

    /// `inner` run as the server user when we are root, from the cluster
    /// directory, without stdin and without any `PG*` variable.
    pub(crate) fn wrap(&self, inner: Command) -> Command {
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
}

/// The effective uid decides whether we must hand the binaries to the
/// `postgres` user.
pub(crate) fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Looks `name` up in the users database (NSS, as `getent passwd` would).
/// `None` if the user does not exist.
pub(crate) fn lookup_os_user(name: &str) -> Result<Option<OsUser>, LocalPgError> {
    let user = nix::unistd::User::from_name(name).map_err(|errno| LocalPgError::UserLookup {
        name: name.to_owned(),
        source: io::Error::from(errno),
    })?;
    Ok(user.map(|u| OsUser {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// Adds `o+x` to `dir` if it lacks it.
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

/// /usr/sbin is not on every root PATH (e.g. `su` without `-`).
fn runuser_path() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| is_executable(p))
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_and_a_missing_user_is_none() {
        assert_eq!(
            lookup_os_user("root").unwrap(),
            Some(OsUser { uid: 0, gid: 0 })
        );
        assert_eq!(lookup_os_user("envshield-no-such-user").unwrap(), None);
    }

    #[test]
    fn effective_uid_matches_the_owner_of_a_file_we_create() {
        let path = std::env::temp_dir().join(format!("pg-local-euid-{}", std::process::id()));
        fs::write(&path, b"").unwrap();
        let owner = fs::metadata(&path).unwrap().uid();
        fs::remove_file(&path).unwrap();
        assert_eq!(effective_uid(), owner);
    }
}
