//! Which domains a user may create disposable addresses on (ARCHITECTURE: accounts, domains and bans).

use std::collections::HashMap;

use crate::store::DomainRecord;

/// Why an address may not be created on a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRefusal {
    /// No domain record covers it, or it belongs to someone else.
    NotYours,
    /// The covering domain is switched off.
    Inactive,
}

/// Every domain row, indexed by lower-case name.
#[derive(Debug, Default)]
pub struct DomainList {
    by_name: HashMap<String, Vec<DomainRecord>>,
}

impl DomainList {
    pub fn new(records: Vec<DomainRecord>) -> DomainList {
        let mut by_name: HashMap<String, Vec<DomainRecord>> = HashMap::new();
        for record in records {
            by_name
                .entry(record.domain.trim().trim_end_matches('.').to_lowercase())
                .or_default()
                .push(record);
        }
        DomainList { by_name }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// May `user_id` create an address on `domain`?
    ///
    /// The domain's own records decide when it has any: allowed when one is
    /// active and either the user's or global. Otherwise the nearest parent
    /// domain with records decides, and only ownership counts there: owning
    /// `example.com` allows `sub.example.com`, a global `example.com` does not.
    pub fn check(&self, user_id: &str, domain: &str) -> Result<(), DomainRefusal> {
        let domain = domain.to_lowercase();
        if let Some(records) = self.by_name.get(&domain) {
            return decide(records, |r| r.global || owned_by(r, user_id));
        }
        let mut rest = domain.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(records) = self.by_name.get(rest) {
                return decide(records, |r| owned_by(r, user_id));
            }
        }
        Err(DomainRefusal::NotYours)
    }
}

fn owned_by(record: &DomainRecord, user_id: &str) -> bool {
    record
        .user_id
        .as_deref()
        .is_some_and(|owner| owner.eq_ignore_ascii_case(user_id))
}

fn decide(
    records: &[DomainRecord],
    usable: impl Fn(&DomainRecord) -> bool,
) -> Result<(), DomainRefusal> {
    let mine: Vec<&DomainRecord> = records.iter().filter(|r| usable(r)).collect();
    if mine.is_empty() {
        Err(DomainRefusal::NotYours)
    } else if mine.iter().any(|r| r.active) {
        Ok(())
    } else {
        Err(DomainRefusal::Inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str, owner: Option<&str>, active: bool, global: bool) -> DomainRecord {
        DomainRecord {
            id: String::new(),
            domain: name.into(),
            user_id: owner.map(str::to_owned),
            active,
            global,
        }
    }

    fn list() -> DomainList {
        DomainList::new(vec![
            domain("Mine.example", Some("u1"), true, false),
            domain("theirs.example", Some("u2"), true, false),
            domain("off.example", Some("u1"), false, false),
            domain("global.example", None, true, true),
        ])
    }

    #[test]
    fn owned_active_domains_and_their_subdomains_are_usable() {
        let domains = list();
        assert_eq!(domains.check("u1", "mine.example"), Ok(()));
        assert_eq!(domains.check("u1", "deep.sub.mine.example"), Ok(()));
        assert_eq!(domains.check("u1", "MINE.EXAMPLE"), Ok(()));
    }

    #[test]
    fn global_domains_are_usable_by_anyone_but_not_their_subdomains() {
        let domains = list();
        assert_eq!(domains.check("u3", "global.example"), Ok(()));
        assert_eq!(
            domains.check("u3", "x.global.example"),
            Err(DomainRefusal::NotYours)
        );
    }

    #[test]
    fn other_peoples_unknown_and_inactive_domains_are_refused() {
        let domains = list();
        assert_eq!(
            domains.check("u1", "theirs.example"),
            Err(DomainRefusal::NotYours)
        );
        assert_eq!(
            domains.check("u1", "sub.theirs.example"),
            Err(DomainRefusal::NotYours)
        );
        assert_eq!(
            domains.check("u1", "unknown.example"),
            Err(DomainRefusal::NotYours)
        );
        assert_eq!(
            domains.check("u1", "off.example"),
            Err(DomainRefusal::Inactive)
        );
        assert_eq!(
            domains.check("u1", "a.off.example"),
            Err(DomainRefusal::Inactive)
        );
    }
}
