//! BODY[section] (RFC 3501 6.4.5): which bytes a section names, found the
//! way Dovecot finds them, so that offsets and sizes agree with BODYSTRUCTURE.
//!
//! The bytes are served as Dovecot serves them: bare LFs become CRLF (the
//! sizes in BODYSTRUCTURE already count them so) and NUL bytes become 0x80,
//! since a literal may not contain NUL. Both keep `RFC822.SIZE` equal to the
//! length of `BODY[]` for a message stored with CRLF line endings.

use std::borrow::Cow;

use super::header::{HeaderLine, next_header_line};
use super::synthesize::has_bare_lf;
use super::tree::{MessageTree, Part};

/// A section specification: `part` empty means the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpec {
    pub part: Vec<u32>,
    pub text: SectionText,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// `BODY[]` or `BODY[1.2]`: the whole message, or a part's body.
    Full,
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// The MIME header block of a numbered part.
    Mime,
}

/// The bytes of BODY[section], before any `<partial>` is applied. A part
/// that does not exist (or a HEADER/TEXT of a part that is not a message)
/// gives an empty Vec, as Dovecot answers with an empty string.
pub fn section(raw: &[u8], spec: &SectionSpec) -> Vec<u8> {
    if spec.part.is_empty() {
        // The message's own header needs no MIME parsing.
        let header_end = root_header_end(raw);
        return match spec.text {
            SectionText::Full => as_served(raw),
            SectionText::Header => as_served(&raw[..header_end]),
            SectionText::Text => as_served(&raw[header_end..]),
            SectionText::Mime => Vec::new(),
            SectionText::HeaderFields(_) | SectionText::HeaderFieldsNot(_) => {
                let tree = MessageTree::header_only(raw);
                section_of_tree(&tree, spec)
            }
        };
    }
    section_of_tree(&MessageTree::parse(raw, false), spec)
}

/// One message's bytes, as `message_bytes` makes them (CRLF throughout),
/// read for every section one FETCH asks of it: the part tree is built at
/// most once, and a section of a message without NUL bytes is a slice of
/// the bytes, not a copy. Three thousand `BODY[1]<n.1>` items cost one
/// parse and three thousand slices, not three thousand parses.
pub struct Sections<'a> {
    bytes: &'a [u8],
    tree: Option<MessageTree<'a>>,
    /// Whether `tree` has every part, or only the message's header.
    full_tree: bool,
    /// Served as stored: no NUL to replace, no bare LF to expand.
    clean: bool,
}

impl<'a> Sections<'a> {
    pub fn new(bytes: &'a [u8]) -> Sections<'a> {
        let clean = !bytes.contains(&0) && !has_bare_lf(bytes);
        Sections {
            bytes,
            tree: None,
            full_tree: false,
            clean,
        }
    }

    /// The length of the message as served (RFC822.SIZE).
    pub fn len(&self) -> usize {
        if self.clean {
            self.bytes.len()
        } else {
            as_served(self.bytes).len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Builds now what sections `specs` will need (the part tree), so that
    /// the caller can do the parsing where it costs nobody else.
    pub fn prepare<'s>(&mut self, mut specs: impl Iterator<Item = &'s SectionSpec>) {
        if let Some(spec) = specs.find(|spec| !spec.part.is_empty()) {
            self.tree(spec);
        }
    }

    /// The bytes of BODY[section]<partial>, as served.
    pub fn get(&mut self, spec: &SectionSpec, partial: Option<(u32, u32)>) -> Cow<'a, [u8]> {
        let contiguous = self.range(spec);
        let whole: Cow<'a, [u8]> = match contiguous {
            Some(range) if self.clean => Cow::Borrowed(&self.bytes[range]),
            Some(range) => Cow::Owned(as_served(&self.bytes[range])),
            None => Cow::Owned(section_of_tree(self.tree(spec), spec)),
        };
        let Some((origin, length)) = partial else {
            return whole;
        };
        let start = (origin as usize).min(whole.len());
        let end = start.saturating_add(length as usize).min(whole.len());
        match whole {
            Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[start..end]),
            Cow::Owned(bytes) => Cow::Owned(bytes[start..end].to_vec()),
        }
    }

    /// Where a section lies in the bytes, when it is one stretch of them
    /// (everything but HEADER.FIELDS, which picks lines).
    fn range(&mut self, spec: &SectionSpec) -> Option<std::ops::Range<usize>> {
        let len = self.bytes.len();
        if spec.part.is_empty() {
            let header_end = root_header_end(self.bytes);
            return match spec.text {
                SectionText::Full => Some(0..len),
                SectionText::Header => Some(0..header_end),
                SectionText::Text => Some(header_end..len),
                SectionText::Mime => Some(0..0),
                SectionText::HeaderFields(_) | SectionText::HeaderFieldsNot(_) => None,
            };
        }
        let tree = self.tree(spec);
        let clamp = |start: usize, size: usize| {
            let end = start.saturating_add(size).min(len);
            start.min(end)..end
        };
        let Some(index) = find_part(tree, &spec.part) else {
            return Some(0..0);
        };
        let part = &tree.parts[index];
        let message = if part.is_message() {
            part.children.first().map(|&child| &tree.parts[child])
        } else {
            None
        };
        match spec.text {
            SectionText::Full => Some(clamp(part.body_offset(), part.body.physical)),
            SectionText::Mime => Some(clamp(part.offset, part.header.physical)),
            SectionText::Header => {
                Some(message.map_or(0..0, |m| clamp(m.offset, m.header.physical)))
            }
            SectionText::Text => {
                Some(message.map_or(0..0, |m| clamp(m.body_offset(), m.body.physical)))
            }
            SectionText::HeaderFields(_) | SectionText::HeaderFieldsNot(_) => None,
        }
    }

    /// The part tree, built the first time a section needs it.
    fn tree(&mut self, spec: &SectionSpec) -> &MessageTree<'a> {
        let bytes = self.bytes;
        let needs_parts = !spec.part.is_empty();
        if needs_parts && !self.full_tree {
            // Header-only so far (or nothing): a numbered part needs them all.
            self.full_tree = true;
            self.tree = Some(MessageTree::parse(bytes, false));
        }
        self.tree
            .get_or_insert_with(|| MessageTree::header_only(bytes))
    }
}

/// Where the message's header ends: after its empty line, or at the end.
fn root_header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(line) = next_header_line(raw, pos) {
        match line {
            HeaderLine::Field(field) => pos = field.end,
            HeaderLine::End { end, .. } => return end,
        }
    }
    raw.len()
}

fn section_of_tree(tree: &MessageTree<'_>, spec: &SectionSpec) -> Vec<u8> {
    let raw = tree.data;
    let range = |start: usize, len: usize| {
        let end = start.saturating_add(len).min(raw.len());
        &raw[start.min(end)..end]
    };
    let root = spec.part.is_empty();
    let Some(index) = find_part(tree, &spec.part) else {
        return Vec::new();
    };
    let part = &tree.parts[index];
    // HEADER, TEXT and HEADER.FIELDS of a numbered part are those of the
    // message inside a message/rfc822 part.
    let message = if root {
        Some(part)
    } else if part.is_message() {
        part.children.first().map(|&child| &tree.parts[child])
    } else {
        None
    };
    match &spec.text {
        SectionText::Full if root => as_served(raw),
        SectionText::Full => as_served(range(part.body_offset(), part.body.physical)),
        SectionText::Mime if root => Vec::new(),
        SectionText::Mime => as_served(range(part.offset, part.header.physical)),
        SectionText::Header => message
            .map(|m| as_served(range(m.offset, m.header.physical)))
            .unwrap_or_default(),
        SectionText::Text => message
            .map(|m| as_served(range(m.body_offset(), m.body.physical)))
            .unwrap_or_default(),
        // For the whole message Dovecot adds the empty line even when the
        // header has none; for a part only when the part has one.
        SectionText::HeaderFields(names) => message
            .map(|m| as_served(&header_fields(tree, m, names, true, root)))
            .unwrap_or_default(),
        SectionText::HeaderFieldsNot(names) => message
            .map(|m| as_served(&header_fields(tree, m, names, false, false)))
            .unwrap_or_default(),
    }
}

/// Dovecot's walk from a section number to a part: in a multipart `n` is the
/// n-th child; elsewhere only `1` exists and means the part itself; going on
/// past a message/rfc822 part continues inside its message.
fn find_part(tree: &MessageTree<'_>, path: &[u32]) -> Option<usize> {
    let mut index = 0;
    for (i, &number) in path.iter().enumerate() {
        let more = i + 1 < path.len();
        let part = &tree.parts[index];
        if part.is_multipart() {
            let n = (number.max(1) - 1) as usize;
            index = *part.children.get(n)?;
        } else if number != 1 || (more && !part.is_message()) {
            return None;
        }
        let part = &tree.parts[index];
        if more && part.is_message() {
            index = *part.children.first()?;
        }
    }
    Some(index)
}

/// The header fields of `part` whose names are (or, with `include` false,
/// are not) in `names`, each with its continuation lines, then the empty
/// line. Like Dovecot's header filter this reads from the part's start up to
/// the first empty line, even when a boundary cut the part's header short.
fn header_fields(
    tree: &MessageTree<'_>,
    part: &Part,
    names: &[String],
    include: bool,
    always_end_line: bool,
) -> Vec<u8> {
    let data = tree.data;
    let mut out = Vec::new();
    let mut pos = part.offset;
    let mut has_empty_line = false;
    while let Some(line) = next_header_line(data, pos) {
        let HeaderLine::Field(field) = line else {
            has_empty_line = true;
            break;
        };
        let listed = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(field.name));
        if listed == include {
            out.extend_from_slice(&data[field.start..field.end]);
        }
        pos = field.end;
    }
    if always_end_line || has_empty_line {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bare LF to CRLF, NUL to 0x80.
pub(crate) fn as_served(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 64);
    let mut prev = 0u8;
    for &c in bytes {
        match c {
            b'\n' if prev != b'\r' => out.extend_from_slice(b"\r\n"),
            0 => out.push(0x80),
            c => out.push(c),
        }
        prev = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = "Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@example.com\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\r\n\
--c\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n\
--c\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n--c--\r\n\
--b--\r\n";

    fn get(raw: &str, part: &[u32], text: SectionText) -> String {
        let spec = SectionSpec {
            part: part.to_vec(),
            text,
        };
        String::from_utf8(section(raw.as_bytes(), &spec)).unwrap()
    }

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn whole_message_header_and_text() {
        assert_eq!(get(NESTED, &[], SectionText::Full), NESTED);
        assert_eq!(
            get(NESTED, &[], SectionText::Header),
            "Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
        assert!(get(NESTED, &[], SectionText::Text).starts_with("--b\r\nContent-Type: text/plain"));
    }

    #[test]
    fn header_fields_and_fields_not() {
        assert_eq!(
            get(
                NESTED,
                &[],
                SectionText::HeaderFields(fields(&["SUBJECT", "From"]))
            ),
            "Subject: outer\r\n\r\n"
        );
        assert_eq!(
            get(
                NESTED,
                &[],
                SectionText::HeaderFieldsNot(fields(&["subject"]))
            ),
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
    }

    #[test]
    fn numbered_parts_and_their_mime_headers() {
        assert_eq!(get(NESTED, &[1], SectionText::Full), "first");
        assert_eq!(
            get(NESTED, &[1], SectionText::Mime),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            get(NESTED, &[2], SectionText::Mime),
            "Content-Type: message/rfc822\r\n\r\n"
        );
        assert!(get(NESTED, &[2], SectionText::Full).starts_with("Subject: inner\r\n"));
    }

    #[test]
    fn numbers_continue_inside_an_attached_message() {
        assert_eq!(get(NESTED, &[2, 1], SectionText::Full), "inner plain");
        assert_eq!(get(NESTED, &[2, 2], SectionText::Full), "<p>inner</p>");
        assert_eq!(
            get(NESTED, &[2], SectionText::Header),
            "Subject: inner\r\nFrom: x@example.com\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\r\n"
        );
        assert_eq!(
            get(NESTED, &[2], SectionText::HeaderFields(fields(&["from"]))),
            "From: x@example.com\r\n\r\n"
        );
        assert!(get(NESTED, &[2], SectionText::Text).starts_with("--c\r\n"));
        assert_eq!(
            get(NESTED, &[2, 1], SectionText::Mime),
            "Content-Type: text/plain\r\n\r\n"
        );
    }

    #[test]
    fn parts_that_do_not_exist_are_empty() {
        assert_eq!(get(NESTED, &[3], SectionText::Full), "");
        assert_eq!(get(NESTED, &[1, 2], SectionText::Full), "");
        assert_eq!(get(NESTED, &[1], SectionText::Header), "");
        assert_eq!(get(NESTED, &[2, 9], SectionText::Full), "");
        assert_eq!(get(NESTED, &[], SectionText::Mime), "");
    }

    #[test]
    fn a_leaf_part_is_also_its_own_part_one_as_in_dovecot() {
        assert_eq!(get(NESTED, &[1, 1], SectionText::Full), "first");
        assert_eq!(
            get(NESTED, &[1, 1], SectionText::Mime),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(get(NESTED, &[1, 1, 1], SectionText::Full), "");
    }

    #[test]
    fn a_single_part_message_is_its_own_part_one() {
        let raw = "Subject: x\r\n\r\nhello\r\n";
        assert_eq!(get(raw, &[1], SectionText::Full), "hello\r\n");
        assert_eq!(get(raw, &[1], SectionText::Mime), "Subject: x\r\n\r\n");
        assert_eq!(get(raw, &[2], SectionText::Full), "");
        assert_eq!(get(raw, &[1, 1], SectionText::Full), "");
    }

    #[test]
    fn served_bytes_have_crlf_and_no_nul() {
        let raw = "Subject: x\n\na\0b\n";
        assert_eq!(
            section(
                raw.as_bytes(),
                &SectionSpec {
                    part: vec![],
                    text: SectionText::Full
                }
            ),
            b"Subject: x\r\n\r\na\x80b\r\n"
        );
    }

    #[test]
    fn sections_agree_with_section_for_every_spec() {
        let texts = [
            SectionText::Full,
            SectionText::Header,
            SectionText::Text,
            SectionText::Mime,
            SectionText::HeaderFields(fields(&["subject", "from"])),
            SectionText::HeaderFieldsNot(fields(&["subject"])),
        ];
        let with_nul = NESTED.replace("first", "fi\0st");
        for raw in [NESTED, with_nul.as_str()] {
            let mut sections = Sections::new(raw.as_bytes());
            for part in [&[][..], &[1], &[2], &[2, 1], &[2, 2], &[3], &[2, 1, 1]] {
                for text in &texts {
                    let spec = SectionSpec {
                        part: part.to_vec(),
                        text: text.clone(),
                    };
                    let whole = section(raw.as_bytes(), &spec);
                    assert_eq!(sections.get(&spec, None).as_ref(), &whole[..], "{spec:?}");
                    let cut = &whole[whole.len().min(3)..whole.len().min(10)];
                    assert_eq!(sections.get(&spec, Some((3, 7))).as_ref(), cut, "{spec:?}");
                }
            }
        }
    }
}
