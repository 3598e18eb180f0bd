//! imap-server: an IMAP server for disposable-email services.
//!
//! Dependencies point one way: `server -> imap -> {store, directory}`.
//! `store` and `directory` never format IMAP; `imap` never writes SQL.

pub mod admin;
pub mod config;
pub mod directory;
pub mod imap;
pub mod logsafe;
pub mod mime;
pub mod notify;
pub mod ops;
pub mod server;
pub mod services;
pub mod store;
