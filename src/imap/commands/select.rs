//! SELECT, EXAMINE, CLOSE, UNSELECT (RFC 3691), CHECK, and the NOOP of the
//! selected state (RFC 3501 6.3.1-6.3.2, 6.4.1-6.4.2).

use imap_types::mailbox::Mailbox;
use imap_types::sequence::SequenceSet;

use super::any::Enabled;

use crate::directory::Account;
use crate::imap::Services;
use crate::imap::names;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::view::View;

/// What a QRESYNC client knew of the mailbox (RFC 7162 3.2.5).
pub struct Resync<'a> {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<&'a SequenceSet>,
}

/// Opens the mailbox and announces it. The caller has already left the
/// selected state: a failed SELECT leaves no mailbox selected (RFC 3501
/// 6.3.1).
pub async fn select(
    services: &Services,
    account: &Account,
    mailbox: &Mailbox<'_>,
    read_only: bool,
    enabled: Enabled,
    resync: Option<Resync<'_>>,
    out: &mut Out<'_>,
) -> Result<(View, Done), Failure> {
    let name = names::parse(mailbox)?;
    let resolved = names::resolve_readable(services, account, &name).await?;
    let mut view = View::open(services, resolved.id, resolved.name, read_only).await?;
    view.condstore = enabled.condstore;
    view.qresync = enabled.qresync;

    view.announce_flags(out);
    out.untagged(&format!("{} EXISTS", view.len()));
    out.untagged(&format!("{} RECENT", view.recent_count()));
    if let Some(first_unseen) = view.entries().position(|e| !view.has_flag(&e, "\\Seen")) {
        out.status(
            None,
            crate::imap::response::Status::Ok,
            Some(&Code::Unseen(first_unseen as u32 + 1)),
            "First unseen",
        );
    }
    out.status(
        None,
        crate::imap::response::Status::Ok,
        Some(&Code::UidValidity(view.uidvalidity)),
        "UIDs valid",
    );
    out.status(
        None,
        crate::imap::response::Status::Ok,
        Some(&Code::UidNext(view.uidnext)),
        "Predicted next UID",
    );
    // Mod-sequences are kept for every mailbox (RFC 7162 3.1.2.1).
    out.status(
        None,
        crate::imap::response::Status::Ok,
        Some(&Code::HighestModSeq(view.highestmodseq)),
        "Highest",
    );
    // What changed since the client's last visit, if it is the same
    // mailbox (the same UIDVALIDITY); otherwise it starts afresh.
    if let Some(resync) = resync.filter(|r| r.uidvalidity == view.uidvalidity) {
        let within = view.given_out(resync.known_uids);
        view.report_vanished_since(services, resync.modseq, &within, out)
            .await?;
        view.report_changed_since(services, resync.modseq, out)
            .await?;
    }
    let done = if read_only {
        Done::with_code(Code::ReadOnly, "EXAMINE completed")
    } else {
        Done::with_code(Code::ReadWrite, "SELECT completed")
    };
    Ok((view, done))
}

/// CLOSE: removes \Deleted messages silently (unless read-only), then deselects.
/// The caller has left the selected state with `view`.
pub async fn close(services: &Services, view: View) -> Outcome {
    if !view.read_only {
        let deleted: Vec<u32> = view
            .entries()
            .filter(|e| view.has_flag(e, "\\Deleted"))
            .map(|e| e.uid)
            .collect();
        services.store.expunge(&view.mailbox, &deleted).await?;
    }
    Ok(Done::ok("CLOSE completed"))
}
