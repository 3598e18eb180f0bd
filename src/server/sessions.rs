//! Sessions follow their account: every `IMAP_SESSION_RECHECK` the tokens
//! behind the process's logged-in sessions are looked at again, all at once
//! (one directory request per page of `RECHECK_PAGE` tokens, never one per
//! session), and a session whose token was revoked or expired, or whose
//! subscription lapsed, is told why and closed, idling or not.
//!
//! A directory that cannot be read closes nothing: an outage is no proof
//! that anyone lost their right to be here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::directory::{Account, AuthError, Directory, RECHECK_PAGE};
use crate::store::TokenStanding;

struct Live {
    account: Account,
    /// Where the verdict goes when the session must end.
    end: oneshot::Sender<AuthError>,
}

#[derive(Default)]
pub struct Sessions {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
}

/// A logged-in session's entry, removed when dropped (however the
/// connection ends), so the registry holds exactly the live sessions.
pub struct Registered {
    sessions: Arc<Sessions>,
    id: u64,
    ended: Option<oneshot::Receiver<AuthError>>,
}

impl Sessions {
    pub fn register(self: &Arc<Self>, account: &Account) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (end, ended) = oneshot::channel();
        self.lock().insert(
            id,
            Live {
                account: account.clone(),
                end,
            },
        );
        Registered {
            sessions: self.clone(),
            id,
            ended: Some(ended),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-checks every live session every `interval`, until the returned
    /// task is aborted (`None`: a zero interval turns re-checks off).
    pub fn spawn_rechecks(
        self: &Arc<Self>,
        directory: Arc<dyn Directory>,
        interval: Duration,
    ) -> Option<AbortHandle> {
        if interval.is_zero() {
            return None;
        }
        let sessions = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                sessions.recheck(directory.as_ref()).await;
            }
        });
        Some(task.abort_handle())
    }

    /// One round: the distinct tokens behind live sessions, page by page.
    pub async fn recheck(&self, directory: &dyn Directory) {
        let mut tokens: Vec<String> = self
            .lock()
            .values()
            .map(|live| live.account.token_id.clone())
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        for page in tokens.chunks(RECHECK_PAGE) {
            match directory.recheck(page).await {
                Ok(standings) => self.end_unqualified(page, &standings),
                Err(error) => {
                    tracing::warn!(%error, "cannot re-check live sessions; trying again later");
                    return;
                }
            }
        }
    }

    /// Ends the sessions on these tokens that no longer qualify.
    fn end_unqualified(&self, page: &[String], standings: &[TokenStanding]) {
        let now = Utc::now();
        // Looked up once per session, under the lock every login and logout
        // also takes: a map, not a scan of the page.
        let standings: HashMap<&str, &TokenStanding> = standings
            .iter()
            .map(|standing| (standing.token_id.as_str(), standing))
            .collect();
        let mut live = self.lock();
        let ending: Vec<(u64, AuthError)> = live
            .iter()
            .filter(|(_, l)| page.binary_search(&l.account.token_id).is_ok())
            .filter_map(|(&id, l)| {
                let standing = standings.get(l.account.token_id.as_str()).copied();
                l.account
                    .still_allowed(standing, now)
                    .err()
                    .map(|reason| (id, reason))
            })
            .collect();
        for (id, reason) in ending {
            if let Some(session) = live.remove(&id) {
                tracing::info!(user = %session.account.email, outcome = %reason, "session ended by re-check");
                let _ = session.end.send(reason);
            }
        }
    }
}

impl Registered {
    /// Completes when the re-check ends this session; never otherwise.
    pub async fn ended(&mut self) -> AuthError {
        if let Some(ended) = self.ended.as_mut() {
            let verdict = ended.await;
            // A oneshot receiver panics when polled again once complete.
            self.ended = None;
            if let Ok(reason) = verdict {
                return reason;
            }
        }
        std::future::pending().await
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}
