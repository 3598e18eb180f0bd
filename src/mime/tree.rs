//! The MIME part tree of a message, as Dovecot's message-parser.c builds it;
//! BODYSTRUCTURE and BODY[section] are read from it.
//!
//! It follows Dovecot's parser rather than a textbook MIME parser, because
//! sizes, line counts and part numbers must agree with what clients already
//! cache from Dovecot servers:
//! - a boundary matches by prefix (`--abc` followed by anything is a boundary
//!   for `abc`); the longest, then innermost, open boundary wins;
//! - the line break before a boundary belongs to the boundary, except when
//!   the boundary interrupts a header block: then it stays in the enclosing
//!   part's body;
//! - sizes count a bare LF as CRLF (what is served, see `section`);
//! - without `MIME-Version` and `Content-Type` every Content-* header is
//!   ignored; with neither, a part is text/plain (message/rfc822 inside
//!   multipart/digest);
//! - message/rfc822 is parsed as a message whatever its transfer encoding.
//!
//! Parsing is one linear pass over the bytes, with explicit stacks (no
//! recursion); nesting stops at Dovecot's limits (100 levels, 10 000 parts)
//! and anything deeper is one opaque part.

use super::content::Content;
use super::envelope::Envelope;
use super::header::{HeaderField, HeaderLine, next_header_line};
use super::rfc5322::{Lexer, Ret};

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
pub(super) const TEXT: u8 = 0x08;
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
    pub(super) flags: u8,
    pub(super) content: Content,
    /// For the message inside a message/rfc822 part.
    pub(super) envelope: Option<Box<Envelope>>,
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

/// A Content-Type value as the parser reads it.
#[derive(Debug)]
pub(crate) struct ParsedContentType {
    /// `type/subtype`, empty when the value is broken.
    pub(super) full: Vec<u8>,
    pub(super) params: Vec<(Vec<u8>, Vec<u8>)>,
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
    use crate::mime::body_structure;

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
