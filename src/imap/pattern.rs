//! LIST and LSUB patterns (RFC 3501 6.3.8): `*` matches anything, `%`
//! anything but the hierarchy delimiter.
//!
//! Matching simulates the pattern as a small automaton, one pass over the
//! name with the set of pattern positions still alive, so it costs at most
//! name × pattern steps and no recursion, whatever the wildcards: a pattern
//! of 20,000 `*` neither overflows the stack nor backtracks exponentially.

use super::DELIMITER;

/// The longest pattern accepted (reference and pattern joined), in bytes.
/// Far above any real mailbox name; it bounds the work of one match.
pub const MAX_PATTERN: usize = 1024;

/// A LIST pattern, prepared for matching many names.
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`
    Any,
    /// `%`
    Level,
}

impl Pattern {
    /// Compiles a pattern. Runs of wildcards collapse (`**` is `*`, `%*` is
    /// `*`, `%%` is `%`): they match the same names, and this keeps the
    /// automaton no larger than the pattern's literal text plus one state
    /// per run.
    pub fn new(pattern: &[u8]) -> Pattern {
        let mut tokens: Vec<Token> = Vec::with_capacity(pattern.len());
        for &byte in pattern {
            let token = match byte {
                b'*' => Token::Any,
                b'%' => Token::Level,
                other => Token::Byte(other),
            };
            match (tokens.last_mut(), token) {
                (Some(last @ (Token::Any | Token::Level)), Token::Any) => *last = Token::Any,
                (Some(Token::Any | Token::Level), Token::Level) => {}
                _ => tokens.push(token),
            }
        }
        Pattern { tokens }
    }

    /// Whether `name` matches, byte for byte (callers fold case first where
    /// names are case-insensitive).
    pub fn matches(&self, name: &[u8]) -> bool {
        let states = self.tokens.len() + 1;
        // alive[i]: the pattern's first i tokens can match what was read.
        let mut alive = vec![false; states];
        let mut next = vec![false; states];
        alive[0] = true;
        self.close_over_wildcards(&mut alive);
        for &byte in name {
            next.iter_mut().for_each(|state| *state = false);
            let mut any_alive = false;
            for (index, token) in self.tokens.iter().enumerate() {
                if !alive[index] {
                    continue;
                }
                match *token {
                    Token::Any => next[index] = true,
                    Token::Level if byte != DELIMITER as u8 => next[index] = true,
                    Token::Level => {}
                    Token::Byte(expected) if expected == byte => next[index + 1] = true,
                    Token::Byte(_) => {}
                }
                any_alive = true;
            }
            if !any_alive {
                return false;
            }
            self.close_over_wildcards(&mut next);
            std::mem::swap(&mut alive, &mut next);
        }
        alive[states - 1]
    }

    /// A wildcard may match nothing: where a state before a wildcard is
    /// alive, so is the state after it.
    fn close_over_wildcards(&self, alive: &mut [bool]) {
        for (index, token) in self.tokens.iter().enumerate() {
            if alive[index] && matches!(token, Token::Any | Token::Level) {
                alive[index + 1] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Pattern::new(pattern.as_bytes()).matches(name.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("*", ""));
        assert!(matches("%", "abc"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(matches("%/%", "a/b"));
        assert!(matches("*b", "a/b"));
        assert!(!matches("a", "ab"));
        assert!(!matches("ab", "a"));
        assert!(matches("a%b", "ab"));
        assert!(matches("a%b", "axxb"));
        assert!(!matches("a%b", "ax/b"));
        assert!(matches("a*b", "ax/b"));
        assert!(matches("%*", "a/b"));
        assert!(matches("*%", "a/b"));
        assert!(!matches("%%", "a/b"));
        assert!(matches("INBOX", "INBOX"));
        assert!(!matches("", "x"));
        assert!(matches("", ""));
    }

    #[test]
    fn matching_agrees_with_a_plain_backtracking_matcher() {
        fn reference(pattern: &[u8], name: &[u8]) -> bool {
            match pattern.split_first() {
                None => name.is_empty(),
                Some((b'*', rest)) => (0..=name.len()).any(|skip| reference(rest, &name[skip..])),
                Some((b'%', rest)) => {
                    let end = name.iter().position(|&b| b == b'/').unwrap_or(name.len());
                    (0..=end).any(|skip| reference(rest, &name[skip..]))
                }
                Some((&head, rest)) => name.first() == Some(&head) && reference(rest, &name[1..]),
            }
        }
        let alphabet = [b'a', b'/', b'*', b'%'];
        let names = ["", "a", "a/", "/a", "aa/a", "a/a/a", "//", "aaa"];
        // Every pattern of up to four symbols against every name.
        let mut patterns: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = patterns
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |&c| {
                        let mut q = p.clone();
                        q.push(c);
                        q
                    })
                })
                .collect();
            patterns.extend(longer);
        }
        for pattern in &patterns {
            for name in names {
                assert_eq!(
                    Pattern::new(pattern).matches(name.as_bytes()),
                    reference(pattern, name.as_bytes()),
                    "{:?} against {name:?}",
                    String::from_utf8_lossy(pattern)
                );
            }
        }
    }

    #[test]
    fn hostile_patterns_cost_linear_work() {
        // 20,000 stars were a stack overflow; 40 stars and an x were
        // exponential backtracking. Now each is one pass.
        let stars = "*".repeat(20_000);
        assert!(matches(&stars, "anything/at/all"));
        let mut trap = "*".repeat(40);
        trap.push('x');
        assert!(!matches(&trap, &"a".repeat(1000)));
        let alternating = "*a".repeat(500);
        assert!(!matches(&alternating, &"a".repeat(499)));
        assert!(matches(&alternating, &"a".repeat(500)));
    }
}
