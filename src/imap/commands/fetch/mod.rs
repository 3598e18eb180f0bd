//! FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2).
//!
//! Opening a mailbox parses nothing; FETCH parses a message the first time
//! its ENVELOPE, BODYSTRUCTURE or size is asked for and keeps the results
//! with the message, so later fetches are answered from the database alone.
//!
//! `items` turns the command into `Item`s; this file runs them: choose the
//! messages, load in bounded batches what the items need, answer each.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use imap_types::command::FetchModifier;
use imap_types::fetch::MacroOrMessageDataItemNames;
use imap_types::sequence::SequenceSet;

mod items;

pub use items::MAX_FETCH_ITEMS;
use items::{Item, parse_items};

use super::{batch_end, stored_columns};
use crate::imap::Services;
use crate::imap::heavy::{HEAVY_BYTES, off_the_event_loop};
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::Out;
use crate::imap::view::{View, flag_list};
use crate::mime::{self, Sections};
use crate::store::{Content, FlagChange, MessageData, ParseCache, Wanted};

pub async fn fetch(
    services: &Arc<Services>,
    view: &mut View,
    set: &SequenceSet,
    items: &MacroOrMessageDataItemNames<'_>,
    by_uid: bool,
    modifiers: &[FetchModifier],
    out: &mut Out<'_>,
) -> Outcome {
    let mut items = parse_items(items)?;
    if by_uid && !items.contains(&Item::Uid) {
        // UID FETCH answers always carry the UID (RFC 3501 6.4.8).
        items.insert(0, Item::Uid);
    }
    let (changed_since, vanished) = changed_since(modifiers, by_uid, view.qresync)?;
    // Asking for MODSEQ, or for what changed, enables CONDSTORE (RFC 7162
    // 3.1); from then on every answer with FLAGS carries MODSEQ too.
    view.condstore |= changed_since.is_some() || items.contains(&Item::ModSeq);
    if (changed_since.is_some() || (view.condstore && items.contains(&Item::Flags)))
        && !items.contains(&Item::ModSeq)
    {
        items.push(Item::ModSeq);
    }
    view.catch_up_for_uids(services, set, by_uid, out).await?;
    if let (Some(since), true) = (changed_since, vanished) {
        let within = view.given_out(Some(set));
        view.report_vanished_since(services, since, &within, out)
            .await?;
    }
    let mut uids = view.live_uids(set, by_uid)?;
    if let Some(since) = changed_since
        && !uids.is_empty()
    {
        uids = services
            .store
            .changed_since(&view.mailbox, &uids, since)
            .await?;
    }
    if uids.is_empty() {
        return Ok(Done::ok("FETCH completed"));
    }
    let mut messages = services.store.messages(&view.mailbox, &uids).await?;
    let seen_now = if items.iter().any(Item::sets_seen) && !view.read_only {
        mark_seen(services, view, &mut messages).await?
    } else {
        HashSet::new()
    };
    // Marked \Seen just now: the answer says so, when it has no FLAGS item.
    let report_seen = if items.contains(&Item::Flags) {
        HashSet::new()
    } else {
        seen_now
    };
    answer_in_batches(services, view, &items, &mut messages, &report_seen, out).await?;
    Ok(Done::ok("FETCH completed"))
}

/// The CHANGEDSINCE of a FETCH (RFC 7162 3.1.4.1), and whether VANISHED
/// was asked for (3.2.6: UID FETCH only, with CHANGEDSINCE, QRESYNC on).
fn changed_since(
    modifiers: &[FetchModifier],
    by_uid: bool,
    qresync: bool,
) -> Result<(Option<u64>, bool), Failure> {
    let (mut since, mut vanished) = (None, false);
    for modifier in modifiers {
        match modifier {
            FetchModifier::ChangedSince(value) => since = Some(value.get()),
            FetchModifier::Vanished => vanished = true,
        }
    }
    if vanished {
        if !by_uid {
            return Err(Failure::bad("VANISHED is only valid with UID FETCH"));
        }
        if !qresync {
            return Err(Failure::bad("VANISHED needs ENABLE QRESYNC"));
        }
        if since.is_none() {
            return Err(Failure::bad("VANISHED needs CHANGEDSINCE"));
        }
    }
    Ok((since, vanished))
}

/// A body fetched without PEEK marks the message \Seen (RFC 3501 6.4.5).
/// The UIDs that were not \Seen before.
async fn mark_seen(
    services: &Services,
    view: &mut View,
    messages: &mut [MessageData],
) -> Result<HashSet<u32>, Failure> {
    let unseen: Vec<u32> = messages
        .iter()
        .filter(|m| !m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")))
        .map(|m| m.uid)
        .collect();
    if unseen.is_empty() {
        return Ok(HashSet::new());
    }
    let updated = services
        .store
        .change_flags(
            &view.mailbox,
            &unseen,
            FlagChange::Add,
            &["\\Seen".to_owned()],
            None,
        )
        .await?;
    for flagged in updated.messages {
        view.set_flags(flagged.uid, &flagged.flags);
        // The store answers in UID order.
        if let Ok(index) = messages.binary_search_by_key(&flagged.uid, |m| m.uid) {
            messages[index].flags = flagged.flags;
            messages[index].modseq = flagged.modseq;
        }
    }
    Ok(unseen.into_iter().collect())
}

/// Loads what the items need in bounded batches and answers each message.
async fn answer_in_batches(
    services: &Services,
    view: &mut View,
    items: &[Item],
    messages: &mut [MessageData],
    report_seen: &HashSet<u32>,
    out: &mut Out<'_>,
) -> Result<(), Failure> {
    let needs = Needs::of(items);
    let mut start = 0;
    while start < messages.len() {
        let end = batch_end(messages, start, needs.wanted());
        let batch = &mut messages[start..end];
        start = end;
        if let Some(wanted) = needs.wanted() {
            services
                .store
                .fill_contents(&view.mailbox, batch, wanted)
                .await?;
        }
        if needs.parse {
            parse_uncached(services, batch).await;
        }
        let shows_flags = items.contains(&Item::Flags) || !report_seen.is_empty();
        if shows_flags {
            view.announce_keywords(batch.iter().map(|m| m.flags.as_slice()), out);
        }
        for message in batch.iter_mut() {
            let Some(index) = view.index_of_uid(message.uid) else {
                continue;
            };
            let recent = view.is_recent(message.uid);
            out.extend(format!("* {} FETCH (", index + 1).as_bytes());
            write_message(items, message, needs, recent, out).await?;
            let reported_seen = report_seen.contains(&message.uid);
            if reported_seen {
                out.extend(format!(" FLAGS ({})", flag_list(&message.flags, recent)).as_bytes());
                if view.condstore && !items.contains(&Item::ModSeq) {
                    out.extend(format!(" MODSEQ ({})", message.modseq).as_bytes());
                }
            }
            out.extend(b")\r\n");
            if reported_seen || items.contains(&Item::Flags) {
                // What the client now believes: a later change back to what
                // the view held must still be reported.
                view.set_flags(message.uid, &message.flags);
            }
            // Done with its bytes: the next batch must not stack on them.
            message.content = None;
        }
    }
    Ok(())
}

/// What the items need of each message beyond the index.
#[derive(Debug, Clone, Copy)]
struct Needs {
    /// Body sections: the bytes of every message.
    bytes: bool,
    /// Size, ENVELOPE or BODYSTRUCTURE: the bytes of messages never parsed.
    parse: bool,
}

impl Needs {
    fn of(items: &[Item]) -> Needs {
        Needs {
            bytes: items.iter().any(Item::needs_bytes),
            parse: items.iter().any(|i| {
                matches!(
                    i,
                    Item::Size | Item::Envelope | Item::BodyStructure | Item::Body
                )
            }),
        }
    }

    /// Whose content to load: every message's for body sections, else
    /// that of messages never parsed.
    fn wanted(self) -> Option<Wanted> {
        if self.bytes {
            Some(Wanted::Every)
        } else if self.parse {
            Some(Wanted::Unparsed)
        } else {
            None
        }
    }
}

/// One message's items, sent on in chunks as they are written. Its bytes
/// are made and parsed once, whatever the number of sections asked.
async fn write_message(
    items: &[Item],
    message: &MessageData,
    needs: Needs,
    recent: bool,
    out: &mut Out<'_>,
) -> Result<(), Failure> {
    let content = message.content.as_ref().filter(|_| needs.bytes);
    let large = content.is_some_and(|c| content_length(c) >= HEAVY_BYTES);
    let make_bytes = || content.map(|c| mime::served_bytes(&stored_columns(message, c)));
    let bytes = if large {
        off_the_event_loop(make_bytes)
    } else {
        make_bytes()
    };
    let mut sections = Sections::new(bytes.as_deref().unwrap_or_default());
    if large {
        off_the_event_loop(|| sections.prepare(items.iter().filter_map(Item::section_spec)));
    }
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            out.extend(b" ");
        }
        // A body section may be megabytes: it goes out as it lies.
        if let Some(section) = write_item(item, message, &mut sections, recent, out.buffer()) {
            out.extend_large(&section).await?;
        }
        out.send_if_full().await?;
    }
    Ok(())
}

/// Roughly how many bytes the stored content makes.
fn content_length(content: &Content) -> usize {
    content.raw.as_ref().map_or(0, Vec::len)
        + content.body.as_ref().map_or(0, String::len)
        + content.html.as_ref().map_or(0, String::len)
}

/// Parses the messages whose ENVELOPE and BODYSTRUCTURE are not cached yet,
/// and keeps the results. Failing to keep them costs a parse next time, not
/// this answer.
async fn parse_uncached(services: &Services, messages: &mut [MessageData]) {
    let fresh = off_the_event_loop(|| {
        let mut fresh = Vec::new();
        for message in messages.iter_mut() {
            if let Some(content) = &message.content
                && !message.cache.is_complete()
            {
                message.cache = parse(&mime::message_bytes(&stored_columns(message, content)));
                fresh.push((message.id.clone(), message.cache.clone()));
            }
        }
        fresh
    });
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
    let mut sections = Sections::new(bytes);
    let message = MessageData {
        cache: cache.clone(),
        ..message.clone()
    };
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            data.push(b' ');
        }
        if let Some(section) = write_item(item, &message, &mut sections, recent, &mut data) {
            data.extend_from_slice(&section);
        }
    }
    data
}

/// One item of a message's answer. For a body section only its head is
/// written: the section's bytes come back, for the caller to send as they
/// lie rather than copied into `data`.
fn write_item<'a>(
    item: &Item,
    message: &MessageData,
    sections: &mut Sections<'a>,
    recent: bool,
    data: &mut Vec<u8>,
) -> Option<Cow<'a, [u8]>> {
    let cache = &message.cache;
    let mut text = String::new();
    match item {
        Item::Uid => {
            let _ = write!(text, "UID {}", message.uid);
        }
        Item::Flags => {
            let _ = write!(text, "FLAGS ({})", flag_list(&message.flags, recent));
        }
        Item::ModSeq => {
            let _ = write!(text, "MODSEQ ({})", message.modseq);
        }
        Item::InternalDate => {
            let _ = write!(
                text,
                "INTERNALDATE \"{}\"",
                message.timestamp.format("%e-%b-%Y %H:%M:%S %z")
            );
        }
        Item::Size => {
            let size = cache.size.unwrap_or(sections.len() as u32);
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
            let slice = sections.get(spec, *partial);
            section_head(label, *partial, slice.len(), data);
            return Some(slice);
        }
    }
    data.extend_from_slice(text.as_bytes());
    None
}

/// `BODY[section]<origin> {length}` and its line break, before the bytes.
fn section_head(label: &str, partial: Option<(u32, u32)>, length: usize, data: &mut Vec<u8>) {
    data.extend_from_slice(label.as_bytes());
    // The answer names the origin asked for, even past the end (RFC 3501 6.4.5).
    if let Some((origin, _)) = partial {
        data.extend_from_slice(format!("<{origin}>").as_bytes());
    }
    data.extend_from_slice(format!(" {{{length}}}\r\n").as_bytes());
}
