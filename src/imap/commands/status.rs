//! STATUS (RFC 3501 6.3.10). Messages from banned senders are not counted:
//! they do not exist as far as the client can tell (ARCHITECTURE: isolation).

use imap_types::mailbox::Mailbox;
use imap_types::status::StatusDataItemName;

use crate::directory::Account;
use crate::imap::names;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Out, quoted};
use crate::imap::view::is_hidden;
use crate::imap::{Services, utf7};
use crate::store::StoreError;

pub async fn status(
    services: &Services,
    account: &Account,
    mailbox: &Mailbox<'_>,
    items: &[StatusDataItemName],
    out: &mut Out<'_>,
) -> Outcome {
    let name = names::parse(mailbox)?;
    let resolved = names::resolve_readable(services, account, &name).await?;
    let bans = services.directory.bans().await?;
    let state = services
        .store
        .mailbox_state(&resolved.id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let summaries = services.store.summaries(&resolved.id).await?;
    let visible = summaries.iter().filter(|m| !is_hidden(&bans, m));
    let (mut messages, mut unseen, mut recent, mut deleted) = (0u32, 0u32, 0u32, 0u32);
    for message in visible {
        messages += 1;
        unseen += u32::from(!message.has_flag("\\Seen"));
        recent += u32::from(message.uid >= state.recent_uid);
        deleted += u32::from(message.has_flag("\\Deleted"));
    }
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        let value = match item {
            StatusDataItemName::Messages => format!("MESSAGES {messages}"),
            StatusDataItemName::Recent => format!("RECENT {recent}"),
            StatusDataItemName::UidNext => format!("UIDNEXT {}", state.uidnext),
            StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", state.uidvalidity),
            StatusDataItemName::Unseen => format!("UNSEEN {unseen}"),
            StatusDataItemName::Deleted => format!("DELETED {deleted}"),
            StatusDataItemName::HighestModSeq => format!("HIGHESTMODSEQ {}", state.highestmodseq),
            other => {
                return Err(Failure::bad(format!(
                    "STATUS item {other:?} is not supported"
                )));
            }
        };
        values.push(value);
    }
    out.untagged(&format!(
        "STATUS {} ({})",
        quoted(&utf7::encode(resolved.name.display())),
        values.join(" ")
    ));
    Ok(Done::ok("STATUS completed"))
}
