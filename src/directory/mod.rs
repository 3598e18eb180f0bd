//! Accounts, tokens, subscriptions, domains and bans: who may log in, which
//! addresses they may create, and whose mail is hidden. Never touches the socket.

pub mod bans;
pub mod cache;
pub mod domains;
pub mod policy;
pub mod sql;
pub mod supabase;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

pub use bans::{BanList, Scope};
pub use sql::{SqlDirectory, subscription_allows_login};
pub use supabase::SupabaseDirectory;

use crate::store::{TokenStanding, UserRecord};

/// A customer who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: String,
    pub email: String,
    /// The token this session logged in with: what the periodic re-check
    /// asks about (`Directory::recheck`).
    pub token_id: String,
}

/// Why a login failed. The messages are the deployment's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown token, or a token presented with someone else's email: never
    /// confirm to the wrong user that a token exists.
    #[error("Invalid IMAP token")]
    InvalidToken,
    #[error("IMAP token has expired")]
    Expired,
    #[error("Your subscription is not active. Please renew your subscription to use IMAP.")]
    SubscriptionInactive,
    #[error("Authentication is temporarily unavailable, try again later")]
    Unavailable,
}

/// Why an address may not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    #[error("Not a valid email address")]
    Malformed,
    #[error("This domain is banned")]
    DomainBanned,
    #[error("This address is banned")]
    AddressBanned,
    #[error("You can only create addresses on your own domains or a global domain")]
    NotYourDomain,
    #[error("This domain is not active")]
    DomainInactive,
    #[error("Domain and ban data are temporarily unavailable, try again later")]
    Unavailable,
}

/// The directory could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("directory unavailable: {0}")]
pub struct Unavailable(pub String);

#[async_trait]
pub trait Directory: Send + Sync {
    /// Checks a login name and IMAP token (ARCHITECTURE: accounts, domains and bans).
    async fn authenticate(&self, login: &str, token: &str) -> Result<Account, AuthError>;
    /// Checks domain ownership and bans for a new disposable address.
    async fn may_create_address(&self, user_id: &str, address: &str) -> Result<(), AddressRefusal>;
    /// The active bans, from the cache.
    async fn bans(&self) -> Result<Arc<BanList>, Unavailable>;
    /// Tokens (by id) and their owners as they are now, never from a cache:
    /// for the periodic re-check of live sessions. Tokens that no longer
    /// exist are simply absent. Callers page: at most `RECHECK_PAGE` ids.
    async fn recheck(&self, token_ids: &[String]) -> Result<Vec<TokenStanding>, Unavailable>;
    /// Loads the domain and ban caches now (at start-up, and from the
    /// readiness probe until they have loaded once).
    async fn warm_up(&self) -> Result<(), Unavailable>;
    /// The caches as they are, for the metrics and the readiness probe.
    fn caches(&self) -> Vec<cache::CacheStatus>;
}

/// The most token ids one `Directory::recheck` call is asked about.
pub const RECHECK_PAGE: usize = 500;

impl Account {
    /// The account of a user who passed every check.
    pub fn of(user: UserRecord, token_id: String) -> Account {
        Account {
            user_id: user.id,
            email: user.email.to_lowercase(),
            token_id,
        }
    }

    /// Whether this session may go on, given what its token and its owner
    /// look like now (`None`: the token is gone). The same rules and answers
    /// as LOGIN, except the email: it was checked at login, and only the
    /// owner's id must still match.
    pub fn still_allowed(
        &self,
        now_standing: Option<&TokenStanding>,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let Some(standing) = now_standing else {
            return Err(AuthError::InvalidToken);
        };
        // LOGIN's order: whose token it is before whether it expired.
        let owner = match &standing.owner {
            Some(owner) if standing.user_id == self.user_id => owner,
            _ => return Err(AuthError::InvalidToken),
        };
        if standing.expires_at.is_some_and(|expiry| expiry <= now) {
            return Err(AuthError::Expired);
        }
        if !subscription_allows_login(owner, now) {
            return Err(AuthError::SubscriptionInactive);
        }
        Ok(())
    }
}

/// The token a lookup returned must be the one presented. The lookup is by
/// index; comparing what came back in constant time keeps timing from telling
/// anything about the stored token.
pub fn check_token(stored: &str, presented: &str) -> Result<(), AuthError> {
    if bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::InvalidToken)
    }
}

/// The checks after a token was found, in the order that never confirms a
/// token to the wrong user: the owner's email first (a mismatch is the same
/// answer as an unknown token, even for an expired one), then the expiry,
/// then the subscription. Every directory runs these, so answers are identical.
pub fn check_owner(
    login: &str,
    expires_at: Option<DateTime<Utc>>,
    owner: &UserRecord,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    if !owner.email.trim().eq_ignore_ascii_case(login.trim()) {
        return Err(AuthError::InvalidToken);
    }
    if expires_at.is_some_and(|expiry| expiry <= now) {
        return Err(AuthError::Expired);
    }
    if !subscription_allows_login(owner, now) {
        return Err(AuthError::SubscriptionInactive);
    }
    Ok(())
}

/// Splits and checks a disposable address: `local@domain`, with a plain
/// dot-atom local part and a domain of at least two labels. Returns the lower-case
/// address and its domain.
pub fn parse_address(name: &str) -> Result<(String, String), AddressRefusal> {
    let lowered = name.trim().to_lowercase();
    let (local, domain) = lowered.split_once('@').ok_or(AddressRefusal::Malformed)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        let domain = domain.to_owned();
        Ok((lowered, domain))
    } else {
        Err(AddressRefusal::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lowercased_and_split() {
        assert_eq!(
            parse_address("Box.1+tag@Sub.Example.COM"),
            Ok(("box.1+tag@sub.example.com".into(), "sub.example.com".into()))
        );
    }

    fn standing(user_id: &str, expired: bool, status: Option<&str>) -> TokenStanding {
        let now = Utc::now();
        TokenStanding {
            token_id: "t".into(),
            user_id: user_id.into(),
            expires_at: Some(now + chrono::Duration::hours(if expired { -1 } else { 1 })),
            owner: status.map(|status| UserRecord {
                id: user_id.into(),
                email: "u@example.com".into(),
                subscription_status: Some(status.into()),
                subscription_end_date: None,
            }),
        }
    }

    #[test]
    fn a_live_session_is_judged_in_logins_order() {
        let account = Account {
            user_id: "u".into(),
            email: "u@example.com".into(),
            token_id: "t".into(),
        };
        let now = Utc::now();
        let verdict = |s: Option<TokenStanding>| account.still_allowed(s.as_ref(), now);
        assert_eq!(verdict(Some(standing("u", false, Some("active")))), Ok(()));
        assert_eq!(verdict(None), Err(AuthError::InvalidToken));
        let moved = standing("v", true, Some("canceled"));
        assert_eq!(verdict(Some(moved)), Err(AuthError::InvalidToken));
        let owner_gone = standing("u", true, None);
        assert_eq!(verdict(Some(owner_gone)), Err(AuthError::InvalidToken));
        let expired = standing("u", true, Some("canceled"));
        assert_eq!(verdict(Some(expired)), Err(AuthError::Expired));
        let lapsed = standing("u", false, Some("canceled"));
        assert_eq!(verdict(Some(lapsed)), Err(AuthError::SubscriptionInactive));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "nobody",
            "@example.com",
            "a@",
            "a@example",
            "a@@example.com",
            "a b@example.com",
            "a/b@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-x.example.com",
            "a@exa_mple.com",
        ] {
            assert_eq!(parse_address(bad), Err(AddressRefusal::Malformed), "{bad}");
        }
    }
}
