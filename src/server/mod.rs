//! Listeners, the accept loop, TLS, per-connection handling and shutdown.

mod compress;
pub mod connection;
mod handler;
mod listener;
mod per_address;
pub mod proxy_protocol;
pub mod sessions;
mod stream;
pub mod tls;

pub use listener::{CleartextLogin, Server, StartError};
pub use proxy_protocol::ProxyProtocol;
