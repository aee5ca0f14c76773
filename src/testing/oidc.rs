//! A real OpenID provider for tests: `oidc-provider` from npm, run by
//! Node.js from `tests/oidc/provider.mjs` on a loopback port. Its packages
//! are installed with `npm ci` on first use (a test that needs it fails
//! with the reason when Node.js or npm is missing; it never skips).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::helper::Helper;

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Runs `npm ci` in `tests/oidc` once per process, unless its packages are
/// already there.
fn ensure_installed() -> anyhow::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = oidc_dir();
            if dir.join("node_modules/oidc-provider/package.json").exists() {
                return Ok(());
            }
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .map_err(|e| {
                    format!(
                        "`npm ci` in {} could not run (is Node.js installed?): {e}",
                        dir.display()
                    )
                })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`npm ci` in {} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A running `oidc-provider`; stopped when dropped.
pub struct OidcTestProvider {
    process: Helper,
    /// Its loopback port.
    pub port: u16,
    /// `http://127.0.0.1:<port>`: the issuer and base URL.
    pub issuer: String,
    spec: Value,
}

impl OidcTestProvider {
    /// Starts a provider configured by `spec` (see `tests/oidc/provider.mjs`:
    /// `clients`, `accounts`, `misbehave`; `port` is chosen here).
    pub fn start(spec: Value) -> anyhow::Result<Self> {
        ensure_installed()?;
        let process = spawn(&spec, 0)?;
        let port = process.port;
        Ok(Self {
            process,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            spec,
        })
    }

    /// Stops it and starts it again on the same port: same clients and
    /// accounts, a new signing key (a key rotation).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.process = spawn(&self.spec, self.port)?;
        Ok(())
    }

    /// Stops it (its port then refuses connections).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn spawn(spec: &Value, port: u16) -> anyhow::Result<Helper> {
    let mut spec = spec.clone();
    spec["port"] = Value::from(port);
    let mut command = Command::new("node");
    command
        .arg(oidc_dir().join("provider.mjs"))
        .env("OIDC_TEST_CONFIG", spec.to_string());
    Helper::start(
        command,
        "the OpenID provider (`node`: Node.js 20.19 or later is needed)",
    )
}
