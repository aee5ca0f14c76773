//! A helper program run beside the tests (the mail sink, the OpenID
//! provider): started with its stdout piped, ready once its first line says
//! `listening <port>`, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// How long a helper may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running helper program; killed when dropped.
pub struct Helper {
    child: Child,
    /// The loopback port it said it listens on.
    pub port: u16,
}

impl Helper {
    /// Runs `command` (what it is in `name`, for errors) and waits for its
    /// `listening <port>` line. Its stderr shows only under `TEST_LOG`.
    pub fn start(mut command: Command, name: &str) -> anyhow::Result<Self> {
        let stderr = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep reading until it exits: a closed pipe would kill it at
            // its next write.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse::<u16>().ok());
        let mut helper = Self { child, port: 0 };
        match port {
            Some(port) => {
                helper.port = port;
                Ok(helper)
            }
            None => {
                helper.stop();
                anyhow::bail!(
                    "{name} did not start (said {line:?}; run with TEST_LOG=1 to see why)"
                )
            }
        }
    }

    /// Stops it (its port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}
