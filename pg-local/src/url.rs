//! Paths and the connection URL: where the socket lives, which paths pg_ctl
//! can pass through its shell, and percent-encoding.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::{LocalPgError, PORT};

/// `sun_path` holds 108 bytes on Linux (104 on the BSDs); stay well below.
pub(crate) const MAX_SOCKET_PATH: usize = 100;

/// pg_ctl pastes the data directory and log path into a `/bin/sh -c` line
/// inside double quotes, so characters special there would break (or
/// inject into) that command; other tools need a valid UTF-8 socket path.
pub(crate) fn check_path_is_safe(path: &Path) -> Result<(), LocalPgError> {
    let unusable = |reason: &str| LocalPgError::UnusablePath {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let text = path
        .to_str()
        .ok_or_else(|| unusable("the path is not valid UTF-8"))?;
    if text
        .chars()
        .any(|c| matches!(c, '"' | '$' | '`' | '\\') || c.is_control())
    {
        return Err(unusable(
            "the path contains a character (\", $, `, \\ or a control character) that \
             pg_ctl cannot pass through its shell; choose another directory",
        ));
    }
    Ok(())
}

/// `<cluster>/run`, unless the socket path would not fit in `sun_path`; then
/// a directory under /tmp named after the cluster, stable across builds (a
/// std hasher is not) so every process finds the same one.
pub(crate) fn socket_dir_for(cluster_dir: &Path) -> PathBuf {
    let run = cluster_dir.join("run");
    let socket = run.join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return run;
    }
    PathBuf::from(format!(
        "/tmp/envshield-pg-{:016x}",
        fnv1a(cluster_dir.as_os_str().as_bytes())
    ))
}

/// FNV-1a: a hash that stays the same across builds and processes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
/// Everything but RFC 3986 unreserved characters, so any path or name
/// survives as one URL component.
pub(crate) fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Quotes one element of a list setting such as `unix_socket_directories`,
/// where commas and spaces separate elements.
pub(crate) fn guc_list_item(value: &str) -> String {
    if value.contains(|c: char| c == ',' || c == '"' || c.is_whitespace()) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(percent_encode(b"/a b/c%"), "%2Fa%20b%2Fc%25");
        assert_eq!(guc_list_item("/a,b"), "\"/a,b\"");
        assert_eq!(guc_list_item("/plain"), "/plain");
        let short = socket_dir_for(Path::new("/data/cluster"));
        assert_eq!(short, Path::new("/data/cluster/run"));
        let long = Path::new("/x").join("y".repeat(100));
        assert_eq!(socket_dir_for(&long), socket_dir_for(&long));
        assert!(socket_dir_for(&long)
            .to_string_lossy()
            .starts_with("/tmp/envshield-pg-"));
        assert!(check_path_is_safe(Path::new("/tmp/a\"b")).is_err());
        assert!(check_path_is_safe(Path::new("/tmp/a b'c")).is_ok());
    }
}
