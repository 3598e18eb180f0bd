//! COPY, UID COPY, MOVE and UID MOVE (RFC 3501 6.4.7, RFC 6851), answering
//! COPYUID (RFC 4315).

use std::sync::Arc;

use imap_types::mailbox::Mailbox;
use imap_types::sequence::SequenceSet;

use crate::imap::Services;
use crate::imap::names;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out, Status};
use crate::imap::state::Selected;
use crate::imap::view::uid_set;
use crate::mime::message_bytes;
use crate::store::{MailboxId, Wanted};

use super::batch_end;

pub async fn copy(
    services: &Arc<Services>,
    selected: Selected<'_>,
    set: &SequenceSet,
    mailbox: &Mailbox<'_>,
    by_uid: bool,
    is_move: bool,
    out: &mut Out<'_>,
) -> Outcome {
    let Selected { account, view } = selected;
    let verb = if is_move { "MOVE" } else { "COPY" };
    if is_move && view.read_only {
        return Err(Failure::read_only());
    }
    view.catch_up_for_uids(services, set, by_uid, out).await?;
    let uids = view.live_uids(set, by_uid)?;
    let target = names::resolve_target(services, account, mailbox).await?;
    if uids.is_empty() {
        return Ok(Done::ok(format!("{verb} completed: no messages")));
    }
    // A message stored without its bytes is synthesized from its columns;
    // fix those bytes first so that the copy shows exactly the same message.
    store_synthesized_bytes(services, &view.mailbox, &uids).await?;
    let copied = services
        .store
        .copy(&view.mailbox, &uids, &target.id)
        .await?;
    let (sources, destinations): (Vec<u32>, Vec<u32>) = copied.pairs.iter().copied().unzip();
    let code = Code::CopyUid {
        uidvalidity: copied.uidvalidity,
        source: uid_set(&sources),
        destination: uid_set(&destinations),
    };
    if !is_move {
        return Ok(Done::with_code(code, "COPY completed"));
    }
    // RFC 6851 4.3: the COPYUID comes untagged, before the EXPUNGEs.
    out.status(None, Status::Ok, Some(&code), "Moved");
    let removed = services.store.expunge(&view.mailbox, &sources).await?;
    view.remove(&removed, out);
    Ok(Done::ok("MOVE completed"))
}

/// Stores the bytes of the messages that have none, made from their columns
/// as FETCH would serve them; in bounded batches, like FETCH.
async fn store_synthesized_bytes(
    services: &Services,
    mailbox: &MailboxId,
    uids: &[u32],
) -> Result<(), Failure> {
    let mut messages = services.store.messages(mailbox, uids).await?;
    let mut start = 0;
    while start < messages.len() {
        let end = batch_end(&messages, start, Some(Wanted::Unstored));
        let batch = &mut messages[start..end];
        start = end;
        services
            .store
            .fill_contents(mailbox, batch, Wanted::Unstored)
            .await?;
        for message in batch.iter_mut() {
            if let Some(content) = message.content.take() {
                let bytes = message_bytes(&super::stored_columns(message, &content));
                services.store.save_raw(&message.id, &bytes).await?;
            }
        }
    }
    Ok(())
}
