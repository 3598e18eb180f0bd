//! The syntax of extensions imap-codec does not parse yet (ARCHITECTURE:
//! "Extension grammar"). Each is found in the command's tokens, recorded
//! in `Extras`, and cut out or replaced, so that imap-codec parses what is
//! left as the plain command it then is; the handlers get both. A command
//! that has none of these goes to imap-codec untouched, and one that cannot
//! be split into tokens too (imap-codec then says what is wrong).

mod search;
pub mod tokens;

use tokens::{Edits, Token, tokenize};

use super::outcome::Failure;

pub use search::{SavedSets, SearchReturn};

/// What a command said in extension syntax.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extras {
    /// SEARCH's `RETURN (...)` options (RFC 4731, RFC 5182), when given.
    pub search_return: Option<SearchReturn>,
    /// Where the command named the saved search result, `$` (RFC 5182).
    pub saved: SavedSets,
}

/// A command ready for imap-codec, and what was taken out of it.
#[derive(Debug, Default)]
pub struct Extended {
    /// The command to parse, when it differs from what the client sent.
    pub edited: Option<Vec<u8>>,
    pub extras: Extras,
}

/// Finds the extension syntax in `command`. An extension used wrongly is
/// refused here, with the answer the client gets.
pub fn extend(command: &[u8]) -> Result<Extended, Failure> {
    let Some(tokens) = tokenize(command) else {
        return Ok(Extended::default());
    };
    let Some(name) = Name::of(command, &tokens) else {
        return Ok(Extended::default());
    };
    let mut edits = Edits::new(command);
    let mut extras = Extras::default();
    let arguments = &tokens[name.index + 1..];
    match name.word.as_str() {
        "SEARCH" => {
            extras.search_return = search::take_return(command, arguments, &mut edits)?;
            extras.saved = search::saved_in_program(command, arguments, &mut edits);
        }
        "FETCH" | "STORE" | "COPY" | "MOVE" => {
            extras.saved = search::saved_as_set(command, arguments, &mut edits);
        }
        "EXPUNGE" if name.uid => {
            extras.saved = search::saved_as_set(command, arguments, &mut edits);
        }
        _ => {}
    }
    let edited = (!edits.is_empty()).then(|| edits.apply());
    Ok(Extended { edited, extras })
}

/// A command's name, upper-cased, after its tag and any `UID`.
struct Name {
    word: String,
    /// Which token it is.
    index: usize,
    uid: bool,
}

impl Name {
    fn of(command: &[u8], tokens: &[Token]) -> Option<Name> {
        let word = |index: usize| -> Option<String> {
            let token = tokens.get(index)?;
            (token.kind == tokens::Kind::Atom)
                .then(|| String::from_utf8_lossy(token.bytes(command)).to_ascii_uppercase())
        };
        let first = word(1)?;
        if first == "UID" {
            Some(Name {
                word: word(2)?,
                index: 2,
                uid: true,
            })
        } else {
            Some(Name {
                word: first,
                index: 1,
                uid: false,
            })
        }
    }
}
