//! A session's view of its selected mailbox: sequence numbers, UIDs and
//! flags as this client knows them, and how that view catches up with the
//! store (RFC 3501 5.2, 7.4.1).
//!
//! Sequence numbers stay dense: messages hidden by bans are not in the view
//! at all. The view only learns of changes at points where the RFC allows
//! them to be reported; EXPUNGE is held back during FETCH, STORE and SEARCH.

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::Services;
use super::names::Name;
use super::outcome::Failure;
use super::response::{Code, Out, Status};
use crate::directory::BanList;
use crate::notify::Subscription;
use crate::store::{MailboxId, MessageSummary};

mod messages;
mod resync;
mod saved;

pub use messages::Entry;
use messages::{FLAG_SET, Messages};

/// The flags every mailbox has (RFC 3501 2.3.2).
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// The distinct flag lists of a mailbox, each kept once. Most messages share
/// one of a handful (none, `\Seen`, `\Seen \Answered`), so a view of
/// thousands of messages holds four bytes of flags per message instead of a
/// list of strings each.
#[derive(Debug, Default)]
struct FlagSets {
    lists: Vec<Box<[String]>>,
    ids: HashMap<Box<[String]>, u32>,
}

impl FlagSets {
    fn intern(&mut self, flags: &[String]) -> u32 {
        if let Some(&id) = self.ids.get(flags) {
            return id;
        }
        // One id per distinct list in this mailbox: far fewer than messages,
        // and 2^30 distinct lists would not fit in memory long before.
        let id = u32::try_from(self.lists.len()).unwrap_or(FLAG_SET);
        let list: Box<[String]> = flags.into();
        self.lists.push(list.clone());
        self.ids.insert(list, id);
        id
    }

    fn get(&self, id: u32) -> &[String] {
        self.lists.get(id as usize).map_or(&[], |list| list)
    }
}

pub struct View {
    pub mailbox: MailboxId,
    pub name: Name,
    pub read_only: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// CONDSTORE is on for this session (RFC 7162 3.1): answers with FLAGS
    /// carry MODSEQ.
    pub condstore: bool,
    /// QRESYNC is on (RFC 7162 3.2): expunges are reported as VANISHED.
    pub qresync: bool,
    /// The highest mod-sequence this view is known to be complete up to.
    pub highestmodseq: u64,
    entries: Messages,
    flag_sets: FlagSets,
    /// The keywords the client was told of with FLAGS, by lower-case form:
    /// a FETCH may show no other (RFC 3501 7.2.6).
    keywords: BTreeMap<String, String>,
    /// The UIDs this session last claimed as \Recent (RFC 3501 2.3.2): the
    /// mailbox's unclaimed UIDs at that moment, some perhaps not seen yet.
    claimed: std::ops::Range<u32>,
    /// The mailbox's first unclaimed UID, as last read.
    unclaimed_from: u32,
    owners: Vec<String>,
    subscription: Subscription,
    /// The ban list this view was filtered with; a new one means a refresh.
    bans: Arc<BanList>,
    /// A change was noticed (and its notification consumed) that no refresh
    /// has reported yet: a look before a command must not lose it for the
    /// report after the command.
    pending: bool,
    /// Messages found gone that EXPUNGE has not reported yet (held back
    /// during FETCH, STORE and SEARCH): the next command that may report
    /// them does, whether or not anything else changed.
    unreported: usize,
    /// The last search result saved with `RETURN (SAVE)` (RFC 5182).
    saved: saved::Saved,
}

/// Whether the selected mailbox is still the one the client selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Freshness {
    Current,
    /// Deleted, released, given to someone else, banned, or created again
    /// (a new UIDVALIDITY): nothing of what is there now may reach this
    /// session, which must end (ARCHITECTURE: isolation).
    Gone,
}

/// What a session whose selected mailbox is gone is told, as Dovecot does.
pub const GONE_TEXT: &str = "Selected mailbox was deleted";

impl Freshness {
    /// For a look in the middle of a command: gone is a failure of that
    /// command; the report after it ends the session.
    pub fn or_fail(self) -> Result<(), Failure> {
        match self {
            Freshness::Current => Ok(()),
            Freshness::Gone => Err(Failure::no(Code::NonExistent, GONE_TEXT)),
        }
    }
}

/// Whether mail from this sender is hidden (ARCHITECTURE: accounts, domains and bans).
pub fn is_hidden(bans: &BanList, summary: &MessageSummary) -> bool {
    summary
        .sender
        .as_deref()
        .is_some_and(|sender| bans.hides_sender(sender))
}

impl View {
    pub async fn open(
        services: &Services,
        mailbox: MailboxId,
        name: Name,
        read_only: bool,
    ) -> Result<View, Failure> {
        // Subscribe first: a change between loading and subscribing must not be lost.
        let subscription = services.store.hub().subscribe();
        let state = services
            .store
            .mailbox_state(&mailbox)
            .await?
            .ok_or_else(Failure::no_such_mailbox)?;
        let bans = services.directory.bans().await?;
        let mut flag_sets = FlagSets::default();
        let mut entries = Messages::default();
        // Read after the state: a change committed in between is among the
        // messages with a mod-sequence above the state's, never below.
        let mut highestmodseq = state.highestmodseq;
        for summary in services.store.summaries(&mailbox).await? {
            highestmodseq = highestmodseq.max(summary.modseq);
            if !is_hidden(&bans, &summary) {
                entries.push(Entry::new(summary.uid, flag_sets.intern(&summary.flags)));
            }
        }
        let mut view = View {
            owners: mailbox.owners(),
            mailbox,
            name,
            read_only,
            uidvalidity: state.uidvalidity,
            // A message appended while the counters and the messages were
            // read is among the messages: UIDNEXT must be past it.
            uidnext: state
                .uidnext
                .max(entries.last_uid().map_or(0, |uid| uid + 1)),
            condstore: false,
            qresync: false,
            highestmodseq,
            entries,
            flag_sets,
            keywords: BTreeMap::new(),
            claimed: 0..0,
            unclaimed_from: state.recent_uid,
            subscription,
            bans,
            pending: false,
            unreported: 0,
            saved: saved::Saved::default(),
        };
        // After the messages were read, so that the claim covers them all.
        view.take_recent(services).await?;
        let lists: Vec<Box<[String]>> = view.flag_sets.lists.clone();
        for list in &lists {
            view.learn_keywords(list);
        }
        Ok(view)
    }

    /// Adds the keywords among `flags` to those announced; whether any was new.
    fn learn_keywords(&mut self, flags: &[String]) -> bool {
        let mut learned = false;
        for flag in flags.iter().filter(|f| !f.starts_with('\\')) {
            if let Slot::Vacant(slot) = self.keywords.entry(flag.to_ascii_lowercase()) {
                slot.insert(flag.clone());
                learned = true;
            }
        }
        learned
    }

    /// Before a response shows these flag lists: tells the client of the
    /// keywords it has not been told of (RFC 3501 7.2.6, RFC 9051 7.3.5).
    pub fn announce_keywords<'a>(
        &mut self,
        lists: impl IntoIterator<Item = &'a [String]>,
        out: &mut Out<'_>,
    ) {
        let mut learned = false;
        for flags in lists {
            learned |= self.learn_keywords(flags);
        }
        if learned {
            self.announce_flags(out);
        }
    }

    /// FLAGS and PERMANENTFLAGS: the system flags and the mailbox's keywords.
    pub fn announce_flags(&self, out: &mut Out<'_>) {
        let mut flags = SYSTEM_FLAGS.to_owned();
        for keyword in self.keywords.values() {
            flags.push(' ');
            flags.push_str(keyword);
        }
        out.untagged(&format!("FLAGS ({flags})"));
        let (permanent, text) = if self.read_only {
            (String::new(), "No permanent flags permitted")
        } else {
            (format!("{flags} \\*"), "Flags permitted")
        };
        out.status(
            None,
            Status::Ok,
            Some(&Code::PermanentFlags(permanent)),
            text,
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, index: usize) -> Entry {
        self.entries.get(index)
    }

    /// The messages in sequence-number order.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = Entry> + '_ {
        self.entries.iter()
    }

    /// The flags of a message of this view (without `\Recent`).
    pub fn flags(&self, entry: &Entry) -> &[String] {
        self.flag_sets.get(entry.flag_set())
    }

    /// Whether a message of this view has `flag` (case-insensitive).
    pub fn has_flag(&self, entry: &Entry, flag: &str) -> bool {
        self.flags(entry)
            .iter()
            .any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// Whether the message is \Recent in this session: it is the first
    /// session to have been told of it (RFC 3501 2.3.2).
    pub fn is_recent(&self, uid: u32) -> bool {
        self.index_of_uid(uid)
            .is_some_and(|index| self.entries.get(index).is_recent())
    }

    pub fn recent_count(&self) -> usize {
        self.entries.iter().filter(Entry::is_recent).count()
    }

    /// UIDs the client learned from COPYUID or APPENDUID may be newer than
    /// the view (Apple Mail moves them at once): take new messages in first.
    pub(crate) async fn catch_up_for_uids(
        &mut self,
        services: &Services,
        set: &SequenceSet,
        by_uid: bool,
        out: &mut Out<'_>,
    ) -> Result<(), Failure> {
        if !by_uid {
            return Ok(());
        }
        let max = self.max_uid();
        let beyond = set.0.as_ref().iter().any(|sequence| {
            let values = match sequence {
                Sequence::Single(value) => [value, value],
                Sequence::Range(from, to) => [from, to],
            };
            values
                .iter()
                .any(|v| matches!(v, SeqOrUid::Value(uid) if uid.get() > max))
        });
        if beyond {
            self.refresh(services, out, false).await?.or_fail()?;
        }
        Ok(())
    }

    pub fn max_uid(&self) -> u32 {
        self.entries.last_uid().unwrap_or(0)
    }

    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.entries.index_of_uid(uid)
    }

    /// Records flags this session set itself.
    pub fn set_flags(&mut self, uid: u32, flags: &[String]) {
        if let Some(index) = self.index_of_uid(uid) {
            let id = self.flag_sets.intern(flags);
            let entry = self.entries.get(index).with_flag_set(id);
            self.entries.set(index, entry);
        }
    }

    /// Removes messages this session expunged, answering `* n EXPUNGE` for
    /// each, or one `* VANISHED` once QRESYNC is on (RFC 7162 3.2.10).
    pub fn remove(&mut self, uids: &[u32], out: &mut Out<'_>) {
        let mut indices: Vec<usize> = uids
            .iter()
            .filter_map(|&uid| self.index_of_uid(uid))
            .collect();
        indices.sort_unstable();
        self.announce_gone(&indices, out);
    }

    /// Reports and removes the messages at `indices` (ascending).
    fn announce_gone(&mut self, indices: &[usize], out: &mut Out<'_>) {
        if self.qresync && !indices.is_empty() {
            let uids: Vec<u32> = indices.iter().map(|&i| self.entries.get(i).uid).collect();
            out.untagged(&format!("VANISHED {}", uid_set(&uids)));
        }
        // Highest first, so each number is right at the moment it is sent.
        for &index in indices.iter().rev() {
            if !self.qresync {
                out.untagged(&format!("{} EXPUNGE", index + 1));
            }
            self.entries.remove(index);
        }
    }

    /// The owners whose notifications matter to this view.
    pub fn owners(&self) -> &[String] {
        &self.owners
    }

    pub fn subscription(&mut self) -> &mut Subscription {
        &mut self.subscription
    }

    /// A refresh could not read the store (an outage): what it was to
    /// report stays pending, for the next look to report.
    pub fn refresh_failed(&mut self) {
        self.pending = true;
    }

    /// Whether a change was noticed that no refresh has reported yet.
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// Whether the store may have changed since the last refresh.
    pub async fn is_stale(&mut self, services: &Services) -> bool {
        let notified = self.subscription.poll(&self.owners);
        let bans_changed = match services.directory.bans().await {
            // A refresh that found the same bans changes nothing here.
            Ok(bans) => bans.fingerprint() != self.bans.fingerprint(),
            Err(_) => false,
        };
        self.pending |= notified || bans_changed;
        self.pending
    }

    /// Before a command: whether the mailbox is still there, looking in the
    /// store only when something changed.
    pub async fn check(&mut self, services: &Services) -> Result<Freshness, Failure> {
        if !self.is_stale(services).await {
            return Ok(Freshness::Current);
        }
        let bans = services.directory.bans().await?;
        self.still_there(services, &bans).await
    }

    /// Whether this incarnation still exists for this user: its counters
    /// are there, under the UIDVALIDITY the client was given, and an address
    /// is neither released nor banned.
    async fn still_there(
        &mut self,
        services: &Services,
        bans: &BanList,
    ) -> Result<Freshness, Failure> {
        let banned = match &self.mailbox {
            MailboxId::Address { address, .. } => {
                bans.is_banned(crate::directory::Scope::Email, address)
            }
            _ => false,
        };
        match services.store.mailbox_state(&self.mailbox).await? {
            Some(state) if state.uidvalidity == self.uidvalidity && !banned => {
                self.uidnext = state.uidnext.max(self.max_uid() + 1);
                self.unclaimed_from = state.recent_uid;
                Ok(Freshness::Current)
            }
            _ => Ok(Freshness::Gone),
        }
    }

    /// Catches up with the store and reports what changed: EXPUNGE (when
    /// allowed), flag changes, and new messages (EXISTS, RECENT). Reports
    /// nothing when the mailbox is gone.
    ///
    /// What changed is read by mod-sequence, so a change costs what it
    /// changed, not the size of the mailbox (docs/ARCHITECTURE.md,
    /// Mod-sequences). The whole mailbox is read again only when the ban
    /// list changed (messages may appear or hide) or when expunges after
    /// the view's mod-sequence are no longer remembered.
    pub async fn refresh(
        &mut self,
        services: &Services,
        out: &mut Out<'_>,
        allow_expunge: bool,
    ) -> Result<Freshness, Failure> {
        let bans = services.directory.bans().await?;
        let changes = if bans.fingerprint() == self.bans.fingerprint() {
            services
                .store
                .changes_since(&self.mailbox, self.highestmodseq)
                .await?
        } else {
            None
        };
        let incremental = changes.is_some();
        let (vanished, newest_vanished, summaries) = match changes {
            Some(changes) => (changes.vanished, changes.newest_vanished, changes.changed),
            None => (
                Vec::new(),
                0,
                services.store.summaries(&self.mailbox).await?,
            ),
        };
        // Looked at after the messages: a mailbox that went away while they
        // were read is seen gone, and none of what was read is reported.
        if self.still_there(services, &bans).await? == Freshness::Gone {
            return Ok(Freshness::Gone);
        }
        self.pending = false;
        let newest = summaries.iter().map(|s| s.modseq).max().unwrap_or(0);
        self.highestmodseq = self.highestmodseq.max(newest).max(newest_vanished);
        let visible: HashMap<u32, &MessageSummary> = summaries
            .iter()
            .filter(|summary| !is_hidden(&bans, summary))
            .map(|summary| (summary.uid, summary))
            .collect();
        self.bans = bans;
        if incremental {
            self.mark_gone(vanished);
        } else {
            self.mark_all_gone_but(&visible);
        }
        if allow_expunge {
            self.report_expunged(out);
        }
        self.report_flags_and_arrivals(services, &visible, out)
            .await?;
        Ok(Freshness::Current)
    }

    /// After reading the whole mailbox: every message not there is gone.
    fn mark_all_gone_but(&mut self, visible: &HashMap<u32, &MessageSummary>) {
        self.unreported = 0;
        for index in 0..self.entries.len() {
            let entry = self.entries.get(index);
            let gone = !visible.contains_key(&entry.uid);
            self.unreported += usize::from(gone);
            self.entries.set(index, entry.expunged(gone));
        }
    }

    /// After reading what changed: these UIDs were expunged.
    fn mark_gone(&mut self, vanished: Vec<u32>) {
        for uid in vanished {
            if let Some(index) = self.index_of_uid(uid) {
                let entry = self.entries.get(index);
                if !entry.is_expunged() {
                    self.unreported += 1;
                    self.entries.set(index, entry.expunged(true));
                }
            }
        }
    }

    /// Reports the flags of `visible` messages the client knows otherwise,
    /// and takes in those after the last one it knows.
    async fn report_flags_and_arrivals(
        &mut self,
        services: &Services,
        visible: &HashMap<u32, &MessageSummary>,
        out: &mut Out<'_>,
    ) -> Result<(), Failure> {
        let max = self.max_uid();
        // Keywords first: the FETCHes and the new messages below may show them.
        let lists: HashSet<&[String]> = visible.values().map(|s| s.flags.as_slice()).collect();
        self.announce_keywords(lists, out);
        let mut known: Vec<(usize, &MessageSummary)> = visible
            .values()
            .filter(|s| s.uid <= max)
            .filter_map(|s| Some((self.index_of_uid(s.uid)?, *s)))
            .collect();
        known.sort_unstable_by_key(|&(index, _)| index);
        for (index, summary) in known {
            let entry = self.entries.get(index);
            if entry.is_expunged()
                || summary.flags.as_slice() == self.flag_sets.get(entry.flag_set())
            {
                continue;
            }
            let id = self.flag_sets.intern(&summary.flags);
            self.entries.set(index, entry.with_flag_set(id));
            let modseq = if self.condstore {
                format!(" MODSEQ ({})", summary.modseq)
            } else {
                String::new()
            };
            out.untagged(&format!(
                "{} FETCH (UID {} FLAGS ({}){modseq})",
                index + 1,
                entry.uid,
                flag_list(&summary.flags, entry.is_recent())
            ));
        }
        // New messages only ever come after the last one the client knows; a
        // message that reappears (a ban lifted) waits for the next SELECT.
        let before = self.entries.len();
        let mut new: Vec<&&MessageSummary> = visible.values().filter(|s| s.uid > max).collect();
        new.sort_by_key(|s| s.uid);
        for summary in new {
            let flags = self.flag_sets.intern(&summary.flags);
            self.entries.push(Entry::new(summary.uid, flags));
        }
        if self.entries.len() > before {
            self.take_recent(services).await?;
            out.untagged(&format!("{} EXISTS", self.entries.len()));
            out.untagged(&format!("{} RECENT", self.recent_count()));
        }
        Ok(())
    }

    /// Marks \Recent the messages this session is the first to be told of
    /// (RFC 3501 2.3.2): those it claimed before, and, when the view holds
    /// messages nobody has claimed, those it claims now. An EXAMINE claims
    /// nothing and shows what nobody has claimed.
    async fn take_recent(&mut self, services: &Services) -> Result<(), Failure> {
        let newest = self.max_uid();
        let unclaimed = self.unclaimed_from.max(self.claimed.end);
        if unclaimed <= newest {
            if self.read_only {
                self.claimed = unclaimed..u32::MAX;
            } else {
                self.claimed = services.store.claim_recent(&self.mailbox).await?;
                self.unclaimed_from = self.claimed.end;
            }
        }
        let claimed = self.claimed.clone();
        for index in (0..self.entries.len()).rev() {
            let entry = self.entries.get(index);
            if entry.uid < claimed.start {
                break;
            }
            if claimed.contains(&entry.uid) {
                self.entries.set(index, entry.recent());
            }
        }
        Ok(())
    }

    /// Reports messages found gone, highest sequence number first.
    pub fn report_expunged(&mut self, out: &mut Out<'_>) {
        if self.unreported == 0 {
            return;
        }
        self.unreported = 0;
        let gone: Vec<usize> = (0..self.entries.len())
            .filter(|&index| self.entries.get(index).is_expunged())
            .collect();
        self.announce_gone(&gone, out);
    }

    /// The UIDs a sequence set names, leaving out messages already known to
    /// be gone: those still hold their sequence number until reported, but
    /// there is nothing left to fetch, flag or copy.
    pub fn live_uids(&self, set: &SequenceSet, by_uid: bool) -> Result<Vec<u32>, Failure> {
        Ok(self
            .resolve(set, by_uid)?
            .into_iter()
            .map(|i| self.entries.get(i))
            .filter(|e| !e.is_expunged())
            .map(|e| e.uid)
            .collect())
    }

    /// The indices a sequence set names, ascending and without repeats.
    /// Sequence numbers past the end are an error (RFC 3501 9: seq-number);
    /// UIDs that do not exist are simply not there.
    ///
    /// The set is first reduced to sorted, merged index ranges, and only
    /// then expanded: `1:*,1:*,…` sixteen thousand times costs what `1:*`
    /// costs, never a vector per repetition.
    pub fn resolve(&self, set: &SequenceSet, by_uid: bool) -> Result<Vec<usize>, Failure> {
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(set.0.as_ref().len());
        for sequence in set.0.as_ref() {
            let (from, to) = match sequence {
                Sequence::Single(value) => (value, value),
                Sequence::Range(from, to) => (from, to),
            };
            let (start, end) = if by_uid {
                let (low, high) = ordered(self.uid_value(from), self.uid_value(to));
                (
                    self.entries.count_below(low),
                    self.entries.count_below(high.saturating_add(1)),
                )
            } else {
                let (low, high) = ordered(self.seq_value(from)?, self.seq_value(to)?);
                ((low - 1) as usize, high as usize)
            };
            if start < end {
                ranges.push((start, end));
            }
        }
        Ok(merge_ranges(ranges)
            .into_iter()
            .flat_map(|(start, end)| start..end)
            .collect())
    }

    fn uid_value(&self, value: &SeqOrUid) -> u32 {
        match value {
            SeqOrUid::Value(uid) => uid.get(),
            // `*` is the highest UID in use; in an empty mailbox nothing matches.
            SeqOrUid::Asterisk => self.max_uid().max(1),
        }
    }

    fn seq_value(&self, value: &SeqOrUid) -> Result<u32, Failure> {
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let number = match value {
            SeqOrUid::Value(number) => number.get(),
            SeqOrUid::Asterisk => count,
        };
        if number == 0 || number > count {
            let text = if count == 0 {
                "Invalid message sequence number: the mailbox is empty".to_owned()
            } else {
                format!(
                    "Invalid message sequence number {number}: the mailbox has {count} messages"
                )
            };
            return Err(Failure::bad_with(Code::ClientBug, text));
        }
        Ok(number)
    }
}

/// Half-open ranges, sorted and with overlapping or touching ones joined.
fn merge_ranges(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn ordered(a: u32, b: u32) -> (u32, u32) {
    if a <= b { (a, b) } else { (b, a) }
}

/// `\Seen \Flagged keyword`, with \Recent for messages recent in this session.
pub fn flag_list(flags: &[String], recent: bool) -> String {
    let mut list = flags.join(" ");
    if recent {
        if !list.is_empty() {
            list.push(' ');
        }
        list.push_str("\\Recent");
    }
    list
}

/// A UID list in the compact form of RFC 4315 (`1:3,7,9:10`), for COPYUID.
pub fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < uids.len() {
        let start = uids[index];
        let mut end = start;
        while index + 1 < uids.len() && uids[index + 1] == end.wrapping_add(1) {
            index += 1;
            end = uids[index];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        index += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn equal_flag_lists_are_kept_once() {
        let mut sets = FlagSets::default();
        let seen = vec!["\\Seen".to_owned()];
        let none = sets.intern(&[]);
        let a = sets.intern(&seen);
        let b = sets.intern(&seen.clone());
        assert_eq!(a, b);
        assert_ne!(a, none);
        assert_eq!(sets.get(a), seen.as_slice());
        assert!(sets.get(none).is_empty());
        assert_eq!(sets.lists.len(), 2);
        let entry = Entry::new(7, a).expunged(true).with_flag_set(none);
        assert!(entry.is_expunged() && entry.flag_set() == none);
        let entry = entry.expunged(false);
        assert!(!entry.is_expunged() && entry.flag_set() == none);
    }

    #[test]
    fn ranges_merge_before_expanding() {
        assert_eq!(merge_ranges(vec![(0, 5000); 16_000]), vec![(0, 5000)]);
        assert_eq!(
            merge_ranges(vec![(7, 9), (0, 2), (2, 4), (8, 12), (20, 21)]),
            vec![(0, 4), (7, 12), (20, 21)]
        );
        assert!(merge_ranges(Vec::new()).is_empty());
    }

    #[test]
    fn recent_is_listed_last() {
        assert_eq!(flag_list(&["\\Seen".into()], true), "\\Seen \\Recent");
        assert_eq!(flag_list(&[], false), "");
    }
}
