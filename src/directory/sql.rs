//! The self-hosted directory: accounts, tokens, domains and bans in the SQL
//! database of `DATABASE_URL`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use subtle::ConstantTimeEq;

use super::cache::Refreshing;
use super::domains::{DomainList, DomainRefusal};
use super::*;
use crate::store::{AccountStore, StoreError, UserRecord};

pub struct SqlDirectory {
    accounts: Arc<dyn AccountStore>,
    domains: Refreshing<DomainList>,
    bans: Refreshing<BanList>,
}

impl SqlDirectory {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        domain_ttl: Duration,
        ban_ttl: Duration,
    ) -> SqlDirectory {
        SqlDirectory {
            accounts,
            domains: Refreshing::new("domains", domain_ttl),
            bans: Refreshing::new("bans", ban_ttl),
        }
    }

    async fn domain_list(&self) -> Result<Arc<DomainList>, StoreError> {
        self.domains
            .get(|| async { Ok(DomainList::new(self.accounts.domains().await?)) })
            .await
    }
}

/// `active` and `trialing` pass; `past_due` passes until its end date.
pub fn subscription_allows_login(user: &UserRecord, now: chrono::DateTime<Utc>) -> bool {
    match user.subscription_status.as_deref().map(str::trim) {
        Some(status)
            if status.eq_ignore_ascii_case("active") || status.eq_ignore_ascii_case("trialing") =>
        {
            true
        }
        Some(status) if status.eq_ignore_ascii_case("past_due") => {
            user.subscription_end_date.is_some_and(|end| end > now)
        }
        _ => false,
    }
}

fn unavailable(error: StoreError) -> AuthError {
    tracing::error!(%error, "directory lookup failed during login");
    AuthError::Unavailable
}

#[async_trait]
impl Directory for SqlDirectory {
    async fn authenticate(&self, login: &str, token: &str) -> Result<Account, AuthError> {
        let record = self
            .accounts
            .token(token)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::InvalidToken)?;
        // The lookup is by index; the comparison of what came back is constant-time
        // so that nothing about the stored token leaks through timing.
        if !bool::from(record.token.as_bytes().ct_eq(token.as_bytes())) {
            return Err(AuthError::InvalidToken);
        }
        let user = self
            .accounts
            .user(&record.user_id)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::InvalidToken)?;
        if !user.email.trim().eq_ignore_ascii_case(login.trim()) {
            return Err(AuthError::InvalidToken);
        }
        let now = Utc::now();
        if record.expires_at.is_some_and(|expiry| expiry <= now) {
            return Err(AuthError::Expired);
        }
        if !subscription_allows_login(&user, now) {
            return Err(AuthError::SubscriptionInactive);
        }
        self.accounts
            .touch_token(&record.id, now)
            .await
            .map_err(unavailable)?;
        Ok(Account {
            user_id: user.id,
            email: user.email.to_lowercase(),
        })
    }

    async fn may_create_address(&self, user_id: &str, address: &str) -> Result<(), AddressRefusal> {
        let (address, domain) = parse_address(address)?;
        let bans = self.bans().await.map_err(|_| AddressRefusal::Unavailable)?;
        if bans.is_banned(Scope::Domain, &domain) {
            return Err(AddressRefusal::DomainBanned);
        }
        if bans.is_banned(Scope::Email, &address) {
            return Err(AddressRefusal::AddressBanned);
        }
        let domains = self.domain_list().await.map_err(|error| {
            tracing::error!(%error, "cannot load domains");
            AddressRefusal::Unavailable
        })?;
        domains
            .check(user_id, &domain)
            .map_err(|refusal| match refusal {
                DomainRefusal::NotYours => AddressRefusal::NotYourDomain,
                DomainRefusal::Inactive => AddressRefusal::DomainInactive,
            })
    }

    async fn bans(&self) -> Result<Arc<BanList>, Unavailable> {
        self.bans
            .get(|| async { Ok::<_, StoreError>(BanList::new(&self.accounts.bans().await?)) })
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot load bans");
                Unavailable(error.to_string())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as Span;

    fn user(status: Option<&str>, end_in_days: Option<i64>) -> UserRecord {
        UserRecord {
            id: "u".into(),
            email: "u@example.com".into(),
            subscription_status: status.map(str::to_owned),
            subscription_end_date: end_in_days.map(|d| Utc::now() + Span::days(d)),
        }
    }

    #[test]
    fn the_subscription_gate() {
        let now = Utc::now();
        assert!(subscription_allows_login(&user(Some("active"), None), now));
        assert!(subscription_allows_login(
            &user(Some("trialing"), None),
            now
        ));
        assert!(subscription_allows_login(
            &user(Some("past_due"), Some(3)),
            now
        ));
        assert!(!subscription_allows_login(
            &user(Some("past_due"), Some(-3)),
            now
        ));
        assert!(!subscription_allows_login(
            &user(Some("past_due"), None),
            now
        ));
        assert!(!subscription_allows_login(
            &user(Some("canceled"), Some(30)),
            now
        ));
        assert!(!subscription_allows_login(&user(None, None), now));
    }
}
