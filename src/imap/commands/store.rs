//! STORE and UID STORE (RFC 3501 6.4.6, RFC 7162 3.1.3): flags, persisted
//! and shared between INBOX and the address mailbox showing the same
//! message, optionally only where nothing changed since a mod-sequence.

use std::sync::Arc;

use imap_types::command::StoreModifier;
use imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_types::sequence::SequenceSet;

use crate::imap::Services;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::view::{View, flag_list, uid_set};
use crate::store::{FlagChange, Flagged};

/// A STORE command as parsed.
pub struct Request<'a> {
    pub set: &'a SequenceSet,
    pub kind: &'a StoreType,
    pub response: &'a StoreResponse,
    pub flags: &'a [Flag<'a>],
    pub by_uid: bool,
    pub modifiers: &'a [StoreModifier],
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
        modifiers,
    } = request;
    if view.read_only {
        return Err(Failure::read_only());
    }
    let unchanged_since = modifiers
        .iter()
        .map(|StoreModifier::UnchangedSince(value)| *value)
        .next_back();
    // UNCHANGEDSINCE enables CONDSTORE (RFC 7162 3.1).
    view.condstore |= unchanged_since.is_some();
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
        .change_flags(&view.mailbox, &uids, change, &flags, unchanged_since)
        .await?;
    view.announce_keywords(updated.messages.iter().map(|m| m.flags.as_slice()), out);
    let silent = *response == StoreResponse::Silent;
    for flagged in &updated.messages {
        view.set_flags(flagged.uid, &flagged.flags);
        // Even a silent STORE tells a CONDSTORE client the new MODSEQ of
        // what it changed (RFC 7162 3.1.3).
        if !silent || (view.condstore && flagged.changed) {
            answer(view, flagged, by_uid, silent, out);
        }
    }
    if updated.modified.is_empty() {
        return Ok(Done::ok("STORE completed"));
    }
    let modified: Vec<u32> = if by_uid {
        updated.modified
    } else {
        updated
            .modified
            .iter()
            .filter_map(|&uid| view.index_of_uid(uid))
            .map(|index| index as u32 + 1)
            .collect()
    };
    Ok(Done::with_code(
        Code::Modified(uid_set(&modified)),
        "Conditional STORE failed",
    ))
}

/// One message's `* n FETCH`: its flags unless silent, and its MODSEQ once
/// CONDSTORE is on.
fn answer(view: &View, flagged: &Flagged, by_uid: bool, silent: bool, out: &mut Out<'_>) {
    let Some(index) = view.index_of_uid(flagged.uid) else {
        return;
    };
    let mut items = Vec::with_capacity(3);
    if by_uid {
        items.push(format!("UID {}", flagged.uid));
    }
    if !silent {
        let recent = view.is_recent(flagged.uid);
        items.push(format!("FLAGS ({})", flag_list(&flagged.flags, recent)));
    }
    if view.condstore {
        items.push(format!("MODSEQ ({})", flagged.modseq));
    }
    out.untagged(&format!("{} FETCH ({})", index + 1, items.join(" ")));
}
