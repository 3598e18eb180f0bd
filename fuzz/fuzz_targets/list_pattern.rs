//! LIST patterns: `Pattern::new(pattern).matches(name)`, the input split at
//! its first NUL into pattern and name. Invariants: no panic, and for short
//! inputs the same answer as the plain backtracking matcher of RFC 3501
//! 6.3.8 (`*` anything, `%` anything but the delimiter `/`).
#![no_main]

use imap_server::imap::pattern::Pattern;
use libfuzzer_sys::fuzz_target;

/// Inputs up to this long are checked against the exponential reference.
const SHORT: usize = 12;

fn reference(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| reference(rest, &name[skip..])),
        Some((b'%', rest)) => {
            let end = name.iter().position(|&b| b == b'/').unwrap_or(name.len());
            (0..=end).any(|skip| reference(rest, &name[skip..]))
        }
        Some((&head, rest)) => name.first() == Some(&head) && reference(rest, &name[1..]),
    }
}

fuzz_target!(|data: &[u8]| {
    let (pattern, name) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &b""[..]),
    };
    let matched = Pattern::new(pattern).matches(name);
    if pattern.len() <= SHORT && name.len() <= SHORT {
        assert_eq!(
            matched,
            reference(pattern, name),
            "pattern {:?} against {:?}",
            String::from_utf8_lossy(pattern),
            String::from_utf8_lossy(name)
        );
    }
});
