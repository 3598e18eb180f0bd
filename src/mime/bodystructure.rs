//! BODY and BODYSTRUCTURE (RFC 3501 7.4.2), byte for byte as Dovecot 2.3
//! writes them from the part tree (`tree`). Beyond what the tree holds:
//! - a multipart whose boundary never appears gets one empty text/plain part;
//! - a message that is plain 7-bit US-ASCII text gets Dovecot's canonical
//!   lower-case structure, as its cache answers once the message is indexed.

use super::content::Content;
use super::imap_string::ImapOut;
use super::tree::{MessageTree, Part, TEXT};

/// BODYSTRUCTURE (`extended`, with extension data) or BODY, IMAP syntax,
/// e.g. `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)`.
pub fn body_structure(raw: &[u8], extended: bool) -> String {
    let tree = MessageTree::parse(raw, true);
    let mut out = ImapOut::default();
    out.push(b"(");
    if tree.is_plain_7bit() {
        let root = &tree.parts[0];
        out.push(br#""text" "plain" ("charset" "us-ascii") NIL NIL "7bit" "#);
        out.number(root.body.virtual_size);
        out.push(b" ");
        out.number(root.body.lines);
        if extended {
            out.push(b" NIL NIL NIL NIL");
        }
    } else {
        tree.write_part(0, &mut out, extended);
    }
    out.push(b")");
    out.into_string()
}

impl MessageTree<'_> {
    /// Dovecot's "plain 7-bit ASCII" test on the whole message.
    fn is_plain_7bit(&self) -> bool {
        let root = &self.parts[0];
        let c = &root.content;
        root.flags & TEXT != 0
            && root.children.is_empty()
            && c.subtype
                .as_ref()
                .is_none_or(|s| s.eq_ignore_ascii_case(b"plain"))
            && match &c.params[..] {
                [] => true,
                [(name, value)] => {
                    name.eq_ignore_ascii_case(b"charset") && value.eq_ignore_ascii_case(b"us-ascii")
                }
                _ => false,
            }
            && c.id.is_none()
            && c.description.is_none()
            && c.transfer_encoding
                .as_ref()
                .is_none_or(|e| e.eq_ignore_ascii_case(b"7bit"))
            && c.md5.is_none()
            && c.disposition.is_none()
            && c.language.is_none()
            && c.location.is_none()
    }

    fn write_part(&self, index: usize, out: &mut ImapOut, extended: bool) {
        let part = &self.parts[index];
        if part.is_multipart() {
            self.write_multipart(part, out, extended);
        } else {
            self.write_single(part, out, extended);
        }
    }

    fn write_multipart(&self, part: &Part, out: &mut ImapOut, extended: bool) {
        let c = &part.content;
        if part.children.is_empty() {
            // A multipart without parts is not allowed: show one empty part.
            out.push(br#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0"#);
            out.push(if extended { b" NIL NIL NIL NIL)" } else { b")" });
        }
        for &child in &part.children {
            out.push(b"(");
            self.write_part(child, out, extended);
            out.push(b")");
        }
        out.push(b" ");
        out.string(c.subtype.as_deref().unwrap_or_default());
        if extended {
            out.push(b" ");
            write_params(out, &c.params, false);
            write_common_extensions(out, c);
        }
    }

    fn write_single(&self, part: &Part, out: &mut ImapOut, extended: bool) {
        let c = &part.content;
        let text = if part.is_message() {
            out.push(br#""message" "rfc822""#);
            false
        } else if let Some(media_type) = &c.media_type {
            out.string(media_type);
            out.push(b" ");
            out.string(c.subtype.as_deref().unwrap_or_default());
            media_type.eq_ignore_ascii_case(b"text")
        } else {
            out.push(br#""text" "plain""#);
            true
        };
        out.push(b" ");
        write_params(out, &c.params, text);
        out.push(b" ");
        out.nstring_nolf(c.id.as_deref());
        out.push(b" ");
        out.nstring_nolf(c.description.as_deref());
        out.push(b" ");
        match &c.transfer_encoding {
            Some(encoding) => out.string(encoding),
            None => out.push(br#""7bit""#),
        }
        out.push(b" ");
        out.number(part.body.virtual_size);
        if text {
            out.push(b" ");
            out.number(part.body.lines);
        } else if part.is_message() {
            // The parser always gives a message/rfc822 part its message.
            if let Some(&child) = part.children.first() {
                out.push(b" (");
                match &self.parts[child].envelope {
                    Some(envelope) => envelope.write(out),
                    None => out.push(b"NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL"),
                }
                out.push(b") (");
                self.write_part(child, out, extended);
                out.push(b") ");
                out.number(part.body.lines);
            }
        }
        if extended {
            out.push(b" ");
            out.nstring_nolf(c.md5.as_deref());
            write_common_extensions(out, c);
        }
    }
}

fn write_params(out: &mut ImapOut, params: &[(Vec<u8>, Vec<u8>)], default_charset: bool) {
    if params.is_empty() && !default_charset {
        out.push(b"NIL");
        return;
    }
    out.push(b"(");
    let mut seen_charset = false;
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b" ");
        }
        seen_charset |= name.eq_ignore_ascii_case(b"charset");
        out.string(name);
        out.push(b" ");
        out.string(value);
    }
    if default_charset && !seen_charset {
        if !params.is_empty() {
            out.push(b" ");
        }
        out.push(br#""charset" "us-ascii""#);
    }
    out.push(b")");
}

/// Disposition, language and location.
fn write_common_extensions(out: &mut ImapOut, c: &Content) {
    out.push(b" ");
    match &c.disposition {
        Some(disposition) => {
            out.push(b"(");
            out.string(disposition);
            out.push(b" ");
            write_params(out, &c.disposition_params, false);
            out.push(b")");
        }
        None => out.push(b"NIL"),
    }
    out.push(b" ");
    match &c.language {
        Some(languages) => {
            out.push(b"(");
            for (i, language) in languages.iter().enumerate() {
                if i > 0 {
                    out.push(b" ");
                }
                out.string(language);
            }
            out.push(b")");
        }
        None => out.push(b"NIL"),
    }
    out.push(b" ");
    out.nstring_nolf(c.location.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn a_message_without_content_type_is_us_ascii_text() {
        let raw = crlf("From: a@example.com\nSubject: old\n\nline one\nline two\n");
        assert_eq!(
            body_structure(&raw, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            body_structure(&raw, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2)"
        );
    }

    #[test]
    fn content_headers_without_mime_are_ignored() {
        let raw = crlf("Content-Transfer-Encoding: base64\nContent-ID: <x>\n\naGk=\n");
        assert_eq!(
            body_structure(&raw, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)"
        );
    }

    #[test]
    fn line_counts_and_sizes_leave_the_boundary_line_break_out() {
        let raw = crlf(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n\
one\ntwo\n\n--b\nContent-Type: application/pdf; name=x.pdf\nContent-Transfer-Encoding: base64\n\n\
JVBE\n--b--\n",
        );
        assert_eq!(
            body_structure(&raw, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 2 NIL NIL NIL NIL)\
(\"application\" \"pdf\" (\"name\" \"x.pdf\") NIL NIL \"base64\" 4 NIL NIL NIL NIL) \
\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"
        );
    }

    #[test]
    fn bare_lf_counts_as_crlf() {
        let raw = b"Content-Type: text/plain; charset=utf-8\n\na\nb\n";
        assert_eq!(
            body_structure(raw, false),
            "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 6 2)"
        );
    }

    #[test]
    fn an_encapsulated_message_has_envelope_structure_and_lines() {
        let raw = crlf(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n\
Subject: inner\nFrom: x@example.com\n\nhello\n--b--\n",
        );
        assert_eq!(
            body_structure(&raw, false),
            "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 44 (NIL \"inner\" \
((NIL NIL \"x\" \"example.com\")) ((NIL NIL \"x\" \"example.com\")) \
((NIL NIL \"x\" \"example.com\")) NIL NIL NIL NIL NIL) \
(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0) 3) \"mixed\")"
        );
    }

    #[test]
    fn a_multipart_without_its_boundary_shows_one_empty_part() {
        let raw = crlf("Content-Type: multipart/mixed; boundary=zz\n\nno parts here\n");
        assert_eq!(
            body_structure(&raw, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \
\"mixed\" (\"boundary\" \"zz\") NIL NIL NIL)"
        );
    }

    #[test]
    fn plain_7bit_text_gets_the_canonical_lower_case_form() {
        let raw = crlf("Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\nhi\n");
        assert_eq!(
            body_structure(&raw, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL)"
        );
        let raw = crlf("Content-Type: TEXT/PLAIN; CHARSET=UTF-8\n\nhi\n");
        assert_eq!(
            body_structure(&raw, false),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"7bit\" 4 1)"
        );
    }
}
