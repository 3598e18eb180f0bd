//! ENVELOPE (RFC 3501 7.4.2) byte for byte as Dovecot 2.3 writes it.
//!
//! Dovecot is the reference because clients have been tested against it for
//! twenty years. Its rules, kept here on purpose:
//! - strings are the raw header values: folded lines joined, RFC 2047 encoded
//!   words left as they are; a NUL byte becomes U+FFFD;
//! - Subject and display names are cleaned "for humans" (tabs and runs of
//!   spaces become one space, surrounding space trimmed) and then sent as a
//!   literal whenever anything had to change;
//! - Sender and Reply-To default to From; a header given twice keeps the last
//!   value for Date/Subject/Message-ID/In-Reply-To and the union of the
//!   addresses for From/Sender/Reply-To/To/Cc/Bcc;
//! - addresses that do not parse get the placeholders `MISSING_MAILBOX`,
//!   `MISSING_DOMAIN` and `SYNTAX_ERROR`;
//!
//! One deliberate difference: Dovecot sends 8-bit header bytes raw (in a
//! literal), but a session that has not enabled UTF8=ACCEPT (we offer no
//! session that) must get 7-bit strings (ARCHITECTURE: answers clients rely on). So a value with 8-bit
//! bytes is made valid UTF-8 (U+FFFD for what is not) and goes out as RFC 2047
//! encoded words in a quoted string; see `ImapOut::string`.

use super::address::{Addr, parse_address_list, write_addresses};
use super::header::{HeaderLine, header_value_string, next_header_line};
use super::imap_string::ImapOut;

/// The ENVELOPE of a message, as IMAP response syntax:
/// `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
pub fn envelope(raw: &[u8]) -> String {
    let mut envelope = Envelope::default();
    let mut pos = 0;
    while let Some(line) = next_header_line(raw, pos) {
        match line {
            HeaderLine::Field(field) => {
                envelope.add_header(field.name, &field.value);
                pos = field.end;
            }
            HeaderLine::End { .. } => break,
        }
    }
    let mut out = ImapOut::default();
    out.push(b"(");
    envelope.write(&mut out);
    out.push(b")");
    out.into_string()
}

/// The envelope fields of one message (the root, or a message/rfc822 part).
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    date: Option<Vec<u8>>,
    subject: Option<Vec<u8>>,
    in_reply_to: Option<Vec<u8>>,
    message_id: Option<Vec<u8>>,
    from: Vec<Addr>,
    sender: Vec<Addr>,
    reply_to: Vec<Addr>,
    to: Vec<Addr>,
    cc: Vec<Addr>,
    bcc: Vec<Addr>,
}

impl Envelope {
    /// Takes one complete header field (name, unfolded value).
    pub(crate) fn add_header(&mut self, name: &[u8], value: &[u8]) {
        let string = match () {
            _ if name.eq_ignore_ascii_case(b"Date") => &mut self.date,
            _ if name.eq_ignore_ascii_case(b"Subject") => &mut self.subject,
            _ if name.eq_ignore_ascii_case(b"In-Reply-To") => &mut self.in_reply_to,
            _ if name.eq_ignore_ascii_case(b"Message-ID") => &mut self.message_id,
            _ => {
                let list = match () {
                    _ if name.eq_ignore_ascii_case(b"From") => &mut self.from,
                    _ if name.eq_ignore_ascii_case(b"Sender") => &mut self.sender,
                    _ if name.eq_ignore_ascii_case(b"Reply-To") => &mut self.reply_to,
                    _ if name.eq_ignore_ascii_case(b"To") => &mut self.to,
                    _ if name.eq_ignore_ascii_case(b"Cc") => &mut self.cc,
                    _ if name.eq_ignore_ascii_case(b"Bcc") => &mut self.bcc,
                    _ => return,
                };
                list.extend(parse_address_list(value));
                return;
            }
        };
        *string = Some(header_value_string(value));
    }

    /// The ten fields, without the surrounding parentheses.
    pub(crate) fn write<'a>(&'a self, out: &mut ImapOut) {
        out.nstring_nolf(self.date.as_deref());
        out.push(b" ");
        match &self.subject {
            Some(subject) => out.string_for_humans(subject),
            None => out.push(b"NIL"),
        }
        let or_from = |list: &'a [Addr]| {
            if list.is_empty() {
                &self.from[..]
            } else {
                list
            }
        };
        for list in [
            &self.from[..],
            or_from(&self.sender),
            or_from(&self.reply_to),
            &self.to,
            &self.cc,
            &self.bcc,
        ] {
            out.push(b" ");
            write_addresses(out, list);
        }
        out.push(b" ");
        out.nstring_nolf(self.in_reply_to.as_deref());
        out.push(b" ");
        out.nstring_nolf(self.message_id.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_message_has_a_plain_envelope() {
        let raw = b"Date: Tue, 3 Mar 2026 09:15:00 +0000\r\nFrom: Alice <alice@example.org>\r\n\
To: bob@example.net\r\nSubject: Hi\r\nMessage-ID: <1@example.org>\r\n\r\nbody\r\n";
        assert_eq!(
            envelope(raw),
            "(\"Tue, 3 Mar 2026 09:15:00 +0000\" \"Hi\" ((\"Alice\" NIL \"alice\" \"example.org\")) \
((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) \
((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<1@example.org>\")"
        );
    }

    #[test]
    fn missing_headers_are_nil_and_an_empty_message_is_all_nil() {
        assert_eq!(envelope(b""), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        assert_eq!(
            envelope(b"\r\n"),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        assert_eq!(
            envelope(b"Subject: x\r\n\r\n"),
            "(NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn encoded_words_stay_encoded() {
        assert_eq!(
            envelope(b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"),
            "(NIL \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\" NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn a_folded_subject_is_cleaned_into_a_literal() {
        assert_eq!(
            envelope(b"Subject: one\r\n two\r\n\tthree\r\n\r\n"),
            "(NIL {13}\r\none two three NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn sender_and_reply_to_default_to_from_and_repeated_fields_accumulate() {
        let raw = b"From: a@x.example\r\nFrom: b@x.example\r\nSubject: one\r\nSubject: two\r\n\r\n";
        assert_eq!(
            envelope(raw),
            "(NIL \"two\" ((NIL NIL \"a\" \"x.example\")(NIL NIL \"b\" \"x.example\")) \
((NIL NIL \"a\" \"x.example\")(NIL NIL \"b\" \"x.example\")) \
((NIL NIL \"a\" \"x.example\")(NIL NIL \"b\" \"x.example\")) NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn nul_bytes_become_replacement_characters() {
        assert_eq!(
            envelope(b"Subject: a\0b\r\n\r\n"),
            "(NIL \"=?UTF-8?B?Ye+/vWI=?=\" NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }
}
