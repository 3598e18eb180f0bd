//! LIST and LSUB (RFC 3501 6.3.8-6.3.9) with CHILDREN (RFC 3348) and
//! SPECIAL-USE (RFC 6154) attributes.

use std::collections::BTreeMap;

use imap_types::mailbox::{ListMailbox, Mailbox};

use crate::directory::Account;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::pattern::{MAX_PATTERN, Pattern};
use crate::imap::response::{Code, Out, quoted};
use crate::imap::{DELIMITER, Services, utf7};
use crate::store::{MailboxEntry, MailboxKind};

/// The special-use attribute of each default folder.
const SPECIAL_USE: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// A name in the user's hierarchy.
#[derive(Debug, Clone)]
struct Node {
    kind: Option<MailboxKind>,
    subscribed: bool,
    has_children: bool,
}

pub async fn list(
    services: &Services,
    account: &Account,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    subscribed_only: bool,
    out: &mut Out<'_>,
) -> Outcome {
    let done = if subscribed_only {
        "LSUB completed"
    } else {
        "LIST completed"
    };
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(other) => decode(other.as_ref())?,
    };
    let pattern = match pattern {
        ListMailbox::Token(token) => decode(token.as_ref())?,
        ListMailbox::String(string) => decode(string.as_ref())?,
    };
    if pattern.is_empty() {
        // The hierarchy delimiter and root (RFC 3501 6.3.8).
        if !subscribed_only {
            out.untagged(&format!("LIST (\\Noselect) \"{DELIMITER}\" \"\""));
        }
        return Ok(Done::ok(done));
    }
    let pattern = format!("{reference}{pattern}");
    if pattern.len() > MAX_PATTERN {
        return Err(Failure::bad_with(
            Code::Limit,
            format!("Mailbox pattern longer than {MAX_PATTERN} bytes"),
        ));
    }
    let entries = services.store.mailboxes(&account.user_id).await?;
    let verb = if subscribed_only { "LSUB" } else { "LIST" };
    for (name, node, selectable) in matching(&entries, &pattern, subscribed_only) {
        let mut attributes: Vec<&str> = Vec::new();
        if !selectable {
            attributes.push("\\Noselect");
        }
        attributes.push(if node.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        });
        if node.kind == Some(MailboxKind::Folder)
            && let Some((_, attribute)) = SPECIAL_USE.iter().find(|(folder, _)| *folder == name)
        {
            attributes.push(attribute);
        }
        out.untagged(&format!(
            "{verb} ({}) \"{DELIMITER}\" {}",
            attributes.join(" "),
            quoted(&utf7::encode(&name))
        ));
    }
    Ok(Done::ok(done))
}

fn decode(wire: &[u8]) -> Result<String, Failure> {
    utf7::decode(wire).map_err(|_| Failure::bad("Mailbox name is not valid modified UTF-7"))
}

/// The hierarchy: every mailbox plus the implied levels above folders.
fn hierarchy(entries: &[MailboxEntry]) -> BTreeMap<String, Node> {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for entry in entries {
        nodes.insert(
            entry.name.clone(),
            Node {
                kind: Some(entry.kind),
                subscribed: entry.subscribed,
                has_children: false,
            },
        );
    }
    let folders: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == MailboxKind::Folder)
        .map(|e| e.name.clone())
        .collect();
    for folder in folders {
        for (index, _) in folder.match_indices(DELIMITER) {
            let parent = nodes.entry(folder[..index].to_owned()).or_insert(Node {
                kind: None,
                subscribed: false,
                has_children: false,
            });
            parent.has_children = true;
        }
    }
    nodes
}

/// The names to answer with, INBOX first: (name, node, selectable).
fn matching(
    entries: &[MailboxEntry],
    pattern: &str,
    subscribed_only: bool,
) -> Vec<(String, Node, bool)> {
    let matcher = Matcher::new(pattern);
    let nodes = hierarchy(entries);
    let mut found: BTreeMap<String, (Node, bool)> = BTreeMap::new();
    for (name, node) in &nodes {
        if subscribed_only && !node.subscribed {
            continue;
        }
        if matcher.matches(name, node.kind) {
            found.insert(name.clone(), (node.clone(), node.kind.is_some()));
            continue;
        }
        // LSUB "%" shows an unsubscribed level above a subscribed one as \Noselect (RFC 3501 6.3.9).
        if subscribed_only {
            for (index, _) in name.match_indices(DELIMITER) {
                let parent = &name[..index];
                if !found.contains_key(parent)
                    && let Some(parent_node) = nodes.get(parent)
                    && matcher.matches(parent, parent_node.kind)
                {
                    found.insert(parent.to_owned(), (parent_node.clone(), false));
                }
            }
        } else if node.kind.is_none() && matcher.matches(name, None) {
            found.insert(name.clone(), (node.clone(), false));
        }
    }
    let mut result: Vec<(String, Node, bool)> = found
        .into_iter()
        .map(|(name, (node, selectable))| (name, node, selectable))
        .collect();
    result.sort_by_key(|(name, _, _)| name != "INBOX");
    result
}

/// A pattern compiled once per command in each form a name may need.
struct Matcher {
    exact: Pattern,
    /// For names matched case-insensitively: INBOX and addresses.
    folded: Pattern,
    /// For INBOX's own subfolders: the pattern with a leading `inbox` in
    /// any case read as `INBOX`.
    inbox: Pattern,
}

impl Matcher {
    fn new(pattern: &str) -> Matcher {
        let inbox = match pattern.get(..5) {
            Some(head) if head.eq_ignore_ascii_case("INBOX") => format!("INBOX{}", &pattern[5..]),
            _ => pattern.to_owned(),
        };
        Matcher {
            exact: Pattern::new(pattern.as_bytes()),
            folded: Pattern::new(pattern.to_lowercase().as_bytes()),
            inbox: Pattern::new(inbox.as_bytes()),
        }
    }

    /// Matching is case-insensitive where names are: INBOX and addresses.
    fn matches(&self, name: &str, kind: Option<MailboxKind>) -> bool {
        match kind {
            Some(MailboxKind::Address) | Some(MailboxKind::Inbox) => {
                self.folded.matches(name.to_lowercase().as_bytes())
            }
            _ if name == "INBOX" || name.starts_with("INBOX/") => {
                self.inbox.matches(name.as_bytes())
            }
            _ => self.exact.matches(name.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: MailboxKind, subscribed: bool) -> MailboxEntry {
        MailboxEntry {
            name: name.into(),
            kind,
            subscribed,
        }
    }

    #[test]
    fn implied_parents_are_noselect_and_inbox_comes_first() {
        let entries = vec![
            entry("Work/2026", MailboxKind::Folder, true),
            entry("INBOX", MailboxKind::Inbox, true),
            entry("box@example.com", MailboxKind::Address, true),
        ];
        let names: Vec<(String, bool)> = matching(&entries, "%", false)
            .into_iter()
            .map(|(name, _, selectable)| (name, selectable))
            .collect();
        assert_eq!(
            names,
            vec![
                ("INBOX".into(), true),
                ("Work".into(), false),
                ("box@example.com".into(), true)
            ]
        );
    }

    #[test]
    fn inbox_and_addresses_match_case_insensitively() {
        let entries = vec![
            entry("INBOX", MailboxKind::Inbox, true),
            entry("box@example.com", MailboxKind::Address, true),
        ];
        assert_eq!(matching(&entries, "inbox", false).len(), 1);
        assert_eq!(matching(&entries, "BOX@*", false).len(), 1);
    }

    #[test]
    fn lsub_shows_unsubscribed_parents_as_noselect() {
        let entries = vec![
            entry("a", MailboxKind::Folder, false),
            entry("a/b", MailboxKind::Folder, true),
        ];
        let found = matching(&entries, "%", true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "a");
        assert!(!found[0].2);
    }
}
