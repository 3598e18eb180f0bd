//! SEARCH and UID SEARCH (RFC 3501 6.4.4) with every RFC 3501 key.
//!
//! Keys on flags, UIDs, sequence numbers and dates are answered from the
//! view and the index; keys on headers and text load the messages' bytes,
//! and only when the search has such a key.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use imap_types::core::Charset;
use imap_types::search::SearchKey;

use super::{batch_end, stored_columns};
use crate::imap::Services;
use crate::imap::grammar::{SavedSets, SearchReturn};
use crate::imap::heavy::off_the_event_loop;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::view::{View, uid_set};
use crate::mime;
use crate::store::{MessageData, Wanted};

/// One SEARCH or UID SEARCH, with what its extension syntax said.
pub struct Request<'a> {
    /// For ESEARCH's `(TAG "...")`.
    pub tag: &'a str,
    pub charset: Option<&'a Charset<'a>>,
    pub criteria: &'a [SearchKey<'a>],
    pub by_uid: bool,
    /// `RETURN (...)` (RFC 4731): answered with ESEARCH.
    pub returning: Option<SearchReturn>,
    /// Which of the criteria's sets are `$` (RFC 5182).
    pub saved: &'a SavedSets,
}

pub async fn search(
    services: &Arc<Services>,
    view: &mut View,
    request: Request<'_>,
    out: &mut Out<'_>,
) -> Outcome {
    let saves = request.returning.is_some_and(|r| r.save);
    let found = match find(services, view, &request).await {
        Ok(found) => found,
        Err(failure) => {
            // A SEARCH that was to save and failed leaves `$` empty (RFC 5182 2.1).
            if saves {
                view.forget_result();
            }
            return Err(failure);
        }
    };
    match request.returning {
        None => answer_search(&found, request.by_uid, out),
        Some(returning) => {
            if returning.save {
                save(view, &found, returning);
            }
            if returning.answers() {
                answer_esearch(&request, returning, &found, out);
            }
        }
    }
    Ok(Done::ok("SEARCH completed"))
}

/// A message that matched.
#[derive(Debug, Clone, Copy)]
struct Match {
    index: usize,
    uid: u32,
    /// Known when the messages were read (a MODSEQ key makes sure they are).
    modseq: u64,
}

impl Match {
    fn number(&self, by_uid: bool) -> u32 {
        if by_uid {
            self.uid
        } else {
            self.index as u32 + 1
        }
    }
}

struct Found {
    /// In sequence order.
    matches: Vec<Match>,
    /// The criteria had a MODSEQ key: answers carry the highest mod-sequence.
    by_modseq: bool,
}

/// The messages the criteria match.
async fn find(
    services: &Arc<Services>,
    view: &mut View,
    request: &Request<'_>,
) -> Result<Found, Failure> {
    let criteria = request.criteria;
    if let Some(charset) = request.charset {
        let name = charset.as_ref();
        if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
            return Err(Failure::no(
                Code::BadCharset("US-ASCII UTF-8"),
                format!("Charset {name} is not supported"),
            ));
        }
    }
    if count_keys(criteria) > MAX_SEARCH_KEYS {
        return Err(Failure::bad_with(
            Code::Limit,
            format!("SEARCH has more than {MAX_SEARCH_KEYS} keys"),
        ));
    }
    let live: Vec<(usize, u32)> = view
        .entries()
        .enumerate()
        .filter(|(_, e)| !e.is_expunged())
        .map(|(index, e)| (index, e.uid))
        .collect();
    let needs = criteria
        .iter()
        .map(needs_of)
        .fold(Needs::default(), Needs::or);
    // Sets named in the criteria, resolved once against the view.
    let mut sets = Vec::new();
    collect_sets(criteria, view, &mut sets)?;
    use_saved_sets(request.saved, view, &mut sets)?;
    let by_modseq = has_modseq_key(criteria);
    // A MODSEQ key enables CONDSTORE (RFC 7162 3.1).
    view.condstore |= by_modseq;
    let view: &View = view;
    let search = Search {
        criteria,
        view,
        sets: &sets,
    };
    let mut found = Vec::new();
    if !needs.any() {
        search.run(&live, &[], &mut found);
    } else {
        let uids: Vec<u32> = live.iter().map(|&(_, uid)| uid).collect();
        let mut messages = services.store.messages(&view.mailbox, &uids).await?;
        if !needs.content && !needs.headers {
            search.run(&live, &messages, &mut found);
        } else {
            let wanted = if needs.content {
                Wanted::Every
            } else {
                Wanted::Headers
            };
            // The bytes come in batches, and are scanned off the event loop:
            // memory follows the batch, and a 100 MB mailbox stalls nobody.
            let messages_len = messages.len();
            let mut live_done = 0;
            let mut start = 0;
            while start < messages_len {
                let end = batch_end(&messages, start, Some(wanted));
                let batch = &mut messages[start..end];
                start = end;
                services
                    .store
                    .fill_contents(&view.mailbox, batch, wanted)
                    .await?;
                let batch_last = batch[batch.len() - 1].uid;
                // Live messages up to this batch's last UID (the last batch takes
                // the rest): every one is looked at exactly once.
                let last = if start == messages_len {
                    live.len()
                } else {
                    live.partition_point(|&(_, uid)| uid <= batch_last)
                };
                let first = std::mem::replace(&mut live_done, last);
                let kept = off_the_event_loop(|| {
                    search.run(&live[first..last], batch, &mut found);
                    if wanted == Wanted::Headers {
                        header_blocks_to_keep(batch)
                    } else {
                        Vec::new()
                    }
                });
                keep_header_blocks(services, &kept).await;
                batch.iter_mut().for_each(|m| {
                    m.content = None;
                    m.header_block = None;
                });
            }
        }
    }
    Ok(Found {
        matches: found,
        by_modseq,
    })
}

/// Puts the saved result where the criteria said `$`. imap-codec must have
/// read as many sets as the extension grammar counted, or `$` could land
/// on the wrong one.
fn use_saved_sets(
    saved: &SavedSets,
    view: &View,
    sets: &mut [HashSet<usize>],
) -> Result<(), Failure> {
    if saved.in_program.is_empty() {
        return Ok(());
    }
    if sets.len() != saved.program_sets {
        return Err(Failure::bad("Cannot tell which sequence set is $"));
    }
    let indexes: HashSet<usize> = view.saved_indexes().into_iter().collect();
    for &position in &saved.in_program {
        sets[position].clone_from(&indexes);
    }
    Ok(())
}

/// The RFC 3501 answer: `* SEARCH 2 5 9`.
fn answer_search(found: &Found, by_uid: bool, out: &mut Out<'_>) {
    let list: Vec<String> = found
        .matches
        .iter()
        .map(|m| m.number(by_uid).to_string())
        .collect();
    if list.is_empty() {
        out.untagged("SEARCH");
    } else if found.by_modseq {
        // The highest mod-sequence of what matched (RFC 7162 3.1.5).
        let highest = highest_modseq(&found.matches);
        out.untagged(&format!("SEARCH {} (MODSEQ {highest})", list.join(" ")));
    } else {
        out.untagged(&format!("SEARCH {}", list.join(" ")));
    }
}

fn highest_modseq<'a>(matches: impl IntoIterator<Item = &'a Match>) -> u64 {
    matches.into_iter().map(|m| m.modseq).max().unwrap_or(1)
}

/// The messages MIN and MAX name, when those are all that is asked for.
fn extremes(found: &Found, returning: SearchReturn) -> Vec<Match> {
    let first = found.matches.first().filter(|_| returning.min);
    let last = found.matches.last().filter(|_| returning.max);
    let mut extremes: Vec<Match> = first.into_iter().chain(last).copied().collect();
    extremes.dedup_by_key(|m| m.index);
    extremes
}

/// `RETURN (SAVE)`: every match, or only MIN and MAX when only those were
/// asked for (RFC 5182 2.4).
fn save(view: &mut View, found: &Found, returning: SearchReturn) {
    let kept = if returning.saves_extremes_only() {
        extremes(found, returning)
    } else {
        found.matches.clone()
    };
    let indexes: Vec<usize> = kept.iter().map(|m| m.index).collect();
    view.save_result(&indexes);
}

/// The RFC 4731 answer: `* ESEARCH (TAG "a1") UID MIN 2 MAX 9 COUNT 3 ALL 2,5,9`,
/// with the matches' highest mod-sequence when the criteria had a MODSEQ
/// key (RFC 7162 3.1.5); MIN, MAX and ALL only when something matched.
fn answer_esearch(
    request: &Request<'_>,
    returning: SearchReturn,
    found: &Found,
    out: &mut Out<'_>,
) {
    let by_uid = request.by_uid;
    let mut line = format!("ESEARCH (TAG \"{}\")", request.tag);
    if by_uid {
        line.push_str(" UID");
    }
    let matches = &found.matches;
    if let (true, Some(first)) = (returning.min, matches.first()) {
        let _ = write!(line, " MIN {}", first.number(by_uid));
    }
    if let (true, Some(last)) = (returning.max, matches.last()) {
        let _ = write!(line, " MAX {}", last.number(by_uid));
    }
    if returning.count {
        let _ = write!(line, " COUNT {}", matches.len());
    }
    if returning.all && !matches.is_empty() {
        let numbers: Vec<u32> = matches.iter().map(|m| m.number(by_uid)).collect();
        let _ = write!(line, " ALL {}", uid_set(&numbers));
    }
    if found.by_modseq && !matches.is_empty() {
        // Of what was returned: MIN and MAX alone name only their messages.
        let highest = if returning.all || returning.count {
            highest_modseq(matches)
        } else {
            highest_modseq(&extremes(found, returning))
        };
        let _ = write!(line, " MODSEQ {highest}");
    }
    out.untagged(&line);
}

/// The header sections of the messages of a batch whose content was loaded
/// because their section was not kept yet.
fn header_blocks_to_keep(batch: &[MessageData]) -> Vec<(String, Vec<u8>)> {
    batch
        .iter()
        .filter(|m| m.header_block.is_none())
        .filter_map(|m| {
            let content = m.content.as_ref()?;
            let bytes = mime::served_bytes(&stored_columns(m, content));
            Some((m.id.clone(), bytes[..header_length(&bytes)].to_vec()))
        })
        .collect()
}

/// Keeps header sections for the next SEARCH. Failing to keep them costs
/// reading the messages again next time, not this answer.
async fn keep_header_blocks(services: &Services, blocks: &[(String, Vec<u8>)]) {
    if blocks.is_empty() {
        return;
    }
    if let Err(error) = services.store.save_header_blocks(blocks).await {
        tracing::warn!(%error, count = blocks.len(), "could not keep header sections");
    }
}

/// Most keys one SEARCH may have (every key is work for every message).
/// Real clients send a handful; imap-codec already bounds their nesting.
pub const MAX_SEARCH_KEYS: usize = 100;

fn has_modseq_key(keys: &[SearchKey<'_>]) -> bool {
    keys.iter().any(|key| match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(keys) => has_modseq_key(keys.as_ref()),
        SearchKey::Not(key) => has_modseq_key(std::slice::from_ref(key)),
        SearchKey::Or(a, b) => {
            has_modseq_key(std::slice::from_ref(a)) || has_modseq_key(std::slice::from_ref(b))
        }
        _ => false,
    })
}

/// The keys that test messages, nested ones included (NOT, OR and
/// parentheses only combine them).
fn count_keys(keys: &[SearchKey<'_>]) -> usize {
    keys.iter()
        .map(|key| match key {
            SearchKey::And(keys) => count_keys(keys.as_ref()),
            SearchKey::Not(key) => count_keys(std::slice::from_ref(key)),
            SearchKey::Or(a, b) => {
                count_keys(std::slice::from_ref(a)) + count_keys(std::slice::from_ref(b))
            }
            _ => 1,
        })
        .sum()
}

/// One SEARCH, applied to the view's messages a batch at a time.
struct Search<'a> {
    criteria: &'a [SearchKey<'a>],
    view: &'a View,
    sets: &'a [HashSet<usize>],
}

impl Search<'_> {
    /// Adds the matches among `live` (sequence index, UID) to `found`;
    /// `messages` holds what was loaded for them, in UID order.
    fn run(&self, live: &[(usize, u32)], messages: &[MessageData], found: &mut Vec<Match>) {
        let by_uid_index: HashMap<u32, &MessageData> =
            messages.iter().map(|m| (m.uid, m)).collect();
        for &(index, uid) in live {
            let entry = self.view.entry(index);
            let mut candidate = Candidate {
                seq: index,
                flags: self.view.flags(&entry),
                recent: self.view.is_recent(uid),
                message: by_uid_index.get(&uid).copied(),
                bytes: None,
                body: None,
                header_block: None,
                headers: HashMap::new(),
                addresses: HashMap::new(),
            };
            let mut set_index = 0;
            if self
                .criteria
                .iter()
                .all(|key| matches(key, &mut candidate, self.sets, &mut set_index))
            {
                found.push(Match {
                    index,
                    uid,
                    modseq: candidate.message.map_or(0, |m| m.modseq),
                });
            }
        }
    }
}

/// What the criteria need loaded.
#[derive(Debug, Default, Clone, Copy)]
struct Needs {
    /// Dates or sizes from the index.
    index: bool,
    /// The header section only (kept for SEARCH once read).
    headers: bool,
    /// The message bytes.
    content: bool,
}

impl Needs {
    const INDEX: Needs = Needs {
        index: true,
        headers: false,
        content: false,
    };
    const HEADERS: Needs = Needs {
        index: true,
        headers: true,
        content: false,
    };
    const CONTENT: Needs = Needs {
        index: true,
        headers: false,
        content: true,
    };

    fn or(self, other: Needs) -> Needs {
        Needs {
            index: self.index || other.index,
            headers: self.headers || other.headers,
            content: self.content || other.content,
        }
    }

    fn any(self) -> bool {
        self.index || self.headers || self.content
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
        SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::ModSequence { .. } => Needs::INDEX,
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::To(_) => Needs::HEADERS,
        // Sizes may be cached, but not always: load the bytes to be sure.
        SearchKey::Larger(_) | SearchKey::Smaller(_) | SearchKey::Body(_) | SearchKey::Text(_) => {
            Needs::CONTENT
        }
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
    /// The decoded body text, lower-cased: made once per message, whatever
    /// the number of BODY and TEXT keys.
    body: Option<String>,
    /// The raw header block, lower-cased, for TEXT.
    header_block: Option<String>,
    /// Decoded, lower-cased values of the header fields asked about so far.
    headers: HashMap<String, Vec<String>>,
    /// The parsed addresses of the address fields asked about so far, lower-cased.
    addresses: HashMap<String, Vec<String>>,
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
        self.load_header_bytes();
        let values =
            mime::header_values(header_section(self.message, self.bytes.as_deref()), "Date");
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
        self.load_header_bytes();
        let headers = header_section(self.message, self.bytes.as_deref());
        // HEADER name "" matches every message that has the field (RFC 3501 6.4.4).
        any_contains(&mut self.headers, name, needle, || {
            mime::header_values(headers, name)
        })
    }

    /// Makes the bytes, unless the header section is kept: what
    /// `header_section` reads, loaded before the caches beside it are written.
    fn load_header_bytes(&mut self) {
        if self.message.is_none_or(|m| m.header_block.is_none()) {
            self.bytes();
        }
    }

    /// FROM, TO, CC and BCC: the field's text, as HEADER reads it, or one of
    /// its addresses as parsed, so that `user@example.org` finds
    /// `<user (comment)@ (comment) example.org>` (RFC 5322 CFWS). Parsed
    /// only for these keys, and once per message and field.
    fn address_contains(&mut self, name: &str, needle: &str) -> bool {
        if self.header_contains(name, needle) {
            return true;
        }
        self.load_header_bytes();
        let headers = header_section(self.message, self.bytes.as_deref());
        any_contains(&mut self.addresses, name, needle, || {
            mime::header_addresses(headers, name)
        })
    }

    fn header_block_contains(&mut self, needle: &str) -> bool {
        if self.header_block.is_none() {
            let bytes = self.bytes();
            let block = String::from_utf8_lossy(&bytes[..header_length(bytes)]).to_lowercase();
            self.header_block = Some(block);
        }
        self.header_block
            .as_deref()
            .unwrap_or_default()
            .contains(needle)
    }

    fn body_contains(&mut self, needle: &str) -> bool {
        if self.body.is_none() {
            let body = mime::body_text(self.bytes()).to_lowercase();
            self.body = Some(body);
        }
        self.body.as_deref().unwrap_or_default().contains(needle)
    }
}

/// Whether one of the values of field `name`, loaded once per message and
/// kept lower-cased in `cache`, contains `needle`, case-insensitively.
fn any_contains(
    cache: &mut HashMap<String, Vec<String>>,
    name: &str,
    needle: &str,
    load: impl FnOnce() -> Vec<String>,
) -> bool {
    let needle = needle.to_lowercase();
    cache
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| load().iter().map(|v| v.to_lowercase()).collect())
        .iter()
        .any(|v| v.contains(&needle))
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
        // Per-flag entries share the message's mod-sequence: flags are
        // changed as one (RFC 7162 3.1.5 allows it).
        SearchKey::ModSequence { modseq, .. } => c.message.is_some_and(|m| m.modseq >= *modseq),
        SearchKey::SentBefore(date) => c.sent_date().is_some_and(|d| d < *date.as_ref()),
        SearchKey::SentOn(date) => c.sent_date().is_some_and(|d| d == *date.as_ref()),
        SearchKey::SentSince(date) => c.sent_date().is_some_and(|d| d >= *date.as_ref()),
        SearchKey::Larger(size) => c.size() > *size,
        SearchKey::Smaller(size) => c.size() < *size,
        SearchKey::From(value) => c.address_contains("From", &text(value)),
        SearchKey::To(value) => c.address_contains("To", &text(value)),
        SearchKey::Cc(value) => c.address_contains("Cc", &text(value)),
        SearchKey::Bcc(value) => c.address_contains("Bcc", &text(value)),
        SearchKey::Subject(value) => c.header_contains("Subject", &text(value)),
        SearchKey::Header(name, value) => c.header_contains(&text(name), &text(value)),
        SearchKey::Body(value) => c.body_contains(&text(value).to_lowercase()),
        SearchKey::Text(value) => {
            let needle = text(value).to_lowercase();
            c.header_block_contains(&needle)
                || c.body_contains(&needle)
                || DECODED_HEADERS
                    .iter()
                    .any(|name| c.header_contains(name, &needle))
        }
    }
}

/// Headers whose decoded values TEXT also looks at, so that a needle matches
/// an RFC 2047 encoded subject or name.
const DECODED_HEADERS: [&str; 5] = ["Subject", "From", "To", "Cc", "Bcc"];

/// The header section: the one kept for SEARCH when it was loaded, else
/// that of the bytes (see `Candidate::load_header_bytes`).
fn header_section<'b>(message: Option<&'b MessageData>, bytes: Option<&'b [u8]>) -> &'b [u8] {
    match message.and_then(|m| m.header_block.as_deref()) {
        Some(block) => block,
        None => {
            let bytes = bytes.unwrap_or_default();
            &bytes[..header_length(bytes)]
        }
    }
}

/// Where the header block ends (after the blank line), or the whole message.
fn header_length(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(bytes.len())
}
