//! Finding a directory with the installed server binaries: on PATH, through
//! `pg_config --bindir`, or under Debian's versioned layout.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::LocalPgError;

/// Debian/Ubuntu install server binaries here, outside PATH.
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";
/// What a directory must hold to run a cluster; `pg_ctl` and `initdb` look for
/// `postgres` next to themselves.
const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Searches the real PATH, `pg_config` and the Debian layout.
pub(crate) fn find_bin_dir() -> Result<PathBuf, LocalPgError> {
    find_bin_dir_in(
        std::env::var_os("PATH").as_deref(),
        Path::new(VERSIONED_ROOT),
    )
}

/// Binary discovery with injectable search roots, so tests can simulate a
/// machine without PostgreSQL.
fn find_bin_dir_in(
    path_var: Option<&OsStr>,
    versioned_root: &Path,
) -> Result<PathBuf, LocalPgError> {
    let path_dirs: Vec<PathBuf> = path_var
        .map(|p| {
            std::env::split_paths(p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();

    for dir in &path_dirs {
        let initdb = dir.join("initdb");
        if !is_executable(&initdb) {
            continue;
        }
        // PATH often holds symlinks to some of the tools only (e.g.
        // /usr/local/bin/initdb); the directory they point into is complete.
        if let Some(real_dir) = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if has_server_binaries(&real_dir) {
                return Ok(real_dir);
            }
        }
        if has_server_binaries(dir) {
            return Ok(canonical_or_same(dir));
        }
    }

    if let Some(pg_config) = path_dirs
        .iter()
        .map(|d| d.join("pg_config"))
        .find(|p| is_executable(p))
    {
        let output = Command::new(&pg_config)
            .arg("--bindir")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        // pg_config comes with client development packages too; when it
        // fails or points at client tools only we keep looking.
        if let Ok(out) = output {
            if out.status.success() {
                let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
                if has_server_binaries(&dir) {
                    return Ok(canonical_or_same(&dir));
                }
            }
        }
    }

    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(versioned_root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(&entry.file_name().to_string_lossy())?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| has_server_binaries(dir))
        .map(|dir| canonical_or_same(&dir))
        .ok_or(LocalPgError::BinariesNotFound)
}

/// "15" -> [15], "9.6" -> [9, 6]; anything else (e.g. "16beta1") is skipped.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether `dir` holds every binary a cluster needs.
fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|b| is_executable(&dir.join(b)))
}

/// A regular file with any execute bit set.
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// `dir` with symlinks resolved, or as given when that fails.
fn canonical_or_same(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::testdir::TempDir;

    #[test]
    fn missing_binaries_error_names_both_fixes() {
        let err = find_bin_dir_in(
            Some(OsStr::new("")),
            Path::new("/nonexistent/localpg-test/usr/lib/postgresql"),
        )
        .unwrap_err();
        assert!(matches!(err, LocalPgError::BinariesNotFound));
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(find_bin_dir_in(None, Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn discovery_prefers_path_then_highest_version() {
        let tmp = TempDir::new("discover");
        let make_bins = |dir: &Path, names: &[&str]| {
            fs::create_dir_all(dir).unwrap();
            for name in names {
                let path = dir.join(name);
                fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
        };
        let root = tmp.0.join("lib");
        make_bins(&root.join("9.6/bin"), &SERVER_BINARIES);
        make_bins(&root.join("15/bin"), &SERVER_BINARIES);
        make_bins(&root.join("16/bin"), &["initdb"]); // incomplete: skipped
        make_bins(&root.join("17beta1/bin"), &SERVER_BINARIES); // not a version
        let found = find_bin_dir_in(Some(OsStr::new("")), &root).unwrap();
        assert_eq!(found, fs::canonicalize(root.join("15/bin")).unwrap());

        // A PATH entry exposing only symlinks resolves to their directory.
        let on_path = tmp.0.join("path");
        fs::create_dir(&on_path).unwrap();
        let real = tmp.0.join("real");
        make_bins(&real, &SERVER_BINARIES);
        std::os::unix::fs::symlink(real.join("initdb"), on_path.join("initdb")).unwrap();
        let path_var = std::env::join_paths([&on_path]).unwrap();
        let found = find_bin_dir_in(Some(&path_var), &root).unwrap();
        assert_eq!(found, fs::canonicalize(&real).unwrap());
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert!(parse_version("9.6") < parse_version("10"));
    }
}
