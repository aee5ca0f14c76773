//! A real OpenID provider for tests: `oidc-provider` from npm, run by
//! Node.js from `tests/oidc/provider.mjs` on a loopback port. Its packages
//! are installed with `npm ci` on first use (a test that needs it fails
//! with the reason when Node.js or npm is missing; it never skips).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// How long the provider may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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
    child: Child,
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
        let (child, port) = spawn(&spec, 0)?;
        Ok(Self {
            child,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            spec,
        })
    }

    /// Stops it and starts it again on the same port: same clients and
    /// accounts, a new signing key (a key rotation).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let (child, _) = spawn(&self.spec, self.port)?;
        self.child = child;
        Ok(())
    }

    /// Stops it (its port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcTestProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(spec: &Value, port: u16) -> anyhow::Result<(Child, u16)> {
    let mut spec = spec.clone();
    spec["port"] = Value::from(port);
    let stderr = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut child = Command::new("node")
        .arg(oidc_dir().join("provider.mjs"))
        .env("OIDC_TEST_CONFIG", spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context(
            "cannot run `node` (Node.js 20.19 or later is needed for the OpenID provider tests)",
        )?;
    let stdout = child.stdout.take().context("provider stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading until it exits: a closed pipe would kill it at its
        // next write.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            anyhow::bail!(
                "the OpenID provider did not start in time (run with TEST_LOG=1 to see its output)"
            );
        }
    };
    let Some(port) = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse::<u16>().ok())
    else {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!(
            "the OpenID provider failed to start (said {line:?}; run with TEST_LOG=1 to see why)"
        );
    };
    Ok((child, port))
}
