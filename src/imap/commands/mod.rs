//! One module per command family.

pub mod any;
pub mod append;
pub mod auth;
pub mod copy;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod mailbox;
pub mod search;
pub mod select;
pub mod status;
pub mod store;
