//! The messages of a view as the client knows them, kept small: every idle
//! session holds the list of its selected mailbox, and ten thousand sessions
//! hold ten thousand lists. UIDs are kept as runs of consecutive UIDs (a
//! mailbox's UIDs are dense but for expunges), and each message's flag list
//! and state in two bytes while the mailbox has fewer than 16,384 distinct
//! flag lists, four after: 2,000 messages take about 4 KB, not 16.

/// One message as the client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// The index of its flag list in the view's `FlagSets`, `GONE` and `RECENT`.
    bits: u32,
}

/// Set for a message gone from the store but not yet reported with EXPUNGE.
const GONE: u32 = 1 << 31;
/// Set for a message that is \Recent in this session.
const RECENT: u32 = 1 << 30;
/// The bits that hold the flag list's index.
pub const FLAG_SET: u32 = RECENT - 1;

impl Entry {
    pub fn new(uid: u32, flag_set: u32) -> Entry {
        Entry {
            uid,
            bits: flag_set & FLAG_SET,
        }
    }

    /// Gone from the store, not yet reported with EXPUNGE.
    pub fn is_expunged(&self) -> bool {
        self.bits & GONE != 0
    }

    pub fn is_recent(&self) -> bool {
        self.bits & RECENT != 0
    }

    pub fn flag_set(&self) -> u32 {
        self.bits & FLAG_SET
    }

    pub fn expunged(self, gone: bool) -> Entry {
        self.with_bit(GONE, gone)
    }

    pub fn recent(self) -> Entry {
        self.with_bit(RECENT, true)
    }

    pub fn with_flag_set(self, id: u32) -> Entry {
        Entry {
            uid: self.uid,
            bits: (self.bits & !FLAG_SET) | (id & FLAG_SET),
        }
    }

    fn with_bit(self, bit: u32, on: bool) -> Entry {
        let bits = if on {
            self.bits | bit
        } else {
            self.bits & !bit
        };
        Entry {
            uid: self.uid,
            bits,
        }
    }
}

/// The messages from `index` on have consecutive UIDs from `uid` on, up to
/// the next run.
#[derive(Debug, Clone, Copy)]
struct Run {
    uid: u32,
    index: u32,
}

/// The largest flag list index two bytes hold beside the two state bits.
const NARROW_FLAG_SET: u32 = (1 << 14) - 1;

/// Each message's `Entry::bits`, narrow while the indices fit.
#[derive(Debug)]
enum Bits {
    /// Bit 15 `GONE`, bit 14 `RECENT`, the flag list index below.
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

fn narrow(bits: u32) -> Option<u16> {
    if bits & FLAG_SET > NARROW_FLAG_SET {
        return None;
    }
    u16::try_from((bits >> 16) | (bits & NARROW_FLAG_SET)).ok()
}

fn wide(bits: u16) -> u32 {
    let bits = u32::from(bits);
    ((bits << 16) & (GONE | RECENT)) | (bits & NARROW_FLAG_SET)
}

impl Bits {
    fn len(&self) -> usize {
        match self {
            Bits::Narrow(all) => all.len(),
            Bits::Wide(all) => all.len(),
        }
    }

    fn get(&self, index: usize) -> u32 {
        match self {
            Bits::Narrow(all) => wide(all[index]),
            Bits::Wide(all) => all[index],
        }
    }

    fn set(&mut self, index: usize, bits: u32) {
        if let Bits::Narrow(all) = self {
            match narrow(bits) {
                Some(small) => return all[index] = small,
                None => self.widen(),
            }
        }
        if let Bits::Wide(all) = self {
            all[index] = bits;
        }
    }

    fn push(&mut self, bits: u32) {
        self.insert(self.len(), bits);
    }

    fn insert(&mut self, index: usize, bits: u32) {
        if let Bits::Narrow(all) = self {
            match narrow(bits) {
                Some(small) => return all.insert(index, small),
                None => self.widen(),
            }
        }
        if let Bits::Wide(all) = self {
            all.insert(index, bits);
        }
    }

    fn remove(&mut self, index: usize) {
        match self {
            Bits::Narrow(all) => {
                all.remove(index);
            }
            Bits::Wide(all) => {
                all.remove(index);
            }
        }
    }

    fn widen(&mut self) {
        if let Bits::Narrow(all) = self {
            *self = Bits::Wide(all.iter().map(|&bits| wide(bits)).collect());
        }
    }
}

/// The view's messages in sequence-number order (UIDs ascending).
#[derive(Debug)]
pub struct Messages {
    runs: Vec<Run>,
    bits: Bits,
}

impl Default for Messages {
    fn default() -> Self {
        Messages {
            runs: Vec::new(),
            bits: Bits::Narrow(Vec::new()),
        }
    }
}

impl Messages {
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a message after the last; its UID must be larger than any.
    pub fn push(&mut self, entry: Entry) {
        debug_assert!(self.last_uid().is_none_or(|last| entry.uid > last));
        if self.last_uid().is_none_or(|last| entry.uid != last + 1) {
            self.runs.push(Run {
                uid: entry.uid,
                index: index_u32(self.len()),
            });
        }
        self.bits.push(entry.bits);
    }

    pub fn get(&self, index: usize) -> Entry {
        let run = self.runs[self.run_of_index(index)];
        Entry {
            uid: run.uid + (index_u32(index) - run.index),
            bits: self.bits.get(index),
        }
    }

    /// Changes the state and flags of the message at `index` (not its UID).
    pub fn set(&mut self, index: usize, entry: Entry) {
        debug_assert_eq!(self.get(index).uid, entry.uid);
        self.bits.set(index, entry.bits);
    }

    pub fn last_uid(&self) -> Option<u32> {
        (!self.is_empty()).then(|| self.get(self.len() - 1).uid)
    }

    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        let run = self.runs.partition_point(|r| r.uid <= uid).checked_sub(1)?;
        let index = (self.runs[run].index + (uid - self.runs[run].uid)) as usize;
        (index < self.run_end(run)).then_some(index)
    }

    /// How many messages have a UID below `uid`: the index of the first at
    /// or above it.
    pub fn count_below(&self, uid: u32) -> usize {
        match self.runs.partition_point(|r| r.uid < uid).checked_sub(1) {
            None => 0,
            Some(run) => {
                let start = self.runs[run].index as usize;
                let within = (uid - self.runs[run].uid) as usize;
                (start + within).min(self.run_end(run))
            }
        }
    }

    /// Removes the message at `index`; those after it move down one.
    pub fn remove(&mut self, index: usize) {
        let run = self.run_of_index(index);
        let Run { uid, index: start } = self.runs[run];
        let end = self.run_end(run);
        let offset = index_u32(index) - start;
        let mut next = run + 1;
        if end - index == 1 && offset == 0 {
            // The run's only message.
            self.runs.remove(run);
            next = run;
        } else if offset == 0 {
            self.runs[run].uid = uid + 1;
        } else if index + 1 < end {
            // From the middle: the messages after it form a run of their own.
            self.runs.insert(
                run + 1,
                Run {
                    uid: uid + offset + 1,
                    index: index_u32(index) + 1,
                },
            );
        }
        for later in &mut self.runs[next..] {
            later.index -= 1;
        }
        self.bits.remove(index);
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Entry> + '_ {
        (0..self.len()).map(|index| self.get(index))
    }

    fn run_of_index(&self, index: usize) -> usize {
        self.runs.partition_point(|r| r.index as usize <= index) - 1
    }

    /// Where run `run` ends: the next run's first index, or the end.
    fn run_end(&self, run: usize) -> usize {
        self.runs
            .get(run + 1)
            .map_or(self.len(), |next| next.index as usize)
    }
}

/// Views hold far fewer than 2^32 messages (a mailbox's UIDs are u32).
fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Random pushes, removals and changes, checked against a plain vector.
    #[test]
    fn behaves_as_a_vector_of_entries() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut messages = Messages::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut next_uid = 1u32;
            for _ in 0..300 {
                match rng.random_range(0..10) {
                    0..=4 => {
                        next_uid += if rng.random_bool(0.7) {
                            1
                        } else {
                            rng.random_range(2..9)
                        };
                        let id = if rng.random_bool(0.95) {
                            rng.random_range(0..5)
                        } else {
                            20_000
                        };
                        let entry = Entry::new(next_uid, id);
                        messages.push(entry);
                        model.push(entry);
                    }
                    5..=6 if !model.is_empty() => {
                        let index = rng.random_range(0..model.len());
                        messages.remove(index);
                        model.remove(index);
                    }
                    7..=8 if !model.is_empty() => {
                        let index = rng.random_range(0..model.len());
                        let changed = model[index]
                            .expunged(rng.random_bool(0.5))
                            .with_flag_set(rng.random_range(0..30_000));
                        let changed = if rng.random_bool(0.3) {
                            changed.recent()
                        } else {
                            changed
                        };
                        messages.set(index, changed);
                        model[index] = changed;
                    }
                    _ => {}
                }
                assert_eq!(messages.len(), model.len());
                assert_eq!(messages.iter().collect::<Vec<_>>(), model);
                for probe in 0..next_uid + 2 {
                    assert_eq!(
                        messages.index_of_uid(probe),
                        model.binary_search_by_key(&probe, |e| e.uid).ok()
                    );
                    assert_eq!(
                        messages.count_below(probe),
                        model.partition_point(|e| e.uid < probe)
                    );
                }
            }
        }
    }

    #[test]
    fn two_thousand_dense_messages_take_two_bytes_each() {
        let mut messages = Messages::default();
        for uid in 1..=2000 {
            messages.push(Entry::new(uid, uid % 3));
        }
        assert_eq!(messages.runs.len(), 1);
        assert!(matches!(&messages.bits, Bits::Narrow(all) if all.len() == 2000));
    }
}
