//! Integration tests: real HTTP against the real app on a real PostgreSQL,
//! a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authorize;
mod deploy;
mod device;
mod device_policy;
mod dpop;
mod errors;
mod faults;
mod handoff;
mod helpers;
mod hostile;
mod layers;
mod login;
mod longpoll;
mod metrics;
mod notices;
mod oauth;
mod openapi;
mod pages_account;
mod pages_admin;
mod pages_cli;
mod pages_support;
mod pages_tokens;
mod passkeys;
mod process;
mod realtime_tls;
mod shared_limits;
mod sso;
mod tokens;
mod unit_of_work;
