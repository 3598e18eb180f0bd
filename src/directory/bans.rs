//! Ban evaluation: which addresses may not be created or selected, which
//! domains may not be used, and whose mail is hidden.
//!
//! Matching is case-insensitive. `exact` compares whole values; `contains`
//! looks for a substring, and a value written `contains:foo` is the legacy
//! spelling of `contains` + `foo`. Substring bans are compiled into one
//! Aho-Corasick automaton per scope, so a check costs one pass over the input
//! however many bans there are.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use aho_corasick::AhoCorasick;

use crate::store::BanRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A disposable address; also hides mail from that address (legacy).
    Email,
    Domain,
    Sender,
}

/// The active bans of one scope.
#[derive(Debug, Default)]
struct Rules {
    exact: HashSet<String>,
    contains: Option<AhoCorasick>,
}

impl Rules {
    fn build(values: Vec<(String, bool)>) -> Rules {
        let mut exact = HashSet::new();
        let mut patterns = Vec::new();
        for (value, is_contains) in values {
            if is_contains {
                patterns.push(value);
            } else {
                exact.insert(value);
            }
        }
        let contains = if patterns.is_empty() {
            None
        } else {
            // Patterns are plain lower-case strings; building cannot fail for them
            // short of exhausting memory, in which case the substring bans are skipped
            // rather than failing every lookup.
            AhoCorasick::new(&patterns).ok()
        };
        Rules { exact, contains }
    }

    /// `lowered` must already be lower case.
    fn matches(&self, lowered: &str) -> bool {
        self.exact.contains(lowered)
            || self
                .contains
                .as_ref()
                .is_some_and(|automaton| automaton.is_match(lowered))
    }
}

/// Every active ban, compiled for lookups.
#[derive(Debug, Default)]
pub struct BanList {
    email: Rules,
    domain: Rules,
    sender: Rules,
    count: usize,
    fingerprint: u64,
}

/// A hash of the normalised rules of every scope, sorted so that row order
/// does not matter. Sorts in place; `Rules::build` does not care about order.
fn fingerprint(by_scope: &mut [Vec<(String, bool)>; 3]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for rules in by_scope.iter_mut() {
        rules.sort_unstable();
        rules.dedup();
        rules.hash(&mut hasher);
    }
    hasher.finish()
}

impl BanList {
    pub fn new(records: &[BanRecord]) -> BanList {
        let mut by_scope: [Vec<(String, bool)>; 3] = Default::default();
        let mut count = 0;
        for record in records.iter().filter(|r| r.active) {
            let scope = match record.scope.as_str() {
                "email" => 0,
                "domain" => 1,
                "sender" => 2,
                _ => continue,
            };
            let lowered = record.value.trim().to_lowercase();
            let (value, is_contains) = match lowered.strip_prefix("contains:") {
                Some(rest) => (rest.trim().to_owned(), true),
                None => (lowered, record.match_type.eq_ignore_ascii_case("contains")),
            };
            if value.is_empty() {
                // An empty substring would match everything; that is never what
                // an operator meant.
                continue;
            }
            by_scope[scope].push((value, is_contains));
            count += 1;
        }
        let fingerprint = fingerprint(&mut by_scope);
        let [email, domain, sender] = by_scope;
        BanList {
            email: Rules::build(email),
            domain: Rules::build(domain),
            sender: Rules::build(sender),
            count,
            fingerprint,
        }
    }

    /// Equal for two lists built from the same active bans, in any order.
    /// Sessions compare it to tell a refresh that changed nothing (the usual
    /// case) from one that must re-filter their mailbox.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_banned(&self, scope: Scope, value: &str) -> bool {
        let lowered = value.trim().to_lowercase();
        match scope {
            Scope::Email => self.email.matches(&lowered),
            Scope::Domain => self.domain.matches(&lowered),
            Scope::Sender => self.sender.matches(&lowered),
        }
    }

    /// Whether mail from this `From` value is hidden: a `sender` ban, or an
    /// `email` ban (legacy deployments used those for senders too). Exact bans
    /// compare the bare address inside `Name <addr>`; substring bans look at
    /// the whole value.
    pub fn hides_sender(&self, from: &str) -> bool {
        if self.count == 0 {
            return false;
        }
        let whole = from.trim().to_lowercase();
        let address = bare_address(&whole);
        self.sender.exact.contains(address)
            || self.email.exact.contains(address)
            || [&self.sender, &self.email]
                .iter()
                .any(|rules| rules.contains.as_ref().is_some_and(|a| a.is_match(&whole)))
    }
}

/// `Name <a@b>` to `a@b`; anything else unchanged.
fn bare_address(from: &str) -> &str {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => from[open + 1..close].trim(),
        _ => from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(scope: &str, value: &str, match_type: &str) -> BanRecord {
        BanRecord {
            id: String::new(),
            scope: scope.into(),
            value: value.into(),
            match_type: match_type.into(),
            active: true,
        }
    }

    #[test]
    fn the_fingerprint_changes_only_with_the_active_rules() {
        let a = ban("sender", "spam@x.com", "exact");
        let b = ban("domain", "evil", "contains");
        let mut inactive = ban("email", "old@x.com", "exact");
        inactive.active = false;
        let base = BanList::new(&[a.clone(), b.clone()]).fingerprint();
        assert_eq!(
            BanList::new(&[b.clone(), inactive, a.clone()]).fingerprint(),
            base
        );
        assert_eq!(
            BanList::new(&[ban("sender", "SPAM@x.com", "exact"), b.clone()]).fingerprint(),
            base
        );
        assert_ne!(BanList::new(std::slice::from_ref(&a)).fingerprint(), base);
        assert_ne!(
            BanList::new(&[a, ban("domain", "evil", "exact")]).fingerprint(),
            base
        );
    }

    #[test]
    fn exact_bans_ignore_case_and_need_the_whole_value() {
        let bans = BanList::new(&[ban("domain", "Evil.COM", "exact")]);
        assert!(bans.is_banned(Scope::Domain, "evil.com"));
        assert!(bans.is_banned(Scope::Domain, "EVIL.com"));
        assert!(!bans.is_banned(Scope::Domain, "notevil.com"));
        assert!(!bans.is_banned(Scope::Email, "evil.com"));
    }

    #[test]
    fn contains_bans_match_substrings_in_both_spellings() {
        let bans = BanList::new(&[
            ban("domain", "spam", "contains"),
            ban("email", "contains:Admin", "exact"),
        ]);
        assert!(bans.is_banned(Scope::Domain, "myspamhost.net"));
        assert!(bans.is_banned(Scope::Email, "superadmin@x.com"));
        assert!(!bans.is_banned(Scope::Email, "alice@x.com"));
    }

    #[test]
    fn inactive_and_empty_bans_do_nothing() {
        let mut inactive = ban("sender", "a@b.c", "exact");
        inactive.active = false;
        let bans = BanList::new(&[inactive, ban("sender", "contains:", "exact")]);
        assert!(bans.is_empty());
        assert!(!bans.hides_sender("a@b.c"));
    }

    #[test]
    fn senders_are_hidden_by_sender_and_legacy_email_bans() {
        let bans = BanList::new(&[
            ban("sender", "spammer@bad.example", "exact"),
            ban("email", "old@legacy.example", "exact"),
            ban("sender", "casino", "contains"),
        ]);
        assert!(bans.hides_sender("Spammer <SPAMMER@bad.example>"));
        assert!(bans.hides_sender("old@legacy.example"));
        assert!(bans.hides_sender("Best Casino <win@x.example>"));
        assert!(!bans.hides_sender("friend@good.example"));
    }

    #[test]
    fn ten_thousand_bans_compile_and_match() {
        let records: Vec<BanRecord> = (0..10_000)
            .map(|i| ban("sender", &format!("contains:pattern{i}x"), "exact"))
            .collect();
        let bans = BanList::new(&records);
        assert_eq!(bans.len(), 10_000);
        assert!(bans.hides_sender("someone-pattern9999x@x.example"));
        assert!(!bans.hides_sender("someone@x.example"));
    }
}
