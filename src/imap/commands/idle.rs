//! IDLE (RFC 2177): the client waits, the server reports changes as they
//! happen, until the client sends DONE.

use crate::imap::outcome::{Done, Failure};
use crate::imap::response::Out;
use crate::imap::session::{Next, Session};

pub fn start(session: &mut Session, tag: &str, out: &mut Out) -> Next {
    session.idling = Some(tag.to_owned());
    out.continuation("idling");
    Next::Idle
}

impl Session {
    /// The line that ends IDLE.
    pub(crate) fn on_idle_line(&mut self, line: Option<&[u8]>, out: &mut Out) -> Next {
        let Some(tag) = self.idling.take() else {
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
    pub async fn wait_for_change(&mut self) {
        let poll = self.services.limits.idle_poll;
        match self.selected.as_mut() {
            Some(view) => {
                let owners = view.owners().to_vec();
                let _ = tokio::time::timeout(poll, view.subscription().changed(&owners)).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Reports what changed while idling.
    pub async fn idle_update(&mut self, out: &mut Out) {
        let services = self.services.clone();
        if let Some(view) = self.selected.as_mut()
            && let Err(failure) = view.refresh(&services, out, true).await
        {
            // Nothing to answer while idling; the next command will see the trouble.
            tracing::warn!(text = %failure.text, "could not refresh an idling session");
        }
    }
}
