//! The saved search result that `$` names (RFC 5182), kept per selection:
//! a new SELECT starts with none.
//!
//! It is kept as UID ranges over the view as it was when saved: each range
//! covers messages that were next to each other in the view, so a result
//! of "every unseen message" is a handful of ranges, not one UID each. No
//! message can later appear inside a range (new UIDs are always higher),
//! and an expunged one simply no longer resolves: exactly what RFC 5182 2.1
//! asks of `$`.

use std::num::NonZeroU32;

use imap_types::core::Vec1;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::View;

#[derive(Debug, Default)]
pub struct Saved(Vec<(u32, u32)>);

impl View {
    /// Saves the messages at these ascending indexes as the search result.
    pub fn save_result(&mut self, indexes: &[usize]) {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut previous: Option<usize> = None;
        for &index in indexes {
            let uid = self.entry(index).uid;
            match ranges.last_mut() {
                Some(range) if previous == Some(index.wrapping_sub(1)) => range.1 = uid,
                _ => ranges.push((uid, uid)),
            }
            previous = Some(index);
        }
        self.saved = Saved(ranges);
    }

    /// A SEARCH that was to save its result failed: `$` is empty (RFC 5182 2.1).
    pub fn forget_result(&mut self) {
        self.saved = Saved::default();
    }

    /// The saved messages still in the view, as ascending indexes.
    pub fn saved_indexes(&self) -> Vec<usize> {
        self.saved_index_ranges()
            .flat_map(|(start, end)| start..end)
            .collect()
    }

    /// `$` as a command's sequence set, by UID or by sequence number; None
    /// when no saved message is left, and the command has nothing to do.
    pub fn saved_set(&self, by_uid: bool) -> Option<SequenceSet> {
        let sequences: Vec<Sequence> = self
            .saved_index_ranges()
            .map(|(start, end)| {
                let (first, last) = if by_uid {
                    (self.entry(start).uid, self.entry(end - 1).uid)
                } else {
                    (start as u32 + 1, end as u32)
                };
                Sequence::Range(number(first), number(last))
            })
            .collect();
        Vec1::try_from(sequences).ok().map(SequenceSet)
    }

    /// The saved ranges as half-open index ranges, the empty ones left out.
    fn saved_index_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.saved.0.iter().filter_map(|&(first, last)| {
            let start = self.entries.count_below(first);
            let end = self.entries.count_below(last.saturating_add(1));
            (start < end).then_some((start, end))
        })
    }
}

fn number(value: u32) -> SeqOrUid {
    // Sequence numbers start at 1 and UIDs are never 0.
    SeqOrUid::Value(NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN))
}
