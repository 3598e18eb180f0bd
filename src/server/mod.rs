//! Listeners, the accept loop, per-connection handling and shutdown.

pub mod connection;
mod handler;
mod listener;

pub use listener::{Server, StartError};
