//! Mailbox names: from the wire to what they mean for one user.
//!
//! Every command that names a mailbox goes through `resolve`, which only ever
//! finds the user's own mailboxes; any other name, whoever owns it, is
//! `NO [NONEXISTENT]`, exactly as a name nobody has.

use imap_types::mailbox::Mailbox;

use super::outcome::Failure;
use super::response::Code;
use super::{DELIMITER, Services};
use crate::directory::Account;
use crate::store::{MailboxEntry, MailboxId, MailboxKind};

/// What a name refers to, before ownership is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Inbox,
    /// A disposable address, lower case.
    Address(String),
    /// A personal folder, `INBOX` prefix normalised.
    Folder(String),
}

impl Name {
    pub fn display(&self) -> &str {
        match self {
            Name::Inbox => "INBOX",
            Name::Address(a) => a,
            Name::Folder(f) => f,
        }
    }
}

/// Decodes the name of a mailbox that must exist. A name that is not
/// modified UTF-7 (RFC 3501 5.1.3) is still a well-formed string: it names
/// no mailbox anyone can have, so it is answered like every unknown name.
/// BAD would say the command was malformed, and many clients take that for
/// a broken connection.
pub fn parse(mailbox: &Mailbox<'_>) -> Result<Name, Failure> {
    decode(mailbox).ok_or_else(Failure::no_such_mailbox)
}

/// Decodes the name of a mailbox to be made (CREATE, RENAME's target). A
/// name that is not modified UTF-7 cannot be made: we could not say what it
/// means, nor list it.
pub fn parse_new(mailbox: &Mailbox<'_>) -> Result<Name, Failure> {
    decode(mailbox).ok_or_else(|| {
        Failure::no(
            Code::Cannot,
            "Mailbox name is not valid modified UTF-7 (RFC 3501 5.1.3)",
        )
    })
}

fn decode(mailbox: &Mailbox<'_>) -> Option<Name> {
    match mailbox {
        Mailbox::Inbox => Some(Name::Inbox),
        Mailbox::Other(other) => super::utf7::decode(other.as_ref())
            .ok()
            .map(|text| classify(&text)),
    }
}

/// Classifies a decoded name.
pub fn classify(text: &str) -> Name {
    if text.eq_ignore_ascii_case("INBOX") {
        return Name::Inbox;
    }
    if text.contains('@') {
        return Name::Address(text.trim().to_lowercase());
    }
    let first = text.split(DELIMITER).next().unwrap_or_default();
    if first.eq_ignore_ascii_case("INBOX") {
        return Name::Folder(format!("INBOX{}", &text[first.len()..]));
    }
    Name::Folder(text.to_owned())
}

/// Checks a name for a new personal folder.
pub fn validate_folder(name: &str) -> Result<(), Failure> {
    let problem = if name.is_empty() {
        Some("Mailbox name is empty")
    } else if name.len() > 255 {
        Some("Mailbox name is too long")
    } else if name.starts_with(DELIMITER) || name.contains("//") {
        Some("Mailbox name has an empty level")
    } else if name.contains(['*', '%']) {
        Some("Mailbox names cannot contain * or %")
    } else if name.chars().any(char::is_control) {
        Some("Mailbox names cannot contain control characters")
    } else {
        None
    };
    match problem {
        Some(text) => Err(Failure::no(Code::Cannot, text)),
        None => Ok(()),
    }
}

/// One of the user's mailboxes, found.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: MailboxId,
    pub name: Name,
}

/// Finds one of the user's own mailboxes by name.
pub async fn resolve(
    services: &Services,
    account: &Account,
    name: &Name,
) -> Result<Resolved, Failure> {
    let id = match name {
        Name::Inbox => MailboxId::Inbox {
            user_id: account.user_id.clone(),
        },
        Name::Address(address) => {
            let owner = services.store.address_owner(address).await?;
            if owner.as_deref() != Some(account.user_id.as_str()) {
                return Err(Failure::no_such_mailbox());
            }
            MailboxId::Address {
                address: address.clone(),
                user_id: account.user_id.clone(),
            }
        }
        Name::Folder(folder) => {
            let entries = services.store.mailboxes(&account.user_id).await?;
            if !entries
                .iter()
                .any(|e| e.kind == MailboxKind::Folder && e.name == *folder)
            {
                return Err(Failure::no_such_mailbox());
            }
            MailboxId::Folder {
                user_id: account.user_id.clone(),
                name: folder.clone(),
            }
        }
    };
    Ok(Resolved {
        id,
        name: name.clone(),
    })
}

/// Finds one of the user's mailboxes to read from (SELECT, EXAMINE, STATUS):
/// an address banned by an `email` ban cannot be opened (ARCHITECTURE: accounts, domains and bans).
pub async fn resolve_readable(
    services: &Services,
    account: &Account,
    name: &Name,
) -> Result<Resolved, Failure> {
    let resolved = resolve(services, account, name).await?;
    if let Name::Address(address) = name {
        let bans = services.directory.bans().await?;
        if bans.is_banned(crate::directory::Scope::Email, address) {
            return Err(Failure::no(Code::NoPerm, "This address is banned"));
        }
    }
    Ok(resolved)
}

/// Resolves the target of COPY, MOVE or APPEND: a missing mailbox is
/// `NO [TRYCREATE]` (RFC 3501 6.3.11), whoever else may have it, and so is
/// a name that is not modified UTF-7, as every other unknown name.
pub async fn resolve_target(
    services: &Services,
    account: &Account,
    mailbox: &Mailbox<'_>,
) -> Result<Resolved, Failure> {
    let name = parse(mailbox).map_err(try_create)?;
    resolve(services, account, &name).await.map_err(try_create)
}

fn try_create(failure: Failure) -> Failure {
    if failure.code == Some(Code::NonExistent) {
        Failure::no(Code::TryCreate, "No such mailbox")
    } else {
        failure
    }
}

/// Whether any of `entries` lies below `name` in the hierarchy.
pub fn has_children(entries: &[MailboxEntry], name: &str) -> bool {
    entries.iter().any(|e| {
        e.name.len() > name.len() + 1
            && e.name.starts_with(name)
            && e.name[name.len()..].starts_with(DELIMITER)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        assert_eq!(classify("inbox"), Name::Inbox);
        assert_eq!(
            classify("Box@Example.COM"),
            Name::Address("box@example.com".into())
        );
        assert_eq!(classify("Work/2026"), Name::Folder("Work/2026".into()));
        assert_eq!(classify("inbox/Later"), Name::Folder("INBOX/Later".into()));
    }

    #[test]
    fn folder_names_are_checked() {
        assert!(validate_folder("Sent Items").is_ok());
        assert!(validate_folder("a/b").is_ok());
        for bad in ["", "/a", "a//b", "a*", "a%b", "a\u{1}b"] {
            assert!(validate_folder(bad).is_err(), "{bad:?}");
        }
    }
}
