//! SEARCH and UID SEARCH (RFC 3501 6.4.4) with every RFC 3501 key.
//!
//! Keys on flags, UIDs, sequence numbers and dates are answered from the
//! view and the index; keys on headers and text load the messages' bytes,
//! and only when the search has such a key.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use imap_types::core::Charset;
use imap_types::search::SearchKey;

use super::fetch::stored_columns;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::session::Session;
use crate::imap::view::View;
use crate::mime;
use crate::store::MessageData;

pub async fn search(
    session: &mut Session,
    charset: Option<&Charset<'_>>,
    criteria: &[SearchKey<'_>],
    by_uid: bool,
    out: &mut Out<'_>,
) -> Outcome {
    if let Some(charset) = charset {
        let name = charset.as_ref();
        if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
            return Err(Failure::no(
                Code::BadCharset("US-ASCII UTF-8"),
                format!("Charset {name} is not supported"),
            ));
        }
    }
    let services = session.services.clone();
    let view = session.selected_view()?;
    let uids: Vec<u32> = view
        .entries()
        .iter()
        .filter(|e| !e.is_expunged())
        .map(|e| e.uid)
        .collect();
    let needs = criteria
        .iter()
        .map(needs_of)
        .fold(Needs::default(), Needs::or);
    let messages = if needs.any() {
        services
            .store
            .messages(&view.mailbox, &uids, needs.content)
            .await?
    } else {
        Vec::new()
    };
    // Sets named in the criteria, resolved once against the view.
    let mut sets = Vec::new();
    collect_sets(criteria, view, &mut sets)?;
    let by_uid_index: HashMap<u32, &MessageData> = messages.iter().map(|m| (m.uid, m)).collect();
    let mut found = Vec::new();
    let mut set_index;
    for (index, entry) in view.entries().iter().enumerate() {
        if entry.is_expunged() {
            continue;
        }
        let message = by_uid_index.get(&entry.uid).copied();
        let mut candidate = Candidate {
            seq: index,
            flags: view.flags(entry),
            recent: view.is_recent(entry.uid),
            message,
            bytes: None,
        };
        set_index = 0;
        if criteria
            .iter()
            .all(|key| matches(key, &mut candidate, &sets, &mut set_index))
        {
            found.push(if by_uid { entry.uid } else { index as u32 + 1 });
        }
    }
    let list: Vec<String> = found.iter().map(u32::to_string).collect();
    if list.is_empty() {
        out.untagged("SEARCH");
    } else {
        out.untagged(&format!("SEARCH {}", list.join(" ")));
    }
    Ok(Done::ok("SEARCH completed"))
}

/// What the criteria need loaded.
#[derive(Debug, Default, Clone, Copy)]
struct Needs {
    /// Dates or sizes from the index.
    index: bool,
    /// The message bytes.
    content: bool,
}

impl Needs {
    fn or(self, other: Needs) -> Needs {
        Needs {
            index: self.index || other.index,
            content: self.content || other.content,
        }
    }

    fn any(self) -> bool {
        self.index || self.content
    }
}

fn needs_of(key: &SearchKey<'_>) -> Needs {
    match key {
        SearchKey::And(keys) => keys
            .as_ref()
            .iter()
            .map(needs_of)
            .fold(Needs::default(), Needs::or),
        SearchKey::Not(key) => needs_of(key),
        SearchKey::Or(a, b) => needs_of(a).or(needs_of(b)),
        SearchKey::Before(_) | SearchKey::On(_) | SearchKey::Since(_) => Needs {
            index: true,
            content: false,
        },
        // Sizes may be cached, but not always: load the bytes to be sure.
        SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_) => Needs {
            index: true,
            content: true,
        },
        _ => Needs::default(),
    }
}

/// Resolves every sequence set in the criteria, in the order `matches` meets them.
fn collect_sets(
    keys: &[SearchKey<'_>],
    view: &View,
    sets: &mut Vec<HashSet<usize>>,
) -> Result<(), Failure> {
    for key in keys {
        match key {
            SearchKey::SequenceSet(set) => {
                sets.push(view.resolve(set, false)?.into_iter().collect())
            }
            SearchKey::Uid(set) => sets.push(view.resolve(set, true)?.into_iter().collect()),
            SearchKey::And(keys) => collect_sets(keys.as_ref(), view, sets)?,
            SearchKey::Not(key) => collect_sets(std::slice::from_ref(key), view, sets)?,
            SearchKey::Or(a, b) => {
                collect_sets(std::slice::from_ref(a), view, sets)?;
                collect_sets(std::slice::from_ref(b), view, sets)?;
            }
            _ => {}
        }
    }
    Ok(())
}

struct Candidate<'a> {
    seq: usize,
    flags: &'a [String],
    recent: bool,
    message: Option<&'a MessageData>,
    bytes: Option<Vec<u8>>,
}

impl Candidate<'_> {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    fn bytes(&mut self) -> &[u8] {
        if self.bytes.is_none() {
            let bytes = self
                .message
                .and_then(|m| {
                    m.content
                        .as_ref()
                        .map(|c| mime::message_bytes(&stored_columns(m, c)))
                })
                .unwrap_or_default();
            self.bytes = Some(bytes);
        }
        self.bytes.as_deref().unwrap_or_default()
    }

    fn internal_date(&self) -> Option<NaiveDate> {
        self.message.map(|m| m.timestamp.date_naive())
    }

    /// The Date header's date, in the header's own time zone (RFC 3501 6.4.4).
    fn sent_date(&mut self) -> Option<NaiveDate> {
        let values = mime::header_values(self.bytes(), "Date");
        let value = values.first()?;
        DateTime::parse_from_rfc2822(value.trim())
            .ok()
            .map(|d| d.date_naive())
            .or_else(|| {
                mail_parser::MessageParser::default()
                    .parse(format!("Date: {value}\r\n\r\n").as_bytes())
                    .and_then(|m| m.date().map(|d| d.to_timestamp()))
                    .and_then(|ts| DateTime::<Utc>::from_timestamp(ts, 0))
                    .map(|d| d.date_naive())
            })
    }

    fn size(&mut self) -> u32 {
        match self.message.and_then(|m| m.cache.size) {
            Some(size) => size,
            None => u32::try_from(self.bytes().len()).unwrap_or(u32::MAX),
        }
    }

    fn header_contains(&mut self, name: &str, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        let values = mime::header_values(self.bytes(), name);
        // HEADER name "" matches every message that has the field (RFC 3501 6.4.4).
        values.iter().any(|v| v.to_lowercase().contains(&needle))
    }
}

fn text(value: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(value.as_ref()).into_owned()
}

fn matches(
    key: &SearchKey<'_>,
    c: &mut Candidate<'_>,
    sets: &[HashSet<usize>],
    set_index: &mut usize,
) -> bool {
    match key {
        SearchKey::All => true,
        SearchKey::And(keys) => {
            // Evaluate every key so that set numbering stays in step.
            let mut all = true;
            for key in keys.as_ref() {
                all &= matches(key, c, sets, set_index);
            }
            all
        }
        SearchKey::Not(key) => !matches(key, c, sets, set_index),
        SearchKey::Or(a, b) => {
            let left = matches(a, c, sets, set_index);
            let right = matches(b, c, sets, set_index);
            left || right
        }
        SearchKey::SequenceSet(_) | SearchKey::Uid(_) => {
            let hit = sets.get(*set_index).is_some_and(|set| set.contains(&c.seq));
            *set_index += 1;
            hit
        }
        SearchKey::Answered => c.has_flag("\\Answered"),
        SearchKey::Unanswered => !c.has_flag("\\Answered"),
        SearchKey::Deleted => c.has_flag("\\Deleted"),
        SearchKey::Undeleted => !c.has_flag("\\Deleted"),
        SearchKey::Draft => c.has_flag("\\Draft"),
        SearchKey::Undraft => !c.has_flag("\\Draft"),
        SearchKey::Flagged => c.has_flag("\\Flagged"),
        SearchKey::Unflagged => !c.has_flag("\\Flagged"),
        SearchKey::Seen => c.has_flag("\\Seen"),
        SearchKey::Unseen => !c.has_flag("\\Seen"),
        SearchKey::Recent => c.recent,
        SearchKey::Old => !c.recent,
        SearchKey::New => c.recent && !c.has_flag("\\Seen"),
        SearchKey::Keyword(keyword) => c.has_flag(keyword.as_ref()),
        SearchKey::Unkeyword(keyword) => !c.has_flag(keyword.as_ref()),
        SearchKey::Before(date) => c.internal_date().is_some_and(|d| d < *date.as_ref()),
        SearchKey::On(date) => c.internal_date().is_some_and(|d| d == *date.as_ref()),
        SearchKey::Since(date) => c.internal_date().is_some_and(|d| d >= *date.as_ref()),
        SearchKey::SentBefore(date) => c.sent_date().is_some_and(|d| d < *date.as_ref()),
        SearchKey::SentOn(date) => c.sent_date().is_some_and(|d| d == *date.as_ref()),
        SearchKey::SentSince(date) => c.sent_date().is_some_and(|d| d >= *date.as_ref()),
        SearchKey::Larger(size) => c.size() > *size,
        SearchKey::Smaller(size) => c.size() < *size,
        SearchKey::From(value) => c.header_contains("From", &text(value)),
        SearchKey::To(value) => c.header_contains("To", &text(value)),
        SearchKey::Cc(value) => c.header_contains("Cc", &text(value)),
        SearchKey::Bcc(value) => c.header_contains("Bcc", &text(value)),
        SearchKey::Subject(value) => c.header_contains("Subject", &text(value)),
        SearchKey::Header(name, value) => c.header_contains(&text(name), &text(value)),
        SearchKey::Body(value) => {
            let needle = text(value).to_lowercase();
            mime::body_text(c.bytes()).to_lowercase().contains(&needle)
        }
        SearchKey::Text(value) => {
            let needle = text(value).to_lowercase();
            let bytes = c.bytes();
            let header_end = header_length(bytes);
            String::from_utf8_lossy(&bytes[..header_end])
                .to_lowercase()
                .contains(&needle)
                || mime::body_text(bytes).to_lowercase().contains(&needle)
                || DECODED_HEADERS
                    .iter()
                    .any(|name| c.header_contains(name, &needle))
        }
    }
}

/// Headers whose decoded values TEXT also looks at, so that a needle matches
/// an RFC 2047 encoded subject or name.
const DECODED_HEADERS: [&str; 5] = ["Subject", "From", "To", "Cc", "Bcc"];

/// Where the header block ends (after the blank line), or the whole message.
fn header_length(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(bytes.len())
}
