//! Change notifications: who should look at their mailboxes again.
//!
//! A notification names an owner: a disposable address or a user id. Sessions
//! subscribe to the hub and refresh their view when an owner they show
//! changes. On PostgreSQL the hub is fed by one `LISTEN imap_changes`
//! connection per process (so a delivery through any node, or an external
//! writer's INSERT, wakes every node); on SQLite the store publishes directly.

mod postgres;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;
use tokio::time::Instant;

pub use postgres::spawn_listener;

/// Published when notifications may have been lost (a reconnect, a lagging
/// subscriber): every session should refresh.
pub const EVERYONE: &str = "*";

/// Pending notifications per subscriber before it counts as lagging.
const CAPACITY: usize = 4096;

/// An owner named by a notification, and when the notification arrived
/// (for the notification-lag metric).
type Notice = (Arc<str>, Instant);

#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Notice>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        let (sender, _) = broadcast::channel(CAPACITY);
        Hub { sender }
    }

    pub fn publish(&self, owner: &str) {
        // No subscribers is fine: nobody is looking.
        let _ = self.sender.send((Arc::from(owner), Instant::now()));
    }

    /// Publishes each owner once, however often it is named.
    pub fn publish_each<S: AsRef<str>>(&self, owners: &[S]) {
        let mut owners: Vec<&str> = owners.iter().map(AsRef::as_ref).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            self.publish(owner);
        }
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
        }
    }
}

/// One session's view of the hub.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Notice>,
}

impl Subscription {
    /// Whether anything for `owners` arrived since the last call, without waiting.
    pub fn poll(&mut self, owners: &[String]) -> bool {
        let mut relevant = false;
        loop {
            match self.receiver.try_recv() {
                Ok((owner, _)) => relevant |= concerns(&owner, owners),
                Err(broadcast::error::TryRecvError::Lagged(_)) => relevant = true,
                Err(_) => return relevant,
            }
        }
    }

    /// Waits until something for `owners` arrives; says when it arrived.
    pub async fn changed(&mut self, owners: &[String]) -> Instant {
        loop {
            match self.receiver.recv().await {
                Ok((owner, at)) if concerns(&owner, owners) => return at,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return Instant::now(),
                // The hub lives as long as the server; if it is gone, nothing will come.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

/// Whether the process hears the database's notifications now: the
/// PostgreSQL LISTEN connection is up (SQLite needs none: always true).
#[derive(Debug, Clone)]
pub struct Listening(Arc<AtomicBool>);

impl Listening {
    /// For a store that publishes its own changes.
    pub fn always() -> Listening {
        Listening(Arc::new(AtomicBool::new(true)))
    }

    fn down() -> Listening {
        Listening(Arc::new(AtomicBool::new(false)))
    }

    pub fn is_connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, connected: bool) {
        self.0.store(connected, Ordering::Relaxed);
    }
}

fn concerns(owner: &str, owners: &[String]) -> bool {
    owner == EVERYONE || owners.iter().any(|o| o.eq_ignore_ascii_case(owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_hear_only_their_owners() {
        let hub = Hub::new();
        let mut subscription = hub.subscribe();
        let mine = vec!["box@example.com".to_owned()];
        hub.publish("other@example.com");
        assert!(!subscription.poll(&mine));
        hub.publish("Box@Example.com");
        assert!(subscription.poll(&mine));
        hub.publish(EVERYONE);
        subscription.changed(&mine).await;
    }
}
