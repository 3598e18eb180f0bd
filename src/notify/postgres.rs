//! The `LISTEN imap_changes` connection that feeds the hub on PostgreSQL.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::{EVERYONE, Hub, Listening};

/// The channel the `emails` trigger and the store notify on.
pub const CHANNEL: &str = "imap_changes";

/// Starts the listener task; it reconnects by itself, and after a reconnect
/// tells every session to refresh, since notifications may have been missed.
/// The returned state says whether it is connected (for readiness).
pub fn spawn_listener(pool: PgPool, hub: Hub) -> Listening {
    let listening = Listening::down();
    let state = listening.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&pool, &hub, &state).await {
                Ok(()) => return,
                Err(error) => {
                    // A fresh outage after a working connection starts
                    // the back-off again.
                    if state.is_connected() {
                        delay = Duration::from_millis(100);
                    }
                    state.set(false);
                    tracing::warn!(%error, "change notifications interrupted; reconnecting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    hub.publish(EVERYONE);
                }
            }
        }
    });
    listening
}

async fn listen(pool: &PgPool, hub: &Hub, state: &Listening) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    state.set(true);
    loop {
        // `recv` would reconnect by itself, silently: notifications sent
        // meanwhile would be missed and readiness would not know. A lost
        // connection is an error here, handled (and announced) above.
        match listener.try_recv().await? {
            Some(notification) => hub.publish(notification.payload()),
            None => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the LISTEN connection was lost",
                )));
            }
        }
    }
}
