//! The `LISTEN imap_changes` connection that feeds the hub on PostgreSQL.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::{EVERYONE, Hub, Listening};

/// The channel the `emails` trigger and the store notify on.
pub const CHANNEL: &str = "imap_changes";

/// The first wait before reconnecting, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Starts the listener task. It reconnects by itself, waiting longer after
/// each failed attempt (up to `LONGEST_RETRY`), and each time `LISTEN` is in
/// place again it tells every session to refresh: notifications sent while
/// nobody listened are lost, and only a look at the store finds what they
/// announced (ARCHITECTURE: outages). The returned state says whether it is
/// listening (for readiness).
pub fn spawn_listener(pool: PgPool, hub: Hub) -> Listening {
    let listening = Listening::down();
    let state = listening.clone();
    tokio::spawn(async move {
        let mut delay = FIRST_RETRY;
        loop {
            let error = match PgListener::connect_with(&pool).await {
                Ok(listener) => listen(listener, &hub, &state, &mut delay).await,
                Err(error) => error,
            };
            state.set(false);
            tracing::warn!(%error, retry_in = ?delay, "change notifications interrupted; reconnecting");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(LONGEST_RETRY);
        }
    });
    listening
}

/// Listens until the connection is lost, and returns why. `try_recv` (not
/// `recv`, which reconnects silently) reports the loss; the connection is
/// then made again by the caller, and only once LISTEN is in place are the
/// sessions woken: a wake-up before that could let a change slip between
/// their look and the new LISTEN.
async fn listen(
    mut listener: PgListener,
    hub: &Hub,
    state: &Listening,
    delay: &mut Duration,
) -> sqlx::Error {
    if let Err(error) = listener.listen(CHANNEL).await {
        return error;
    }
    caught_up(hub, state, delay);
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => hub.publish(notification.payload()),
            Ok(None) => {
                return sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the LISTEN connection was lost",
                ));
            }
            Err(error) => return error,
        }
    }
}

/// LISTEN is in place: whatever changed from now on is announced, and what
/// changed before is found by the refresh this asks of every session.
fn caught_up(hub: &Hub, state: &Listening, delay: &mut Duration) {
    tracing::info!("listening for change notifications");
    state.set(true);
    hub.publish(EVERYONE);
    *delay = FIRST_RETRY;
}
