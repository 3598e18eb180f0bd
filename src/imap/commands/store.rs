//! STORE and UID STORE (RFC 3501 6.4.6): flags, persisted and shared between
//! INBOX and the address mailbox showing the same message.

use std::sync::Arc;

use imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_types::sequence::SequenceSet;

use crate::imap::Services;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::Out;
use crate::imap::view::{View, flag_list};
use crate::store::FlagChange;

/// A STORE command as parsed.
pub struct Request<'a> {
    pub set: &'a SequenceSet,
    pub kind: &'a StoreType,
    pub response: &'a StoreResponse,
    pub flags: &'a [Flag<'a>],
    pub by_uid: bool,
}

pub async fn store(
    services: &Arc<Services>,
    view: &mut View,
    request: Request<'_>,
    out: &mut Out<'_>,
) -> Outcome {
    let Request {
        set,
        kind,
        response,
        flags,
        by_uid,
    } = request;
    if view.read_only {
        return Err(Failure::read_only());
    }
    view.catch_up_for_uids(services, set, by_uid, out).await?;
    // \Recent belongs to the server (RFC 3501 2.3.2); clients cannot store it.
    let flags: Vec<String> = flags
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    let change = match kind {
        StoreType::Replace => FlagChange::Replace,
        StoreType::Add => FlagChange::Add,
        StoreType::Remove => FlagChange::Remove,
    };
    let uids = view.live_uids(set, by_uid)?;
    let updated = services
        .store
        .change_flags(&view.mailbox, &uids, change, &flags)
        .await?;
    view.announce_keywords(updated.iter().map(|(_, flags)| flags.as_slice()), out);
    for (uid, flags) in updated {
        view.set_flags(uid, &flags);
        if *response == StoreResponse::Answer
            && let Some(index) = view.index_of_uid(uid)
        {
            let recent = view.is_recent(uid);
            let uid_item = if by_uid {
                format!("UID {uid} ")
            } else {
                String::new()
            };
            out.untagged(&format!(
                "{} FETCH ({uid_item}FLAGS ({}))",
                index + 1,
                flag_list(&flags, recent)
            ));
        }
    }
    Ok(Done::ok("STORE completed"))
}
