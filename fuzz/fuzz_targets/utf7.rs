//! Modified UTF-7 mailbox names (RFC 3501 5.1.3). Invariants: no panic; a
//! name that decodes encodes to a wire form that decodes to the same name,
//! so every mailbox we accept can be named again by a client that uses the
//! form we send in LIST.
#![no_main]

use imap_server::imap::utf7::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = decode(data) else {
        return;
    };
    let wire = encode(&name);
    assert!(wire.is_ascii(), "encode({name:?}) is not ASCII: {wire:?}");
    assert_eq!(
        decode(wire.as_bytes()).as_deref(),
        Ok(name.as_str()),
        "{name:?} went out as {wire:?}"
    );
});
