//! Scratch directories for the unit tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::user::effective_uid;

/// A fresh directory under /tmp, removed (with any fallback socket
/// directory) when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// Creates `/tmp/localpg-test-<tag>-<pid>-<nanos>`.
    pub(crate) fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = PathBuf::from(format!(
            "/tmp/localpg-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir(&path).unwrap();
        if effective_uid() == 0 {
            // The postgres user must traverse it.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o711)).unwrap();
        }
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
