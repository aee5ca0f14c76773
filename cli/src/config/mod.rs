//! Where the CLI keeps its profiles: `~/.envshield/config.json`, with
//! their tokens unless those are in the system keyring (see
//! [`crate::secrets`]).
//!
//! The folder is 0700 and the file 0600. Saving writes a temporary file in
//! the same folder (created 0600), syncs it, renames it over the old one and
//! syncs the folder, so a crash leaves either the old file or the new one,
//! never half of one. A file that does not parse is an error naming the
//! path; it is never overwritten. Every change is made under the folder's
//! lock, so two `envshield` processes never undo each other's changes.

mod error;
mod files;
mod names;
mod profile;
mod store;

pub use error::ConfigError;
pub use names::{CONFIG_DIR_ENV, CONFIG_DIR_NAME, CONFIG_FILE, LOCK_FILE};
pub use profile::{
    parse_profile_name, Config, KeyringRef, Profile, DEFAULT_PROFILE, DPOP_TOKEN_TYPE,
};
pub use store::{config_dir_from, ConfigLock, ConfigStore};

#[cfg(test)]
mod tests;
