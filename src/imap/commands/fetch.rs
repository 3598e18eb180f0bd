//! FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2).
//!
//! Opening a mailbox parses nothing; FETCH parses a message the first time
//! its ENVELOPE, BODYSTRUCTURE or size is asked for and keeps the results
//! with the message, so later fetches are answered from the database alone.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use imap_types::core::AString;
use imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section};
use imap_types::sequence::SequenceSet;

use crate::imap::Services;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::session::Session;
use crate::imap::view::flag_list;
use crate::mime::{self, SectionSpec, SectionText, StoredColumns};
use crate::store::{Content, FlagChange, MessageData, ParseCache};

/// One thing to answer for each message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    BodyStructure,
    Body,
    /// `BODY[...]`, `RFC822`, `RFC822.HEADER`, `RFC822.TEXT`.
    Section {
        label: String,
        spec: SectionSpec,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
}

impl Item {
    fn needs_bytes(&self) -> bool {
        matches!(self, Item::Section { .. })
    }

    fn sets_seen(&self) -> bool {
        matches!(self, Item::Section { peek: false, .. })
    }
}

pub async fn fetch(
    session: &mut Session,
    set: &SequenceSet,
    items: &MacroOrMessageDataItemNames<'_>,
    by_uid: bool,
    out: &mut Out,
) -> Outcome {
    let services = session.services.clone();
    let mut items = parse_items(items)?;
    if by_uid && !items.contains(&Item::Uid) {
        // UID FETCH answers always carry the UID (RFC 3501 6.4.8).
        items.insert(0, Item::Uid);
    }
    session.catch_up_for_uids(set, by_uid, out).await?;
    let view = session.selected_view()?;
    let uids = view.live_uids(set, by_uid)?;
    if uids.is_empty() {
        return Ok(Done::ok("FETCH completed"));
    }
    let needs_bytes = items.iter().any(Item::needs_bytes);
    let needs_parse = items.iter().any(|i| {
        matches!(
            i,
            Item::Size | Item::Envelope | Item::BodyStructure | Item::Body
        )
    });
    let mut messages = services
        .store
        .messages(&view.mailbox, &uids, needs_bytes)
        .await?;
    if needs_parse && !needs_bytes {
        // Only messages never parsed before need their bytes.
        let unparsed: Vec<u32> = messages
            .iter()
            .filter(|m| !m.cache.is_complete())
            .map(|m| m.uid)
            .collect();
        if !unparsed.is_empty() {
            let loaded = services
                .store
                .messages(&view.mailbox, &unparsed, true)
                .await?;
            let mut contents: HashMap<String, Option<Content>> = loaded
                .into_iter()
                .map(|full| (full.id, full.content))
                .collect();
            for message in &mut messages {
                if let Some(content) = contents.remove(&message.id) {
                    message.content = content;
                }
            }
        }
    }
    // A body fetched without PEEK marks the message \Seen, and says so (RFC 3501 6.4.5).
    let mut seen_now = Vec::new();
    if items.iter().any(Item::sets_seen) && !view.read_only {
        seen_now = messages
            .iter()
            .filter(|m| !m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")))
            .map(|m| m.uid)
            .collect();
    }
    if !seen_now.is_empty() {
        let updated = services
            .store
            .change_flags(
                &view.mailbox,
                &seen_now,
                FlagChange::Add,
                &["\\Seen".to_owned()],
            )
            .await?;
        for (uid, flags) in updated {
            view.set_flags(uid, &flags);
            // The store answers in UID order.
            if let Ok(index) = messages.binary_search_by_key(&uid, |m| m.uid) {
                messages[index].flags = flags;
            }
        }
    }
    let report_flags = !items.contains(&Item::Flags) && !seen_now.is_empty();
    let seen_now: HashSet<u32> = seen_now.into_iter().collect();
    if needs_parse {
        parse_uncached(&services, &mut messages).await;
    }
    for message in &messages {
        let Some(index) = view.index_of_uid(message.uid) else {
            continue;
        };
        // Content loaded only to parse a message was used up by the parse;
        // the answer needs the bytes only for body sections.
        let bytes = message
            .content
            .as_ref()
            .filter(|_| needs_bytes)
            .map(|content| mime::message_bytes(&stored_columns(message, content)));
        let recent = view.is_recent(message.uid);
        out.extend(format!("* {} FETCH (", index + 1).as_bytes());
        out.extend(&answer(
            &items,
            message,
            &message.cache,
            bytes.as_deref().unwrap_or_default(),
            recent,
        ));
        if report_flags && seen_now.contains(&message.uid) {
            out.extend(format!(" FLAGS ({})", flag_list(&message.flags, recent)).as_bytes());
        }
        out.extend(b")\r\n");
    }
    Ok(Done::ok("FETCH completed"))
}

/// The columns a message's bytes are made from.
pub(crate) fn stored_columns<'a>(
    message: &'a MessageData,
    content: &'a Content,
) -> StoredColumns<'a> {
    StoredColumns {
        id: &message.id,
        raw: content.raw.as_deref(),
        body: content.body.as_deref(),
        html: content.html.as_deref(),
        subject: content.subject.as_deref(),
        from_addr: content.from_addr.as_deref(),
        to_addrs: content.to_addrs.as_deref(),
        timestamp: message.timestamp,
    }
}

/// Parses the messages whose ENVELOPE and BODYSTRUCTURE are not cached yet,
/// and keeps the results. Failing to keep them costs a parse next time, not
/// this answer.
async fn parse_uncached(services: &Services, messages: &mut [MessageData]) {
    let mut fresh = Vec::new();
    for message in messages.iter_mut() {
        if let Some(content) = &message.content
            && !message.cache.is_complete()
        {
            message.cache = parse(&mime::message_bytes(&stored_columns(message, content)));
            fresh.push((message.id.clone(), message.cache.clone()));
        }
    }
    if fresh.is_empty() {
        return;
    }
    if let Err(error) = services.store.save_parse_caches(&fresh).await {
        tracing::warn!(%error, count = fresh.len(), "could not keep parse results");
    }
}

fn parse(bytes: &[u8]) -> ParseCache {
    ParseCache {
        size: u32::try_from(bytes.len()).ok(),
        envelope: Some(mime::envelope(bytes)),
        body_structure: Some(mime::body_structure(bytes, true)),
        body: Some(mime::body_structure(bytes, false)),
    }
}

/// The wire form of `items` for one message, without the `* n FETCH (`
/// around it: the encoding step alone, which the benchmarks time.
pub fn encode_items(
    items: &MacroOrMessageDataItemNames<'_>,
    message: &MessageData,
    cache: &ParseCache,
    bytes: &[u8],
) -> Result<Vec<u8>, Failure> {
    Ok(answer(&parse_items(items)?, message, cache, bytes, false))
}

/// The items of one message, in the order asked, without the surrounding parentheses.
fn answer(
    items: &[Item],
    message: &MessageData,
    cache: &ParseCache,
    bytes: &[u8],
    recent: bool,
) -> Vec<u8> {
    let mut data: Vec<u8> = Vec::new();
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            data.push(b' ');
        }
        let mut text = String::new();
        match item {
            Item::Uid => {
                let _ = write!(text, "UID {}", message.uid);
            }
            Item::Flags => {
                let _ = write!(text, "FLAGS ({})", flag_list(&message.flags, recent));
            }
            Item::InternalDate => {
                let _ = write!(
                    text,
                    "INTERNALDATE \"{}\"",
                    message.timestamp.format("%e-%b-%Y %H:%M:%S %z")
                );
            }
            Item::Size => {
                let size = cache.size.unwrap_or(bytes.len() as u32);
                let _ = write!(text, "RFC822.SIZE {size}");
            }
            Item::Envelope => {
                let _ = write!(
                    text,
                    "ENVELOPE {}",
                    cache.envelope.as_deref().unwrap_or("NIL")
                );
            }
            Item::BodyStructure => {
                let _ = write!(
                    text,
                    "BODYSTRUCTURE {}",
                    cache.body_structure.as_deref().unwrap_or("NIL")
                );
            }
            Item::Body => {
                let _ = write!(text, "BODY {}", cache.body.as_deref().unwrap_or("NIL"));
            }
            Item::Section {
                label,
                spec,
                partial,
                ..
            } => {
                let whole = mime::section(bytes, spec);
                // The answer names the origin asked for, even past the end (RFC 3501 6.4.5).
                let (origin, slice) = match partial {
                    Some((origin, length)) => {
                        let start = (*origin as usize).min(whole.len());
                        let end = start.saturating_add(*length as usize).min(whole.len());
                        (Some(*origin), &whole[start..end])
                    }
                    None => (None, &whole[..]),
                };
                data.extend_from_slice(label.as_bytes());
                if let Some(origin) = origin {
                    data.extend_from_slice(format!("<{origin}>").as_bytes());
                }
                data.extend_from_slice(format!(" {{{}}}\r\n", slice.len()).as_bytes());
                data.extend_from_slice(slice);
                continue;
            }
        }
        data.extend_from_slice(text.as_bytes());
    }
    data
}

fn parse_items(items: &MacroOrMessageDataItemNames<'_>) -> Result<Vec<Item>, Failure> {
    let names: Vec<MessageDataItemName<'_>> = match items {
        MacroOrMessageDataItemNames::Macro(Macro::Fast) => vec![
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
        ],
        MacroOrMessageDataItemNames::Macro(Macro::All) => vec![
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
            MessageDataItemName::Envelope,
        ],
        MacroOrMessageDataItemNames::Macro(Macro::Full) => vec![
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
            MessageDataItemName::Envelope,
            MessageDataItemName::Body,
        ],
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
        MacroOrMessageDataItemNames::Macro(other) => {
            return Err(Failure::bad_with(
                Code::ClientBug,
                format!("FETCH macro {other:?} is not supported"),
            ));
        }
    };
    let mut items = Vec::with_capacity(names.len());
    for name in names {
        let item = match name {
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::BodyStructure => Item::BodyStructure,
            MessageDataItemName::Body => Item::Body,
            MessageDataItemName::Rfc822 => {
                section_item("RFC822".into(), whole_message(), None, false)
            }
            MessageDataItemName::Rfc822Header => section_item(
                "RFC822.HEADER".into(),
                SectionSpec {
                    part: Vec::new(),
                    text: SectionText::Header,
                },
                None,
                true,
            ),
            MessageDataItemName::Rfc822Text => section_item(
                "RFC822.TEXT".into(),
                SectionSpec {
                    part: Vec::new(),
                    text: SectionText::Text,
                },
                None,
                false,
            ),
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                let (spec, label) = section_spec(section.as_ref());
                section_item(
                    format!("BODY[{label}]"),
                    spec,
                    partial.map(|(s, l)| (s, l.get())),
                    peek,
                )
            }
            other => {
                return Err(Failure::bad_with(
                    Code::ClientBug,
                    format!("FETCH item {other:?} is not supported"),
                ));
            }
        };
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

fn whole_message() -> SectionSpec {
    SectionSpec {
        part: Vec::new(),
        text: SectionText::Full,
    }
}

fn section_item(label: String, spec: SectionSpec, partial: Option<(u32, u32)>, peek: bool) -> Item {
    Item::Section {
        label,
        spec,
        partial,
        peek,
    }
}

fn part_numbers(part: Option<&Part>) -> Vec<u32> {
    part.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
        .unwrap_or_default()
}

fn part_label(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn field_names(names: &[AString<'_>]) -> Vec<String> {
    names
        .iter()
        .map(|n| String::from_utf8_lossy(n.as_ref()).into_owned())
        .collect()
}

/// Our section spec, and its label as echoed in the answer.
fn section_spec(section: Option<&Section<'_>>) -> (SectionSpec, String) {
    let Some(section) = section else {
        return (whole_message(), String::new());
    };
    let join = |part: &[u32], suffix: &str| {
        let prefix = part_label(part);
        match (prefix.is_empty(), suffix.is_empty()) {
            (true, _) => suffix.to_owned(),
            (false, true) => prefix,
            (false, false) => format!("{prefix}.{suffix}"),
        }
    };
    let (part, text, suffix) = match section {
        Section::Part(part) => (part_numbers(Some(part)), SectionText::Full, String::new()),
        Section::Header(part) => (
            part_numbers(part.as_ref()),
            SectionText::Header,
            "HEADER".to_owned(),
        ),
        Section::HeaderFields(part, names) => {
            let names = field_names(names.as_ref());
            let label = format!("HEADER.FIELDS ({})", names.join(" "));
            (
                part_numbers(part.as_ref()),
                SectionText::HeaderFields(names),
                label,
            )
        }
        Section::HeaderFieldsNot(part, names) => {
            let names = field_names(names.as_ref());
            let label = format!("HEADER.FIELDS.NOT ({})", names.join(" "));
            (
                part_numbers(part.as_ref()),
                SectionText::HeaderFieldsNot(names),
                label,
            )
        }
        Section::Text(part) => (
            part_numbers(part.as_ref()),
            SectionText::Text,
            "TEXT".to_owned(),
        ),
        Section::Mime(part) => (
            part_numbers(Some(part)),
            SectionText::Mime,
            "MIME".to_owned(),
        ),
    };
    let label = join(&part, &suffix);
    (SectionSpec { part, text }, label)
}
