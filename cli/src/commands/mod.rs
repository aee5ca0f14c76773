//! One module per command, and what they share: the [`Context`], the
//! [`Credentials`] in use, and authenticated calls that renew an expired
//! access token on the way ([`Context::call`]).

mod context;
mod credentials;
#[cfg(test)]
mod fixtures;
pub mod login;
pub mod logout;
mod refresh;
pub mod token;
pub mod tokens;
pub mod whoami;

pub use context::Context;
pub use credentials::{Credentials, TokenSource, TOKEN_ENV};
pub use refresh::CallError;

#[cfg(test)]
mod tests;
