//! What QRESYNC (RFC 7162 3.2) tells a client about a mailbox it knew:
//! the UIDs that vanished since a mod-sequence and the messages that
//! changed since, for SELECT (QRESYNC ...) and UID FETCH (VANISHED).

use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::{Services, View, flag_list};
use crate::imap::outcome::Failure;
use crate::imap::response::Out;

/// Inclusive UID ranges, sorted, apart and never empty.
pub type UidRanges = Vec<(u32, u32)>;

impl View {
    /// The UIDs a set names among those the mailbox has given out
    /// (`1..UIDNEXT`), as ranges: `1:*` costs one range, not a list. `*` is
    /// the highest UID given out. No set means all of them.
    pub fn given_out(&self, set: Option<&SequenceSet>) -> UidRanges {
        let last = self.uidnext.saturating_sub(1);
        if last == 0 {
            return Vec::new();
        }
        let value = |v: &SeqOrUid| match v {
            SeqOrUid::Value(uid) => uid.get(),
            SeqOrUid::Asterisk => last,
        };
        let mut ranges: Vec<(u32, u32)> = match set {
            None => vec![(1, last)],
            // UIDs above the last given out name nothing (`5000:*` still
            // names the last, as `*` is it).
            Some(set) => set
                .0
                .as_ref()
                .iter()
                .filter_map(|sequence| {
                    let (a, b) = match sequence {
                        Sequence::Single(v) => (value(v), value(v)),
                        Sequence::Range(a, b) => (value(a), value(b)),
                    };
                    let (low, high) = (a.min(b), a.max(b));
                    (low <= last).then_some((low, high.min(last)))
                })
                .collect(),
        };
        ranges.sort_unstable();
        let mut merged: UidRanges = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// The UIDs within `within` expunged after mod-sequence `since`, leaving
    /// out those this view still counts (they are reported as VANISHED in
    /// their turn). When the expunges after `since` are no longer all
    /// remembered, every UID within `within` that is not in the mailbox
    /// now: RFC 7162 3.2.5.2 allows that, and it is exact, only longer.
    pub async fn vanished_since(
        &self,
        services: &Services,
        since: u64,
        within: &[(u32, u32)],
    ) -> Result<UidRanges, Failure> {
        match services.store.expunged_since(&self.mailbox, since).await? {
            Some(expunged) => {
                let uids: Vec<u32> = expunged
                    .into_iter()
                    .filter(|&uid| contains(within, uid) && self.index_of_uid(uid).is_none())
                    .collect();
                Ok(ranges_of(&uids))
            }
            None => Ok(self.absent_within(within)),
        }
    }

    /// The UIDs within `within` that no message of this view has.
    fn absent_within(&self, within: &[(u32, u32)]) -> UidRanges {
        let mut absent = Vec::new();
        let mut entries = self.entries().map(|e| e.uid).peekable();
        for &(start, end) in within {
            let mut next = start;
            while let Some(&uid) = entries.peek() {
                if uid > end {
                    break;
                }
                entries.next();
                if uid >= next {
                    if uid > next {
                        absent.push((next, uid - 1));
                    }
                    next = uid.saturating_add(1);
                }
            }
            if next <= end && next >= start {
                absent.push((next, end));
            }
        }
        absent
    }

    /// `* VANISHED (EARLIER) …` for what vanished since `since` within
    /// `within`, if anything did.
    pub async fn report_vanished_since(
        &self,
        services: &Services,
        since: u64,
        within: &[(u32, u32)],
        out: &mut Out<'_>,
    ) -> Result<(), Failure> {
        let vanished = self.vanished_since(services, since, within).await?;
        if !vanished.is_empty() {
            out.untagged(&format!("VANISHED (EARLIER) {}", ranges_text(&vanished)));
        }
        Ok(())
    }

    /// `* n FETCH (UID u FLAGS (…) MODSEQ (m))` for every message of the
    /// view changed after `since` (new ones included), as SELECT (QRESYNC)
    /// answers (RFC 7162 3.2.5).
    pub async fn report_changed_since(
        &mut self,
        services: &Services,
        since: u64,
        out: &mut Out<'_>,
    ) -> Result<(), Failure> {
        // Only messages of this view: not those hidden by bans.
        let mut messages = services.store.summaries_since(&self.mailbox, since).await?;
        messages.retain(|m| self.index_of_uid(m.uid).is_some());
        self.announce_keywords(messages.iter().map(|m| m.flags.as_slice()), out);
        for message in &messages {
            let Some(index) = self.index_of_uid(message.uid) else {
                continue;
            };
            self.set_flags(message.uid, &message.flags);
            out.untagged(&format!(
                "{} FETCH (UID {} FLAGS ({}) MODSEQ ({}))",
                index + 1,
                message.uid,
                flag_list(&message.flags, self.is_recent(message.uid)),
                message.modseq
            ));
        }
        Ok(())
    }
}

fn contains(ranges: &[(u32, u32)], uid: u32) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= uid);
    after > 0 && ranges[after - 1].1 >= uid
}

/// Sorted UIDs as ranges.
fn ranges_of(uids: &[u32]) -> UidRanges {
    let mut ranges: UidRanges = Vec::new();
    for &uid in uids {
        match ranges.last_mut() {
            Some(last) if uid == last.1.saturating_add(1) => last.1 = uid,
            _ => ranges.push((uid, uid)),
        }
    }
    ranges
}

/// The wire form of UID ranges: `1:3,7,9:12`.
pub fn ranges_text(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}:{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_their_ends_and_nothing_between() {
        let ranges = vec![(1, 3), (7, 7), (9, 12)];
        for (uid, inside) in [
            (1, true),
            (3, true),
            (4, false),
            (7, true),
            (8, false),
            (12, true),
            (13, false),
        ] {
            assert_eq!(contains(&ranges, uid), inside, "{uid}");
        }
        assert!(!contains(&[], 1));
    }

    #[test]
    fn uids_become_ranges_and_text() {
        assert_eq!(ranges_of(&[1, 2, 3, 5, 8, 9]), vec![(1, 3), (5, 5), (8, 9)]);
        assert_eq!(ranges_text(&[(1, 3), (5, 5)]), "1:3,5");
    }
}
