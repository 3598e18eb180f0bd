//! The IMAP command parser as the session calls it (the extension grammar,
//! then imap-codec on what it leaves), and the framer's tag recovery for
//! refused commands. Invariants: no panic; tokens are in order, apart and
//! inside the input; an edited command keeps the input's tag; what the
//! parser leaves is a suffix of its input; a parsed command's tag is the
//! input's first word, and `recover_tag` finds the same one.
#![no_main]

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_server::imap::grammar::{extend, tokens::tokenize};
use imap_server::imap::refusal::recover_tag;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(tokens) = tokenize(data) {
        let mut end = 0;
        for token in &tokens {
            assert!(end <= token.start && token.start < token.end && token.end <= data.len());
            end = token.end;
        }
    }
    let edited = extend(data).ok().and_then(|extended| extended.edited);
    if let Some(edited) = &edited {
        assert_eq!(recover_tag(edited), recover_tag(data));
    }
    let data = edited.as_deref().unwrap_or(data);
    if let Ok((rest, command)) = CommandCodec::default().decode(data) {
        assert!(data.ends_with(rest), "the remainder is not a suffix");
        let tag = command.tag.inner();
        assert!(
            data.starts_with(tag.as_bytes()),
            "tag {tag:?} is not the input's beginning"
        );
        // Every command has a space after its tag, so the framer, which
        // answers BAD with the tag it recovers, names the same command.
        assert_eq!(recover_tag(data).as_deref(), Some(tag));
    }
    if let Some(tag) = recover_tag(data) {
        assert!(!tag.is_empty());
        assert_eq!(&data[..tag.len()], tag.as_bytes());
        assert_eq!(data[tag.len()], b' ');
        assert!(tag.bytes().all(|b| b.is_ascii_graphic()));
    }
});
