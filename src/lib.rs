//! EnvShield Auth server: browser-approved sign-in for command-line tools
//! (RFC 8628 device flow) and the scoped, revocable API tokens it mints.

pub mod auth;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod metrics;
pub mod rate_limit;
pub mod realtime;
pub mod routes;
pub mod service;
pub mod startup;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
