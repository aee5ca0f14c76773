//! Where the CLI keeps its tokens: `~/.envshield/config.json`.
//!
//! The folder is 0700 and the file 0600. Saving writes a temporary file in
//! the same folder (created 0600), syncs it, renames it over the old one and
//! syncs the folder, so a crash leaves either the old file or the new one,
//! never half of one. A file that does not parse is an error naming the
//! path; it is never overwritten.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Name of the profile used when none is given.
pub const DEFAULT_PROFILE: &str = "default";
/// Environment variable that moves the config folder.
pub const CONFIG_DIR_ENV: &str = "ENVSHIELD_CONFIG_DIR";
/// Name of the config file inside the folder.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the folder under the home directory.
pub const CONFIG_DIR_NAME: &str = ".envshield";
/// Name of the lock file that serialises token refreshes.
pub const LOCK_FILE: &str = ".config.json.lock";
/// How long [`ConfigStore::lock`] waits for another process's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One signed-in identity: a server and a token for it.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The API base URL the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The API token in plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Id of the token on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    /// Name of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// When the token stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The refresh token in plaintext, when the server issued a short-lived
    /// access token (`token`) with it. Saved and replaced together with the
    /// access token, in the same write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Profile {
    /// Forgets the token but keeps the server, so the next `login` goes to
    /// the same place.
    pub fn clear_token(&mut self) {
        self.token = None;
        self.token_id = None;
        self.token_name = None;
        self.expires_at = None;
        self.refresh_token = None;
    }
}

// Neither token ever appears in debug output.
impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_id", &self.token_id)
            .field("token_name", &self.token_name)
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Why the config could not be read or written. `Display` is the one-line
/// message shown to the person.
#[derive(Debug)]
pub enum ConfigError {
    /// Neither `ENVSHIELD_CONFIG_DIR` nor a home directory is known.
    NoHome,
    /// The file exists but is not a valid config.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// Reading, writing or changing permissions failed.
    Io {
        /// What was being done, e.g. "read".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHome => write!(
                f,
                "cannot find your home directory to keep the config in. Set HOME or {CONFIG_DIR_ENV} to a folder."
            ),
            Self::Corrupt { path, detail } => write!(
                f,
                "the config file {} is not valid ({}). Fix it or delete it, then run `envshield login` again.",
                path.display(),
                crate::error::clause(detail)
            ),
            Self::Io {
                action,
                path,
                source,
            } => write!(
                f,
                "could not {action} {} ({source}). Check that the folder exists and that you own it, or set {CONFIG_DIR_ENV} to another folder.",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ConfigError + 'a {
    move |source| ConfigError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

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

    /// Writes the config atomically (see the module doc).
    pub fn save(&self, config: &Config, warn: &mut dyn FnMut(String)) -> Result<(), ConfigError> {
        self.ensure_dir(warn)?;
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
    /// does not touch (other profiles, unknown keys). Returns the result.
    pub fn update(
        &self,
        warn: &mut dyn FnMut(String),
        change: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError> {
        let mut config = self.load(warn)?;
        change(&mut config);
        self.save(&config, warn)?;
        Ok(config)
    }

    /// Takes the config folder's lock (an advisory lock on
    /// [`LOCK_FILE`], created 0600), waiting up to a minute for another
    /// `envshield` that holds it. Held until the guard is dropped. Used
    /// around a token refresh, so that two processes never spend the same
    /// refresh token (the server would take the second use for theft and
    /// end the session).
    pub fn lock(&self, warn: &mut dyn FnMut(String)) -> Result<ConfigLock, ConfigError> {
        self.ensure_dir(warn)?;
        let path = self.dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(io_err("open", &path))?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(ConfigLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(ConfigError::Io {
                        action: "lock",
                        path,
                        source: io::Error::new(
                            io::ErrorKind::WouldBlock,
                            "another envshield process has held it for a minute",
                        ),
                    })
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            }
        }
    }

    fn ensure_dir(&self, warn: &mut dyn FnMut(String)) -> Result<(), ConfigError> {
        if self.dir.is_dir() {
            return tighten(&self.dir, 0o700, warn);
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .map_err(io_err("create the folder", &self.dir))?;
        // The mode above is filtered by the umask and does not apply to
        // folders that already existed on the way; set it explicitly.
        set_mode(&self.dir, 0o700)
    }
}

/// The config folder's lock, released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct ConfigLock {
    _file: fs::File,
}

fn temp_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(".{CONFIG_FILE}.tmp-{}-{nanos}", std::process::id())
}

/// Creates `path` (which must not exist) readable by the owner only, writes
/// `body` and syncs it to disk.
fn write_new_private(path: &Path, body: &[u8]) -> Result<(), ConfigError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(io_err("create the temporary file", path))?;
    // The umask cannot widen 0600, but make sure anyway.
    set_mode(path, 0o600)?;
    file.write_all(body).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), ConfigError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync the folder", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), ConfigError> {
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
fn tighten(path: &Path, mode: u32, warn: &mut dyn FnMut(String)) -> Result<(), ConfigError> {
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

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32, _warn: &mut dyn FnMut(String)) -> Result<(), ConfigError> {
    Ok(())
}

/// Checks a profile name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn parse_profile_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err("a profile name is 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ConfigStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(tmp.path().join("cfg"));
        (tmp, store)
    }

    fn profile(url: &str, token: &str) -> Profile {
        Profile {
            api_url: Some(url.into()),
            token: Some(token.into()),
            token_id: Some(Uuid::nil()),
            token_name: Some("CLI Token".into()),
            expires_at: None,
            refresh_token: None,
            other: Default::default(),
        }
    }

    fn no_warn() -> impl FnMut(String) {
        |w| panic!("unexpected warning: {w}")
    }

    #[test]
    fn missing_file_is_an_empty_config() {
        let (_tmp, store) = store();
        let config = store.load(&mut no_warn()).unwrap();
        assert!(config.profiles.is_empty());
        assert!(!store.dir().exists(), "loading must not create anything");
    }

    #[test]
    fn save_then_load_round_trips_with_camel_case_keys() {
        let (_tmp, store) = store();
        let mut config = Config::default();
        config
            .profiles
            .insert("default".into(), profile("http://x/api/v1", "esh_abc"));
        store.save(&config, &mut no_warn()).unwrap();

        let text = fs::read_to_string(store.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["profiles"]["default"]["apiUrl"], "http://x/api/v1");
        assert_eq!(json["profiles"]["default"]["token"], "esh_abc");
        assert_eq!(
            json["profiles"]["default"]["tokenId"],
            Uuid::nil().to_string()
        );
        assert_eq!(json["profiles"]["default"]["tokenName"], "CLI Token");
        assert_eq!(store.load(&mut no_warn()).unwrap(), config);
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn new_folder_is_0700_and_file_is_0600() {
        let (_tmp, store) = store();
        store.save(&Config::default(), &mut no_warn()).unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.path()), 0o600);
    }

    #[test]
    fn save_leaves_no_temporary_file_behind() {
        let (_tmp, store) = store();
        store.save(&Config::default(), &mut no_warn()).unwrap();
        store.save(&Config::default(), &mut no_warn()).unwrap();
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![CONFIG_FILE.to_string()]);
    }

    #[test]
    fn failed_save_keeps_the_old_file_and_cleans_up() {
        let (_tmp, store) = store();
        let mut config = Config::default();
        config
            .profiles
            .insert("default".into(), profile("http://x", "esh_old"));
        store.save(&config, &mut no_warn()).unwrap();
        // A folder where the file should be makes the rename fail after the
        // temporary file was written: the old content must survive.
        let blocked = ConfigStore::new(store.dir().join("blocked"));
        fs::create_dir_all(blocked.path()).unwrap();
        let err = blocked.save(&config, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("could not replace"), "{err}");
        let leftovers: Vec<_> = fs::read_dir(blocked.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![OsString::from(CONFIG_FILE)]);
        assert_eq!(store.load(&mut no_warn()).unwrap(), config);
    }

    #[cfg(unix)]
    #[test]
    fn looser_permissions_are_tightened_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, store) = store();
        store.save(&Config::default(), &mut no_warn()).unwrap();
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();

        let mut warnings = Vec::new();
        store.load(&mut |w| warnings.push(w)).unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("mode 755"), "{warnings:?}");
        assert!(warnings[1].contains("mode 644"), "{warnings:?}");

        // Once tight, no more warnings.
        store.load(&mut no_warn()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_loose_folder_is_tightened_on_save() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, store) = store();
        fs::create_dir_all(store.dir()).unwrap();
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o777)).unwrap();
        let mut warnings = Vec::new();
        store
            .save(&Config::default(), &mut |w| warnings.push(w))
            .unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn corrupt_file_is_a_clear_error_and_is_not_overwritten() {
        let (_tmp, store) = store();
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(store.path(), "{\"profiles\": {").unwrap();

        let err = store.load(&mut |_| {}).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&store.path().display().to_string()));
        assert!(message.contains("Fix it or delete it"), "{message}");
        assert!(!message.contains('\n'));

        let err = store.update(&mut |_| {}, |_| {}).unwrap_err();
        assert!(matches!(err, ConfigError::Corrupt { .. }));
        assert_eq!(
            fs::read_to_string(store.path()).unwrap(),
            "{\"profiles\": {"
        );
    }

    #[test]
    fn wrong_shape_is_corrupt_too() {
        let (_tmp, store) = store();
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(store.path(), r#"{"profiles": {"default": {"token": 5}}}"#).unwrap();
        assert!(matches!(
            store.load(&mut |_| {}),
            Err(ConfigError::Corrupt { .. })
        ));
    }

    #[test]
    fn saving_a_profile_keeps_the_others_and_unknown_keys() {
        let (_tmp, store) = store();
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(
            store.path(),
            r#"{"profiles": {"work": {"apiUrl": "http://w", "token": "esh_w", "color": "blue"}}, "telemetry": false}"#,
        )
        .unwrap();

        store
            .update(&mut |_| {}, |c| {
                c.profiles
                    .insert("default".into(), profile("http://d", "esh_d"));
            })
            .unwrap();

        let config = store.load(&mut |_| {}).unwrap();
        assert_eq!(config.profiles.len(), 2);
        assert_eq!(config.profiles["work"].token.as_deref(), Some("esh_w"));
        assert_eq!(config.profiles["work"].other["color"], "blue");
        assert_eq!(config.other["telemetry"], false);
        assert_eq!(config.profiles["default"].token.as_deref(), Some("esh_d"));
    }

    #[test]
    fn config_dir_comes_from_the_env_var_first() {
        let home = Some(PathBuf::from("/home/me"));
        assert_eq!(
            config_dir_from(Some("/tmp/es".into()), home.clone()).unwrap(),
            PathBuf::from("/tmp/es")
        );
        assert_eq!(
            config_dir_from(Some("".into()), home.clone()).unwrap(),
            PathBuf::from("/home/me/.envshield")
        );
        assert_eq!(
            config_dir_from(None, home).unwrap(),
            PathBuf::from("/home/me/.envshield")
        );
        assert!(matches!(
            config_dir_from(None, None),
            Err(ConfigError::NoHome)
        ));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", profile("http://x", "esh_secret"));
        assert!(!shown.contains("esh_secret"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn refresh_token_is_saved_as_refresh_token_and_hidden_from_debug() {
        let (_tmp, store) = store();
        let mut p = profile("http://x", "esh_access");
        p.refresh_token = Some("eshr_secret".into());
        let mut config = Config::default();
        config.profiles.insert("default".into(), p.clone());
        store.save(&config, &mut no_warn()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
        assert_eq!(json["profiles"]["default"]["refreshToken"], "eshr_secret");
        assert_eq!(store.load(&mut no_warn()).unwrap(), config);
        assert!(!format!("{p:?}").contains("eshr_secret"));

        // A profile without one does not write the key at all.
        store.save(&Config::default(), &mut no_warn()).unwrap();
        let mut plain = Config::default();
        plain
            .profiles
            .insert("default".into(), profile("http://x", "esh_t"));
        store.save(&plain, &mut no_warn()).unwrap();
        assert!(!fs::read_to_string(store.path())
            .unwrap()
            .contains("refreshToken"));
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let (_tmp, store) = store();
        let held = store.lock(&mut no_warn()).unwrap();
        let other = fs::OpenOptions::new()
            .write(true)
            .open(store.dir().join(LOCK_FILE))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
        other.unlock().unwrap();
        drop(store.lock(&mut no_warn()).unwrap());
        #[cfg(unix)]
        assert_eq!(mode(&store.dir().join(LOCK_FILE)), 0o600);
    }

    #[test]
    fn clear_token_keeps_the_server() {
        let mut p = profile("http://x", "esh_t");
        p.refresh_token = Some("eshr_r".into());
        p.clear_token();
        assert_eq!(p.refresh_token, None);
        assert_eq!(p.api_url.as_deref(), Some("http://x"));
        assert_eq!(p.token, None);
        assert_eq!(p.token_id, None);
    }

    #[test]
    fn profile_names_are_checked() {
        assert!(parse_profile_name("default").is_ok());
        assert!(parse_profile_name("work-2.eu_x").is_ok());
        assert!(parse_profile_name("").is_err());
        assert!(parse_profile_name("a b").is_err());
        assert!(parse_profile_name("../x").is_err());
    }
}
