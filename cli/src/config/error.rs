//! Why the config could not be read or written.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::names::CONFIG_DIR_ENV;
use crate::text::clause;

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
                clause(detail)
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

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ConfigError + 'a {
    move |source| ConfigError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
