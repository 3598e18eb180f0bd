//! What one session knows of its selected mailbox, kept up to date from
//! every untagged response, and the contradictions found on the way: every
//! answer that disagrees with what the session was told before or with what
//! RFC 3501 allows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::response::{Fetched, Untagged};

/// The kinds of contradiction the stress scenario counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// RFC 3501 7.2.6: FETCH FLAGS shows a keyword no `* FLAGS` announced.
    UnannouncedKeyword,
    FetchBeyondExists,
    ExpungeBeyondExists,
    /// EXISTS may only shrink by the EXPUNGEs reported before it.
    ExistsShrank,
    /// A message's UID differs from the one the session learnt for it.
    UidChanged,
    /// UIDs must grow with sequence numbers, and new UIDs above all old ones.
    UidsNotAscending,
    /// A message present at SELECT with a UID at or above that UIDNEXT, or
    /// a STATUS UIDNEXT at or below a UID the session knows.
    UidNotBelowUidNext,
    UidValidityChanged,
    /// After a non-silent STORE, no returned FLAGS holds what it added and
    /// lacks what it removed.
    StoreNotApplied,
    /// A non-silent STORE answer left out a message whose flags it changed,
    /// and the message was not expunged.
    StoreLeftOutMessage,
    /// A message this session marked \Deleted is still there after its EXPUNGE.
    DeletedSurvivedExpunge,
    /// RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH.
    ExpungeDuringCommand,
    /// RFC822.SIZE differs between answers, from BODY[] or from what was appended.
    SizeDisagrees,
    /// RFC822.SIZE 0 or an empty BODY[] for a message still there at the
    /// next checkpoint (stand-in data is only for expunged messages).
    EmptyDataForLiveMessage,
    /// \Recent for one UID in two read-write selections open at the same time.
    RecentInTwoSessions,
    /// EXISTS, EXPUNGE, FETCH or FLAGS with no mailbox selected.
    UpdateWithoutSelection,
    /// RFC 3501 6.1.3: LOGOUT answers BYE before its OK.
    LogoutWithoutBye,
    Unparsable,
    CheckpointExists,
    CheckpointUids,
    CheckpointFlags,
}

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::UnannouncedKeyword,
        Kind::FetchBeyondExists,
        Kind::ExpungeBeyondExists,
        Kind::ExistsShrank,
        Kind::UidChanged,
        Kind::UidsNotAscending,
        Kind::UidNotBelowUidNext,
        Kind::UidValidityChanged,
        Kind::StoreNotApplied,
        Kind::StoreLeftOutMessage,
        Kind::DeletedSurvivedExpunge,
        Kind::ExpungeDuringCommand,
        Kind::SizeDisagrees,
        Kind::EmptyDataForLiveMessage,
        Kind::RecentInTwoSessions,
        Kind::UpdateWithoutSelection,
        Kind::LogoutWithoutBye,
        Kind::Unparsable,
        Kind::CheckpointExists,
        Kind::CheckpointUids,
        Kind::CheckpointFlags,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::UnannouncedKeyword => "keyword in FETCH not announced by FLAGS",
            Kind::FetchBeyondExists => "FETCH for a sequence number beyond EXISTS",
            Kind::ExpungeBeyondExists => "EXPUNGE for a sequence number beyond EXISTS",
            Kind::ExistsShrank => "EXISTS shrank without EXPUNGE",
            Kind::UidChanged => "UID differs from the known seq->UID map",
            Kind::UidsNotAscending => "UIDs not strictly ascending",
            Kind::UidNotBelowUidNext => "UID at or above UIDNEXT",
            Kind::UidValidityChanged => "UIDVALIDITY changed",
            Kind::StoreNotApplied => "STORE answer lacks the change",
            Kind::StoreLeftOutMessage => "STORE answer left out a changed, live message",
            Kind::DeletedSurvivedExpunge => "\\Deleted message survived EXPUNGE",
            Kind::ExpungeDuringCommand => "EXPUNGE during FETCH/STORE/SEARCH",
            Kind::SizeDisagrees => "RFC822.SIZE disagrees",
            Kind::EmptyDataForLiveMessage => "empty FETCH data for a live message",
            Kind::RecentInTwoSessions => "\\Recent in two concurrent sessions",
            Kind::UpdateWithoutSelection => "mailbox update with nothing selected",
            Kind::LogoutWithoutBye => "LOGOUT without BYE",
            Kind::Unparsable => "unparsable response",
            Kind::CheckpointExists => "checkpoint: EXISTS differs between sessions",
            Kind::CheckpointUids => "checkpoint: UID at a seq differs",
            Kind::CheckpointFlags => "checkpoint: flags of a UID differ",
        }
    }
}

/// How many examples of each kind a report shows.
const EXAMPLES: usize = 3;

/// Contradictions and failed commands, counted, with the first examples.
#[derive(Debug, Default)]
pub struct Tally {
    pub contradictions: BTreeMap<Kind, (usize, Vec<String>)>,
    pub no: (usize, Vec<String>),
    pub bad: (usize, Vec<String>),
    /// Lost connections, timeouts, BYE outside LOGOUT: the session reconnects.
    pub session_errors: (usize, Vec<String>),
}

fn count(entry: &mut (usize, Vec<String>), example: String) {
    entry.0 += 1;
    if entry.1.len() < EXAMPLES {
        entry.1.push(example);
    }
}

impl Tally {
    pub fn contradiction(&mut self, kind: Kind, example: String) {
        count(self.contradictions.entry(kind).or_default(), example);
    }

    pub fn no(&mut self, example: String) {
        count(&mut self.no, example);
    }

    pub fn bad(&mut self, example: String) {
        count(&mut self.bad, example);
    }

    pub fn session_error(&mut self, example: String) {
        count(&mut self.session_errors, example);
    }

    pub fn contradictions_total(&self) -> usize {
        self.contradictions.values().map(|(n, _)| n).sum()
    }

    pub fn merge(&mut self, other: Tally) {
        for (kind, (n, examples)) in other.contradictions {
            let entry = self.contradictions.entry(kind).or_default();
            merge_entry(entry, (n, examples));
        }
        merge_entry(&mut self.no, other.no);
        merge_entry(&mut self.bad, other.bad);
        merge_entry(&mut self.session_errors, other.session_errors);
    }
}

fn merge_entry(into: &mut (usize, Vec<String>), (n, examples): (usize, Vec<String>)) {
    into.0 += n;
    let room = EXAMPLES.saturating_sub(into.1.len());
    into.1.extend(examples.into_iter().take(room));
}

/// What the command in progress is, as far as the RFC's rules on untagged
/// responses care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum During {
    /// Non-UID FETCH, STORE or SEARCH: EXPUNGE is forbidden (RFC 3501 7.4.1).
    SequenceCommand,
    /// SELECT: the first EXISTS counts the messages present at selection.
    Select,
    Other,
}

/// One message as the session knows it.
#[derive(Debug, Clone)]
struct Slot {
    /// Names the message for the session's lifetime, whatever its sequence
    /// number becomes.
    local: u64,
    uid: Option<u32>,
    flags: Option<BTreeSet<String>>,
    /// Counted by the EXISTS of SELECT (its UID must be below that UIDNEXT).
    at_select: bool,
}

/// A FETCH this session received, by the message it was about.
#[derive(Debug, Clone)]
pub struct Touched {
    pub local: u64,
    pub uid: Option<u32>,
    pub fetched: Fetched,
}

/// The session's view of its selected mailbox.
#[derive(Debug)]
pub struct Selection {
    /// Index = sequence number - 1.
    slots: Vec<Slot>,
    /// Every keyword `* FLAGS` announced in this selection, lower-cased
    /// (keywords are case-insensitive).
    keywords: BTreeSet<String>,
    uidnext_at_select: Option<u32>,
    pub uidvalidity: Option<u32>,
    pub read_write: bool,
    /// The first EXISTS of SELECT, once seen.
    exists_at_select: Option<usize>,
    next_local: u64,
}

/// What the session knows at a checkpoint, for comparison with the others.
#[derive(Debug, Clone)]
pub struct View {
    pub session: usize,
    pub exists: usize,
    pub uids: Vec<Option<u32>>,
    /// Flags per known UID, \Recent left out (it is per session).
    pub flags: BTreeMap<u32, BTreeSet<String>>,
}

impl Selection {
    pub fn new() -> Selection {
        Selection {
            slots: Vec::new(),
            keywords: BTreeSet::new(),
            uidnext_at_select: None,
            uidvalidity: None,
            read_write: false,
            exists_at_select: None,
            next_local: 0,
        }
    }

    pub fn exists(&self) -> usize {
        self.slots.len()
    }

    /// The local name of the message at `seq`, if there is one.
    pub fn local_at(&self, seq: usize) -> Option<u64> {
        self.slots.get(seq.checked_sub(1)?).map(|s| s.local)
    }

    pub fn holds(&self, local: u64) -> bool {
        self.slots.iter().any(|s| s.local == local)
    }

    /// The flags last reported for the message, normalised.
    pub fn flags_of(&self, local: u64) -> Option<BTreeSet<String>> {
        let flags = self
            .slots
            .iter()
            .find(|s| s.local == local)?
            .flags
            .as_ref()?;
        Some(flags.iter().map(|f| normalised_flag(f)).collect())
    }

    pub fn uid_of(&self, local: u64) -> Option<u32> {
        self.slots.iter().find(|s| s.local == local)?.uid
    }

    pub fn highest_known_uid(&self) -> Option<u32> {
        self.slots.iter().filter_map(|s| s.uid).max()
    }

    /// Applies one untagged response; returns the message a FETCH was about.
    pub fn apply(
        &mut self,
        response: &Untagged,
        during: During,
        tally: &mut Tally,
    ) -> Option<Touched> {
        match response {
            Untagged::Exists(n) => self.exists_response(*n as usize, during, tally),
            Untagged::Expunge(seq) => self.expunge_response(*seq as usize, during, tally),
            Untagged::Flags(flags) => self.keywords.extend(
                flags
                    .iter()
                    .filter(|f| !f.starts_with('\\'))
                    .map(|f| f.to_ascii_lowercase()),
            ),
            Untagged::UidNext(n) if during == During::Select => self.uidnext_at_select = Some(*n),
            Untagged::UidValidity(n) => self.uidvalidity = Some(*n),
            Untagged::Fetch(seq, fetched) => {
                return self.fetch_response(*seq as usize, fetched, tally);
            }
            _ => {}
        }
        None
    }

    fn exists_response(&mut self, n: usize, during: During, tally: &mut Tally) {
        if n < self.slots.len() {
            tally.contradiction(
                Kind::ExistsShrank,
                format!(
                    "* {n} EXISTS after {} known (no EXPUNGE between)",
                    self.slots.len()
                ),
            );
            // Believe the server from here on, so one fault is counted once.
            self.slots.truncate(n);
            return;
        }
        // Only the first EXISTS of SELECT is covered by its UIDNEXT: a
        // message delivered while SELECT runs may be announced in the same answer.
        let at_select = during == During::Select && self.exists_at_select.is_none();
        if at_select {
            self.exists_at_select = Some(n);
        }
        while self.slots.len() < n {
            self.slots.push(Slot {
                local: self.next_local,
                uid: None,
                flags: None,
                at_select,
            });
            self.next_local += 1;
        }
    }

    fn expunge_response(&mut self, seq: usize, during: During, tally: &mut Tally) {
        if seq == 0 || seq > self.slots.len() {
            tally.contradiction(
                Kind::ExpungeBeyondExists,
                format!("* {seq} EXPUNGE with {} messages", self.slots.len()),
            );
            return;
        }
        if during == During::SequenceCommand {
            tally.contradiction(
                Kind::ExpungeDuringCommand,
                format!("* {seq} EXPUNGE (UID {:?})", self.slots[seq - 1].uid),
            );
        }
        // Sequence numbers above it move down by one: the Vec does that.
        self.slots.remove(seq - 1);
    }

    fn fetch_response(
        &mut self,
        seq: usize,
        fetched: &Fetched,
        tally: &mut Tally,
    ) -> Option<Touched> {
        if seq == 0 || seq > self.slots.len() {
            tally.contradiction(
                Kind::FetchBeyondExists,
                format!(
                    "* {seq} FETCH {fetched:?} with {} messages",
                    self.slots.len()
                ),
            );
            return None;
        }
        if let Some(uid) = fetched.uid {
            self.learn_uid(seq, uid, tally);
        }
        if let Some(flags) = &fetched.flags {
            self.check_keywords(seq, flags, tally);
            self.slots[seq - 1].flags = Some(flags.clone());
        }
        let slot = &self.slots[seq - 1];
        Some(Touched {
            local: slot.local,
            uid: slot.uid,
            fetched: fetched.clone(),
        })
    }

    fn learn_uid(&mut self, seq: usize, uid: u32, tally: &mut Tally) {
        let index = seq - 1;
        match self.slots[index].uid {
            Some(known) if known == uid => return,
            Some(known) => tally.contradiction(
                Kind::UidChanged,
                format!("* {seq} FETCH (UID {uid}) but seq {seq} is UID {known}"),
            ),
            None => {}
        }
        let below = self.slots[..index].iter().rev().find_map(|s| s.uid);
        let above = self.slots[index + 1..].iter().find_map(|s| s.uid);
        if below.is_some_and(|b| b >= uid) || above.is_some_and(|a| a <= uid) {
            tally.contradiction(
                Kind::UidsNotAscending,
                format!("* {seq} FETCH (UID {uid}) between UIDs {below:?} and {above:?}"),
            );
        }
        if self.slots[index].at_select
            && let Some(next) = self.uidnext_at_select.filter(|&next| uid >= next)
        {
            let exists = self.exists_at_select.unwrap_or(0);
            tally.contradiction(
                Kind::UidNotBelowUidNext,
                format!(
                    "* {seq} FETCH (UID {uid}) present at SELECT, \
                     which said {exists} EXISTS and UIDNEXT {next}"
                ),
            );
        }
        self.slots[index].uid = Some(uid);
    }

    fn check_keywords(&self, seq: usize, flags: &BTreeSet<String>, tally: &mut Tally) {
        for flag in flags.iter().filter(|f| !f.starts_with('\\')) {
            if !self.keywords.contains(&flag.to_ascii_lowercase()) {
                tally.contradiction(
                    Kind::UnannouncedKeyword,
                    format!(
                        "* {seq} FETCH (FLAGS {flags:?}): {flag} not in FLAGS {:?}",
                        self.keywords
                    ),
                );
            }
        }
    }

    pub fn view(&self, session: usize) -> View {
        let flags = self
            .slots
            .iter()
            .filter_map(|s| {
                let flags = s
                    .flags
                    .as_ref()?
                    .iter()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .map(|f| normalised_flag(f))
                    .collect();
                Some((s.uid?, flags))
            })
            .collect();
        View {
            session,
            exists: self.slots.len(),
            uids: self.slots.iter().map(|s| s.uid).collect(),
            flags,
        }
    }
}

/// Flags compare case-insensitively; system flags in their RFC spelling.
pub fn normalised_flag(flag: &str) -> String {
    const SYSTEM: [&str; 6] = [
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Deleted",
        "\\Draft",
        "\\Recent",
    ];
    SYSTEM
        .iter()
        .find(|s| s.eq_ignore_ascii_case(flag))
        .map_or_else(|| flag.to_ascii_lowercase(), |s| (*s).to_owned())
}

/// Compares the views of all sessions at a checkpoint, when nobody is
/// changing anything; every difference is a contradiction. `when` says
/// which step of the checkpoint the views are from.
pub fn compare_views(views: &[View], when: &str, tally: &mut Tally) {
    let Some(first) = views.first() else { return };
    if views.iter().any(|v| v.exists != first.exists) {
        let counts: Vec<String> = views
            .iter()
            .map(|v| format!("s{}={}", v.session, v.exists))
            .collect();
        tally.contradiction(
            Kind::CheckpointExists,
            format!(
                "{when}: EXISTS {}{}",
                counts.join(" "),
                uids_not_everywhere(views)
            ),
        );
    } else {
        compare_uids(views, first.exists, when, tally);
    }
    compare_flags(views, when, tally);
}

/// Among the views that know every UID: the UIDs some of them lack, to
/// show which messages the sessions disagree about.
fn uids_not_everywhere(views: &[View]) -> String {
    let complete: Vec<(usize, BTreeSet<u32>)> = views
        .iter()
        .filter(|v| v.uids.iter().all(Option::is_some))
        .map(|v| (v.session, v.uids.iter().flatten().copied().collect()))
        .collect();
    let all: BTreeSet<u32> = complete
        .iter()
        .flat_map(|(_, uids)| uids.iter().copied())
        .collect();
    let mut notes = Vec::new();
    for uid in all {
        let holders: Vec<String> = complete
            .iter()
            .filter(|(_, uids)| uids.contains(&uid))
            .map(|(s, _)| format!("s{s}"))
            .collect();
        if holders.len() < complete.len() {
            notes.push(format!("UID {uid} only in {}", holders.join(",")));
        }
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join("; "))
    }
}

fn compare_uids(views: &[View], exists: usize, when: &str, tally: &mut Tally) {
    for index in 0..exists {
        let known: Vec<(usize, u32)> = views
            .iter()
            .filter_map(|v| Some((v.session, v.uids[index]?)))
            .collect();
        if known.iter().any(|(_, uid)| *uid != known[0].1) {
            let detail: Vec<String> = known.iter().map(|(s, uid)| format!("s{s}={uid}")).collect();
            tally.contradiction(
                Kind::CheckpointUids,
                format!("{when}: seq {}: UIDs {}", index + 1, detail.join(" ")),
            );
        }
    }
}

fn compare_flags(views: &[View], when: &str, tally: &mut Tally) {
    let mut by_uid: BTreeMap<u32, Vec<(usize, &BTreeSet<String>)>> = BTreeMap::new();
    for view in views {
        for (uid, flags) in &view.flags {
            by_uid.entry(*uid).or_default().push((view.session, flags));
        }
    }
    for (uid, known) in by_uid {
        if known.iter().any(|(_, flags)| *flags != known[0].1) {
            let detail: Vec<String> = known.iter().map(|(s, f)| format!("s{s}={f:?}")).collect();
            tally.contradiction(
                Kind::CheckpointFlags,
                format!("{when}: UID {uid}: {}", detail.join(" ")),
            );
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(uid: Option<u32>, flags: &[&str]) -> Fetched {
        Fetched {
            uid,
            flags: Some(flags.iter().map(|f| f.to_string()).collect()),
            ..Fetched::default()
        }
    }

    fn selected(exists: u32, uidnext: u32) -> (Selection, Tally) {
        let mut selection = Selection::new();
        let mut tally = Tally::default();
        for response in [
            Untagged::Flags(vec!["\\Seen".into(), "$Label1".into()]),
            Untagged::Exists(exists),
            Untagged::UidNext(uidnext),
        ] {
            selection.apply(&response, During::Select, &mut tally);
        }
        (selection, tally)
    }

    fn kinds(tally: &Tally) -> Vec<Kind> {
        tally.contradictions.keys().copied().collect()
    }

    #[test]
    fn a_consistent_session_has_no_contradictions() {
        let (mut s, mut t) = selected(3, 10);
        for (seq, uid) in [(1, 4), (2, 7), (3, 9)] {
            s.apply(
                &Untagged::Fetch(seq, fetch(Some(uid), &["$label1"])),
                During::SequenceCommand,
                &mut t,
            );
        }
        s.apply(&Untagged::Expunge(2), During::Other, &mut t);
        s.apply(&Untagged::Exists(3), During::Other, &mut t);
        s.apply(
            &Untagged::Fetch(3, fetch(Some(12), &["\\Seen"])),
            During::SequenceCommand,
            &mut t,
        );
        s.apply(
            &Untagged::Fetch(2, fetch(Some(9), &[])),
            During::SequenceCommand,
            &mut t,
        );
        assert!(t.contradictions.is_empty(), "{t:?}");
        assert_eq!(s.view(0).uids, vec![Some(4), Some(9), Some(12)]);
    }

    #[test]
    fn unannounced_keywords_are_caught_until_announced() {
        let (mut s, mut t) = selected(1, 10);
        s.apply(
            &Untagged::Fetch(1, fetch(Some(1), &["$Label2"])),
            During::Other,
            &mut t,
        );
        assert_eq!(kinds(&t), vec![Kind::UnannouncedKeyword]);
        s.apply(
            &Untagged::Flags(vec!["$label2".into()]),
            During::Other,
            &mut t,
        );
        s.apply(
            &Untagged::Fetch(1, fetch(Some(1), &["$Label2"])),
            During::Other,
            &mut t,
        );
        assert_eq!(t.contradictions[&Kind::UnannouncedKeyword].0, 1);
    }

    #[test]
    fn sequence_numbers_beyond_exists_and_shrinking_exists_are_caught() {
        let (mut s, mut t) = selected(2, 10);
        s.apply(
            &Untagged::Fetch(3, fetch(Some(5), &[])),
            During::Other,
            &mut t,
        );
        s.apply(&Untagged::Expunge(3), During::Other, &mut t);
        s.apply(&Untagged::Exists(1), During::Other, &mut t);
        assert_eq!(
            kinds(&t),
            vec![
                Kind::FetchBeyondExists,
                Kind::ExpungeBeyondExists,
                Kind::ExistsShrank
            ]
        );
    }

    #[test]
    fn uid_faults_are_caught() {
        let (mut s, mut t) = selected(3, 10);
        s.apply(
            &Untagged::Fetch(2, fetch(Some(5), &[])),
            During::Other,
            &mut t,
        );
        s.apply(
            &Untagged::Fetch(2, fetch(Some(6), &[])),
            During::Other,
            &mut t,
        );
        s.apply(
            &Untagged::Fetch(3, fetch(Some(6), &[])),
            During::Other,
            &mut t,
        );
        s.apply(
            &Untagged::Fetch(1, fetch(Some(10), &[])),
            During::Other,
            &mut t,
        );
        assert_eq!(
            kinds(&t),
            vec![
                Kind::UidChanged,
                Kind::UidsNotAscending,
                Kind::UidNotBelowUidNext
            ]
        );
    }

    #[test]
    fn expunge_during_a_sequence_command_is_caught() {
        let (mut s, mut t) = selected(2, 10);
        s.apply(&Untagged::Expunge(1), During::SequenceCommand, &mut t);
        assert_eq!(kinds(&t), vec![Kind::ExpungeDuringCommand]);
        assert_eq!(s.exists(), 1);
    }

    #[test]
    fn messages_arriving_during_select_are_not_held_to_its_uidnext() {
        let (mut s, mut t) = selected(1, 10);
        s.apply(&Untagged::Exists(2), During::Select, &mut t);
        s.apply(
            &Untagged::Fetch(2, fetch(Some(10), &[])),
            During::Other,
            &mut t,
        );
        assert!(t.contradictions.is_empty(), "{t:?}");
    }

    #[test]
    fn checkpoint_differences_are_counted() {
        let view = |session, exists, uids: Vec<Option<u32>>, flags: &[(u32, &[&str])]| View {
            session,
            exists,
            uids,
            flags: flags
                .iter()
                .map(|(uid, f)| (*uid, f.iter().map(|f| f.to_string()).collect()))
                .collect(),
        };
        let mut t = Tally::default();
        compare_views(
            &[
                view(0, 2, vec![Some(1), Some(2)], &[(1, &["\\Seen"])]),
                view(1, 2, vec![None, Some(3)], &[(1, &["\\Seen"]), (3, &[])]),
                view(2, 2, vec![Some(1), None], &[(1, &[])]),
            ],
            "test",
            &mut t,
        );
        assert_eq!(kinds(&t), vec![Kind::CheckpointUids, Kind::CheckpointFlags]);
        let mut t = Tally::default();
        compare_views(
            &[
                view(0, 2, vec![Some(1), Some(2)], &[]),
                view(1, 1, vec![Some(1)], &[]),
                view(2, 2, vec![None, None], &[]),
            ],
            "test",
            &mut t,
        );
        assert_eq!(kinds(&t), vec![Kind::CheckpointExists]);
        let example = &t.contradictions[&Kind::CheckpointExists].1[0];
        assert!(example.ends_with("; UID 2 only in s0"), "{example}");
    }
}
