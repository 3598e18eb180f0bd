//! STORE and UID STORE (RFC 3501 6.4.6): flags, persisted and shared between
//! INBOX and the address mailbox showing the same message.

use imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_types::sequence::SequenceSet;

use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::Out;
use crate::imap::session::Session;
use crate::imap::view::flag_list;
use crate::store::FlagChange;

pub async fn store(
    session: &mut Session,
    set: &SequenceSet,
    kind: &StoreType,
    response: &StoreResponse,
    flags: &[Flag<'_>],
    by_uid: bool,
    out: &mut Out<'_>,
) -> Outcome {
    let services = session.services.clone();
    let view = session.selected_view()?;
    if view.read_only {
        return Err(Failure::read_only());
    }
    session.catch_up_for_uids(set, by_uid, out).await?;
    let view = session.selected_view()?;
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
