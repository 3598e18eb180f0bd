//! The accept loop: a cap on simultaneous connections, one task per
//! connection, and a graceful shutdown that says BYE to every session.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::handler;
use crate::config::{Config, redact_url};
use crate::directory::SqlDirectory;
use crate::imap::Services;
use crate::store::Database;

/// Why the server could not start; each message is one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {0}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE; set IMAP_BIND=127.0.0.1:1143 for an unprivileged port)"
    )]
    PermissionDenied(SocketAddr),
    #[error("cannot listen on {0}: the address is already in use (is another server running?)")]
    AddressInUse(SocketAddr),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, io::Error),
    #[error("cannot open the database {url}: {reason}")]
    Database { url: String, reason: String },
}

/// How long shutdown waits for sessions to finish their BYE.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Server {
    listener: TcpListener,
    services: Arc<Services>,
    max_connections: usize,
}

impl Server {
    /// Opens the database (migrating it) and binds the listener.
    pub async fn start(config: &Config) -> Result<Server, StartError> {
        let database = Database::open(&config.database_url, config.database_max_connections)
            .await
            .map_err(|e| StartError::Database {
                url: redact_url(&config.database_url),
                reason: e.to_string(),
            })?;
        // Without this, PostgreSQL's NOTIFYs reach nobody and IDLE sees new
        // mail only at its next poll (IMAP_IDLE_POLL).
        database.listen_for_changes();
        let directory = Arc::new(SqlDirectory::new(
            database.accounts.clone(),
            config.domain_cache_ttl,
            config.ban_cache_ttl,
        ));
        let services = Arc::new(Services {
            store: database.mail.clone(),
            directory,
            limits: config.limits.clone(),
        });
        Server::bind(config.imap_bind, services).await
    }

    pub async fn bind(address: SocketAddr, services: Arc<Services>) -> Result<Server, StartError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => StartError::PermissionDenied(address),
                io::ErrorKind::AddrInUse => StartError::AddressInUse(address),
                _ => StartError::Listen(address, e),
            })?;
        let max_connections = services.limits.max_connections;
        Ok(Server {
            listener,
            services,
            max_connections,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then closes every session with a BYE.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let (stop, stopped) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (mut stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection refused: too many connections");
                tokio::spawn(async move {
                    let _ = stream
                        .write_all(b"* BYE Too many connections, try again later\r\n")
                        .await;
                });
                continue;
            };
            let services = self.services.clone();
            let stopped = stopped.clone();
            tokio::spawn(async move {
                handler::serve(stream, peer, services, stopped).await;
                drop(slot);
            });
        }
        tracing::info!("shutting down");
        let _ = stop.send(true);
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await;
    }
}
