//! JSON APIs.

pub mod v1;
