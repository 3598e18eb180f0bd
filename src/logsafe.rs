//! What client-supplied text may look like in a log line. A client chooses
//! its login name, mailbox names, ID fields and command text; written as
//! they are, a CR LF in one would start a forged log line and an ESC would
//! drive the operator's terminal. And clients swap fields (`LOGIN <token>
//! <email>`), so a login name is logged only when it looks like an address:
//! anything else may be a secret, and is logged as a short fingerprint that
//! still lets an operator tell repeated attempts apart.

use std::fmt::{self, Write};
use std::hash::{Hash, Hasher};

/// Client text with control characters (and the backslash that introduces
/// an escape) written as Rust escapes: `\n`, `\r`, `\u{1b}`.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// A login name as it may be logged: the name itself when it is a plausible
/// address, else `#` and eight hex digits of a hash of it.
pub struct LoginName<'a>(pub &'a str);

impl fmt::Display for LoginName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plausible_address(self.0) {
            f.write_str(self.0)
        } else {
            write!(f, "#{:08x}", fingerprint(self.0))
        }
    }
}

/// 32 bits of a hash: enough to tell attempts apart in a log, far too few to
/// learn anything about a 128-bit token from. The hasher has fixed keys, so
/// the same name gives the same fingerprint in every process.
fn fingerprint(text: &str) -> u32 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    (hasher.finish() >> 32) as u32
}

/// `local@domain.tld` in printable ASCII, within RFC 5321's lengths. Tokens
/// never hold an `@`, so one swapped into the login name is never logged.
fn is_plausible_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"(),:;<>@[\\]".contains(&b));
    let domain_ok = (3..=253).contains(&domain.len())
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line_or_reach_the_terminal() {
        let text =
            Escaped("alice\r\n2026-12-03 INFO login outcome=success\u{1b}[31m\\").to_string();
        assert_eq!(
            text,
            "alice\\r\\n2026-12-03 INFO login outcome=success\\u{1b}[31m\\\\"
        );
        assert!(!text.chars().any(char::is_control));
        assert_eq!(Escaped("Grüße aus Köln").to_string(), "Grüße aus Köln");
    }

    #[test]
    fn only_addresses_are_logged_as_login_names() {
        assert_eq!(
            LoginName("alice@example.com").to_string(),
            "alice@example.com"
        );
        let token = "3q2-7wEAAAAAAAAAu6qZTHdc0gqv8mKFcQ";
        let logged = LoginName(token).to_string();
        assert!(logged.starts_with('#') && logged.len() == 9, "{logged}");
        assert_eq!(logged, LoginName(token).to_string(), "stable");
        assert_ne!(logged, LoginName("another-token").to_string());
        for odd in [
            "",
            "@",
            "a@b",
            "a b@example.com",
            "a@exa mple.com",
            "a\r\n@x.com",
        ] {
            assert!(LoginName(odd).to_string().starts_with('#'), "{odd:?}");
        }
    }
}
