//! Names of the config folder, the files in it, and the environment
//! variable that moves it.

/// Environment variable that moves the config folder.
pub const CONFIG_DIR_ENV: &str = "ENVSHIELD_CONFIG_DIR";
/// Name of the config file inside the folder.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the folder under the home directory.
pub const CONFIG_DIR_NAME: &str = ".envshield";
/// Name of the lock file that serialises changes to the config file and
/// token refreshes.
pub const LOCK_FILE: &str = ".config.json.lock";
