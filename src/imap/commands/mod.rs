//! One module per command family.

pub mod any;
pub mod auth;
pub mod list;
pub mod mailbox;
pub mod status;
