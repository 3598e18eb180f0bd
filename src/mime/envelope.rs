//! ENVELOPE (RFC 3501 7.4.2) byte for byte as Dovecot 2.3 writes it, and the
//! pieces it rests on: the RFC 5322 lexer (also used for Content-* parameters),
//! the address-list parser, and IMAP string quoting.
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
//! session that) must get 7-bit strings (DESIGN §10). So a value with 8-bit
//! bytes is made valid UTF-8 (U+FFFD for what is not) and goes out as RFC 2047
//! encoded words in a quoted string; see `ImapOut::string`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;

use super::bodystructure::{HeaderLine, next_header_line};

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

/// A header value kept as a string: NULs would cut a C string short, so
/// Dovecot replaces them with U+FFFD (`message_header_strdup`).
pub(crate) fn header_value_string(value: &[u8]) -> Vec<u8> {
    if !value.contains(&0) {
        return value.to_vec();
    }
    let mut out = Vec::with_capacity(value.len() + 8);
    for &byte in value {
        if byte == 0 {
            out.extend_from_slice(NUL_REPLACEMENT);
        } else {
            out.push(byte);
        }
    }
    out
}

fn write_addresses(out: &mut ImapOut, list: &[Addr]) {
    if list.is_empty() {
        out.push(b"NIL");
        return;
    }
    out.push(b"(");
    for addr in list {
        out.push(b"(");
        match &addr.name {
            Some(name) => out.string_for_humans(name),
            None => out.push(b"NIL"),
        }
        out.push(b" ");
        out.nstring(addr.route.as_deref());
        out.push(b" ");
        out.nstring(addr.mailbox.as_deref());
        out.push(b" ");
        out.nstring(addr.domain.as_deref());
        out.push(b")");
    }
    out.push(b")");
}

// ---------------------------------------------------------------------------
// IMAP strings

/// An IMAP response fragment being built. Every string written is 7-bit
/// (non-ASCII text goes out as encoded words), so the whole is ASCII.
#[derive(Debug, Default)]
pub(crate) struct ImapOut {
    buf: Vec<u8>,
}

/// Dovecot switches from a quoted string to a literal at the fifth `"` or `\`.
const QUOTED_MAX_ESCAPES: usize = 4;

/// Bytes of text in one encoded word: RFC 2047 allows 75 characters, of which
/// `=?UTF-8?B?` and `?=` take 12, leaving 63, so 60 of base64 (45 bytes).
const ENCODED_WORD_MAX_BYTES: usize = 45;

impl ImapOut {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn number(&mut self, n: usize) {
        self.buf.extend_from_slice(n.to_string().as_bytes());
    }

    pub(crate) fn into_string(self) -> String {
        // Every piece pushed is ASCII (see `string` and `string_for_humans`).
        String::from_utf8(self.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// NIL, a quoted string or a literal (Dovecot's `imap_append_nstring`).
    pub(crate) fn nstring(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => self.string(value),
            None => self.push(b"NIL"),
        }
    }

    /// A quoted string when it can be one, else a literal; encoded words
    /// when the value is not ASCII.
    pub(crate) fn string(&mut self, value: &[u8]) {
        let value = String::from_utf8_lossy(c_string(value));
        if !value.is_ascii() {
            self.encoded_words(&value);
            return;
        }
        let value = value.as_bytes();
        let mut escapes = 0;
        let literal = value.iter().any(|&c| match c {
            b'"' | b'\\' => {
                escapes += 1;
                escapes > QUOTED_MAX_ESCAPES
            }
            b'\r' | b'\n' => true,
            c => c >= 0x80,
        });
        if literal {
            self.literal(value);
            return;
        }
        self.buf.push(b'"');
        for &c in value {
            if c == b'"' || c == b'\\' {
                self.buf.push(b'\\');
            }
            self.buf.push(c);
        }
        self.buf.push(b'"');
    }

    /// Like `nstring`, with CR and LF removed (a space goes where a line
    /// break was not followed by whitespace).
    pub(crate) fn nstring_nolf(&mut self, value: Option<&[u8]>) {
        let Some(value) = value else {
            self.push(b"NIL");
            return;
        };
        if !value.iter().any(|&c| c == b'\r' || c == b'\n') {
            self.string(value);
            return;
        }
        let mut clean = Vec::with_capacity(value.len());
        for (i, &c) in value.iter().enumerate() {
            if c != b'\r' && c != b'\n' {
                clean.push(c);
            } else if !matches!(value.get(i + 1), None | Some(b' ' | b'\t' | b'\r' | b'\n')) {
                clean.push(b' ');
            }
        }
        self.string(&clean);
    }

    /// Dovecot's `imap_append_string_for_humans`: TABs become spaces, runs of
    /// spaces one space, CR/LF go, leading and trailing space is trimmed. If
    /// anything changed (or a `"`, `\` or 8-bit byte is present) the result is
    /// a literal, otherwise the plain quoted string. A result that is not
    /// ASCII goes out as encoded words instead.
    pub(crate) fn string_for_humans(&mut self, value: &[u8]) {
        let value = c_string(value);
        let value = String::from_utf8_lossy(value);
        let src = value.as_bytes();
        let mut remove_count = 0;
        let mut whitespace_prefix = true;
        let mut last_lwsp = true;
        let mut modify = false;
        for &c in src {
            match c {
                0 => {
                    last_lwsp = false;
                    modify = true;
                }
                b'\t' | b' ' => {
                    if c == b'\t' {
                        modify = true;
                    }
                    if last_lwsp {
                        modify = true;
                        remove_count += 1;
                    }
                    last_lwsp = true;
                }
                b'\r' | b'\n' => {
                    remove_count += 1;
                    modify = true;
                }
                b'"' | b'\\' => {
                    modify = true;
                    last_lwsp = false;
                }
                c => {
                    if c & 0x80 != 0 {
                        modify = true;
                    }
                    last_lwsp = false;
                }
            }
            if !last_lwsp {
                whitespace_prefix = false;
            }
        }
        if last_lwsp && !src.is_empty() && !whitespace_prefix {
            modify = true;
            remove_count += 1;
        }
        if !modify {
            self.buf.push(b'"');
            self.buf.extend_from_slice(src);
            self.buf.push(b'"');
            return;
        }
        if src.len() == remove_count {
            self.push(b"\"\"");
            return;
        }
        let mut clean = Vec::with_capacity(src.len());
        let mut last_lwsp = true;
        for &c in src {
            match c {
                // Dovecot writes 0x80 here, which is not UTF-8; NULs are
                // already U+FFFD by now, so this is only a safety net.
                0 => {
                    clean.extend_from_slice(NUL_REPLACEMENT);
                    last_lwsp = false;
                }
                b'\t' | b' ' => {
                    if !last_lwsp {
                        clean.push(b' ');
                    }
                    last_lwsp = true;
                }
                b'\r' | b'\n' => {}
                c => {
                    last_lwsp = false;
                    clean.push(c);
                }
            }
        }
        if last_lwsp && clean.last() == Some(&b' ') {
            clean.pop();
        }
        match std::str::from_utf8(&clean) {
            // `src` is valid UTF-8 and only ASCII bytes were dropped or replaced.
            Ok(text) if !text.is_ascii() => self.encoded_words(text),
            _ => self.literal(&clean),
        }
    }

    /// `text` as RFC 2047 encoded words (`=?UTF-8?B?...?=`) in a quoted
    /// string, so that no 8-bit byte reaches a client that has not enabled
    /// UTF8=ACCEPT (RFC 6855 section 3; DESIGN §10). The whole value is
    /// encoded, so decoding gives it back exactly: a decoder drops the spaces
    /// between adjacent encoded words (RFC 2047 section 6.2). Each word stays
    /// within RFC 2047's 75 characters and holds whole UTF-8 characters.
    fn encoded_words(&mut self, text: &str) {
        self.buf.push(b'"');
        let mut rest = text;
        while !rest.is_empty() {
            let mut take = rest.len().min(ENCODED_WORD_MAX_BYTES);
            while !rest.is_char_boundary(take) {
                take -= 1;
            }
            if rest.len() != text.len() {
                self.buf.push(b' ');
            }
            self.buf.extend_from_slice(b"=?UTF-8?B?");
            self.buf
                .extend_from_slice(BASE64_STANDARD.encode(&rest[..take]).as_bytes());
            self.buf.extend_from_slice(b"?=");
            rest = &rest[take..];
        }
        self.buf.push(b'"');
    }

    fn literal(&mut self, value: &[u8]) {
        self.buf.push(b'{');
        self.number(value.len());
        self.buf.extend_from_slice(b"}\r\n");
        self.buf.extend_from_slice(value);
    }
}

/// Dovecot keeps these values in C strings: a NUL ends them.
fn c_string(value: &[u8]) -> &[u8] {
    match value.iter().position(|&c| c == 0) {
        Some(end) => &value[..end],
        None => value,
    }
}

// ---------------------------------------------------------------------------
// RFC 5322 lexer (Dovecot's rfc822-parser.c)

/// U+FFFD, what Dovecot puts where a NUL byte was in a header.
pub(crate) const NUL_REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Result of one lexer step: failed, reached the end of the input, or
/// stopped before more input. Ordered so that `ret <= Ret::End` reads as in
/// Dovecot (`ret <= 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ret {
    Err,
    End,
    More,
}

/// `atext` classes: 1 = atext, 2 = alphanumeric (or 8-bit), 4 = atext that is
/// a MIME tspecial (`/`, `=`, `?`). 0 = not atext.
const ATEXT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match c as u8 {
            b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => 2,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'^' | b'_' | b'`'
            | b'{' | b'|' | b'}' | b'~' => 1,
            b'/' | b'=' | b'?' => 4,
            0x80..=0xff => 2,
            _ => 0,
        };
        c += 1;
    }
    table
};

fn is_atext(c: u8) -> bool {
    ATEXT[c as usize] != 0
}

fn is_token_char(c: u8) -> bool {
    ATEXT[c as usize] & 3 != 0
}

pub(crate) struct Lexer<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
    /// The text of the last comment skipped, when the caller wants it.
    last_comment: Option<Vec<u8>>,
    /// Replace NULs in quoted strings, comments and domain literals.
    replace_nul: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Lexer {
            data,
            pos: 0,
            last_comment: None,
            replace_nul: false,
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn more_or_end(&self) -> Ret {
        if self.at_end() { Ret::End } else { Ret::More }
    }

    fn append(&self, out: &mut Vec<u8>, start: usize, end: usize) {
        if start < end {
            out.extend_from_slice(&self.data[start..end]);
        }
    }

    fn skip_comment(&mut self) -> Ret {
        let mut level = 1;
        if let Some(comment) = &mut self.last_comment {
            comment.clear();
        }
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                0 => {
                    if self.replace_nul
                        && let Some(comment) = &mut self.last_comment
                    {
                        comment.extend_from_slice(&self.data[start..self.pos]);
                        comment.extend_from_slice(NUL_REPLACEMENT);
                        start = self.pos + 1;
                    }
                }
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        if let Some(comment) = &mut self.last_comment {
                            comment.extend_from_slice(&self.data[start..self.pos]);
                        }
                        self.pos += 1;
                        return self.more_or_end();
                    }
                }
                b'\n' => {
                    if let Some(comment) = &mut self.last_comment {
                        let mut end = self.pos;
                        if end > start && self.data[end - 1] == b'\r' {
                            end -= 1;
                        }
                        comment.extend_from_slice(&self.data[start..end]);
                        start = self.pos + 1;
                    }
                }
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return Ret::Err;
                    }
                    if matches!(self.data[self.pos], b'\r' | b'\n' | 0) {
                        // Keep the backslash; the line break is handled next.
                        self.pos -= 1;
                    } else {
                        if let Some(comment) = &mut self.last_comment {
                            comment.extend_from_slice(&self.data[start..self.pos - 1]);
                        }
                        start = self.pos;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Ret::Err
    }

    /// Skips whitespace, line breaks and comments.
    pub(crate) fn skip_lwsp(&mut self) -> Ret {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    if self.skip_comment() == Ret::Err {
                        return Ret::Err;
                    }
                }
                _ => break,
            }
        }
        self.more_or_end()
    }

    pub(crate) fn parse_atom(&mut self, out: &mut Vec<u8>) -> Ret {
        if !self.peek().is_some_and(is_atext) {
            return Ret::Err;
        }
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            if !is_atext(c) {
                self.append(out, start, self.pos);
                return self.skip_lwsp();
            }
            self.pos += 1;
        }
        self.append(out, start, self.pos);
        Ret::End
    }

    fn parse_dot_atom(&mut self, out: &mut Vec<u8>) -> Ret {
        if !self.peek().is_some_and(is_atext) {
            return Ret::Err;
        }
        let mut start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            if is_atext(c) {
                self.pos += 1;
                continue;
            }
            if start == self.pos {
                return Ret::Err;
            }
            self.append(out, start, self.pos);
            let ret = self.skip_lwsp();
            if ret <= Ret::End {
                return ret;
            }
            if self.peek() != Some(b'.') {
                return Ret::More;
            }
            self.pos += 1;
            out.push(b'.');
            if self.skip_lwsp() <= Ret::End {
                return Ret::Err;
            }
            start = self.pos;
        }
        if start == self.pos {
            return Ret::Err;
        }
        self.append(out, start, self.pos);
        Ret::End
    }

    /// A MIME token (RFC 2045), dots allowed.
    pub(crate) fn parse_mime_token(&mut self, out: &mut Vec<u8>) -> Ret {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !(is_token_char(c) || c == b'.') {
                self.append(out, start, self.pos);
                return self.skip_lwsp();
            }
            self.pos += 1;
        }
        self.append(out, start, self.pos);
        Ret::End
    }

    /// A quoted string, unescaped and unfolded. Must start at `"`.
    fn parse_quoted_string(&mut self, out: &mut Vec<u8>) -> Ret {
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                0 if self.replace_nul => {
                    self.append(out, start, self.pos);
                    out.extend_from_slice(NUL_REPLACEMENT);
                    start = self.pos + 1;
                }
                b'"' => {
                    self.append(out, start, self.pos);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\n' => {
                    let mut end = self.pos;
                    if end > start && self.data[end - 1] == b'\r' {
                        end -= 1;
                    }
                    self.append(out, start, end);
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return Ret::Err;
                    }
                    if matches!(self.data[self.pos], b'\r' | b'\n' | 0) {
                        self.pos -= 1;
                    } else {
                        self.append(out, start, self.pos - 1);
                        start = self.pos;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Ret::Err
    }

    fn parse_atom_or_dot(&mut self, out: &mut Vec<u8>) -> Ret {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !(is_atext(c) || c == b'.') {
                self.append(out, start, self.pos);
                return self.skip_lwsp();
            }
            self.pos += 1;
        }
        self.append(out, start, self.pos);
        Ret::End
    }

    /// Words (atoms with dots, quoted strings) joined by single spaces.
    fn parse_phrase(&mut self, out: &mut Vec<u8>) -> Ret {
        match self.peek() {
            None => return Ret::End,
            Some(b'.') => return Ret::Err,
            Some(_) => {}
        }
        loop {
            let ret = if self.peek() == Some(b'"') {
                self.parse_quoted_string(out)
            } else {
                self.parse_atom_or_dot(out)
            };
            if ret <= Ret::End {
                return ret;
            }
            match self.peek() {
                Some(c) if is_atext(c) || c == b'"' || c == b'.' => out.push(b' '),
                _ => break,
            }
        }
        self.skip_lwsp()
    }

    fn parse_domain_literal(&mut self, out: &mut Vec<u8>) -> Ret {
        let mut start = self.pos;
        self.pos += 1;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                0 if self.replace_nul => {
                    self.append(out, start, self.pos);
                    out.extend_from_slice(NUL_REPLACEMENT);
                    start = self.pos + 1;
                }
                b'[' => return Ret::Err,
                b']' => {
                    self.append(out, start, self.pos + 1);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\n' => {
                    let mut end = self.pos;
                    if end > start && self.data[end - 1] == b'\r' {
                        end -= 1;
                    }
                    self.append(out, start, end);
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return Ret::Err;
                    }
                    if matches!(self.data[self.pos], b'\r' | b'\n' | 0) {
                        self.append(out, start, self.pos);
                        start = self.pos;
                        self.pos -= 1;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Ret::Err
    }

    /// `@` then a dot-atom or a domain literal. Must start at `@`.
    fn parse_domain(&mut self, out: &mut Vec<u8>) -> Ret {
        self.pos += 1;
        if self.skip_lwsp() <= Ret::End {
            return Ret::Err;
        }
        if self.peek() == Some(b'[') {
            self.parse_domain_literal(out)
        } else {
            self.parse_dot_atom(out)
        }
    }

    /// `type/subtype` of a Content-Type value. On a syntax error `out` is
    /// left empty, except that a lone type running to the end of the value
    /// stays (Dovecot does the same).
    pub(crate) fn parse_content_type(&mut self, out: &mut Vec<u8>) -> Ret {
        let start_len = out.len();
        if self.skip_lwsp() <= Ret::End {
            return Ret::Err;
        }
        if self.parse_mime_token(out) <= Ret::End || out.len() == start_len {
            return Ret::Err;
        }
        if self.peek() != Some(b'/') {
            out.truncate(start_len);
            return Ret::Err;
        }
        self.pos += 1;
        if self.skip_lwsp() <= Ret::End {
            out.truncate(start_len);
            return Ret::Err;
        }
        out.push(b'/');
        let subtype_start = out.len();
        let ret = self.parse_mime_token(out);
        if ret == Ret::Err
            || out.len() == subtype_start
            || !matches!(self.peek(), None | Some(b';'))
        {
            out.truncate(start_len);
            return Ret::Err;
        }
        ret
    }

    /// One `; key=value` parameter. `More` when one was read.
    fn parse_content_param(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Ret {
        key.clear();
        value.clear();
        match self.peek() {
            None => return Ret::End,
            Some(b';') => self.pos += 1,
            Some(_) => return Ret::Err,
        }
        if self.skip_lwsp() <= Ret::End {
            return Ret::Err;
        }
        if self.parse_mime_token(key) <= Ret::End {
            return Ret::Err;
        }
        if self.peek() != Some(b'=') {
            return Ret::Err;
        }
        self.pos += 1;
        let mut ret = self.skip_lwsp();
        if ret <= Ret::End {
            // no value
        } else if self.peek() == Some(b'"') {
            ret = self.parse_quoted_string(value);
        } else if self.peek() == Some(b'=') {
            // Broken input seen in the wild: name==?utf-8?b?...?=
            while let Some(c) = self.peek() {
                if matches!(c, b';' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                value.push(c);
                self.pos += 1;
            }
        } else {
            ret = self.parse_mime_token(value);
        }
        if ret == Ret::Err { Ret::Err } else { Ret::More }
    }

    /// The `; key=value` parameters that follow, with RFC 2231 continuations
    /// merged the way Dovecot 2.3 merges them: `key*0*`, `key*1`, ... become
    /// one `key*` (charset and %-escapes left as they are) placed after the
    /// plain parameters, sorted by key; with a gap in the numbering each piece
    /// stays separate as `key*N` / `key*N*`.
    pub(crate) fn parse_parameters(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        struct Continuation {
            key: Vec<u8>,
            value: Vec<u8>,
            index: u32,
            extended: bool,
        }
        let saved_replace_nul = self.replace_nul;
        self.replace_nul = true;
        let mut result = Vec::new();
        let mut continuations: Vec<Continuation> = Vec::new();
        // Like Dovecot's, these survive from one parameter to the next: a
        // bare `key*` gets the index of the previous continuation.
        let mut index: u32 = 0;
        let mut extended;
        let (mut key, mut value) = (Vec::new(), Vec::new());
        loop {
            match self.parse_content_param(&mut key, &mut value) {
                Ret::End => break,
                Ret::Err => {
                    if self.at_end() {
                        break;
                    }
                    self.pos += 1;
                    continue;
                }
                Ret::More => {}
            }
            let value = c_string(&value).to_vec();
            let Some(star) = key.iter().position(|&c| c == b'*') else {
                result.push((key.clone(), value));
                continue;
            };
            let mut p = star;
            if p + 1 < key.len() {
                p += 1;
                index = 0;
                while let Some(digit) = key.get(p).filter(|c| c.is_ascii_digit()) {
                    index = index.wrapping_mul(10).wrapping_add(u32::from(digit - b'0'));
                    p += 1;
                }
            }
            if key.get(p) == Some(&b'*') {
                extended = true;
                p += 1;
            } else {
                extended = false;
            }
            if p == key.len() {
                continuations.push(Continuation {
                    key: key[..star].to_vec(),
                    value,
                    index,
                    extended,
                });
            } else {
                result.push((key.clone(), value));
            }
        }
        self.replace_nul = saved_replace_nul;
        if continuations.is_empty() {
            return result;
        }
        continuations.sort_by(|a, b| a.key.cmp(&b.key).then(a.index.cmp(&b.index)));
        let mut i = 0;
        while i < continuations.len() {
            let first = &continuations[i];
            let mut next = i;
            let mut in_sequence = true;
            let mut has_extended = false;
            let mut expected = 0u32;
            while next < continuations.len()
                && continuations[next].key.eq_ignore_ascii_case(&first.key)
            {
                let piece = &continuations[next];
                in_sequence &= piece.index == expected;
                has_extended |= piece.extended;
                expected = expected.wrapping_add(1);
                next += 1;
            }
            let group = &continuations[i..next];
            if !in_sequence {
                for piece in group {
                    let mut key = piece.key.clone();
                    key.push(b'*');
                    key.extend_from_slice(piece.index.to_string().as_bytes());
                    if piece.extended {
                        key.push(b'*');
                    }
                    result.push((key, piece.value.clone()));
                }
            } else {
                let mut merged = Vec::new();
                if !first.extended && has_extended {
                    merged.extend_from_slice(b"''");
                }
                for piece in group {
                    if !piece.extended && has_extended {
                        for &c in &piece.value {
                            if c == b'%' {
                                merged.extend_from_slice(b"%25");
                            } else {
                                merged.push(c);
                            }
                        }
                    } else {
                        merged.extend_from_slice(&piece.value);
                    }
                }
                let mut key = first.key.clone();
                if has_extended {
                    key.push(b'*');
                }
                result.push((key, merged));
            }
            i = next;
        }
        result
    }
}

// ---------------------------------------------------------------------------
// Address lists (Dovecot's message-address.c, with FILL_MISSING and
// NON_STRICT_DOTS as used for ENVELOPE)

/// One address as ENVELOPE shows it: `(name adl mailbox host)`. A group
/// starts with only `mailbox` (the group name) and ends with all four NIL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Addr {
    pub(crate) name: Option<Vec<u8>>,
    pub(crate) route: Option<Vec<u8>>,
    pub(crate) mailbox: Option<Vec<u8>>,
    pub(crate) domain: Option<Vec<u8>>,
    invalid: bool,
}

/// Parses an address-list header value. Never fails: what does not parse
/// becomes placeholder addresses, as in Dovecot.
pub(crate) fn parse_address_list(value: &[u8]) -> Vec<Addr> {
    let mut parser = AddressParser {
        lexer: Lexer {
            data: value,
            pos: 0,
            last_comment: Some(Vec::new()),
            replace_nul: true,
        },
        addrs: Vec::new(),
        cur: Addr::default(),
        text: Vec::new(),
    };
    if parser.lexer.skip_lwsp() > Ret::End {
        parser.parse_address_list();
    }
    parser.addrs
}

struct AddressParser<'a> {
    lexer: Lexer<'a>,
    addrs: Vec<Addr>,
    cur: Addr,
    text: Vec<u8>,
}

impl AddressParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.lexer.peek()
    }

    fn add_address(&mut self) {
        self.addrs.push(std::mem::take(&mut self.cur));
    }

    fn add_fixed_address(&mut self) {
        if self.cur.mailbox.is_none() {
            self.cur.mailbox = Some(b"MISSING_MAILBOX".to_vec());
            self.cur.invalid = true;
        }
        if self.cur.domain.as_ref().is_none_or(|d| d.is_empty()) {
            self.cur.domain = Some(b"MISSING_DOMAIN".to_vec());
            self.cur.invalid = true;
        }
        self.add_address();
    }

    /// A dot-atom that tolerates leading, trailing and doubled dots.
    fn parse_nonstrict_dot_atom(&mut self) -> Ret {
        let mut ret = Ret::Err;
        loop {
            while self.peek() == Some(b'.') {
                self.text.push(b'.');
                self.lexer.pos += 1;
                if self.lexer.at_end() {
                    return Ret::End;
                }
                ret = Ret::More;
            }
            if self.peek() == Some(b'@') {
                break;
            }
            ret = self.lexer.parse_atom(&mut self.text);
            if !(ret > Ret::End && self.peek() == Some(b'.')) {
                break;
            }
        }
        ret
    }

    fn parse_local_part(&mut self) -> Ret {
        self.text.clear();
        let ret = if self.peek() == Some(b'"') {
            self.lexer.parse_quoted_string(&mut self.text)
        } else {
            self.parse_nonstrict_dot_atom()
        };
        if ret == Ret::Err {
            return Ret::Err;
        }
        self.cur.mailbox = Some(self.text.clone());
        ret
    }

    fn parse_domain(&mut self) -> Ret {
        self.text.clear();
        let ret = self.lexer.parse_domain(&mut self.text);
        if ret == Ret::Err {
            return Ret::Err;
        }
        self.cur.domain = Some(self.text.clone());
        ret
    }

    fn parse_domain_list(&mut self) -> Ret {
        self.text.clear();
        loop {
            match self.peek() {
                None => return Ret::End,
                Some(b'@') => {}
                Some(_) => break,
            }
            if !self.text.is_empty() {
                self.text.push(b',');
            }
            self.text.push(b'@');
            let ret = self.lexer.parse_domain(&mut self.text);
            if ret <= Ret::End {
                return ret;
            }
            while self.lexer.skip_lwsp() > Ret::End && self.peek() == Some(b',') {
                self.lexer.pos += 1;
            }
        }
        self.cur.route = Some(self.text.clone());
        Ret::More
    }

    /// `<` [`@route:`] local-part [`@` domain] `>`. Must start at `<`.
    fn parse_angle_addr(&mut self) -> Ret {
        self.lexer.pos += 1;
        if self.lexer.skip_lwsp() <= Ret::End {
            return Ret::Err;
        }
        if self.peek() == Some(b'@') {
            if self.parse_domain_list() > Ret::End && self.peek() == Some(b':') {
                self.lexer.pos += 1;
            } else {
                self.cur.route = Some(b"INVALID_ROUTE".to_vec());
                if self.lexer.at_end() {
                    return Ret::Err;
                }
            }
            if self.lexer.skip_lwsp() <= Ret::End {
                return Ret::Err;
            }
        }
        if self.peek() != Some(b'>') {
            if self.parse_local_part() <= Ret::End {
                return Ret::Err;
            }
            if self.peek() == Some(b'@') && self.parse_domain() <= Ret::End {
                return Ret::Err;
            }
        }
        if self.peek() != Some(b'>') {
            return Ret::Err;
        }
        self.lexer.pos += 1;
        self.lexer.skip_lwsp()
    }

    fn parse_name_addr(&mut self) -> Ret {
        self.text.clear();
        if self.lexer.parse_phrase(&mut self.text) <= Ret::End || self.peek() != Some(b'<') {
            return Ret::Err;
        }
        self.cur.name = (!self.text.is_empty()).then(|| self.text.clone());
        if self.parse_angle_addr() == Ret::Err {
            self.cur.domain = Some(b"SYNTAX_ERROR".to_vec());
            self.cur.invalid = true;
        }
        self.lexer.more_or_end()
    }

    fn parse_addr_spec(&mut self) -> Ret {
        if let Some(comment) = &mut self.lexer.last_comment {
            comment.clear();
        }
        let quoted = self.peek() == Some(b'"');
        let mut ret = self.parse_local_part();
        if ret <= Ret::End {
            self.cur.invalid = true;
        }
        let mut domain_tried = false;
        if ret != Ret::End && self.peek() == Some(b'@') {
            domain_tried = true;
            let ret2 = self.parse_domain();
            if ret2 <= Ret::End {
                ret = ret2;
            }
        }
        let comment = self.lexer.last_comment.as_ref().filter(|c| !c.is_empty());
        if let Some(comment) = comment {
            self.cur.name = Some(comment.clone());
        } else if !domain_tried {
            // A lone word is a mailbox; more words after it were a name.
            self.text.push(b' ');
            let before = self.text.len();
            self.lexer.parse_phrase(&mut self.text);
            if self.text.len() != before {
                self.cur.mailbox = None;
                self.cur.name = Some(self.text.clone());
            } else if !quoted {
                self.cur.domain = Some(Vec::new());
            }
            self.cur.invalid = true;
            ret = Ret::Err;
        }
        ret
    }

    fn parse_mailbox(&mut self) -> Ret {
        let start = self.lexer.pos;
        let mut ret = self.parse_name_addr();
        if ret == Ret::Err {
            self.lexer.pos = start;
            ret = self.parse_addr_spec();
            if self.cur.invalid
                && self.cur.name.is_none()
                && self.cur.mailbox.is_some()
                && self.cur.domain.is_none()
            {
                self.cur.name = self.cur.mailbox.take();
            }
        }
        if ret == Ret::Err {
            self.cur.invalid = true;
        }
        self.add_fixed_address();
        ret
    }

    fn parse_group(&mut self) -> Ret {
        self.text.clear();
        if self.lexer.parse_phrase(&mut self.text) <= Ret::End || self.peek() != Some(b':') {
            return Ret::Err;
        }
        // From here on this is a group, whatever follows.
        self.lexer.pos += 1;
        let mut ret = self.lexer.skip_lwsp();
        if ret <= Ret::End {
            self.cur.invalid = true;
        }
        self.cur.mailbox = Some(self.text.clone());
        self.add_address();
        if ret > Ret::End && self.peek() != Some(b';') {
            loop {
                self.parse_mailbox();
                if self.peek() != Some(b',') {
                    break;
                }
                self.lexer.pos += 1;
                if self.lexer.skip_lwsp() <= Ret::End {
                    ret = Ret::Err;
                    break;
                }
            }
        }
        if ret >= Ret::End {
            if self.peek() != Some(b';') {
                ret = Ret::Err;
            } else {
                self.lexer.pos += 1;
                ret = self.lexer.skip_lwsp();
            }
        }
        if ret == Ret::Err {
            self.cur.invalid = true;
        }
        self.add_address();
        if ret == Ret::End { Ret::End } else { Ret::More }
    }

    fn parse_address(&mut self) -> Ret {
        let start = self.lexer.pos;
        let ret = self.parse_group();
        if ret != Ret::Err {
            return ret;
        }
        self.lexer.pos = start;
        self.parse_mailbox()
    }

    fn parse_address_list(&mut self) {
        loop {
            if self.parse_address() == Ret::End {
                break;
            }
            if self.peek() != Some(b',') {
                break;
            }
            self.lexer.pos += 1;
            let ret = self.lexer.skip_lwsp();
            if ret <= Ret::End {
                if ret == Ret::Err {
                    // The list ends in garbage.
                    self.add_fixed_address();
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(value: &str) -> String {
        let mut out = ImapOut::default();
        write_addresses(&mut out, &parse_address_list(value.as_bytes()));
        out.into_string()
    }

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
        assert_eq!(
            addresses("=?utf-8?b?0JjQstCw0L0=?= <ivan@example.ru>"),
            "((\"=?utf-8?b?0JjQstCw0L0=?=\" NIL \"ivan\" \"example.ru\"))"
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
    fn groups_have_start_and_end_markers() {
        assert_eq!(
            addresses("undisclosed-recipients:;"),
            "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"
        );
        assert_eq!(
            addresses("Team: a@x.example, \"B\" <b@x.example>;, c@y.example"),
            "((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"x.example\")(\"B\" NIL \"b\" \"x.example\")\
(NIL NIL NIL NIL)(NIL NIL \"c\" \"y.example\"))"
        );
    }

    #[test]
    fn quoted_display_names_lose_quotes_and_keep_commas() {
        assert_eq!(
            addresses(r#""Doe, John \"JD\"" <jd@example.com>"#),
            "(({14}\r\nDoe, John \"JD\" NIL \"jd\" \"example.com\"))"
        );
        assert_eq!(
            addresses("jsmith@example.com (John Smith)"),
            "((\"John Smith\" NIL \"jsmith\" \"example.com\"))"
        );
        assert_eq!(
            addresses("<@a.example,@b.example:r@c.example>"),
            "((NIL \"@a.example,@b.example\" \"r\" \"c.example\"))"
        );
    }

    #[test]
    fn broken_addresses_get_dovecot_placeholders() {
        assert_eq!(addresses("root"), "((NIL NIL \"root\" \"MISSING_DOMAIN\"))");
        assert_eq!(
            addresses("broken <a@b.example"),
            "((\"broken\" NIL \"a\" \"SYNTAX_ERROR\"))"
        );
        assert_eq!(
            addresses("\"Name Only\""),
            "((\"Name Only\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"
        );
        assert_eq!(addresses(""), "NIL");
        assert_eq!(addresses("  (just a comment) "), "NIL");
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
    fn strings_become_literals_for_line_breaks_and_many_quotes() {
        let mut out = ImapOut::default();
        out.string(b"a\r\nb");
        out.push(b" ");
        out.string(br#"a"b\c"#);
        out.push(b" ");
        out.string(br#"""""""#);
        assert_eq!(
            out.into_string(),
            "{4}\r\na\r\nb \"a\\\"b\\\\c\" {5}\r\n\"\"\"\"\""
        );
    }

    #[test]
    fn utf8_goes_out_as_an_encoded_word_in_a_quoted_string() {
        let mut out = ImapOut::default();
        out.string("café".as_bytes());
        assert_eq!(out.into_string(), "\"=?UTF-8?B?Y2Fmw6k=?=\"");
        // Quotes and line breaks inside are encoded too: no literal needed.
        let mut out = ImapOut::default();
        out.nstring_nolf(Some("\"é\"\r\n x".as_bytes()));
        assert_eq!(out.into_string(), "\"=?UTF-8?B?IsOpIiB4?=\"");
    }

    #[test]
    fn invalid_utf8_is_replaced_before_encoding() {
        let mut out = ImapOut::default();
        out.string(b"caf\xe9");
        assert_eq!(out.into_string(), "\"=?UTF-8?B?Y2Fm77+9?=\"");
    }

    #[test]
    fn long_values_split_into_encoded_words_between_characters() {
        // 40 two-byte characters: 45 bytes would cut the 23rd in half.
        let text = "é".repeat(40);
        let mut out = ImapOut::default();
        out.string(text.as_bytes());
        let out = out.into_string();
        let inner = &out[1..out.len() - 1];
        let words: Vec<&str> = inner.split(' ').collect();
        assert_eq!(words.len(), 2);
        let mut decoded = Vec::new();
        for word in &words {
            assert!(word.len() <= 75, "{word} is longer than RFC 2047 allows");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            let bytes = BASE64_STANDARD.decode(b64).unwrap();
            assert!(
                std::str::from_utf8(&bytes).is_ok(),
                "{word} splits a character"
            );
            decoded.extend(bytes);
        }
        assert_eq!(decoded, text.as_bytes());
        assert_eq!(words[0].len(), 10 + 60 + 2);
    }

    #[test]
    fn human_strings_are_cleaned_then_encoded() {
        let mut out = ImapOut::default();
        out.string_for_humans("  Zoë\t\r\n  Ärger ".as_bytes());
        assert_eq!(out.into_string(), "\"=?UTF-8?B?Wm/DqyDDhHJnZXI=?=\"");
        assert_eq!(
            addresses("Zoë Ärger <zoe@example.de>"),
            "((\"=?UTF-8?B?Wm/DqyDDhHJnZXI=?=\" NIL \"zoe\" \"example.de\"))"
        );
        assert_eq!(
            addresses("zoë@bücher.example"),
            "((NIL NIL \"=?UTF-8?B?em/Dqw==?=\" \"=?UTF-8?B?YsO8Y2hlci5leGFtcGxl?=\"))"
        );
    }

    #[test]
    fn rfc2231_continuations_merge_after_plain_parameters() {
        let mut lexer = Lexer::new(b"; b*1=\"2%\"; b*0*=utf-8''1; a=x; c*0=p; c*2=q");
        let params: Vec<(String, String)> = lexer
            .parse_parameters()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            params,
            [
                ("a", "x"),
                ("b*", "utf-8''12%25"),
                ("c*0", "p"),
                ("c*2", "q")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
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
