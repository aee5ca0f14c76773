//! A real SMTP server for tests: `aiosmtpd` from PyPI, run by Python from
//! `tests/mail/sink.py` on a loopback port, writing each message it accepts
//! to a folder. Installed into `target/mail-venv` by `tests/mail/install`
//! (`.ci/run` runs it; the first test here runs it too when the folder is
//! missing). `ENVSHIELD_TEST_PYTHON` names another Python that has
//! aiosmtpd. A test that needs it fails with the reason when it cannot be
//! had; it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::helper::Helper;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that runs the sink, installing aiosmtpd once per process if
/// needed.
fn python() -> anyhow::Result<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("ENVSHIELD_TEST_PYTHON") {
                return Ok(PathBuf::from(p));
            }
            let venv = root().join("target/mail-venv");
            let out = Command::new(root().join("tests/mail/install"))
                .arg(&venv)
                .output()
                .map_err(|e| format!("tests/mail/install could not run: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "tests/mail/install failed (python3, python3-venv and PyPI are needed for the mail tests; .ci/run installs them): {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(venv.join("bin/python"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A free loopback port (nothing listens there once this returns).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running mail sink; stopped when dropped.
pub struct MailSink {
    process: Helper,
    /// Its loopback port.
    pub port: u16,
    /// Where it writes messages.
    pub dir: PathBuf,
}

impl MailSink {
    /// Starts a sink on `port`, writing to a fresh folder `dir`.
    pub fn start_on(port: u16, dir: &Path) -> anyhow::Result<Self> {
        let python = python()?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut command = Command::new(&python);
        command
            .arg(root().join("tests/mail/sink.py"))
            .arg(port.to_string())
            .arg(dir);
        let process = Helper::start(
            command,
            &format!("the mail sink (aiosmtpd, {})", python.display()),
        )?;
        anyhow::ensure!(
            process.port == port,
            "the mail sink listens on {} instead of {port}",
            process.port
        );
        Ok(Self {
            process,
            port,
            dir: dir.to_owned(),
        })
    }

    /// The messages received so far, oldest first, each as received (with
    /// an `X-Envelope-To` line first).
    pub fn messages(&self) -> Vec<String> {
        let mut found: Vec<(u64, String)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let n = name.strip_suffix(".eml")?.parse().ok()?;
                Some((n, std::fs::read_to_string(entry.path()).ok()?))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, m)| m).collect()
    }

    /// Stops it (its port then refuses connections).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}
