//! Integration tests of the built `envshield` binary against a real server
//! on a real PostgreSQL: each test gets its own server, database and config
//! folder, and approves sign-ins as a signed-in browser over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser_login;
mod commands;
mod errors;
mod handoff;
mod helpers;
mod keyring;
mod login;
mod login_options;
mod paste;
mod pty;
mod refresh;
mod token_login;
