//! How long the client waits for the server, and how much of an answer it
//! reads.

use std::time::Duration;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// What a long-poll leaves of [`REQUEST_TIMEOUT`] for the connection, the
/// answer and a slow network: the hold it asks the server for is at most
/// the rest.
pub const POLL_HEADROOM: Duration = Duration::from_secs(10);
/// Longest hold a long-poll asks the server for (which holds one for at
/// most 30 s).
pub const LONGEST_HOLD: Duration = REQUEST_TIMEOUT.saturating_sub(POLL_HEADROOM);
/// How long making the connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the cancel sent on the way out after Ctrl-C may take.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read; anything bigger is not an EnvShield answer.
pub const MAX_BODY: u64 = 1024 * 1024;
