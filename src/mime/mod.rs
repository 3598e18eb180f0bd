//! Message parsing: the deployment's columns (subject, sender,
//! recipients, text and HTML bodies, date) extracted from an RFC 5322 message,
//! so that mail we store looks like mail the external receiver stores.
//!
//! And what FETCH and SEARCH need from a message: ENVELOPE, BODY and
//! BODYSTRUCTURE identical to Dovecot's (checked against recorded Dovecot
//! answers in `tests/mime_vs_dovecot.rs`) but for one rule of ours, that
//! header text with 8-bit bytes goes out as RFC 2047 encoded words rather
//! than raw (see `imap_string`), BODY[section] bytes, the message
//! bytes for a stored row, and decoded text for SEARCH.
//!
//! Layout: `header` (header fields), `rfc5322` (the lexer), `address` and
//! `content` (address lists and Content-* fields read with it), `tree` (the
//! MIME part tree), `imap_string` (IMAP strings, 7-bit), and the answers
//! built from them: `envelope`, `bodystructure`, `section`, `text`.

mod address;
pub mod bodystructure;
mod content;
pub mod envelope;
mod header;
pub(crate) mod imap_string;
mod rfc5322;
pub mod section;
pub mod synthesize;
pub mod text;
mod tree;

pub use bodystructure::body_structure;
pub use envelope::envelope;
pub use section::{SectionSpec, SectionText, Sections, section};
pub use synthesize::{StoredColumns, message_bytes, served_bytes};
pub use text::{body_text, header_addresses, header_values};

use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser};

/// The deployment's columns of a message, read from its bytes. Bytes that
/// do not parse as a message give empty columns: such mail is still stored,
/// since losing mail is worse.
///
/// mail-parser reads only the header here: its body parser recurses into
/// attached messages without a depth limit, so the bodies come from our own
/// bounded part tree (`text::main_bodies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub to_addrs: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
    /// The `Date` header, when it parses.
    pub date: Option<DateTime<Utc>>,
}

pub fn columns(raw: &[u8]) -> Columns {
    let parsed = MessageParser::default().parse_headers(raw);
    let (subject, from_addr, to_addrs, date) = match &parsed {
        Some(message) => (
            message.subject().map(str::to_owned),
            message.from().and_then(first_address),
            message
                .to()
                .map(address_list)
                .filter(|list| !list.is_empty()),
            message
                .date()
                .and_then(|date| DateTime::from_timestamp(date.to_timestamp(), 0)),
        ),
        None => (None, None, None, None),
    };
    let (body, html) = text::main_bodies(raw);
    Columns {
        subject,
        from_addr,
        to_addrs,
        body,
        html,
        date,
    }
}

/// `Name <addr>` when there is a display name, else the bare address.
fn first_address(address: &Address<'_>) -> Option<String> {
    let first = address.first()?;
    let email = first.address.as_deref()?;
    Some(match first.name.as_deref() {
        Some(name) if !name.trim().is_empty() => format!("{} <{email}>", name.trim()),
        _ => email.to_owned(),
    })
}

/// Comma-separated bare addresses, as the deployment stores `to_addrs`.
fn address_list(address: &Address<'_>) -> String {
    address
        .iter()
        .filter_map(|a| a.address.as_deref())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployment_columns_come_from_the_headers() {
        let raw = b"From: Alice <alice@example.org>\r\nTo: a@x.example, b@x.example\r\n\
Subject: =?UTF-8?B?SMOpbGxv?=\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHi there\r\n";
        let message = columns(raw);
        assert_eq!(message.subject.as_deref(), Some("Héllo"));
        assert_eq!(
            message.from_addr.as_deref(),
            Some("Alice <alice@example.org>")
        );
        assert_eq!(message.to_addrs.as_deref(), Some("a@x.example,b@x.example"));
        assert_eq!(message.body.as_deref().map(str::trim), Some("Hi there"));
        assert_eq!(
            message.date.map(|d| d.to_rfc3339()).as_deref(),
            Some("2026-11-24T10:00:00+00:00")
        );
    }

    #[test]
    fn garbage_has_no_header_columns() {
        let columns = columns(&[0xff, 0x00, 0x01]);
        assert_eq!(columns.subject, None);
        assert_eq!(columns.from_addr, None);
        assert_eq!(columns.to_addrs, None);
        assert_eq!(columns.date, None);
    }
}
