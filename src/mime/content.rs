//! The Content-* header fields of a MIME part as Dovecot keeps them for
//! BODYSTRUCTURE: type and parameters (RFC 2045, with RFC 2231 continuations
//! merged as Dovecot merges them), transfer encoding, ID, description, MD5,
//! disposition (RFC 2183), language (RFC 3282) and location (RFC 2557).

use super::header::{c_string, header_value_string};
use super::rfc5322::{Lexer, Ret, is_token_char};
use super::tree::ParsedContentType;

/// The Content-* header fields of a part, as Dovecot keeps them.
#[derive(Debug, Default)]
pub(crate) struct Content {
    pub(super) media_type: Option<Vec<u8>>,
    pub(super) subtype: Option<Vec<u8>>,
    pub(super) params: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) transfer_encoding: Option<Vec<u8>>,
    pub(super) id: Option<Vec<u8>>,
    pub(super) description: Option<Vec<u8>>,
    pub(super) md5: Option<Vec<u8>>,
    pub(super) disposition: Option<Vec<u8>>,
    pub(super) disposition_params: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) language: Option<Vec<Vec<u8>>>,
    pub(super) location: Option<Vec<u8>>,
}

impl Content {
    /// One Content-* field; `name` is what follows `Content-`. The first
    /// occurrence wins, except that a disposition without parameters can be
    /// replaced (as in Dovecot). `content_type` is the parsed value of the
    /// first Content-Type, which the parser reads anyway.
    pub(super) fn add_header(
        &mut self,
        name: &[u8],
        value: &[u8],
        content_type: Option<ParsedContentType>,
    ) {
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

/// MIME tokens, Content-Type values and their parameters, read with the
/// RFC 5322 lexer (the MIME half of Dovecot's rfc822-parser.c).
impl Lexer<'_> {
    /// A MIME token (RFC 2045), dots allowed.
    pub(crate) fn parse_mime_token(&mut self, out: &mut Vec<u8>) -> Ret {
        self.take_while(out, |c| is_token_char(c) || c == b'.')
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
