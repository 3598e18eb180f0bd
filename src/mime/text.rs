//! Decoded text for SEARCH: header values with RFC 2047 encoded words and
//! charsets decoded, and the text of the body. mail-parser does the decoding.

use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, Message, MessageParser, PartType, decoders::html::html_to_text};

use super::header::{HeaderLine, next_header_line};

/// The decoded values of every header field `name` (case-insensitive) of the
/// message, in order. Folding is undone and whitespace runs become one
/// space; address fields come back whole (display names and addresses).
/// Raw 8-bit bytes are read as UTF-8 (invalid sequences become U+FFFD).
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut pos = 0;
    while let Some(HeaderLine::Field(field)) = next_header_line(raw, pos) {
        pos = field.end;
        if !field.name.eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        let mut value = field.value.into_owned();
        value.push(b'\n');
        let decoded = match MessageStream::new(&value).parse_unstructured() {
            HeaderValue::Text(text) => text.into_owned(),
            _ => String::new(),
        };
        values.push(decoded);
    }
    values
}

/// The text of the body for SEARCH BODY: every text/* part (attachments too,
/// and parts of attached messages) decoded from its transfer encoding and
/// charset, one after the other, separated by a line break. HTML is reduced
/// to its text (tags and entities resolved), so that a search does not match
/// markup.
pub fn body_text(raw: &[u8]) -> String {
    let mut text = String::new();
    if let Some(message) = MessageParser::default().parse(raw) {
        append_text(&message, &mut text);
    }
    text
}

fn append_text(message: &Message<'_>, out: &mut String) {
    for part in &message.parts {
        let piece = match &part.body {
            PartType::Text(text) => text.to_string(),
            PartType::Html(html) => html_to_text(html),
            PartType::Message(inner) => {
                append_text(inner, out);
                continue;
            }
            PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Multipart(_) => continue,
        };
        if !out.is_empty() && !piece.is_empty() {
            out.push('\n');
        }
        out.push_str(&piece);
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
}
