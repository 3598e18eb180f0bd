//! Readiness: whether this process can serve logins now. A load balancer
//! or an orchestrator sends no new clients to a process that is not.

use std::sync::Arc;
use std::time::Duration;

use crate::directory::Directory;
use crate::notify::Listening;
use crate::store::Backend;

/// How long the database and the directory may take to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Health {
    backend: Backend,
    listening: Listening,
    directory: Arc<dyn Directory>,
}

impl Health {
    pub fn new(backend: Backend, listening: Listening, directory: Arc<dyn Directory>) -> Health {
        Health {
            backend,
            listening,
            directory,
        }
    }

    /// `Ok` when ready; otherwise why not, in a few words for the operator.
    pub async fn ready(&self) -> Result<(), &'static str> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.database_answers()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: the database does not answer");
                return Err("database unavailable");
            }
            Err(_) => return Err("database did not answer in time"),
        }
        if !self.listening.is_connected() {
            return Err("change notifications (LISTEN) not connected");
        }
        self.caches_loaded().await
    }

    async fn database_answers(&self) -> Result<(), sqlx::Error> {
        match &self.backend {
            Backend::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Backend::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
    }

    /// The domain and ban caches have loaded once; until they have, each
    /// probe tries to load them (start-up tries once by itself).
    async fn caches_loaded(&self) -> Result<(), &'static str> {
        let loaded =
            |directory: &dyn Directory| directory.caches().iter().all(|cache| cache.age.is_some());
        if loaded(self.directory.as_ref()) {
            return Ok(());
        }
        match tokio::time::timeout(PROBE_TIMEOUT, self.directory.warm_up()).await {
            Ok(Ok(())) if loaded(self.directory.as_ref()) => Ok(()),
            _ => Err("domain and ban caches not loaded"),
        }
    }
}
