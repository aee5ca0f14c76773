//! Credentials: password hashing, the typed browser session, CSRF tokens,
//! DPoP proofs.
//! (The extractors that check them on a request are in `routes::extract`.)

pub mod csrf;
pub mod dpop;
pub mod password;
pub mod session;
