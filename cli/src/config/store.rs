//! The config file in its folder: loading, atomic saving, and changes made
//! under the folder's lock.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{io_err, ConfigError};
use super::files::{ensure_private_dir, lock, sync_dir, temp_name, tighten, write_new_private};
use super::names::{CONFIG_DIR_ENV, CONFIG_DIR_NAME, CONFIG_FILE, LOCK_FILE};
use super::profile::Config;

/// Picks the config folder: `ENVSHIELD_CONFIG_DIR` when set and not empty,
/// else `<home>/.envshield`.
pub fn config_dir_from(
    env_dir: Option<OsString>,
    home: Option<PathBuf>,
) -> Result<PathBuf, ConfigError> {
    match env_dir {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => home
            .filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(CONFIG_DIR_NAME))
            .ok_or(ConfigError::NoHome),
    }
}

/// The home directory from the environment (`HOME`, or `USERPROFILE` on
/// Windows).
fn home_dir() -> Option<PathBuf> {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var).map(PathBuf::from)
}

/// Reads and writes the config file in one folder.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    dir: PathBuf,
}

impl ConfigStore {
    /// A store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store the environment points at.
    pub fn from_env() -> Result<Self, ConfigError> {
        config_dir_from(std::env::var_os(CONFIG_DIR_ENV), home_dir()).map(Self::new)
    }

    /// The config folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Reads the config; a missing file is an empty config. Permissions
    /// looser than 0700/0600 are tightened, with a warning passed to `warn`.
    pub fn load(&self, warn: &mut dyn FnMut(String)) -> Result<Config, ConfigError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(ConfigError::Corrupt {
                    path,
                    detail: "it is not UTF-8 text".into(),
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        tighten(&self.dir, 0o700, warn)?;
        tighten(&path, 0o600, warn)?;
        serde_json::from_str(&text).map_err(|e| ConfigError::Corrupt {
            path,
            detail: e.to_string(),
        })
    }

    /// Writes the config atomically: a private temporary file, synced,
    /// renamed over the old one, and the folder synced. A change to what
    /// was loaded goes through [`ConfigStore::update`] instead, which holds
    /// the lock.
    pub fn save(&self, config: &Config, warn: &mut dyn FnMut(String)) -> Result<(), ConfigError> {
        ensure_private_dir(&self.dir, warn)?;
        let path = self.path();
        let mut body = serde_json::to_vec_pretty(config).map_err(|e| ConfigError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        body.push(b'\n');

        let tmp = self.dir.join(temp_name());
        let written = write_new_private(&tmp, &body)
            .and_then(|()| fs::rename(&tmp, &path).map_err(io_err("replace", &path)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&self.dir)
    }

    /// Loads, lets `change` edit, and saves, keeping everything `change`
    /// does not touch (other profiles, unknown keys), all under the lock
    /// (see [`ConfigStore::lock`]) so that a change made by another
    /// `envshield` at the same time is not lost. Returns the result.
    pub fn update(
        &self,
        warn: &mut dyn FnMut(String),
        change: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError> {
        self.lock(warn)?.update(warn, change)
    }

    /// Takes the config folder's lock (an advisory lock on
    /// [`LOCK_FILE`], created 0600), waiting up to a minute for another
    /// `envshield` that holds it. Held until the guard is dropped. Every
    /// read-modify-write of the file happens under it, and so does a token
    /// refresh, so that two processes never spend the same refresh token
    /// (the server would take the second use for theft and end the
    /// session).
    pub fn lock(&self, warn: &mut dyn FnMut(String)) -> Result<ConfigLock, ConfigError> {
        ensure_private_dir(&self.dir, warn)?;
        let file = lock(&self.dir.join(LOCK_FILE))?;
        Ok(ConfigLock {
            store: self.clone(),
            _file: file,
        })
    }
}

/// The config folder's lock, released when dropped (or when the process
/// ends, however it ends). Reads and changes made through it happen while
/// it is held.
#[derive(Debug)]
pub struct ConfigLock {
    store: ConfigStore,
    _file: fs::File,
}

impl ConfigLock {
    /// Reads the config (see [`ConfigStore::load`]).
    pub fn load(&self, warn: &mut dyn FnMut(String)) -> Result<Config, ConfigError> {
        self.store.load(warn)
    }

    /// Loads, lets `change` edit, and saves (see [`ConfigStore::update`]);
    /// for a holder of the lock, which must not take it a second time.
    pub fn update(
        &self,
        warn: &mut dyn FnMut(String),
        change: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError> {
        let mut config = self.store.load(warn)?;
        change(&mut config);
        self.store.save(&config, warn)?;
        Ok(config)
    }
}
