//! Parsing of the server responses the stress scenario checks: untagged
//! mailbox updates (EXISTS, EXPUNGE, RECENT, FLAGS, FETCH), the response
//! codes of SELECT and APPEND, STATUS, and tagged status lines. A response
//! line arrives as `Client::line` returns it: one logical line with every
//! literal inlined after its `{n}\r\n`.

use std::collections::BTreeSet;

/// One parsed untagged response.
#[derive(Debug, Clone, PartialEq)]
pub enum Untagged {
    Exists(u32),
    Expunge(u32),
    Recent(u32),
    Flags(Vec<String>),
    Fetch(u32, Fetched),
    /// `* OK [UIDNEXT n]`, `* OK [UIDVALIDITY n]` (other codes are `Other`).
    UidNext(u32),
    UidValidity(u32),
    /// `* STATUS mailbox (NAME value …)`: the numeric items by upper-case name.
    Status(String, Vec<(String, u64)>),
    Bye(String),
    /// Anything else: CAPABILITY, LIST, OK/NO/BAD texts, codes nobody checks.
    Other,
}

/// The FETCH items the stress scenario asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    pub uid: Option<u32>,
    pub flags: Option<BTreeSet<String>>,
    pub size: Option<u64>,
    /// Length of the `BODY[]` literal or string (`None` when absent or NIL).
    pub body_len: Option<usize>,
    pub body_nil: bool,
}

impl Fetched {
    /// RFC822.SIZE 0, or BODY[] empty or NIL: what a server may answer for a
    /// message another session expunged (RFC 2180 4.1.3), never for one
    /// that is still there (an empty message cannot be stored).
    pub fn is_empty_stand_in(&self) -> bool {
        self.size == Some(0) || self.body_len == Some(0) || self.body_nil
    }
}

/// The completion of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// A tagged status line: its status and the text after it (code included).
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    pub status: Status,
    pub text: String,
}

impl Tagged {
    /// `[APPENDUID uidvalidity uid]` (RFC 4315) in the text, if there.
    pub fn append_uid(&self) -> Option<(u32, u32)> {
        let code = self.text.strip_prefix("[APPENDUID ")?;
        let mut numbers = code.split([' ', ']']);
        let validity = numbers.next()?.parse().ok()?;
        let uid = numbers.next()?.parse().ok()?;
        Some((validity, uid))
    }

    /// `[EXPUNGEISSUED]` (RFC 5530): some messages asked for were expunged.
    pub fn expunge_issued(&self) -> bool {
        self.text
            .to_ascii_uppercase()
            .starts_with("[EXPUNGEISSUED]")
    }

    pub fn read_write(&self) -> bool {
        self.text.to_ascii_uppercase().starts_with("[READ-WRITE]")
    }
}

/// The tagged status line of `tag`, or `None` when `line` is something else.
pub fn tagged(line: &[u8], tag: &str) -> Option<Result<Tagged, String>> {
    let rest = line.strip_prefix(tag.as_bytes())?.strip_prefix(b" ")?;
    let text = String::from_utf8_lossy(rest).trim_end().to_owned();
    let (word, text) = text.split_once(' ').unwrap_or((&text, ""));
    let status = match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        _ => return Some(Err(format!("tagged line without a status: {word} {text}"))),
    };
    Some(Ok(Tagged {
        status,
        text: text.to_owned(),
    }))
}

/// Parses one untagged line (`* …`); an error names what could not be read.
pub fn untagged(line: &[u8]) -> Result<Untagged, String> {
    let body = line
        .strip_prefix(b"* ")
        .ok_or_else(|| "not an untagged response".to_owned())?;
    let body = body
        .strip_suffix(b"\r\n")
        .or(body.strip_suffix(b"\n"))
        .unwrap_or(body);
    let mut parser = Parser { bytes: body, at: 0 };
    let first = parser.atom();
    if let Ok(number) = first.parse::<u32>() {
        parser.space()?;
        let kind = parser.atom().to_ascii_uppercase();
        return match kind.as_str() {
            "EXISTS" => Ok(Untagged::Exists(number)),
            "EXPUNGE" => Ok(Untagged::Expunge(number)),
            "RECENT" => Ok(Untagged::Recent(number)),
            "FETCH" => {
                parser.space()?;
                Ok(Untagged::Fetch(number, fetched(&mut parser)?))
            }
            _ => Ok(Untagged::Other),
        };
    }
    match first.to_ascii_uppercase().as_str() {
        "FLAGS" => {
            parser.space()?;
            Ok(Untagged::Flags(flag_list(parser.value()?)?))
        }
        "OK" => Ok(status_code(&parser.bytes[parser.at..])),
        "STATUS" => {
            parser.space()?;
            let mailbox = match parser.value()? {
                Value::Atom(name) => name,
                Value::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                other => return Err(format!("STATUS mailbox name {other:?}")),
            };
            parser.space()?;
            Ok(Untagged::Status(mailbox, status_items(parser.value()?)?))
        }
        "BYE" => Ok(Untagged::Bye(
            String::from_utf8_lossy(&parser.bytes[parser.at..])
                .trim()
                .to_owned(),
        )),
        _ => Ok(Untagged::Other),
    }
}

/// `[UIDNEXT n]` or `[UIDVALIDITY n]` at the start of an untagged OK's text.
fn status_code(text: &[u8]) -> Untagged {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_start();
    let Some(code) = text.strip_prefix('[') else {
        return Untagged::Other;
    };
    let mut words = code.split([' ', ']']);
    let name = words.next().unwrap_or("").to_ascii_uppercase();
    let number = words.next().and_then(|n| n.parse().ok());
    match (name.as_str(), number) {
        ("UIDNEXT", Some(n)) => Untagged::UidNext(n),
        ("UIDVALIDITY", Some(n)) => Untagged::UidValidity(n),
        _ => Untagged::Other,
    }
}

/// The parenthesised FETCH item list.
fn fetched(parser: &mut Parser) -> Result<Fetched, String> {
    let Value::List(items) = parser.value()? else {
        return Err("FETCH data is not a parenthesised list".to_owned());
    };
    let mut fetched = Fetched::default();
    let mut items = items.into_iter();
    while let Some(name) = items.next() {
        let Value::Atom(name) = name else {
            return Err(format!("FETCH item name {name:?}"));
        };
        let value = items
            .next()
            .ok_or_else(|| format!("FETCH item {name} without a value"))?;
        match name.to_ascii_uppercase().as_str() {
            "UID" => fetched.uid = Some(number(&value, "UID")? as u32),
            "FLAGS" => fetched.flags = Some(flag_list(value)?.into_iter().collect()),
            "RFC822.SIZE" => fetched.size = Some(number(&value, "RFC822.SIZE")?),
            "BODY[]" => {
                fetched.body_nil = value == Value::Nil;
                fetched.body_len = match value {
                    Value::Bytes(bytes) => Some(bytes.len()),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    Ok(fetched)
}

fn status_items(value: Value) -> Result<Vec<(String, u64)>, String> {
    let Value::List(items) = value else {
        return Err("STATUS items are not a parenthesised list".to_owned());
    };
    items
        .chunks(2)
        .map(|pair| match pair {
            [Value::Atom(name), value] => Ok((name.to_ascii_uppercase(), number(value, name)?)),
            other => Err(format!("STATUS item {other:?}")),
        })
        .collect()
}

fn flag_list(value: Value) -> Result<Vec<String>, String> {
    let Value::List(flags) = value else {
        return Err(format!("flag list expected, got {value:?}"));
    };
    flags
        .into_iter()
        .map(|flag| match flag {
            Value::Atom(flag) => Ok(flag),
            other => Err(format!("flag {other:?}")),
        })
        .collect()
}

fn number(value: &Value, what: &str) -> Result<u64, String> {
    match value {
        Value::Atom(text) => text
            .parse()
            .map_err(|_| format!("{what} is not a number: {text}")),
        other => Err(format!("{what} is not a number: {other:?}")),
    }
}

/// An IMAP value: atoms (numbers and flags included), strings (quoted or
/// literal), NIL, and parenthesised lists.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Atom(String),
    Bytes(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) -> Result<(), String> {
        if self.peek() == Some(b' ') {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("space expected at byte {}", self.at))
        }
    }

    /// An atom; `[…]` sections are part of it (`BODY[HEADER.FIELDS (A B)]`),
    /// as is a `<origin>` partial suffix.
    fn atom(&mut self) -> String {
        let start = self.at;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' if depth == 0 => break,
                b'\r' | b'\n' | b'"' | b'{' if depth == 0 => break,
                _ => {}
            }
            self.at += 1;
        }
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'(') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b')') => {
                            self.at += 1;
                            return Ok(Value::List(items));
                        }
                        Some(b' ') => self.at += 1,
                        Some(_) => items.push(self.value()?),
                        None => return Err("unclosed parenthesis".to_owned()),
                    }
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(_) => {
                let atom = self.atom();
                if atom.is_empty() {
                    return Err(format!("unexpected byte at {}", self.at));
                }
                Ok(if atom.eq_ignore_ascii_case("NIL") {
                    Value::Nil
                } else {
                    Value::Atom(atom)
                })
            }
            None => Err("value expected at the end of the line".to_owned()),
        }
    }

    fn quoted(&mut self) -> Result<Value, String> {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                b'"' => return Ok(Value::Bytes(out)),
                b'\\' => {
                    out.extend(self.peek());
                    self.at += 1;
                }
                _ => out.push(c),
            }
        }
        Err("unterminated quoted string".to_owned())
    }

    /// `{n}\r\n` followed by n bytes (`Client::line` put them inline).
    fn literal(&mut self) -> Result<Value, String> {
        let close = self.bytes[self.at..]
            .iter()
            .position(|&c| c == b'}')
            .ok_or("unterminated literal length")?;
        let digits = &self.bytes[self.at + 1..self.at + close];
        let digits = digits.strip_suffix(b"+").unwrap_or(digits);
        let length: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or("bad literal length")?;
        self.at += close + 1;
        if !self.bytes[self.at..].starts_with(b"\r\n") {
            return Err("literal length not followed by CRLF".to_owned());
        }
        self.at += 2;
        let end = self.at + length;
        if end > self.bytes.len() {
            return Err("literal shorter than announced".to_owned());
        }
        let bytes = self.bytes[self.at..end].to_vec();
        self.at = end;
        Ok(Value::Bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> Option<BTreeSet<String>> {
        Some(list.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn mailbox_updates_are_read() {
        assert_eq!(untagged(b"* 12 EXISTS\r\n"), Ok(Untagged::Exists(12)));
        assert_eq!(untagged(b"* 3 expunge\r\n"), Ok(Untagged::Expunge(3)));
        assert_eq!(untagged(b"* 0 RECENT\r\n"), Ok(Untagged::Recent(0)));
        assert_eq!(
            untagged(b"* FLAGS (\\Answered \\Seen $Label1)\r\n"),
            Ok(Untagged::Flags(vec![
                "\\Answered".into(),
                "\\Seen".into(),
                "$Label1".into()
            ]))
        );
        assert_eq!(
            untagged(b"* OK [UIDNEXT 57] Predicted next UID\r\n"),
            Ok(Untagged::UidNext(57))
        );
        assert_eq!(
            untagged(b"* OK [UIDVALIDITY 1796305549] UIDs valid\r\n"),
            Ok(Untagged::UidValidity(1796305549))
        );
        assert_eq!(
            untagged(b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted\r\n"),
            Ok(Untagged::Other)
        );
    }

    #[test]
    fn fetch_items_are_read_in_any_order_with_literals() {
        assert_eq!(
            untagged(b"* 4 FETCH (FLAGS (\\Seen \\Recent $Label2) UID 17 RFC822.SIZE 230)\r\n"),
            Ok(Untagged::Fetch(
                4,
                Fetched {
                    uid: Some(17),
                    flags: flags(&["\\Seen", "\\Recent", "$Label2"]),
                    size: Some(230),
                    body_len: None,
                    body_nil: false,
                }
            ))
        );
        assert_eq!(
            untagged(b"* 2 FETCH (UID 9 BODY[] {5}\r\nab)\r\n FLAGS ())\r\n"),
            Ok(Untagged::Fetch(
                2,
                Fetched {
                    uid: Some(9),
                    flags: flags(&[]),
                    size: None,
                    body_len: Some(5),
                    body_nil: false,
                }
            ))
        );
        assert_eq!(
            untagged(b"* 2 FETCH (BODY[HEADER.FIELDS (FROM TO)] \"x\" BODY[] NIL)\r\n"),
            Ok(Untagged::Fetch(
                2,
                Fetched {
                    body_nil: true,
                    ..Fetched::default()
                }
            ))
        );
    }

    #[test]
    fn status_both_quoted_and_atom_names() {
        let expected = Untagged::Status(
            "INBOX".into(),
            vec![("MESSAGES".into(), 3), ("UIDNEXT".into(), 9)],
        );
        assert_eq!(
            untagged(b"* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 9)\r\n"),
            Ok(expected.clone())
        );
        assert_eq!(
            untagged(b"* STATUS INBOX (MESSAGES 3 UIDNEXT 9)\r\n"),
            Ok(expected)
        );
    }

    #[test]
    fn empty_stand_in_data_is_recognised() {
        let fetched = |line: &[u8]| match untagged(line) {
            Ok(Untagged::Fetch(_, f)) => f,
            other => panic!("{other:?}"),
        };
        assert!(fetched(b"* 1 FETCH (UID 3 RFC822.SIZE 0)\r\n").is_empty_stand_in());
        assert!(fetched(b"* 1 FETCH (BODY[] NIL)\r\n").is_empty_stand_in());
        assert!(fetched(b"* 1 FETCH (BODY[] {0}\r\n)\r\n").is_empty_stand_in());
        assert!(!fetched(b"* 1 FETCH (UID 3 RFC822.SIZE 240 FLAGS ())\r\n").is_empty_stand_in());
        let issued = tagged(
            b"b4 OK [EXPUNGEISSUED] Some messages were already expunged\r\n",
            "b4",
        );
        assert!(issued.unwrap().unwrap().expunge_issued());
    }

    #[test]
    fn malformed_fetch_is_an_error() {
        assert!(untagged(b"* 1 FETCH (UID)\r\n").is_err());
        assert!(untagged(b"* 1 FETCH (UID x)\r\n").is_err());
        assert!(untagged(b"* 1 FETCH (FLAGS (\\Seen)\r\n").is_err());
    }

    #[test]
    fn tagged_lines_and_their_codes() {
        let ok = tagged(
            b"b7 OK [APPENDUID 1796305549 58] APPEND completed\r\n",
            "b7",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.append_uid(), Some((1796305549, 58)));
        let select = tagged(b"b2 OK [READ-WRITE] Select completed\r\n", "b2")
            .unwrap()
            .unwrap();
        assert!(select.read_write());
        let no = tagged(b"b9 NO [EXPUNGEISSUED] gone\r\n", "b9")
            .unwrap()
            .unwrap();
        assert_eq!(no.status, Status::No);
        assert!(tagged(b"b19 OK x\r\n", "b1").is_none());
        assert!(tagged(b"* 1 EXISTS\r\n", "b1").is_none());
    }
}
