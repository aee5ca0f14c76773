//! File work under the config folder: private files and folders, atomic
//! replacement, permission checks, and the advisory lock.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::error::{io_err, ConfigError};
use super::names::CONFIG_FILE;

/// How long [`lock`] waits for another process's lock.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// A name for a temporary file next to the config file, unique enough for
/// the processes that may write at the same time.
pub(super) fn temp_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(".{CONFIG_FILE}.tmp-{}-{nanos}", std::process::id())
}

/// Options that create files readable by the owner only.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates `path` (which must not exist) readable by the owner only, writes
/// `body` and syncs it to disk.
pub(super) fn write_new_private(path: &Path, body: &[u8]) -> Result<(), ConfigError> {
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create the temporary file", path))?;
    // The umask cannot widen 0600, but make sure anyway.
    set_mode(path, 0o600)?;
    file.write_all(body).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))
}

/// Takes an exclusive advisory lock on `path` (created 0600 when missing),
/// waiting up to [`LOCK_WAIT`] for whoever holds it. The lock lasts as long
/// as the returned file is open.
pub(super) fn lock(path: &Path) -> Result<fs::File, ConfigError> {
    let file = private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open", path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io_err("lock", path)(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "another envshield process has held it for a minute",
                )))
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", path)(e)),
        }
    }
}

/// Makes sure `dir` exists and is the owner's only (0700), saying through
/// `warn` when an existing one had to be tightened.
pub(super) fn ensure_private_dir(
    dir: &Path,
    warn: &mut dyn FnMut(String),
) -> Result<(), ConfigError> {
    if dir.is_dir() {
        return tighten(dir, 0o700, warn);
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_err("create the folder", dir))?;
    // The mode above is filtered by the umask and does not apply to
    // folders that already existed on the way; set it explicitly.
    set_mode(dir, 0o700)
}

/// Syncs a folder, so that a rename inside it survives a crash.
#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> Result<(), ConfigError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync the folder", dir))
}

/// Syncs a folder; nothing to do where renames are not synced this way.
#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err("set permissions on", path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), ConfigError> {
    Ok(())
}

/// Takes group and other permissions away from `path` when it has any,
/// and says so through `warn`.
#[cfg(unix)]
pub(super) fn tighten(
    path: &Path,
    mode: u32,
    warn: &mut dyn FnMut(String),
) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(());
    }
    set_mode(path, mode)?;
    warn(format!(
        "{} was accessible to other users (mode {current:o}); changed it to {mode:o}.",
        path.display()
    ));
    Ok(())
}

/// Permissions are not checked where they are not Unix modes.
#[cfg(not(unix))]
pub(super) fn tighten(
    _path: &Path,
    _mode: u32,
    _warn: &mut dyn FnMut(String),
) -> Result<(), ConfigError> {
    Ok(())
}
