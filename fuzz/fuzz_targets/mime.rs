//! The MIME layer on arbitrary message bytes: ENVELOPE, BODYSTRUCTURE,
//! BODY[section], body text for SEARCH, and the columns of a stored message.
//! Invariants: no panic; ENVELOPE and BODYSTRUCTURE are 7-bit ASCII (we never
//! send 8-bit header bytes, see `src/mime/mod.rs`); BODY[] has exactly the
//! bytes of `message_bytes` (so RFC822.SIZE equals its length), and served
//! sections carry neither NUL nor bare LF.
#![no_main]

use chrono::Utc;
use imap_server::mime::{
    SectionSpec, SectionText, StoredColumns, body_structure, body_text, columns, envelope,
    message_bytes, section,
};
use libfuzzer_sys::fuzz_target;

fn stored(raw: &[u8]) -> Vec<u8> {
    message_bytes(&StoredColumns {
        id: "fuzz",
        raw: Some(raw),
        body: None,
        html: None,
        subject: None,
        from_addr: None,
        to_addrs: None,
        timestamp: Utc::now(),
    })
}

fn assert_served(bytes: &[u8], what: &str) {
    assert!(!bytes.contains(&0), "{what} holds NUL");
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, &c)| c != b'\n' || (i > 0 && bytes[i - 1] == b'\r')),
        "{what} holds a bare LF"
    );
}

/// A few section specs chosen by the input's first bytes, so the fuzzer can
/// steer them: part numbers from the first four bytes, the kind from the fifth.
fn specs(data: &[u8]) -> Vec<SectionSpec> {
    let head: Vec<u8> = data.iter().take(5).copied().collect();
    let part: Vec<u32> = head
        .iter()
        .take(4)
        .take_while(|&&b| b & 0x80 == 0)
        .map(|&b| u32::from(b % 5))
        .collect();
    let names = vec!["subject".to_owned(), "CONTENT-TYPE".to_owned()];
    let kind = match head.get(4).map(|b| b % 6) {
        Some(0) => SectionText::Header,
        Some(1) => SectionText::HeaderFields(names),
        Some(2) => SectionText::HeaderFieldsNot(names),
        Some(3) => SectionText::Text,
        Some(4) => SectionText::Mime,
        _ => SectionText::Full,
    };
    vec![
        SectionSpec {
            part: part.clone(),
            text: kind.clone(),
        },
        SectionSpec {
            part: part.clone(),
            text: SectionText::Full,
        },
        SectionSpec {
            part: vec![],
            text: kind,
        },
        SectionSpec {
            part: vec![1],
            text: SectionText::Mime,
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let env = envelope(data);
    assert!(env.is_ascii(), "ENVELOPE is not 7-bit: {env:?}");
    for extended in [false, true] {
        let structure = body_structure(data, extended);
        assert!(
            structure.is_ascii(),
            "BODYSTRUCTURE is not 7-bit: {structure:?}"
        );
    }

    // What a client sees: the stored bytes after `message_bytes`.
    let bytes = stored(data);
    let whole = SectionSpec {
        part: vec![],
        text: SectionText::Full,
    };
    let body = section(&bytes, &whole);
    assert_eq!(body.len(), bytes.len(), "BODY[] length is not RFC822.SIZE");
    // Also straight from the raw bytes, as a parse would see them.
    assert_eq!(section(data, &whole).len(), bytes.len());

    for spec in specs(data) {
        let served = section(&bytes, &spec);
        assert!(served.len() <= bytes.len() + 2, "{spec:?} grew the message");
        assert_served(&served, "a section");
        let _ = section(data, &spec);
    }

    let _ = body_text(data);
    let _ = columns(data);
});
