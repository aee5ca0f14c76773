//! Who is calling: passwords, browser sessions, CSRF, and the extractors
//! handlers use (Bearer token, signed-in browser user).

pub mod csrf;
pub mod extractors;
pub mod password;
pub mod session;
