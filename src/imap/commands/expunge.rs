//! EXPUNGE and UID EXPUNGE (RFC 3501 6.4.3, RFC 4315 2.1).

use std::sync::Arc;

use imap_types::sequence::SequenceSet;

use crate::imap::Services;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::view::View;

pub async fn expunge(
    services: &Arc<Services>,
    view: &mut View,
    only: Option<&SequenceSet>,
    out: &mut Out<'_>,
) -> Outcome {
    if view.read_only {
        return Err(Failure::read_only());
    }
    // Flags set by other sessions count too.
    if view.is_stale(services).await {
        view.refresh(services, out, true).await?.or_fail()?;
    }
    let allowed: Option<Vec<usize>> = match only {
        Some(set) => Some(view.resolve(set, true)?),
        None => None,
    };
    let deleted: Vec<u32> = view
        .entries()
        .enumerate()
        .filter(|(index, _)| {
            allowed
                .as_ref()
                .is_none_or(|a| a.binary_search(index).is_ok())
        })
        .filter(|(_, e)| view.has_flag(e, "\\Deleted"))
        .map(|(_, e)| e.uid)
        .collect();
    let removed = services.store.expunge(&view.mailbox, &deleted).await?;
    view.remove(&removed, out);
    if view.qresync {
        // The mailbox's new HIGHESTMODSEQ, so that the client need not ask
        // (RFC 7162 3.2.10).
        if let Some(state) = services.store.mailbox_state(&view.mailbox).await? {
            return Ok(Done::with_code(
                Code::HighestModSeq(state.highestmodseq),
                "EXPUNGE completed",
            ));
        }
    }
    Ok(Done::ok("EXPUNGE completed"))
}
