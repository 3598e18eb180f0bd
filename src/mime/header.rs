//! Header fields as Dovecot's message-header-parser.c reads them (folded
//! lines joined with LF, whitespace after the colon skipped), and the C-string
//! treatment Dovecot gives the values it keeps (a NUL ends or is replaced).

use std::borrow::Cow;

/// U+FFFD, what Dovecot puts where a NUL byte was in a header.
pub(crate) const NUL_REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

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

/// Dovecot keeps these values in C strings: a NUL ends them.
pub(crate) fn c_string(value: &[u8]) -> &[u8] {
    match value.iter().position(|&c| c == 0) {
        Some(end) => &value[..end],
        None => value,
    }
}

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
    pub(super) lines: usize,
    pub(super) missing_crs: usize,
    /// Size of the last line break: 0 (none, end of data), 1 (LF) or 2 (CRLF).
    pub(super) last_newline: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
