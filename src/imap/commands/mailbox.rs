//! CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 3501 6.3.3-6.3.7),
//! with the rules of ARCHITECTURE (mailboxes): a name with `@` is a disposable address,
//! anything else a personal folder, and INBOX is the unified view.

use imap_types::mailbox::Mailbox;

use crate::directory::Account;
use crate::imap::names::{self, Name};
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::Code;
use crate::imap::{DELIMITER, Services};
use crate::logsafe::Escaped;
use crate::store::{MailboxKind, StoreError};

pub async fn create(services: &Services, account: &Account, mailbox: &Mailbox<'_>) -> Outcome {
    match names::parse_new(mailbox)? {
        Name::Inbox => Err(Failure::no(Code::AlreadyExists, "INBOX always exists")),
        Name::Address(address) => {
            services
                .directory
                .may_create_address(&account.user_id, &address)
                .await?;
            match services
                .store
                .create_address(&account.user_id, &address)
                .await
            {
                Ok(()) => {
                    tracing::info!(user = %account.email, address = %Escaped(&address), "address created");
                    Ok(Done::ok("CREATE completed"))
                }
                Err(StoreError::AlreadyExists) => Err(Failure::no(
                    Code::AlreadyExists,
                    "This address is already taken",
                )),
                Err(other) => Err(other.into()),
            }
        }
        Name::Folder(folder) => {
            // A trailing delimiter only says children will follow (RFC 3501 6.3.3).
            let folder = folder.strip_suffix(DELIMITER).unwrap_or(&folder);
            names::validate_folder(folder)?;
            create_with_parents(services, account, folder).await?;
            Ok(Done::ok("CREATE completed"))
        }
    }
}

/// Creates `folder` and any missing superior levels (RFC 3501 6.3.3).
async fn create_with_parents(
    services: &Services,
    account: &Account,
    folder: &str,
) -> Result<(), Failure> {
    let existing = services.store.mailboxes(&account.user_id).await?;
    let exists = |name: &str| {
        existing
            .iter()
            .any(|e| e.kind == MailboxKind::Folder && e.name == name)
    };
    if exists(folder) {
        return Err(Failure::no(Code::AlreadyExists, "Mailbox already exists"));
    }
    for (index, _) in folder.match_indices(DELIMITER) {
        let parent = &folder[..index];
        if parent != "INBOX" && !exists(parent) {
            match services.store.create_folder(&account.user_id, parent).await {
                Ok(()) | Err(StoreError::AlreadyExists) => {}
                Err(other) => return Err(other.into()),
            }
        }
    }
    services
        .store
        .create_folder(&account.user_id, folder)
        .await?;
    Ok(())
}

pub async fn delete(services: &Services, account: &Account, mailbox: &Mailbox<'_>) -> Outcome {
    let name = names::parse(mailbox)?;
    if name == Name::Inbox {
        return Err(Failure::no(Code::Cannot, "Cannot delete INBOX"));
    }
    names::resolve(services, account, &name).await?;
    match name {
        Name::Address(address) => {
            services
                .store
                .delete_address(&account.user_id, &address)
                .await?;
            tracing::info!(user = %account.email, address = %Escaped(&address), "address deleted");
        }
        Name::Folder(folder) => {
            let entries = services.store.mailboxes(&account.user_id).await?;
            if names::has_children(&entries, &folder) {
                return Err(Failure::no(
                    Code::HasChildren,
                    "Mailbox has children; delete them first",
                ));
            }
            services
                .store
                .delete_folder(&account.user_id, &folder)
                .await?;
        }
        Name::Inbox => unreachable!("refused above"),
    }
    Ok(Done::ok("DELETE completed"))
}

pub async fn rename(
    services: &Services,
    account: &Account,
    from: &Mailbox<'_>,
    to: &Mailbox<'_>,
) -> Outcome {
    let source = names::parse(from)?;
    names::resolve(services, account, &source).await?;
    let target = names::parse_new(to)?;
    let Name::Folder(source) = source else {
        let text = if source == Name::Inbox {
            "INBOX is the unified view of your addresses and cannot be renamed"
        } else {
            "Addresses cannot be renamed; create the new address and delete the old one"
        };
        return Err(Failure::no(Code::Cannot, text));
    };
    let target = match target {
        Name::Folder(target) => target,
        Name::Inbox => return Err(Failure::no(Code::AlreadyExists, "INBOX already exists")),
        Name::Address(_) => {
            return Err(Failure::no(
                Code::Cannot,
                "A folder cannot be renamed to an address",
            ));
        }
    };
    let target = target.strip_suffix(DELIMITER).unwrap_or(&target).to_owned();
    names::validate_folder(&target)?;
    if target == source {
        return Err(Failure::no(Code::AlreadyExists, "Mailbox already exists"));
    }
    if target.starts_with(&source) && target[source.len()..].starts_with(DELIMITER) {
        return Err(Failure::no(
            Code::Cannot,
            "Cannot move a mailbox into itself",
        ));
    }
    if let Some(slash) = target.rfind(DELIMITER) {
        let parent = &target[..slash];
        let entries = services.store.mailboxes(&account.user_id).await?;
        if parent != "INBOX"
            && !entries
                .iter()
                .any(|e| e.kind == MailboxKind::Folder && e.name == parent)
        {
            create_with_parents(services, account, parent).await?;
        }
    }
    services
        .store
        .rename_folder(&account.user_id, &source, &target)
        .await?;
    Ok(Done::ok("RENAME completed"))
}

pub async fn subscribe(
    services: &Services,
    account: &Account,
    mailbox: &Mailbox<'_>,
    subscribed: bool,
) -> Outcome {
    let name = names::parse(mailbox)?;
    let resolved = names::resolve(services, account, &name).await?;
    services
        .store
        .set_subscribed(&resolved.id, subscribed)
        .await?;
    Ok(Done::ok(if subscribed {
        "SUBSCRIBE completed"
    } else {
        "UNSUBSCRIBE completed"
    }))
}
