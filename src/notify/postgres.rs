//! The `LISTEN imap_changes` connection that feeds the hub on PostgreSQL.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::{EVERYONE, Hub};

/// The channel the `emails` trigger and the store notify on.
pub const CHANNEL: &str = "imap_changes";

/// Starts the listener task; it reconnects by itself, and after a reconnect
/// tells every session to refresh, since notifications may have been missed.
pub fn spawn_listener(pool: PgPool, hub: Hub) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&pool, &hub).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "change notifications interrupted; reconnecting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    hub.publish(EVERYONE);
                }
            }
        }
    });
}

async fn listen(pool: &PgPool, hub: &Hub) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        hub.publish(notification.payload());
    }
}
