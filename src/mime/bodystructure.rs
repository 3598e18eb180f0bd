//! BODY and BODYSTRUCTURE (RFC 3501 7.4.2), byte for byte as Dovecot 2.3
//! writes them, and the MIME part tree they (and BODY[section]) are read from.
//!
//! The tree follows Dovecot's message parser rather than a textbook MIME
//! parser, because sizes, line counts and part numbers must agree with what
//! clients already cache from Dovecot servers:
//! - a boundary matches by prefix (`--abc` followed by anything is a boundary
//!   for `abc`); the longest, then innermost, open boundary wins;
//! - the line break before a boundary belongs to the boundary, except when
//!   the boundary interrupts a header block: then it stays in the enclosing
//!   part's body;
//! - sizes count a bare LF as CRLF (what is served, see `section`);
//! - without `MIME-Version` and `Content-Type` every Content-* header is
//!   ignored; with neither, a part is text/plain (message/rfc822 inside
//!   multipart/digest);
//! - a multipart whose boundary never appears gets one empty text/plain part;
//! - message/rfc822 is parsed as a message whatever its transfer encoding;
//! - a message that is plain 7-bit US-ASCII text gets Dovecot's canonical
//!   lower-case structure, as its cache answers once the message is indexed.
//!
//! Parsing is one linear pass over the bytes, with explicit stacks (no
//! recursion); nesting stops at Dovecot's limits (100 levels, 10 000 parts)
//! and anything deeper is one opaque part.

use std::borrow::Cow;

use super::envelope::{Envelope, ImapOut, Lexer, Ret, header_value_string};

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

// ---------------------------------------------------------------------------
// Header lines (Dovecot's message-header-parser.c, skipping the whitespace
// after the colon and joining folded lines with LF)

/// One header field: its first line and any continuation lines.
#[derive(Debug)]
pub(crate) struct HeaderField<'a> {
    /// The name, without whitespace before the colon. A line without a colon
    /// is all name.
    pub(crate) name: &'a [u8],
    /// The value after the colon and its leading whitespace (all but one
    /// space of it, when the value is only whitespace); continuation lines
    /// follow after an LF, with their own leading whitespace.
    pub(crate) value: Cow<'a, [u8]>,
    pub(crate) start: usize,
    /// Just after the field's last line break (or the end of the data).
    pub(crate) end: usize,
    /// Line breaks in the field, and how many of them lack a CR.
    lines: usize,
    missing_crs: usize,
    /// Size of the last line break: 0 (none, end of data), 1 (LF) or 2 (CRLF).
    last_newline: usize,
}

#[derive(Debug)]
pub(crate) enum HeaderLine<'a> {
    Field(HeaderField<'a>),
    /// The empty line that ends the header block.
    End {
        end: usize,
        newline: usize,
    },
}

fn is_lwsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// One physical line from `pos`: (content end without the line break,
/// position after the line break, line break size).
fn line_at(data: &[u8], pos: usize) -> (usize, usize, usize) {
    match data[pos..].iter().position(|&c| c == b'\n') {
        Some(i) => {
            let lf = pos + i;
            if lf > pos && data[lf - 1] == b'\r' {
                (lf - 1, lf + 1, 2)
            } else {
                (lf, lf + 1, 1)
            }
        }
        None => (data.len(), data.len(), 0),
    }
}

/// The header line starting at `pos`; `None` at the end of the data.
pub(crate) fn next_header_line(data: &[u8], pos: usize) -> Option<HeaderLine<'_>> {
    if pos >= data.len() {
        return None;
    }
    let (content_end, mut end, newline) = line_at(data, pos);
    if content_end == pos && newline > 0 {
        return Some(HeaderLine::End { end, newline });
    }
    let line = &data[pos..content_end];
    let (name, first_value) = match line.iter().position(|&c| c == b':') {
        Some(colon) => {
            let mut name_end = colon;
            while name_end > 0 && is_lwsp(line[name_end - 1]) {
                name_end -= 1;
            }
            let value = &line[colon + 1..];
            let mut skip = value.iter().take_while(|&&c| is_lwsp(c)).count();
            if skip == value.len() && !value.is_empty() {
                skip = 1;
            }
            (&line[..name_end], &value[skip..])
        }
        None => (line, &line[line.len()..]),
    };
    let mut value = Cow::Borrowed(first_value);
    let mut lines = usize::from(newline > 0);
    let mut missing_crs = usize::from(newline == 1);
    let mut last_newline = newline;
    while last_newline > 0 && end < data.len() && is_lwsp(data[end]) {
        let (content_end, next, newline) = line_at(data, end);
        let owned = value.to_mut();
        owned.push(b'\n');
        owned.extend_from_slice(&data[end..content_end]);
        lines += usize::from(newline > 0);
        missing_crs += usize::from(newline == 1);
        last_newline = newline;
        end = next;
    }
    Some(HeaderLine::Field(HeaderField {
        name,
        value,
        start: pos,
        end,
        lines,
        missing_crs,
        last_newline,
    }))
}

// ---------------------------------------------------------------------------
// The part tree (Dovecot's message-parser.c)

/// Physical bytes, bytes as served (bare LF counted as CRLF), and lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    pub(crate) physical: usize,
    pub(crate) virtual_size: usize,
    pub(crate) lines: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.physical += other.physical;
        self.virtual_size += other.virtual_size;
        self.lines += other.lines;
    }
}

const MULTIPART: u8 = 0x01;
const MULTIPART_DIGEST: u8 = 0x02;
const MESSAGE_RFC822: u8 = 0x04;
const TEXT: u8 = 0x08;
const IS_MIME: u8 = 0x40;
const OVERFLOW: u8 = 0x80;

/// Dovecot's `max_nested_mime_parts` and `max_total_mime_parts`.
const MAX_NESTED_PARTS: usize = 100;
const MAX_TOTAL_PARTS: usize = 10_000;
/// RFC 2046 allows 70 characters; Dovecot keeps a few more.
const BOUNDARY_MAX_LEN: usize = 80;
const BOUNDARY_LINE_MAX_LEN: usize = BOUNDARY_MAX_LEN + 4;

#[derive(Debug, Default)]
pub(crate) struct Part {
    pub(crate) parent: Option<usize>,
    pub(crate) children: Vec<usize>,
    /// Where the part's header starts.
    pub(crate) offset: usize,
    pub(crate) header: Size,
    pub(crate) body: Size,
    flags: u8,
    content: Content,
    /// For the message inside a message/rfc822 part.
    envelope: Option<Box<Envelope>>,
}

impl Part {
    pub(crate) fn is_multipart(&self) -> bool {
        self.flags & MULTIPART != 0
    }

    pub(crate) fn is_message(&self) -> bool {
        self.flags & MESSAGE_RFC822 != 0
    }

    pub(crate) fn body_offset(&self) -> usize {
        self.offset + self.header.physical
    }
}

/// The Content-* header fields of a part, as Dovecot keeps them.
#[derive(Debug, Default)]
struct Content {
    media_type: Option<Vec<u8>>,
    subtype: Option<Vec<u8>>,
    params: Vec<(Vec<u8>, Vec<u8>)>,
    transfer_encoding: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    description: Option<Vec<u8>>,
    md5: Option<Vec<u8>>,
    disposition: Option<Vec<u8>>,
    disposition_params: Vec<(Vec<u8>, Vec<u8>)>,
    language: Option<Vec<Vec<u8>>>,
    location: Option<Vec<u8>>,
}

impl Content {
    /// One Content-* field; `name` is what follows `Content-`. The first
    /// occurrence wins, except that a disposition without parameters can be
    /// replaced (as in Dovecot). `content_type` is the parsed value of the
    /// first Content-Type, which the parser reads anyway.
    fn add_header(&mut self, name: &[u8], value: &[u8], content_type: Option<ParsedContentType>) {
        let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        if eq("ID") && self.id.is_none() {
            self.id = Some(header_value_string(value));
        } else if eq("MD5") && self.md5.is_none() {
            self.md5 = Some(header_value_string(value));
        } else if eq("Type") && self.media_type.is_none() {
            let Some(content_type) = content_type else {
                return;
            };
            let full = &content_type.full;
            let (media_type, subtype) = match full.iter().position(|&c| c == b'/') {
                Some(slash) => (&full[..slash], &full[slash + 1..]),
                None => (&full[..], &full[full.len()..]),
            };
            self.media_type = Some(media_type.to_vec());
            self.subtype = Some(subtype.to_vec());
            self.params = content_type.params;
        } else if eq("Transfer-Encoding") && self.transfer_encoding.is_none() {
            let mut lexer = Lexer::new(value);
            lexer.skip_lwsp();
            let mut token = Vec::new();
            if lexer.parse_mime_token(&mut token) != Ret::Err
                && lexer.skip_lwsp() == Ret::End
                && !token.is_empty()
            {
                self.transfer_encoding = Some(token);
            }
        } else if eq("Language") && self.language.is_none() {
            let mut lexer = Lexer::new(value);
            let mut languages = Vec::new();
            lexer.skip_lwsp();
            loop {
                let mut atom = Vec::new();
                if lexer.parse_atom(&mut atom) == Ret::Err {
                    break;
                }
                languages.push(atom);
                if lexer.peek() != Some(b',') {
                    break;
                }
                lexer.pos += 1;
                lexer.skip_lwsp();
            }
            if !languages.is_empty() {
                self.language = Some(languages);
            }
        } else if eq("Location") && self.location.is_none() {
            self.location = Some(header_value_string(value));
        } else if eq("Description") && self.description.is_none() {
            self.description = Some(header_value_string(value));
        } else if eq("Disposition") && self.disposition_params.is_empty() {
            let mut lexer = Lexer::new(value);
            lexer.skip_lwsp();
            let mut token = Vec::new();
            if lexer.parse_mime_token(&mut token) != Ret::Err {
                self.disposition = Some(token);
                self.disposition_params = lexer.parse_parameters();
            }
        }
    }
}

/// A Content-Type value as the parser reads it.
#[derive(Debug)]
struct ParsedContentType {
    /// `type/subtype`, empty when the value is broken.
    full: Vec<u8>,
    params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ParsedContentType {
    fn parse(value: &[u8]) -> Self {
        let mut lexer = Lexer::new(value);
        lexer.skip_lwsp();
        let mut full = Vec::new();
        let ok = lexer.parse_content_type(&mut full) != Ret::Err;
        let params = if ok {
            lexer.parse_parameters()
        } else {
            Vec::new()
        };
        ParsedContentType { full, params }
    }

    fn flags(&self) -> u8 {
        let full = &self.full[..];
        if full.eq_ignore_ascii_case(b"message/rfc822") {
            MESSAGE_RFC822
        } else if full.len() >= 4
            && full[..4].eq_ignore_ascii_case(b"text")
            && (full.len() == 4 || full[4] == b'/')
        {
            TEXT
        } else if full.len() >= 10 && full[..10].eq_ignore_ascii_case(b"multipart/") {
            if full[10..].eq_ignore_ascii_case(b"digest") {
                MULTIPART | MULTIPART_DIGEST
            } else {
                MULTIPART
            }
        } else {
            0
        }
    }

    fn boundary(&self) -> Option<Vec<u8>> {
        let (_, value) = self
            .params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(b"boundary"))?;
        Some(value[..value.len().min(BOUNDARY_MAX_LEN)].to_vec())
    }
}

/// The parts of a message; `parts[0]` is the message itself.
#[derive(Debug)]
pub(crate) struct MessageTree<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) parts: Vec<Part>,
}

impl<'a> MessageTree<'a> {
    /// `with_content`: also keep Content-* fields and the envelopes of
    /// message/rfc822 parts (needed for BODYSTRUCTURE, not for sections).
    pub(crate) fn parse(data: &'a [u8], with_content: bool) -> Self {
        let parser = Parser {
            data,
            pos: 0,
            parts: vec![Part::default()],
            cur: 0,
            boundaries: Vec::new(),
            last_chr: b'\n',
            with_content,
        };
        MessageTree {
            data,
            parts: parser.run(),
        }
    }

    /// Only the message itself, for requests about its header.
    pub(crate) fn header_only(data: &'a [u8]) -> Self {
        MessageTree {
            data,
            parts: vec![Part::default()],
        }
    }

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

/// What the parser does next.
enum Next {
    BodyToBoundary,
    BodyToEof,
    SkipBoundaryLine,
    /// The body of the current part is a message: parse its header.
    Message,
    /// A boundary line was passed: a new part of the current multipart.
    MimePart,
    Eof,
}

/// An open multipart's boundary.
struct Boundary {
    value: Vec<u8>,
    part: usize,
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    parts: Vec<Part>,
    cur: usize,
    /// Innermost last.
    boundaries: Vec<Boundary>,
    last_chr: u8,
    with_content: bool,
}

impl Parser<'_> {
    fn run(mut self) -> Vec<Part> {
        let mut next = self.parse_header();
        loop {
            next = match next {
                Next::BodyToBoundary => self.body_to_boundary(),
                Next::BodyToEof => self.body_to_eof(),
                Next::SkipBoundaryLine => self.skip_boundary_line(),
                Next::Message => {
                    self.append_part(false);
                    self.parse_header()
                }
                Next::MimePart => {
                    self.append_part(true);
                    self.parse_header()
                }
                Next::Eof => break,
            };
        }
        while self.parts[self.cur].parent.is_some() {
            self.finish_part();
        }
        self.parts
    }

    fn append_part(&mut self, is_mime: bool) {
        let index = self.parts.len();
        self.parts.push(Part {
            parent: Some(self.cur),
            offset: self.pos,
            flags: if is_mime { IS_MIME } else { 0 },
            ..Part::default()
        });
        self.parts[self.cur].children.push(index);
        self.cur = index;
    }

    /// Adds the current part's sizes to its parent and makes the parent current.
    fn finish_part(&mut self) {
        let part = &self.parts[self.cur];
        let (Some(parent), header, body) = (part.parent, part.header, part.body) else {
            return;
        };
        self.parts[parent].body.add(header);
        self.parts[parent].body.add(body);
        self.cur = parent;
    }

    /// Whether another multipart or message level may start under `cur`.
    fn can_nest(&self) -> bool {
        let mut depth = 0;
        let mut part = self.cur;
        while let Some(parent) = self.parts[part].parent {
            depth += 1;
            part = parent;
        }
        depth + 1 < MAX_NESTED_PARTS && self.parts.len() < MAX_TOTAL_PARTS
    }

    /// Body bytes for the current part.
    fn add_block(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let block = &self.data[start..end];
        let mut lines = 0;
        let mut missing_crs = 0;
        let mut prev = self.last_chr;
        for &c in block {
            if c == b'\n' {
                lines += 1;
                if prev != b'\r' {
                    missing_crs += 1;
                }
            }
            prev = c;
        }
        self.last_chr = prev;
        self.parts[self.cur].body.add(Size {
            physical: block.len(),
            virtual_size: block.len() + missing_crs,
            lines,
        });
        self.pos = end;
    }

    /// Whether the line at `at` is a boundary line of an open multipart:
    /// (index in `boundaries`, whether it is the closing `--boundary--`).
    fn find_boundary(&self, at: usize) -> Option<(usize, bool)> {
        if self.boundaries.is_empty() {
            return None;
        }
        let rest = self.data.get(at..)?;
        let line = rest.strip_prefix(b"--")?;
        let mut len = match line.iter().position(|&c| c == b'\n') {
            Some(lf) => {
                let mut len = lf;
                if len > 0 && line[len - 1] == b'\r' {
                    len -= 1;
                }
                if len > 2 && line[len - 2..len] == *b"--" {
                    len -= 2;
                }
                len
            }
            None => line.len().min(BOUNDARY_LINE_MAX_LEN),
        };
        len = len.min(line.len());
        let candidate = &line[..len];
        let mut best: Option<usize> = None;
        for (i, boundary) in self.boundaries.iter().enumerate().rev() {
            let blen = boundary.value.len();
            if blen <= len
                && candidate[..blen] == boundary.value[..]
                && best.is_none_or(|b| self.boundaries[b].value.len() < blen)
            {
                best = Some(i);
                if blen == len {
                    break;
                }
            }
        }
        let index = best?;
        let blen = self.boundaries[index].value.len();
        let closing = line.get(blen..blen + 2) == Some(b"--");
        Some((index, closing))
    }

    /// Parses the current part's header block; returns what comes next.
    fn parse_header(&mut self) -> Next {
        let cur = self.cur;
        let mut seen_content_type = false;
        let mut prev_newline = 0;
        let mut boundary: Option<Vec<u8>> = None;
        let mut multipart = false;
        let mut header_ended = false;
        let parent_is_message = self.parts[cur]
            .parent
            .is_some_and(|p| self.parts[p].is_message());
        if self.with_content && parent_is_message {
            self.parts[cur].envelope = Some(Box::default());
        }
        loop {
            if self.pos < self.data.len() {
                let at_empty_line =
                    self.data[self.pos] == b'\n' || self.data[self.pos..].starts_with(b"\r\n");
                if at_empty_line
                    && self.parts[cur].flags & IS_MIME != 0
                    && let Some(value) = boundary.take()
                {
                    if self.can_nest() {
                        self.boundaries.push(Boundary { value, part: cur });
                        multipart = true;
                    } else {
                        self.parts[cur].flags &= !MULTIPART;
                        self.parts[cur].flags |= OVERFLOW;
                    }
                }
                if let Some((index, _)) = self.find_boundary(self.pos)
                    && self.boundaries[index].part != cur
                {
                    // The boundary ends this header; the line break before
                    // it goes to the enclosing part's body.
                    if prev_newline > 0
                        && let Some(parent) = self.parts[cur].parent
                    {
                        let moved = Size {
                            physical: prev_newline,
                            virtual_size: 2,
                            lines: 1,
                        };
                        let header = &mut self.parts[cur].header;
                        header.lines -= 1;
                        header.physical -= moved.physical;
                        header.virtual_size -= moved.virtual_size;
                        self.parts[parent].body.add(moved);
                    }
                    break;
                }
            }
            if header_ended {
                break;
            }
            match next_header_line(self.data, self.pos) {
                None => break,
                Some(HeaderLine::End { end, newline }) => {
                    let part = &mut self.parts[cur];
                    part.header.add(Size {
                        physical: newline,
                        virtual_size: 2,
                        lines: 1,
                    });
                    prev_newline = newline;
                    self.pos = end;
                    header_ended = true;
                }
                Some(HeaderLine::Field(field)) => {
                    let physical = field.end - field.start;
                    let part = &mut self.parts[cur];
                    part.header.add(Size {
                        physical,
                        virtual_size: physical + field.missing_crs,
                        lines: field.lines,
                    });
                    prev_newline = field.last_newline;
                    self.pos = field.end;
                    self.header_field(&field, &mut seen_content_type, &mut boundary);
                }
            }
        }
        self.end_of_header(seen_content_type, multipart)
    }

    fn header_field(
        &mut self,
        field: &HeaderField<'_>,
        seen_content_type: &mut bool,
        boundary: &mut Option<Vec<u8>>,
    ) {
        let cur = self.cur;
        let name = field.name;
        let mut content_type = None;
        if name.eq_ignore_ascii_case(b"MIME-Version") {
            self.parts[cur].flags |= IS_MIME;
        } else if name.eq_ignore_ascii_case(b"Content-Type") {
            self.parts[cur].flags |= IS_MIME;
            if !*seen_content_type {
                *seen_content_type = true;
                let parsed = ParsedContentType::parse(&field.value);
                self.parts[cur].flags |= parsed.flags();
                if self.parts[cur].is_multipart() {
                    *boundary = parsed.boundary();
                }
                content_type = Some(parsed);
            }
        }
        if !self.with_content {
            return;
        }
        if name.len() >= 8 && name[..8].eq_ignore_ascii_case(b"Content-") {
            self.parts[cur]
                .content
                .add_header(&name[8..], &field.value, content_type);
        }
        if let Some(envelope) = &mut self.parts[cur].envelope {
            envelope.add_header(name, &field.value);
        }
    }

    fn end_of_header(&mut self, seen_content_type: bool, multipart: bool) -> Next {
        let cur = self.cur;
        let parent_is_digest = self.parts[cur]
            .parent
            .is_some_and(|p| self.parts[p].flags & MULTIPART_DIGEST != 0);
        let part = &mut self.parts[cur];
        if part.flags & IS_MIME == 0 {
            // Not MIME: every Content-* field is ignored.
            part.flags = 0;
            part.content = Content::default();
        }
        if !seen_content_type || part.flags & IS_MIME == 0 {
            part.flags |= if parent_is_digest {
                MESSAGE_RFC822
            } else {
                TEXT
            };
        }
        self.last_chr = b'\n';
        if multipart {
            return Next::BodyToBoundary;
        }
        if self.parts[cur].is_message() {
            if self.can_nest() {
                return Next::Message;
            }
            self.parts[cur].flags &= !MESSAGE_RFC822;
            self.parts[cur].flags |= OVERFLOW;
        }
        if self.boundaries.is_empty() {
            Next::BodyToEof
        } else {
            Next::BodyToBoundary
        }
    }

    fn body_to_eof(&mut self) -> Next {
        if self.pos >= self.data.len() {
            return Next::Eof;
        }
        self.add_block(self.pos, self.data.len());
        Next::Eof
    }

    fn body_to_boundary(&mut self) -> Next {
        if self.pos >= self.data.len() {
            return Next::Eof;
        }
        if self.last_chr == b'\n'
            && let Some((index, closing)) = self.find_boundary(self.pos)
        {
            return self.finish_at_boundary(index, closing, true);
        }
        let start = self.pos;
        let mut search = start;
        while let Some(i) = self.data[search..].iter().position(|&c| c == b'\n') {
            let lf = search + i;
            let line_start = lf + 1;
            if let Some((index, closing)) = self.find_boundary(line_start) {
                let mut boundary_start = lf;
                if lf > start && self.data[lf - 1] == b'\r' {
                    boundary_start -= 1;
                }
                self.add_block(start, boundary_start);
                self.pos = boundary_start;
                return self.finish_at_boundary(index, closing, false);
            }
            search = line_start;
        }
        self.add_block(start, self.data.len());
        Next::Eof
    }

    /// A boundary line at `pos` (after its preceding line break unless
    /// `first_line`): close the parts inside that multipart and account the
    /// line to it.
    fn finish_at_boundary(&mut self, index: usize, closing: bool, first_line: bool) -> Next {
        let owner = self.boundaries[index].part;
        while self.cur != owner && self.parts[self.cur].parent.is_some() {
            self.finish_part();
        }
        let blen = self.boundaries[index].value.len();
        self.boundaries
            .truncate(if closing { index } else { index + 1 });
        let newline = if first_line {
            0
        } else if self.data.get(self.pos) == Some(&b'\r') {
            2
        } else {
            1
        };
        let line = newline + 2 + blen + if closing { 2 } else { 0 };
        let end = (self.pos + line).min(self.data.len());
        self.add_block(self.pos, end);
        Next::SkipBoundaryLine
    }

    /// The rest of a boundary line; then a new part, or the epilogue.
    fn skip_boundary_line(&mut self) -> Next {
        if self.pos >= self.data.len() {
            return Next::Eof;
        }
        let Some(i) = self.data[self.pos..].iter().position(|&c| c == b'\n') else {
            self.add_block(self.pos, self.data.len());
            return Next::Eof;
        };
        self.add_block(self.pos, self.pos + i + 1);
        match self.boundaries.last() {
            Some(boundary) if boundary.part == self.cur => {
                if self.parts.len() < MAX_TOTAL_PARTS {
                    Next::MimePart
                } else {
                    Next::BodyToEof
                }
            }
            Some(_) => Next::BodyToBoundary,
            None => Next::BodyToEof,
        }
    }
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

    #[test]
    fn header_lines_unfold_and_keep_positions() {
        let raw = b"Subject:  a\r\n b\r\nX:   \r\n\r\n";
        let Some(HeaderLine::Field(field)) = next_header_line(raw, 0) else {
            panic!("expected a field");
        };
        assert_eq!(
            (field.name, &field.value[..]),
            (&b"Subject"[..], &b"a\n b"[..])
        );
        assert_eq!((field.start, field.end, field.lines), (0, 17, 2));
        let Some(HeaderLine::Field(field)) = next_header_line(raw, 17) else {
            panic!("expected a field");
        };
        assert_eq!((field.name, &field.value[..]), (&b"X"[..], &b"  "[..]));
        assert!(matches!(
            next_header_line(raw, 24),
            Some(HeaderLine::End { end: 26, .. })
        ));
        assert!(next_header_line(raw, 26).is_none());
    }

    #[test]
    fn deep_nesting_stops_at_the_limit_without_recursing_forever() {
        let mut raw = Vec::new();
        for i in 0..300 {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"\r\nend\r\n");
        let tree = MessageTree::parse(&raw, true);
        let depth = |mut i: usize| {
            let mut depth = 0;
            while let Some(parent) = tree.parts[i].parent {
                depth += 1;
                i = parent;
            }
            depth
        };
        assert!((0..tree.parts.len()).map(depth).max() < Some(MAX_NESTED_PARTS));
        assert!(body_structure(&raw, true).starts_with("(("));
    }
}
