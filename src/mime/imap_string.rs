//! IMAP strings (RFC 3501 section 4.3) as Dovecot 2.3 writes them: quoted
//! string or literal, NIL for a missing value, and the "for humans" cleaning
//! of subjects and display names. On top of Dovecot's rules, one of ours: no
//! 8-bit byte goes out, since no session has enabled UTF8=ACCEPT (ARCHITECTURE: answers clients rely on);
//! text that is not ASCII is sent as RFC 2047 encoded words.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;

use super::header::{NUL_REPLACEMENT, c_string};

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
    /// UTF8=ACCEPT (RFC 6855 section 3). The whole value is
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

/// One IMAP string on its own.
pub(crate) fn string(value: &[u8]) -> String {
    let mut out = ImapOut::default();
    out.string(value);
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
