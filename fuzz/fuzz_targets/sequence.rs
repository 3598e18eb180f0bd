//! Sequence sets, from `FETCH <set> FLAGS` and from imap-types' own
//! `SequenceSet::try_from(&str)`. Invariants: no panic; `iter` yields the
//! numbers a set names sorted and without repeats;
//! our COPYUID formatting (`uid_set`) of those numbers parses back to them.
#![no_main]

use std::num::NonZeroU32;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_server::imap::view::uid_set;
use imap_types::command::CommandBody;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use libfuzzer_sys::fuzz_target;

/// How many numbers of a set are compared one by one.
const SAMPLE: usize = 4096;

/// The set as sorted, disjoint, non-adjacent inclusive intervals.
fn intervals(set: &SequenceSet, largest: u32) -> Vec<(u32, u32)> {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut ranges: Vec<(u32, u32)> = set
        .0
        .as_ref()
        .iter()
        .map(|sequence| {
            let (a, b) = match sequence {
                Sequence::Single(v) => (value(v), value(v)),
                Sequence::Range(a, b) => (value(a), value(b)),
            };
            (a.min(b), a.max(b))
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The first `SAMPLE` numbers of the intervals.
fn first_numbers(intervals: &[(u32, u32)]) -> Vec<u32> {
    let mut out = Vec::new();
    for &(a, b) in intervals {
        let mut n = a;
        loop {
            if out.len() == SAMPLE {
                return out;
            }
            out.push(n);
            if n == b {
                break;
            }
            n += 1;
        }
    }
    out
}

fn check(set: &SequenceSet, largest_byte: u8) {
    // Not checked: imap-types' own `SequenceSet::normalize`. Fuzzing found
    // it turns `4294967294:*` into `4294967294` (its exclusive upper bound
    // saturates at u32::MAX), which drops `*`: in a mailbox whose largest
    // UID is 5 that set names UID 5, the normalised one nothing. The server
    // never calls it (the view merges ranges itself, with `*` resolved
    // first); nothing here may start to.

    // `*` as a small mailbox's largest number, as a session resolves it.
    let largest = NonZeroU32::new(u32::from(largest_byte).max(1)).unwrap_or(NonZeroU32::MIN);
    let expected = first_numbers(&intervals(set, largest.get()));
    let iterated: Vec<u32> = set
        .iter(largest)
        .take(SAMPLE)
        .map(NonZeroU32::get)
        .collect();
    assert_eq!(iterated, expected, "iter({largest}) of {set:?}");

    let text = uid_set(&expected);
    if !expected.is_empty() {
        let parsed = SequenceSet::try_from(text.as_str())
            .unwrap_or_else(|e| panic!("uid_set gave {text:?}, which does not parse: {e:?}"));
        assert_eq!(first_numbers(&intervals(&parsed, u32::MAX)), expected);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&largest_byte, data)) = data.split_first() else {
        return;
    };
    let mut line = b"a FETCH ".to_vec();
    line.extend_from_slice(data);
    line.extend_from_slice(b" FLAGS\r\n");
    if let Ok((_, command)) = CommandCodec::default().decode(&line) {
        let CommandBody::Fetch { sequence_set, .. } = command.body else {
            panic!("FETCH parsed as {:?}", command.body);
        };
        check(&sequence_set, largest_byte);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(set) = SequenceSet::try_from(text)
    {
        check(&set, largest_byte);
    }
});
