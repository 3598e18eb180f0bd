//! SEARCH and UID SEARCH criteria through the command parser. Invariants:
//! no panic, and the key tree is never deeper than imap-codec's recursion
//! limit (`search_key(9)` in imap-codec's `search.rs`): a deep tree would
//! make our own recursive evaluation the stack's problem.
#![no_main]

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_types::command::CommandBody;
use imap_types::search::SearchKey;
use libfuzzer_sys::fuzz_target;

/// imap-codec parses each top-level key with `search_key(9)`: nine levels,
/// the key itself included.
const MAX_DEPTH: usize = 9;

fn depth(key: &SearchKey<'_>) -> usize {
    1 + match key {
        SearchKey::And(keys) => keys.as_ref().iter().map(depth).max().unwrap_or(0),
        SearchKey::Not(key) => depth(key),
        SearchKey::Or(left, right) => depth(left).max(depth(right)),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    for prefix in [&b"a UID SEARCH "[..], b"a SEARCH "] {
        let mut line = prefix.to_vec();
        line.extend_from_slice(data);
        line.extend_from_slice(b"\r\n");
        let Ok((_, command)) = CommandCodec::default().decode(&line) else {
            continue;
        };
        let CommandBody::Search { criteria, .. } = command.body else {
            panic!("SEARCH parsed as {:?}", command.body);
        };
        for key in criteria.as_ref() {
            let d = depth(key);
            assert!(d <= MAX_DEPTH, "a search key {d} levels deep");
        }
    }
});
