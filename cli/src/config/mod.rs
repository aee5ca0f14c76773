//! Where the CLI keeps its tokens: `~/.envshield/config.json`.
//!
//! The folder is 0700 and the file 0600. Saving writes a temporary file in
//! the same folder (created 0600), syncs it, renames it over the old one and
//! syncs the folder, so a crash leaves either the old file or the new one,
//! never half of one. A file that does not parse is an error naming the
//! path; it is never overwritten. Every change is made under the folder's
//! lock, so two `envshield` processes never undo each other's changes.

mod error;
mod files;
mod profile;
mod store;

pub use error::ConfigError;
pub use profile::{parse_profile_name, Config, Profile};
pub use store::{config_dir_from, ConfigLock, ConfigStore};

/// Name of the profile used when none is given.
pub const DEFAULT_PROFILE: &str = "default";
/// Environment variable that moves the config folder.
pub const CONFIG_DIR_ENV: &str = "ENVSHIELD_CONFIG_DIR";
/// Name of the config file inside the folder.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the folder under the home directory.
pub const CONFIG_DIR_NAME: &str = ".envshield";
/// Name of the lock file that serialises changes to the config file and
/// token refreshes.
pub const LOCK_FILE: &str = ".config.json.lock";

#[cfg(test)]
mod tests;
