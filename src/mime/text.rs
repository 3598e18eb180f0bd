//! Decoded text for SEARCH: header values with RFC 2047 encoded words and
//! charsets decoded, and the text of the body. mail-parser does the decoding.

use std::borrow::Cow;

use mail_parser::HeaderValue;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::{html_to_text, text_to_html};
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;

use super::address::parse_address_list;
use super::header::{HeaderField, HeaderLine, next_header_line};
use super::tree::{MessageTree, Part, TEXT};

/// The decoded values of every header field `name` (case-insensitive) of the
/// message, in order. Folding is undone and whitespace runs become one
/// space; address fields come back whole (display names and addresses).
/// Raw 8-bit bytes are read as UTF-8 (invalid sequences become U+FFFD).
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    fields_named(raw, name)
        .map(|field| decoded_text(&field.value))
        .collect()
}

/// The addresses of every address-list field `name` (From, To, Cc, Bcc) as
/// ENVELOPE reads them, each as `local@domain` and its display name,
/// decoded. RFC 5322 allows comments and folding whitespace inside an
/// address (CFWS): `<user (x)@ (y) example.org>` is `user@example.org`,
/// which the field's text does not contain.
pub fn header_addresses(raw: &[u8], name: &str) -> Vec<String> {
    let mut addresses = Vec::new();
    for field in fields_named(raw, name) {
        for address in parse_address_list(&field.value) {
            if let Some(spec) = address.addr_spec() {
                addresses.push(String::from_utf8_lossy(&spec).into_owned());
                addresses.extend(address.display_name().map(decoded_text));
            }
        }
    }
    addresses
}

/// The header fields called `name` (case-insensitive), in order.
fn fields_named<'a>(raw: &'a [u8], name: &'a str) -> impl Iterator<Item = HeaderField<'a>> {
    let mut pos = 0;
    std::iter::from_fn(move || match next_header_line(raw, pos)? {
        HeaderLine::Field(field) => {
            pos = field.end;
            Some(field)
        }
        HeaderLine::End { .. } => None,
    })
    .filter(move |field| field.name.eq_ignore_ascii_case(name.as_bytes()))
}

/// A header value with RFC 2047 encoded words and charsets decoded.
fn decoded_text(value: &[u8]) -> String {
    let mut value = value.to_vec();
    value.push(b'\n');
    match MessageStream::new(&value).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

/// The text of the body for SEARCH BODY: every text/* part (attachments too,
/// and parts of attached messages) decoded from its transfer encoding and
/// charset, one after the other, separated by a line break. HTML is reduced
/// to its text (tags and entities resolved), so that a search does not match
/// markup.
///
/// The parts come from our own part tree, which is built without recursion
/// and stops nesting at its limit (`tree`), never from mail-parser's, which
/// recurses into attached messages without one: a stranger's message nested
/// 50,000 levels deep is one opaque part here, not a stack overflow.
pub fn body_text(raw: &[u8]) -> String {
    let tree = MessageTree::parse(raw, true);
    let mut text = String::new();
    for part in text_parts(&tree) {
        let piece = part.plain_text();
        if !text.is_empty() && !piece.is_empty() {
            text.push('\n');
        }
        text.push_str(&piece);
    }
    text
}

/// The deployment's `body` and `html` columns for a message we store: its
/// first text/plain and first text/html part that are neither attachments
/// nor inside an attached message. As mail-parser (which the external
/// receiver uses) fills them, a message with only one of the two gets the
/// other converted from it.
pub(crate) fn main_bodies(raw: &[u8]) -> (Option<String>, Option<String>) {
    let tree = MessageTree::parse(raw, true);
    let mut plain = None;
    let mut html = None;
    for part in text_parts(&tree).filter(|p| !p.attachment && !p.in_message) {
        match part.html {
            true if html.is_none() => html = Some(part.decoded()),
            false if plain.is_none() => plain = Some(part.decoded()),
            _ => {}
        }
        if plain.is_some() && html.is_some() {
            break;
        }
    }
    match (plain, html) {
        (Some(plain), Some(html)) => (Some(plain), Some(html)),
        (Some(plain), None) => {
            let html = text_to_html(&plain);
            (Some(plain), Some(html))
        }
        (None, Some(html)) => (Some(html_to_text(&html)), Some(html)),
        (None, None) => (None, None),
    }
}

/// A leaf part whose type is text/*, or text/plain by default.
struct TextPart<'a> {
    body: &'a [u8],
    transfer_encoding: Option<&'a [u8]>,
    charset: Option<&'a [u8]>,
    html: bool,
    attachment: bool,
    /// Inside a message/rfc822 part.
    in_message: bool,
}

/// The text leaves of the tree in message order. The tree lists parts in
/// the order their headers appear, so this is a flat walk.
fn text_parts<'a>(tree: &'a MessageTree<'a>) -> impl Iterator<Item = TextPart<'a>> + 'a {
    tree.parts.iter().filter_map(move |part| {
        if part.is_multipart() || part.is_message() || part.flags & TEXT == 0 {
            return None;
        }
        let start = part.body_offset();
        let body = tree.data.get(start..start + part.body.physical)?;
        let content = &part.content;
        let is = |value: &Option<Vec<u8>>, word: &str| {
            value
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case(word.as_bytes()))
        };
        let charset = content
            .params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(b"charset"))
            .map(|(_, value)| value.as_slice());
        Some(TextPart {
            body,
            transfer_encoding: content.transfer_encoding.as_deref(),
            charset,
            html: is(&content.subtype, "html"),
            attachment: is(&content.disposition, "attachment"),
            in_message: is_in_message(tree, part),
        })
    })
}

fn is_in_message(tree: &MessageTree<'_>, part: &Part) -> bool {
    let mut parent = part.parent;
    while let Some(index) = parent {
        let ancestor = &tree.parts[index];
        if ancestor.is_message() {
            return true;
        }
        parent = ancestor.parent;
    }
    false
}

impl TextPart<'_> {
    /// Undoes the transfer encoding and the charset. A body that does not
    /// decode is taken as it is: a search should still find its words.
    fn decoded(&self) -> String {
        let encoding = self.transfer_encoding.unwrap_or_default();
        let bytes: Cow<'_, [u8]> = if encoding.eq_ignore_ascii_case(b"base64") {
            let compact: Vec<u8> = self
                .body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64_decode(&compact).map_or(Cow::Borrowed(self.body), Cow::Owned)
        } else if encoding.eq_ignore_ascii_case(b"quoted-printable") {
            quoted_printable_decode(self.body).map_or(Cow::Borrowed(self.body), Cow::Owned)
        } else {
            Cow::Borrowed(self.body)
        };
        match self.charset.and_then(charset_decoder) {
            Some(decode) => decode(&bytes),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn plain_text(&self) -> String {
        let text = self.decoded();
        if self.html { html_to_text(&text) } else { text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_decoded() {
        let raw = "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus\r\n =?ISO-8859-1?Q?M=FCnchen?=\r\n\
From: =?utf-8?b?0JjQstCw0L0=?= <ivan@example.ru>\r\nTo: a@x.example\r\nTo: b@x.example\r\n\r\n\
Subject: not a header\r\n";
        assert_eq!(
            header_values(raw.as_bytes(), "subject"),
            ["Grüße aus München"]
        );
        assert_eq!(
            header_values(raw.as_bytes(), "FROM"),
            ["Иван <ivan@example.ru>"]
        );
        assert_eq!(
            header_values(raw.as_bytes(), "To"),
            ["a@x.example", "b@x.example"]
        );
        assert!(header_values(raw.as_bytes(), "Cc").is_empty());
    }

    #[test]
    fn header_addresses_drop_comments_inside_an_address() {
        let raw = "From: <user-from (comment)@ (comment) domain.org>\r\n\
To: =?utf-8?b?0JjQstCw0L0=?= <ivan (x) @example.ru>, Team: a@x.example;, broken\r\n\
Cc: jsmith@example.com (John Smith)\r\n\r\n";
        assert_eq!(
            header_addresses(raw.as_bytes(), "from"),
            ["user-from@domain.org"]
        );
        assert_eq!(
            header_addresses(raw.as_bytes(), "To"),
            ["ivan@example.ru", "Иван", "a@x.example"]
        );
        assert_eq!(
            header_addresses(raw.as_bytes(), "Cc"),
            ["jsmith@example.com", "John Smith"]
        );
        assert!(header_addresses(raw.as_bytes(), "Bcc").is_empty());
    }

    #[test]
    fn body_text_decodes_every_text_part() {
        let raw = "Content-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=C3=BC=C3=9Fe\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PHA+SGVsbG8gPGI+d29ybGQ8L2I+PC9wPg==\r\n\
--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b--\r\n";
        let text = body_text(raw.as_bytes());
        assert!(text.contains("Grüße"), "{text}");
        assert!(text.contains("Hello world"), "{text}");
        assert!(!text.contains("<b>"), "{text}");
    }

    #[test]
    fn a_message_without_mime_is_its_body() {
        assert_eq!(
            body_text(b"Subject: x\r\n\r\nplain words\r\n").trim(),
            "plain words"
        );
    }

    /// A stranger's message nested as deep as a 1.6 MB message allows.
    fn nested(levels: usize) -> Vec<u8> {
        let mut raw = b"Content-Type: message/rfc822\r\n\r\n".repeat(levels);
        raw.extend_from_slice(b"Subject: deep\r\n\r\nneedle\r\n");
        raw
    }

    #[test]
    fn deep_nesting_is_an_opaque_part_not_a_stack_overflow() {
        let raw = nested(200_000);
        // Past the nesting limit the rest is one opaque (non-text) part.
        assert!(!body_text(&raw).contains("needle"));
        assert_eq!(main_bodies(&raw), (None, None));
        assert_eq!(crate::mime::columns(&raw).subject, None);
        // Within the limit, attached messages are searched.
        assert!(body_text(&nested(10)).contains("needle"));
    }

    #[test]
    fn main_bodies_are_the_first_inline_text_and_html() {
        let raw = "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=FC=DFe\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n--b--\r\n\
--m\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnot the body\r\n\
--m\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--m--\r\n";
        let (plain, html) = main_bodies(raw.as_bytes());
        assert_eq!(plain.as_deref(), Some("Grüße"));
        assert_eq!(html.as_deref(), Some("<p>Hi</p>"));
        let text = body_text(raw.as_bytes());
        assert!(
            text.contains("not the body") && text.contains("inner body"),
            "{text}"
        );

        let html_only = "Content-Type: text/html\r\n\r\n<p>Only <b>html</b></p>\r\n";
        let (plain, html) = main_bodies(html_only.as_bytes());
        assert_eq!(plain.as_deref().map(str::trim), Some("Only html"));
        assert!(html.is_some_and(|h| h.contains("<b>html</b>")));
    }
}
