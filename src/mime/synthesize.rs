//! The RFC 5322 message a client sees for a stored row (ARCHITECTURE: storage): the raw
//! message when we have it, else `body` when it already is a whole message
//! from the row's sender,
//! else one built from the columns. Built messages depend only on the row, so
//! every FETCH returns the same bytes and `RFC822.SIZE` stays true.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

/// The columns of an `emails` row that make up a message.
#[derive(Debug, Clone)]
pub struct StoredColumns<'a> {
    pub id: &'a str,
    pub raw: Option<&'a [u8]>,
    pub body: Option<&'a str>,
    pub html: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub from_addr: Option<&'a str>,
    pub to_addrs: Option<&'a str>,
    pub timestamp: DateTime<Utc>,
}

/// The message bytes for a row, with CRLF line endings throughout (bare LFs
/// in stored messages become CRLF, as any IMAP server serves them).
pub fn message_bytes(columns: &StoredColumns<'_>) -> Vec<u8> {
    served_bytes(columns).into_owned()
}

/// The same bytes, borrowed from the row when it holds them as served (raw,
/// with CRLF throughout): a 5 MB message is not copied to be answered.
pub fn served_bytes<'a>(columns: &StoredColumns<'a>) -> Cow<'a, [u8]> {
    if let Some(raw) = columns.raw {
        return if has_bare_lf(raw) {
            Cow::Owned(crlf(raw))
        } else {
            Cow::Borrowed(raw)
        };
    }
    Cow::Owned(built_bytes(columns))
}

/// A LF without the CR before it, which CRLF-served bytes never have.
pub(crate) fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &c)| c == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// A message from `body` or the other columns, for rows without `raw`.
fn built_bytes(columns: &StoredColumns<'_>) -> Vec<u8> {
    if let Some(body) = columns.body
        && let Some(from) = whole_message_from(body.as_bytes())
        && same_senders(&from, columns.from_addr.unwrap_or_default().as_bytes())
    {
        return crlf(body.as_bytes());
    }
    synthesize(columns)
}

/// When `body` is a header block that names `Content-Type` or
/// `MIME-Version`, then an empty line (an external writer stored the whole
/// message there), its `From` field (empty when it has none).
fn whole_message_from(body: &[u8]) -> Option<Vec<u8>> {
    let mut mime = false;
    let mut from = Vec::new();
    let mut in_from = false;
    let mut first = true;
    for line in body.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return mime.then_some(from);
        }
        if matches!(line[0], b' ' | b'\t') {
            if first {
                return None;
            }
            if in_from {
                from.extend_from_slice(line);
            }
            continue;
        }
        let colon = line.iter().position(|&c| c == b':')?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&c| c.is_ascii_graphic()) {
            return None;
        }
        mime |= name.eq_ignore_ascii_case(b"Content-Type")
            || name.eq_ignore_ascii_case(b"MIME-Version");
        in_from = name.eq_ignore_ascii_case(b"From");
        if in_from {
            from.push(b' ');
            from.extend_from_slice(&line[colon + 1..]);
        }
        first = false;
    }
    None
}

/// Whether two address lists name the same mailboxes (display names and
/// comments aside). A stored `body` that claims another sender than the
/// row's `from_addr` is text that happens to look like a header, or a
/// forgery: the row's columns say who sent it, and the body is not served
/// as the message.
fn same_senders(header: &[u8], column: &[u8]) -> bool {
    fn mailboxes(value: &[u8]) -> Vec<Vec<u8>> {
        let mut list: Vec<Vec<u8>> = super::address::parse_address_list(value)
            .into_iter()
            .filter_map(|addr| {
                let mut spec = addr.mailbox?;
                spec.push(b'@');
                spec.extend_from_slice(&addr.domain.unwrap_or_default());
                Some(spec.to_ascii_lowercase())
            })
            .collect();
        list.sort();
        list.dedup();
        list
    }
    mailboxes(header) == mailboxes(column)
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    let extra = bytes.iter().filter(|&&c| c == b'\n').count();
    let mut out = Vec::with_capacity(bytes.len() + extra);
    let mut prev = 0u8;
    for &c in bytes {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

fn synthesize(columns: &StoredColumns<'_>) -> Vec<u8> {
    let token = id_token(columns.id);
    let mut out = Vec::new();
    header(
        &mut out,
        "Date",
        &columns
            .timestamp
            .format("%a, %-d %b %Y %H:%M:%S +0000")
            .to_string(),
    );
    if let Some(from) = columns.from_addr.map(one_line).filter(|s| !s.is_empty()) {
        header(&mut out, "From", &address_field(&from));
    }
    if let Some(to) = columns.to_addrs.map(one_line).filter(|s| !s.is_empty()) {
        let list: Vec<String> = to
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(address_field)
            .collect();
        header(&mut out, "To", &list.join(", "));
    }
    if let Some(subject) = columns.subject.map(one_line) {
        header(
            &mut out,
            "Subject",
            &encode_unstructured(&subject, "Subject".len()),
        );
    }
    header(
        &mut out,
        "Message-ID",
        &format!("<{token}@imap-server.invalid>"),
    );
    header(&mut out, "MIME-Version", "1.0");
    match (columns.body, columns.html) {
        (Some(text), Some(html)) => {
            // "=_" never appears in quoted-printable output, so a boundary
            // holding it cannot occur in the parts.
            let boundary = format!("=_imap-server_{token}");
            header(
                &mut out,
                "Content-Type",
                &format!("multipart/alternative; boundary=\"{boundary}\""),
            );
            out.extend_from_slice(b"\r\n");
            for (subtype, content) in [("plain", text), ("html", html)] {
                out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                text_part(&mut out, subtype, content, true);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        }
        (Some(text), None) => text_part(&mut out, "plain", text, false),
        (None, Some(html)) => text_part(&mut out, "html", html, false),
        (None, None) => text_part(&mut out, "plain", "", false),
    }
    // A message ends with a line break: fetchmail and getmail add one when
    // it does not, and their copies would then differ from BODY[].
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A text/* entity (header and body). 7bit when the text allows it, unless
/// `quote` asks for quoted-printable anyway.
fn text_part(out: &mut Vec<u8>, subtype: &str, content: &str, quote: bool) {
    let body = crlf(content.as_bytes());
    let seven_bit = !quote
        && body.iter().all(|&c| c.is_ascii() && c != 0)
        && body.split(|&c| c == b'\n').all(|line| line.len() <= 998)
        && !body.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n')
        && body.last() != Some(&b'\r');
    let charset = if content.is_ascii() {
        "us-ascii"
    } else {
        "utf-8"
    };
    header(
        out,
        "Content-Type",
        &format!("text/{subtype}; charset={charset}"),
    );
    if seven_bit {
        header(out, "Content-Transfer-Encoding", "7bit");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
    } else {
        header(out, "Content-Transfer-Encoding", "quoted-printable");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(quoted_printable(&body).as_bytes());
    }
}

/// RFC 2045 quoted-printable of CRLF text: lines of at most 76 characters,
/// CRLF kept as line breaks, trailing whitespace encoded.
fn quoted_printable(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(body.len() + body.len() / 8);
    let mut line_len = 0;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == b'\r' && body.get(i + 1) == Some(&b'\n') {
            out.push_str("\r\n");
            line_len = 0;
            i += 2;
            continue;
        }
        let at_line_end = matches!(body.get(i + 1), None | Some(b'\r'));
        let literal =
            (c == b' ' || c == b'\t') && !at_line_end || (33..=126).contains(&c) && c != b'=';
        let width = if literal { 1 } else { 3 };
        if line_len + width > 75 {
            out.push_str("=\r\n");
            line_len = 0;
        }
        if literal {
            out.push(char::from(c));
        } else {
            out.push('=');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        }
        line_len += width;
        i += 1;
    }
    out
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Column text as one header line: line breaks and other controls become spaces.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `Name <addr>` with a non-ASCII name encoded; a bare address as it is.
fn address_field(value: &str) -> String {
    match (value.rfind('<'), value.ends_with('>')) {
        (Some(lt), true) if lt > 0 => {
            let name = value[..lt].trim().trim_matches('"').trim();
            let addr = &value[lt..];
            if name.is_empty() {
                addr.to_owned()
            } else if name.is_ascii() {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\" {addr}")
            } else {
                format!("{} {addr}", encode_words(name))
            }
        }
        _ => value.to_owned(),
    }
}

/// An unstructured value: as it is when ASCII (folded at spaces when long),
/// else RFC 2047 encoded words.
fn encode_unstructured(value: &str, name_len: usize) -> String {
    if !value.is_ascii() {
        return encode_words(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut line_len = name_len + 2;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            if line_len + 1 + word.len() > 78 && line_len > 1 {
                out.push_str("\r\n");
                line_len = 0;
            }
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

/// UTF-8 "B" encoded words of at most 75 characters, one per folded line.
fn encode_words(value: &str) -> String {
    use base64::Engine as _;
    // 45 bytes of UTF-8 make 60 base64 characters; with "=?utf-8?B?" and
    // "?=" that is 72.
    const MAX_CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut chunk_start = 0;
    let mut chunk_end = 0;
    for (i, c) in value.char_indices() {
        let end = i + c.len_utf8();
        if end - chunk_start > MAX_CHUNK {
            words.push(&value[chunk_start..chunk_end]);
            chunk_start = chunk_end;
        }
        chunk_end = end;
    }
    words.push(&value[chunk_start..chunk_end]);
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// The row id as a token safe in a Message-ID and a boundary.
fn id_token(id: &str) -> String {
    let token: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    if token.is_empty() {
        "message".to_owned()
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::{body_structure, envelope};

    fn row<'a>() -> StoredColumns<'a> {
        StoredColumns {
            id: "6f1c2d3e-0000-4000-8000-000000000001",
            raw: None,
            body: None,
            html: None,
            subject: Some("Hello"),
            from_addr: Some("Alice <alice@example.org>"),
            to_addrs: Some("bob@example.net,carol@example.net"),
            timestamp: DateTime::from_timestamp(1_772_529_300, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn raw_wins_and_gets_crlf() {
        let columns = StoredColumns {
            raw: Some(b"Subject: x\n\nhi\n"),
            body: Some("ignored"),
            ..row()
        };
        assert_eq!(message_bytes(&columns), b"Subject: x\r\n\r\nhi\r\n");
    }

    #[test]
    fn a_body_that_is_a_whole_message_from_the_rows_sender_is_used_as_is() {
        let body = "From: \"A.\" <Alice@Example.org> (work)\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain\r\n\r\nhi\r\n";
        let columns = StoredColumns {
            body: Some(body),
            ..row()
        };
        assert_eq!(message_bytes(&columns), body.as_bytes());
        let text = "Dear: friend\r\n\r\nThis is just text.\r\n";
        let columns = StoredColumns {
            body: Some(text),
            ..row()
        };
        assert_ne!(message_bytes(&columns), text.as_bytes());
    }

    #[test]
    fn a_body_claiming_another_sender_is_not_served_as_the_message() {
        for forged in [
            "From: Security Team <security@bank.example>\r\nMIME-Version: 1.0\r\n\r\nReset now\r\n",
            // Folded, to slip past a one-line look.
            "MIME-Version: 1.0\r\nFrom: Security Team\r\n <security@bank.example>\r\n\r\nReset\r\n",
            // No From at all: the row's sender must not vanish either.
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
        ] {
            let columns = StoredColumns {
                body: Some(forged),
                ..row()
            };
            let bytes = String::from_utf8(message_bytes(&columns)).unwrap();
            assert!(
                bytes.contains("From: \"Alice\" <alice@example.org>\r\n"),
                "{bytes}"
            );
            assert!(!bytes.starts_with(forged), "{bytes}");
            assert!(bytes.ends_with("\r\n"), "{bytes:?}");
        }
    }

    #[test]
    fn a_text_row_becomes_a_plain_message() {
        let columns = StoredColumns {
            body: Some("Hi Bob\nsee you"),
            ..row()
        };
        let bytes = message_bytes(&columns);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "Date: Tue, 3 Mar 2026 09:15:00 +0000\r\nFrom: \"Alice\" <alice@example.org>\r\n\
To: bob@example.net, carol@example.net\r\nSubject: Hello\r\n\
Message-ID: <6f1c2d3e-0000-4000-8000-000000000001@imap-server.invalid>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\nHi Bob\r\nsee you\r\n"
        );
        assert_eq!(bytes, message_bytes(&columns), "the same bytes every time");
        assert_eq!(
            body_structure(&bytes, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 2)"
        );
    }

    #[test]
    fn text_and_html_become_multipart_alternative() {
        let columns = StoredColumns {
            body: Some("Grüße"),
            html: Some("<p>Grüße = hi</p>"),
            subject: Some("Grüße aus Köln"),
            ..row()
        };
        let bytes = message_bytes(&columns);
        let structure = body_structure(&bytes, false);
        assert!(structure.starts_with(
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\""
        ));
        assert!(structure.contains("(\"text\" \"html\" (\"charset\" \"utf-8\")"));
        assert!(structure.ends_with(" \"alternative\")"));
        assert!(envelope(&bytes).contains("\"=?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\""));
        assert!(bytes.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'));
    }

    #[test]
    fn header_injection_is_impossible() {
        let columns = StoredColumns {
            subject: Some("hi\r\nBcc: victim@example.com"),
            body: Some("x"),
            ..row()
        };
        let bytes = String::from_utf8(message_bytes(&columns)).unwrap();
        assert!(!bytes.contains("\r\nBcc:"));
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_encodes_what_it_must() {
        let encoded = quoted_printable(&crlf(
            format!("{}\ntrailing \n=", "é".repeat(60)).as_bytes(),
        ));
        assert!(encoded.split("\r\n").all(|line| line.len() <= 76));
        assert!(encoded.ends_with("trailing=20\r\n=3D"));
    }
}
