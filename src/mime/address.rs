//! Address lists as ENVELOPE shows them (Dovecot's message-address.c, with
//! FILL_MISSING and NON_STRICT_DOTS): what does not parse becomes Dovecot's
//! placeholder addresses rather than an error.

use super::imap_string::ImapOut;
use super::rfc5322::{Lexer, Ret};

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

impl Addr {
    /// `local@domain`, for an address that parsed: not a group marker, nor
    /// one of the placeholders put where something was missing or broken.
    pub(crate) fn addr_spec(&self) -> Option<Vec<u8>> {
        if self.invalid {
            return None;
        }
        let (local, domain) = (self.mailbox.as_deref()?, self.domain.as_deref()?);
        let mut spec = Vec::with_capacity(local.len() + 1 + domain.len());
        spec.extend_from_slice(local);
        spec.push(b'@');
        spec.extend_from_slice(domain);
        Some(spec)
    }

    pub(crate) fn display_name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }
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

/// An address list in ENVELOPE form: `((name adl mailbox host) ...)` or NIL.
pub(crate) fn write_addresses(out: &mut ImapOut, list: &[Addr]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(value: &str) -> String {
        let mut out = ImapOut::default();
        write_addresses(&mut out, &parse_address_list(value.as_bytes()));
        out.into_string()
    }

    #[test]
    fn encoded_words_in_display_names_stay_encoded() {
        assert_eq!(
            addresses("=?utf-8?b?0JjQstCw0L0=?= <ivan@example.ru>"),
            "((\"=?utf-8?b?0JjQstCw0L0=?=\" NIL \"ivan\" \"example.ru\"))"
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
    fn utf8_addresses_are_encoded_words() {
        assert_eq!(
            addresses("Zoë Ärger <zoe@example.de>"),
            "((\"=?UTF-8?B?Wm/DqyDDhHJnZXI=?=\" NIL \"zoe\" \"example.de\"))"
        );
        assert_eq!(
            addresses("zoë@bücher.example"),
            "((NIL NIL \"=?UTF-8?B?em/Dqw==?=\" \"=?UTF-8?B?YsO8Y2hlci5leGFtcGxl?=\"))"
        );
    }
}
