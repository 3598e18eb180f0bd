//! ESEARCH's result options (RFC 4731 3.1, with SAVE from RFC 5182) and
//! SEARCHRES' `$`, the saved result, where a sequence set may stand
//! (RFC 5182 2.1).

use super::tokens::{Edits, Kind, Token};
use crate::imap::outcome::Failure;

/// `RETURN (...)`. `RETURN ()` means `RETURN (ALL)` (RFC 4731 3.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
}

impl SearchReturn {
    /// Whether an ESEARCH response is sent: not for SAVE alone (RFC 5182 2.4).
    pub fn answers(&self) -> bool {
        self.min || self.max || self.all || self.count
    }

    /// Whether SAVE keeps only the MIN and MAX messages (RFC 5182 2.4).
    pub fn saves_extremes_only(&self) -> bool {
        (self.min || self.max) && !self.all && !self.count
    }
}

/// Most options one RETURN list may have: each may be given once.
const MAX_RETURN_OPTIONS: usize = 5;

/// Takes `RETURN (...)` out of a SEARCH whose arguments are `arguments`.
pub fn take_return(
    command: &[u8],
    arguments: &[Token],
    edits: &mut Edits<'_>,
) -> Result<Option<SearchReturn>, Failure> {
    let (Some(word), Some(open)) = (arguments.first(), arguments.get(1)) else {
        return Ok(None);
    };
    if !word.is_word(command, "RETURN") || open.kind != Kind::Open {
        return Ok(None);
    }
    let Some(close) = arguments.iter().position(|t| t.kind == Kind::Close) else {
        return Ok(None);
    };
    let options = &arguments[2..close];
    if options.len() > MAX_RETURN_OPTIONS {
        return Err(Failure::bad("Too many RETURN options"));
    }
    let mut wanted = SearchReturn::default();
    for option in options {
        let flag = match option.bytes(command).to_ascii_uppercase().as_slice() {
            b"MIN" => &mut wanted.min,
            b"MAX" => &mut wanted.max,
            b"ALL" => &mut wanted.all,
            b"COUNT" => &mut wanted.count,
            b"SAVE" => &mut wanted.save,
            _ => {
                return Err(Failure::bad(format!(
                    "Unknown SEARCH RETURN option {}",
                    String::from_utf8_lossy(option.bytes(command))
                )));
            }
        };
        *flag = true;
    }
    if options.is_empty() {
        wanted.all = true;
    }
    // Up to the next word, so that no double space is left.
    let end = arguments
        .get(close + 1)
        .map_or(arguments[close].end, |next| next.start);
    edits.replace(word.start, end, b"".as_slice());
    Ok(Some(wanted))
}

/// Where a command used `$`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SavedSets {
    /// As the command's own sequence set (FETCH $, UID COPY $ ...).
    pub as_command_set: bool,
    /// Which of a search program's sets are `$`, counted in textual order
    /// over every sequence set and UID set the program has.
    pub in_program: Vec<usize>,
    /// How many sets the program has, to check imap-codec read as many.
    pub program_sets: usize,
}

/// What stands for `$` when imap-codec parses the command: any valid
/// sequence set; the handlers put the saved messages in its place.
const PLACEHOLDER: &[u8] = b"1";

/// `$` as the first argument of FETCH, STORE, COPY, MOVE or UID EXPUNGE.
pub fn saved_as_set(command: &[u8], arguments: &[Token], edits: &mut Edits<'_>) -> SavedSets {
    match arguments.first() {
        Some(set) if is_dollar(command, set) => {
            edits.replace(set.start, set.end, PLACEHOLDER);
            SavedSets {
                as_command_set: true,
                ..SavedSets::default()
            }
        }
        _ => SavedSets::default(),
    }
}

fn is_dollar(command: &[u8], token: &Token) -> bool {
    token.kind == Kind::Atom && token.bytes(command) == b"$"
}

/// How many arguments a search key takes (RFC 3501 6.4.4, RFC 5032,
/// RFC 7162 3.1.5, RFC 8474 5); None for a set or an unknown word.
fn arguments_of(key: &[u8], next: Option<&Token>) -> Option<usize> {
    let key = key.to_ascii_uppercase();
    Some(match key.as_slice() {
        b"ALL" | b"ANSWERED" | b"DELETED" | b"DRAFT" | b"FLAGGED" | b"NEW" | b"OLD" | b"RECENT"
        | b"SEEN" | b"UNANSWERED" | b"UNDELETED" | b"UNDRAFT" | b"UNFLAGGED" | b"UNSEEN"
        | b"NOT" | b"OR" => 0,
        b"BCC" | b"BEFORE" | b"BODY" | b"CC" | b"FROM" | b"KEYWORD" | b"LARGER" | b"ON"
        | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" | b"SINCE" | b"SMALLER" | b"SUBJECT"
        | b"TEXT" | b"TO" | b"UNKEYWORD" | b"OLDER" | b"YOUNGER" | b"EMAILID" | b"THREADID"
        | b"CHARSET" => 1,
        b"HEADER" => 2,
        // MODSEQ ["/flags/name" type] value: the entry comes as a string.
        b"MODSEQ" => match next {
            Some(entry) if matches!(entry.kind, Kind::Quoted | Kind::Literal) => 3,
            _ => 1,
        },
        _ => return None,
    })
}

/// Finds `$` among a search program's keys (after the command name and
/// any RETURN options, which `take_return` removed), replacing each one.
/// A `$` that is a key's string argument (`SUBJECT $`) is a string.
pub fn saved_in_program(command: &[u8], arguments: &[Token], edits: &mut Edits<'_>) -> SavedSets {
    let mut saved = SavedSets::default();
    let mut at = skip_return(command, arguments);
    while let Some(token) = arguments.get(at) {
        at += 1;
        if token.kind != Kind::Atom {
            continue;
        }
        let word = token.bytes(command);
        if word.eq_ignore_ascii_case(b"UID") {
            if let Some(set) = arguments.get(at) {
                note_set(command, set, &mut saved, edits);
            }
            at += 1;
        } else if let Some(skip) = arguments_of(word, arguments.get(at)) {
            at += skip;
        } else if word == b"$" || word[0].is_ascii_digit() || word[0] == b'*' {
            note_set(command, token, &mut saved, edits);
        }
    }
    saved
}

fn note_set(command: &[u8], set: &Token, saved: &mut SavedSets, edits: &mut Edits<'_>) {
    if is_dollar(command, set) {
        saved.in_program.push(saved.program_sets);
        edits.replace(set.start, set.end, PLACEHOLDER);
    }
    saved.program_sets += 1;
}

/// The index of the first key, past `RETURN (...)` when it is there.
fn skip_return(command: &[u8], arguments: &[Token]) -> usize {
    match arguments.first() {
        Some(word) if word.is_word(command, "RETURN") => arguments
            .iter()
            .position(|t| t.kind == Kind::Close)
            .map_or(0, |close| close + 1),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::extend;

    fn edited(command: &[u8]) -> (String, super::super::Extras) {
        let extended = extend(command).unwrap();
        let bytes = extended.edited.unwrap_or_else(|| command.to_vec());
        (String::from_utf8(bytes).unwrap(), extended.extras)
    }

    #[test]
    fn return_options_are_taken_out() {
        let (command, extras) = edited(b"a UID SEARCH RETURN (MIN count SAVE) UNSEEN\r\n");
        assert_eq!(command, "a UID SEARCH UNSEEN\r\n");
        let wanted = extras.search_return.unwrap();
        assert!(wanted.min && wanted.count && wanted.save && !wanted.all && !wanted.max);

        let (command, extras) = edited(b"a SEARCH RETURN () CHARSET UTF-8 ALL\r\n");
        assert_eq!(command, "a SEARCH CHARSET UTF-8 ALL\r\n");
        assert!(extras.search_return.unwrap().all);
    }

    #[test]
    fn unknown_return_options_are_refused() {
        assert!(extend(b"a SEARCH RETURN (FIRST) ALL\r\n").is_err());
        assert!(extend(b"a SEARCH RETURN (MIN MIN MIN MIN MIN MIN) ALL\r\n").is_err());
    }

    #[test]
    fn dollar_as_a_commands_set_is_replaced() {
        let (command, extras) = edited(b"a UID FETCH $ (FLAGS)\r\n");
        assert_eq!(command, "a UID FETCH 1 (FLAGS)\r\n");
        assert!(extras.saved.as_command_set);
        let (_, extras) = edited(b"a UID EXPUNGE $\r\n");
        assert!(extras.saved.as_command_set);
        let (command, extras) = edited(b"a STORE $ +FLAGS ($Junk)\r\n");
        assert_eq!(command, "a STORE 1 +FLAGS ($Junk)\r\n");
        assert!(extras.saved.as_command_set);
    }

    #[test]
    fn dollar_in_a_program_is_told_from_a_string() {
        let (command, extras) =
            edited(b"a SEARCH RETURN (SAVE) 1:5 SUBJECT $ OR $ UID $ HEADER $ $ NOT $\r\n");
        assert_eq!(
            command,
            "a SEARCH 1:5 SUBJECT $ OR 1 UID 1 HEADER $ $ NOT 1\r\n"
        );
        assert_eq!(extras.saved.in_program, vec![1, 2, 3]);
        assert_eq!(extras.saved.program_sets, 4);

        let (command, extras) = edited(b"a SEARCH MODSEQ \"/flags/$x\" all 5 $\r\n");
        assert_eq!(command, "a SEARCH MODSEQ \"/flags/$x\" all 5 1\r\n");
        assert_eq!(extras.saved.in_program, vec![0]);
    }

    #[test]
    fn commands_without_extensions_are_untouched() {
        let extended = extend(b"a UID SEARCH SUBJECT $\r\n").unwrap();
        assert_eq!(extended.edited, None);
        assert_eq!(extended.extras, super::super::Extras::default());
    }
}
