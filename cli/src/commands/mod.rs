//! One module per command, and what they share: the [`Context`], the
//! [`Credentials`] in use, and authenticated calls that renew an expired
//! access token on the way ([`Context::call`]).

mod context;
mod credentials;
pub mod login;
pub mod logout;
mod refresh;
pub mod token;
pub mod tokens;
pub mod whoami;

pub(crate) use context::with_server_message;
pub use context::Context;
pub use credentials::{Credentials, TokenSource};
pub use refresh::CallError;

/// Environment variable whose token overrides the stored one.
pub const TOKEN_ENV: &str = "ENVSHIELD_TOKEN";

#[cfg(test)]
mod tests;
