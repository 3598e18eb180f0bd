//! IDLE (RFC 2177): the client waits, the server reports changes as they
//! happen, until the client sends DONE.

use std::time::Duration;

use crate::imap::outcome::{Done, Failure};
use crate::imap::response::Out;
use crate::imap::session::{Next, Session};
use crate::imap::view::Freshness;

/// How soon an idling session looks again after a refresh failed.
const REFRESH_RETRY: Duration = Duration::from_secs(1);

/// The caller has checked that the session is logged in.
pub fn start(session: &mut Session, tag: &str, out: &mut Out<'_>) -> Next {
    if !session.state.start_idle(tag) {
        session.finish(
            tag,
            Err(Failure::bad("IDLE is not valid before logging in")),
            out,
        );
        return Next::Command;
    }
    out.continuation("idling");
    Next::Idle
}

/// What ended a wait for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A notification for one of the view's owners (consumed by the wait),
    /// which arrived at this instant.
    Notified(tokio::time::Instant),
    /// The poll interval passed in silence.
    Timer,
}

impl Session {
    /// The line that ends IDLE.
    pub(crate) fn on_idle_line(&mut self, line: Option<&[u8]>, out: &mut Out<'_>) -> Next {
        let Some(tag) = self.state.end_idle() else {
            return Next::Command;
        };
        let outcome = match line {
            Some(line) if line.eq_ignore_ascii_case(b"DONE") => Ok(Done::ok("IDLE terminated")),
            _ => Err(Failure::bad("Expected DONE to end IDLE")),
        };
        self.finish(&tag, outcome, out);
        Next::Command
    }

    /// Waits until the selected mailbox may have changed: a notification, or
    /// the periodic look for changes nobody announced.
    pub async fn wait_for_change(&mut self) -> Wake {
        let poll = self.services.limits.idle_poll;
        match self.state.view_mut() {
            Some(view) => {
                // A change that could not be reported (the store was down)
                // is tried again soon, not at the next poll or notification.
                let wait = if view.has_pending() {
                    poll.min(REFRESH_RETRY)
                } else {
                    poll
                };
                let owners = view.owners().to_vec();
                match tokio::time::timeout(wait, view.subscription().changed(&owners)).await {
                    Ok(at) => Wake::Notified(at),
                    Err(_) => Wake::Timer,
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Reports what changed while idling. Woken by a notification or by the
    /// poll timer; the timer alone means a full look only where the store
    /// cannot hear every writer, and otherwise just a check of the bans.
    /// Returns `Next::Close` when the selected mailbox is gone.
    pub async fn idle_update(&mut self, wake: Wake, out: &mut Out<'_>) -> Next {
        let services = self.services.clone();
        let Some(view) = self.state.view_mut() else {
            return Next::Idle;
        };
        let quiet = wake == Wake::Timer && services.store.hears_every_writer();
        if quiet && !view.is_stale(&services).await {
            return Next::Idle;
        }
        let queued = out.bytes().len();
        match view.refresh(&services, out, true).await {
            Ok(Freshness::Current) => {
                // The update goes out as soon as this returns.
                if let Wake::Notified(at) = wake
                    && out.bytes().len() > queued
                {
                    services.metrics.notification_lag(at.elapsed());
                }
                Next::Idle
            }
            Ok(Freshness::Gone) => self.end_gone_selection(out),
            Err(failure) => {
                if failure.from_database {
                    services.metrics.database_error();
                }
                // Nothing to answer while idling; the change stays pending
                // and is looked for again after REFRESH_RETRY.
                tracing::warn!(text = %failure.text, "could not refresh an idling session");
                view.refresh_failed();
                Next::Idle
            }
        }
    }
}
