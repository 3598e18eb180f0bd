//! A short-lived memory of accounts (email and subscription by user id), so
//! that a login costs one round trip for the token instead of three.
//!
//! Only the owner's data is kept, never token rows: a revoked or expired token
//! fails at its next login. What may lag by up to the TTL is a change of email
//! or subscription in Supabase.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::store::UserRecord;

/// Past this many entries, expired ones are dropped on the next insert, so
/// the map stays near the number of accounts active within one TTL.
const PRUNE_ABOVE: usize = 4096;

pub struct AccountCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (UserRecord, Instant)>>,
}

impl AccountCache {
    /// A zero TTL turns the cache off.
    pub fn new(ttl: Duration) -> AccountCache {
        AccountCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, user_id: &str) -> Option<UserRecord> {
        // A poisoned lock only means a panic elsewhere during a map update;
        // the worst case is one stale or missing entry.
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(user_id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(user, _)| user.clone())
    }

    pub fn put(&self, user: UserRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= PRUNE_ABOVE {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        entries.insert(user.id.clone(), (user, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            email: format!("{id}@example.com"),
            subscription_status: Some("active".into()),
            subscription_end_date: None,
        }
    }

    #[test]
    fn entries_live_for_the_ttl() {
        let cache = AccountCache::new(Duration::from_secs(3600));
        cache.put(user("a"));
        assert_eq!(
            cache.get("a").map(|u| u.email),
            Some("a@example.com".into())
        );
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = AccountCache::new(Duration::ZERO);
        cache.put(user("a"));
        assert!(cache.get("a").is_none());
    }
}
