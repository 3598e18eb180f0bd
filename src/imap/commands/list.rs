//! LIST and LSUB (RFC 3501 6.3.8-6.3.9) with CHILDREN (RFC 3348) and
//! SPECIAL-USE (RFC 6154) attributes.
//!
//! A subscription is a mark on one of the user's own mailboxes (SUBSCRIBE
//! resolves its name like every command, ARCHITECTURE: isolation), so LSUB
//! answers subscribed mailboxes that exist: a deleted mailbox, or an address
//! that went to someone else, leaves no name behind.

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
        Mailbox::Inbox => Ok("INBOX".to_owned()),
        Mailbox::Other(other) => utf7::decode(other.as_ref()),
    };
    let pattern = match pattern {
        ListMailbox::Token(token) => utf7::decode(token.as_ref()),
        ListMailbox::String(string) => utf7::decode(string.as_ref()),
    };
    let (Ok(reference), Ok(pattern)) = (reference, pattern) else {
        // Every name is listed in modified UTF-7 (RFC 3501 5.1.3), so text
        // that is not cannot match one: no names, and no error either.
        return Ok(Done::ok(done));
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
    for (name, found) in matching(&entries, &pattern, subscribed_only) {
        out.untagged(&format!(
            "{verb} ({}) \"{DELIMITER}\" {}",
            attributes(&name, &found).join(" "),
            quoted(&utf7::encode(&name))
        ));
    }
    Ok(Done::ok(done))
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
        for parent in superiors(&folder) {
            let parent = nodes.entry(parent.to_owned()).or_insert(Node {
                kind: None,
                subscribed: false,
                has_children: false,
            });
            parent.has_children = true;
        }
    }
    nodes
}

/// The levels above `name`, outermost first: `a` and `a/b` for `a/b/c`.
fn superiors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER)
        .map(|(index, _)| &name[..index])
}

/// Why a name is in the answer.
#[derive(Debug, Clone)]
enum Found {
    /// The name itself matched: a mailbox, or (LIST only) a level that
    /// exists because folders lie below it, which cannot be selected.
    Name(Node),
    /// LSUB with `%`: the level is not subscribed, a name below it is.
    SubscribedBelow,
}

fn attributes<'a>(name: &str, found: &'a Found) -> Vec<&'a str> {
    let node = match found {
        // In LSUB `\Noselect` says "not subscribed" (RFC 3501 6.3.9), not
        // anything about the mailbox, so nothing else describes the level.
        Found::SubscribedBelow => return vec!["\\Noselect"],
        Found::Name(node) => node,
    };
    let mut attributes: Vec<&str> = Vec::new();
    if node.kind.is_none() {
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
    attributes
}

/// The names to answer with, INBOX first.
fn matching(
    entries: &[MailboxEntry],
    pattern: &str,
    subscribed_only: bool,
) -> Vec<(String, Found)> {
    let matcher = Matcher::new(pattern);
    let nodes = hierarchy(entries);
    let found = if subscribed_only {
        subscribed_matching(&nodes, &matcher, pattern.contains('%'))
    } else {
        listed_matching(&nodes, &matcher)
    };
    let mut result: Vec<(String, Found)> = found.into_iter().collect();
    result.sort_by_key(|(name, _)| name != "INBOX");
    result
}

/// LIST: every level of the hierarchy that matches.
fn listed_matching(nodes: &BTreeMap<String, Node>, matcher: &Matcher) -> BTreeMap<String, Found> {
    nodes
        .iter()
        .filter(|(name, node)| matcher.matches(name, node.kind))
        .map(|(name, node)| (name.clone(), Found::Name(node.clone())))
        .collect()
}

/// LSUB: the subscribed names that match and, when the pattern has `%`,
/// every unsubscribed level that matches with a subscribed name anywhere
/// below it: "If the "%" wildcard is used, and a mailbox name matched by it
/// is not subscribed but a subordinate of it is, the server MUST return that
/// name with the \Noselect attribute" (RFC 3501 6.3.9). Without `%` such a
/// level is not answered: `*` reaches the subscribed name itself.
fn subscribed_matching(
    nodes: &BTreeMap<String, Node>,
    matcher: &Matcher,
    has_percent: bool,
) -> BTreeMap<String, Found> {
    let mut found = BTreeMap::new();
    for (name, node) in nodes.iter().filter(|(_, node)| node.subscribed) {
        if matcher.matches(name, node.kind) {
            found.insert(name.clone(), Found::Name(node.clone()));
        }
        if !has_percent {
            continue;
        }
        for parent in superiors(name) {
            if let Some(parent_node) = nodes.get(parent)
                && !parent_node.subscribed
                && matcher.matches(parent, parent_node.kind)
            {
                found
                    .entry(parent.to_owned())
                    .or_insert(Found::SubscribedBelow);
            }
        }
    }
    found
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

    /// Each answer as `name (attributes)`.
    fn answers(entries: &[MailboxEntry], pattern: &str, subscribed_only: bool) -> Vec<String> {
        matching(entries, pattern, subscribed_only)
            .iter()
            .map(|(name, found)| format!("{name} ({})", attributes(name, found).join(" ")))
            .collect()
    }

    #[test]
    fn implied_parents_are_noselect_and_inbox_comes_first() {
        let entries = vec![
            entry("Work/2026", MailboxKind::Folder, true),
            entry("INBOX", MailboxKind::Inbox, true),
            entry("box@example.com", MailboxKind::Address, true),
        ];
        assert_eq!(
            answers(&entries, "%", false),
            vec![
                "INBOX (\\HasNoChildren)",
                "Work (\\Noselect \\HasChildren)",
                "box@example.com (\\HasNoChildren)"
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
    fn lsub_percent_shows_unsubscribed_levels_above_a_subscribed_name_as_noselect() {
        let entries = vec![
            entry("a", MailboxKind::Folder, false),
            entry("a/b", MailboxKind::Folder, false),
            entry("a/b/c", MailboxKind::Folder, true),
        ];
        assert_eq!(answers(&entries, "%", true), vec!["a (\\Noselect)"]);
        assert_eq!(answers(&entries, "a/%", true), vec!["a/b (\\Noselect)"]);
        assert_eq!(
            answers(&entries, "a/b/%", true),
            vec!["a/b/c (\\HasNoChildren)"]
        );
        assert_eq!(
            answers(&entries, "*/%", true),
            vec!["a/b (\\Noselect)", "a/b/c (\\HasNoChildren)"]
        );
        assert_eq!(
            answers(&entries, "*", true),
            vec!["a/b/c (\\HasNoChildren)"]
        );
        assert!(answers(&entries, "a/b", true).is_empty());
        assert!(answers(&entries, "*b", true).is_empty());
    }

    #[test]
    fn lsub_answers_a_subscribed_level_for_itself() {
        let entries = vec![
            entry("INBOX", MailboxKind::Inbox, false),
            entry("INBOX/Later", MailboxKind::Folder, true),
            entry("a", MailboxKind::Folder, true),
            entry("a/b", MailboxKind::Folder, true),
        ];
        assert_eq!(
            answers(&entries, "%", true),
            vec!["INBOX (\\Noselect)", "a (\\HasChildren)"]
        );
    }
}
