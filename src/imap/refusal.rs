//! Why the framer refused a command before it was complete, and the tag
//! it can still be answered with. The framer (in `server`) finds these; the
//! session turns them into tagged answers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    LineTooLong,
    /// A literal over the cap: for APPEND the message-size limit, else the small one.
    LiteralTooBig {
        append: bool,
        limit: u32,
    },
}

/// The tag of a command, when its first word is a valid one (RFC 3501 9:
/// any ASTRING-CHAR except "+").
pub fn recover_tag(command: &[u8]) -> Option<String> {
    let end = command.iter().position(|&b| b == b' ')?;
    let tag = &command[..end];
    let valid = !tag.is_empty()
        && tag
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\+".contains(&b));
    valid.then(|| String::from_utf8_lossy(tag).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_recovered_only_when_valid() {
        assert_eq!(recover_tag(b"a1 FOO\r\n"), Some("a1".into()));
        assert_eq!(recover_tag(b"a+1 FOO"), None);
        assert_eq!(recover_tag(b"*"), None);
        assert_eq!(recover_tag(b"\x00 x"), None);
    }
}
