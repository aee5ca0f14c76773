//! How long the client waits for the server, and how much of an answer it
//! reads.

use std::time::Duration;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long making the connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the cancel sent on the way out after Ctrl-C may take.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read; anything bigger is not an EnvShield answer.
pub const MAX_BODY: u64 = 1024 * 1024;
