//! The operations behind every route, shared by the JSON API, the pages and
//! the OAuth endpoints. A handler makes one call here: an `async fn` taking
//! the `AppState`, which runs the synchronous work on a connection through
//! `db::run` and tells the realtime caches what changed once it committed.

pub mod accounts;
pub mod audit;
pub mod authorize;
pub mod device;
pub mod dpop;
pub mod events;
pub mod grants;
pub mod limits;
pub mod notices;
pub mod oauth;
pub mod passkeys;
pub mod sessions;
pub mod sso;
pub mod state;
pub mod step_up;
pub mod tokens;
pub mod users;

pub use state::{AppState, Context};
