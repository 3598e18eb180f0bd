//! The RFC 5322 lexer, as Dovecot's rfc822-parser.c: comments, atoms,
//! dot-atoms, quoted strings, phrases and domains. Address lists (`address`)
//! and Content-* values (`content`) are read with it.

use super::header::NUL_REPLACEMENT;

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

pub(super) fn is_token_char(c: u8) -> bool {
    ATEXT[c as usize] & 3 != 0
}

pub(crate) struct Lexer<'a> {
    pub(super) data: &'a [u8],
    pub(crate) pos: usize,
    /// The text of the last comment skipped, when the caller wants it.
    pub(super) last_comment: Option<Vec<u8>>,
    /// Replace NULs in quoted strings, comments and domain literals.
    pub(super) replace_nul: bool,
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

    pub(super) fn more_or_end(&self) -> Ret {
        if self.at_end() { Ret::End } else { Ret::More }
    }

    fn append(&self, out: &mut Vec<u8>, start: usize, end: usize) {
        if start < end {
            out.extend_from_slice(&self.data[start..end]);
        }
    }

    fn skip_comment(&mut self) -> Ret {
        // The comment's text is kept only when the caller asked for it.
        let mut comment = self.last_comment.take();
        if let Some(text) = &mut comment {
            text.clear();
        }
        let ret = self.scan_comment(comment.as_mut());
        self.last_comment = comment;
        ret
    }

    /// The comment starting at `pos` (at its `(`), nested ones included; its
    /// text, unfolded and unescaped, goes to `text` when given.
    fn scan_comment(&mut self, mut text: Option<&mut Vec<u8>>) -> Ret {
        let mut level = 1;
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            if let Some(text) = text.as_deref_mut()
                && self.unfold_or_replace_nul(text, &mut start)
            {
                self.pos += 1;
                continue;
            }
            match self.data[self.pos] {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        if let Some(text) = text {
                            self.append(text, start, self.pos);
                        }
                        self.pos += 1;
                        return self.more_or_end();
                    }
                }
                b'\\' => {
                    let complete = self.quoted_pair(text.as_deref_mut(), &mut start);
                    if !complete {
                        return Ret::Err;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Ret::Err
    }

    /// At a `\` in a quoted string or comment (a quoted-pair): the backslash
    /// is dropped, the text before it going to `out`, unless a line break or
    /// NUL follows (then it stays, and that byte is handled next). `false`
    /// when the data ends after the backslash.
    fn quoted_pair(&mut self, out: Option<&mut Vec<u8>>, start: &mut usize) -> bool {
        self.pos += 1;
        if self.pos >= self.data.len() {
            return false;
        }
        if matches!(self.data[self.pos], b'\r' | b'\n' | 0) {
            self.pos -= 1;
        } else {
            if let Some(out) = out {
                self.append(out, *start, self.pos - 1);
            }
            *start = self.pos;
        }
        true
    }

    /// Inside a quoted string, comment or domain literal, at a NUL (when NULs
    /// are replaced) or a line break: the text since `start` goes to `out`,
    /// then U+FFFD for a NUL, nothing for a line break and its CR (unfolding).
    /// Whether the byte at `pos` was one of those.
    fn unfold_or_replace_nul(&self, out: &mut Vec<u8>, start: &mut usize) -> bool {
        let end = match self.data[self.pos] {
            0 if self.replace_nul => self.pos,
            b'\n' if self.pos > *start && self.data[self.pos - 1] == b'\r' => self.pos - 1,
            b'\n' => self.pos,
            _ => return false,
        };
        self.append(out, *start, end);
        if self.data[self.pos] == 0 {
            out.extend_from_slice(NUL_REPLACEMENT);
        }
        *start = self.pos + 1;
        true
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
        self.take_while(out, is_atext)
    }

    /// The bytes from `pos` for which `keep` holds go to `out`; then
    /// whitespace and comments are skipped.
    pub(super) fn take_while(&mut self, out: &mut Vec<u8>, keep: impl Fn(u8) -> bool) -> Ret {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !keep(c) {
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

    /// A quoted string, unescaped and unfolded. Must start at `"`.
    pub(super) fn parse_quoted_string(&mut self, out: &mut Vec<u8>) -> Ret {
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            if self.unfold_or_replace_nul(out, &mut start) {
                self.pos += 1;
                continue;
            }
            match self.data[self.pos] {
                b'"' => {
                    self.append(out, start, self.pos);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\\' => {
                    let complete = self.quoted_pair(Some(out), &mut start);
                    if !complete {
                        return Ret::Err;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Ret::Err
    }

    fn parse_atom_or_dot(&mut self, out: &mut Vec<u8>) -> Ret {
        self.take_while(out, |c| is_atext(c) || c == b'.')
    }

    /// Words (atoms with dots, quoted strings) joined by single spaces.
    pub(super) fn parse_phrase(&mut self, out: &mut Vec<u8>) -> Ret {
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
            if self.unfold_or_replace_nul(out, &mut start) {
                self.pos += 1;
                continue;
            }
            match self.data[self.pos] {
                b'[' => return Ret::Err,
                b']' => {
                    self.append(out, start, self.pos + 1);
                    self.pos += 1;
                    return self.skip_lwsp();
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
    pub(super) fn parse_domain(&mut self, out: &mut Vec<u8>) -> Ret {
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
}
