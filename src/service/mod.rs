//! The operations behind every route, shared by the JSON API and the pages.
//! Each runs synchronously on a connection; callers wrap it in `db::run`.

pub mod accounts;
pub mod audit;
pub mod device;
pub mod events;
pub mod grants;
pub mod oauth;
pub mod pacing;
pub mod token_cache;
pub mod tokens;
