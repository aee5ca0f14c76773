//! One module per table: row structs and the SQL that reads and writes them.

pub mod api_tokens;
pub mod device_sessions;
pub mod notifications;
pub mod refresh_tokens;
pub mod revocation;
pub mod security_events;
pub mod user_sessions;
pub mod users;
