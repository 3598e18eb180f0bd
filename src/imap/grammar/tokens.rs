//! The words of a command as the framer delivered it (lines and their
//! literals inline), with where each one starts and ends. Enough structure
//! to find an extension's syntax and cut it out; imap-codec still parses
//! the rest, and a command this scanner cannot read is left to it whole.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An atom, a number, a sequence set, a flag, `BODY[HEADER.FIELDS (A B)]`
    /// (a section, with what is inside its brackets, belongs to its atom).
    Atom,
    /// A quoted string, quotes included.
    Quoted,
    /// `{n}`, `{n+}`, `{n-}` or `~{n}` with its line ending and its n bytes.
    Literal,
    Open,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The token's bytes.
    pub fn bytes<'a>(&self, command: &'a [u8]) -> &'a [u8] {
        &command[self.start..self.end]
    }

    /// Whether this is the atom `word`, in any case.
    pub fn is_word(&self, command: &[u8], word: &str) -> bool {
        self.kind == Kind::Atom && self.bytes(command).eq_ignore_ascii_case(word.as_bytes())
    }

    /// A string argument's value: a quoted string unescaped, a literal's
    /// bytes, an atom as it is. None for parentheses.
    pub fn string<'a>(&self, command: &'a [u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
        let bytes = self.bytes(command);
        match self.kind {
            Kind::Atom => Some(bytes.into()),
            Kind::Quoted => Some(unescape(&bytes[1..bytes.len() - 1]).into()),
            Kind::Literal => {
                let data = bytes.iter().position(|&b| b == b'\n')? + 1;
                Some(bytes[data..].into())
            }
            Kind::Open | Kind::Close => None,
        }
    }
}

fn unescape(inner: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for &byte in inner {
        if byte == b'\\' && !escaped {
            escaped = true;
        } else {
            value.push(byte);
            escaped = false;
        }
    }
    value
}

/// The tokens of a whole command, or None when it is not well formed
/// enough to split (imap-codec then says what is wrong with it). Bounded
/// by the command's length: every token consumes at least one byte.
pub fn tokenize(command: &[u8]) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    loop {
        while command.get(at) == Some(&b' ') {
            at += 1;
        }
        let (kind, end) = match command.get(at)? {
            b'\r' | b'\n' => return Some(tokens),
            b'(' => (Kind::Open, at + 1),
            b')' => (Kind::Close, at + 1),
            b'"' => (Kind::Quoted, quoted_end(command, at)?),
            b'{' => (Kind::Literal, literal_end(command, at)?),
            b'~' if command.get(at + 1) == Some(&b'{') => {
                (Kind::Literal, literal_end(command, at + 1)?)
            }
            _ => (Kind::Atom, atom_end(command, at)?),
        };
        tokens.push(Token {
            kind,
            start: at,
            end,
        });
        at = end;
    }
}

/// Where the quoted string opening at `start` ends (after its closing quote).
fn quoted_end(command: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match command.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            b'\r' | b'\n' => return None,
            _ => at += 1,
        }
    }
}

/// Where the literal whose `{` is at `brace` ends (after its data).
fn literal_end(command: &[u8], brace: usize) -> Option<usize> {
    let close = brace + command[brace..].iter().position(|&b| b == b'}')?;
    let digits = &command[brace + 1..close];
    let digits = digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
        .unwrap_or(digits);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let data = close + 1 + line_ending(&command[close + 1..])?;
    let end = data.checked_add(length)?;
    (end <= command.len()).then_some(end)
}

fn line_ending(rest: &[u8]) -> Option<usize> {
    if rest.starts_with(b"\r\n") {
        Some(2)
    } else if rest.starts_with(b"\n") {
        Some(1)
    } else {
        None
    }
}

/// An atom, with any bracketed section inside it: brackets may hold
/// spaces, parentheses, quoted strings and literals
/// (`BODY.PEEK[HEADER.FIELDS ("Subject" {4}\r\nDate)]`).
fn atom_end(command: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    let mut depth = 0usize;
    while let Some(&byte) = command.get(at) {
        match byte {
            b'[' => depth += 1,
            b']' if depth > 0 => depth -= 1,
            b'"' if depth > 0 => {
                at = quoted_end(command, at)?;
                continue;
            }
            b'{' if depth > 0 => {
                at = literal_end(command, at)?;
                continue;
            }
            b' ' | b'(' | b')' if depth > 0 => {}
            b' ' | b'(' | b')' | b'"' | b'{' | b'\r' | b'\n' => break,
            _ => {}
        }
        at += 1;
    }
    (depth == 0 && at > start).then_some(at)
}

/// A command with some of its tokens replaced (or removed, with the space
/// before the next token).
pub struct Edits<'a> {
    command: &'a [u8],
    edits: Vec<(usize, usize, Vec<u8>)>,
}

impl<'a> Edits<'a> {
    pub fn new(command: &'a [u8]) -> Edits<'a> {
        Edits {
            command,
            edits: Vec::new(),
        }
    }

    /// Replaces the bytes from `start` to `end`. Edits must not overlap.
    pub fn replace(&mut self, start: usize, end: usize, with: impl Into<Vec<u8>>) {
        self.edits.push((start, end, with.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The edited command.
    pub fn apply(mut self) -> Vec<u8> {
        self.edits.sort_by_key(|&(start, _, _)| start);
        let mut edited = Vec::with_capacity(self.command.len());
        let mut at = 0;
        for (start, end, with) in self.edits {
            edited.extend_from_slice(&self.command[at..start]);
            edited.extend_from_slice(&with);
            at = end;
        }
        edited.extend_from_slice(&self.command[at..]);
        edited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(command: &[u8]) -> Vec<(Kind, String)> {
        tokenize(command)
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t.kind,
                    String::from_utf8_lossy(t.bytes(command)).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn commands_split_into_words() {
        let command = b"a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject \"To\")])\r\n";
        assert_eq!(
            words(command),
            vec![
                (Kind::Atom, "a1".into()),
                (Kind::Atom, "UID".into()),
                (Kind::Atom, "FETCH".into()),
                (Kind::Atom, "1:*".into()),
                (Kind::Open, "(".into()),
                (Kind::Atom, "FLAGS".into()),
                (
                    Kind::Atom,
                    "BODY.PEEK[HEADER.FIELDS (Subject \"To\")]".into()
                ),
                (Kind::Close, ")".into()),
            ]
        );
    }

    #[test]
    fn literals_and_quoted_strings_are_one_word() {
        let command = b"a SEARCH SUBJECT {5+}\r\nhe)lo FROM \"a \\\"b\\\"\" ~{2}\r\nxy\r\n";
        let tokens = tokenize(command).unwrap();
        let kinds: Vec<Kind> = tokens.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Atom,
                Kind::Atom,
                Kind::Atom,
                Kind::Literal,
                Kind::Atom,
                Kind::Quoted,
                Kind::Literal
            ]
        );
        assert_eq!(tokens[3].string(command).unwrap().as_ref(), b"he)lo");
        assert_eq!(tokens[5].string(command).unwrap().as_ref(), b"a \"b\"");
    }

    #[test]
    fn what_cannot_be_split_is_refused() {
        assert_eq!(tokenize(b"a SEARCH SUBJECT \"open\r\n"), None);
        assert_eq!(tokenize(b"a SEARCH SUBJECT {9}\r\nshort\r\n"), None);
        assert_eq!(tokenize(b"a FETCH 1 BODY[HEADER\r\n"), None);
        assert_eq!(tokenize(b"a SEARCH {x}\r\n"), None);
    }

    #[test]
    fn edits_replace_and_remove() {
        let command = b"a SEARCH RETURN (MIN) $\r\n";
        let mut edits = Edits::new(command);
        edits.replace(9, 22, b"".as_slice());
        edits.replace(22, 23, b"1".as_slice());
        assert_eq!(edits.apply(), b"a SEARCH 1\r\n");
    }
}
