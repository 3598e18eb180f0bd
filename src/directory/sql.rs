//! The self-hosted directory: accounts, tokens, domains and bans in the SQL
//! database of `DATABASE_URL`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use super::policy::{AddressPolicy, Origin};
use super::*;
use crate::store::{AccountStore, StoreError, TokenStanding, UserRecord};

pub struct SqlDirectory {
    accounts: Arc<dyn AccountStore>,
    policy: AddressPolicy,
}

impl SqlDirectory {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        domain_ttl: Duration,
        ban_ttl: Duration,
    ) -> SqlDirectory {
        let origin = Origin::Sql(accounts.clone());
        SqlDirectory {
            accounts,
            policy: AddressPolicy::new(origin.clone(), domain_ttl, origin, ban_ttl),
        }
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
        check_token(&record.token, token)?;
        let user = self
            .accounts
            .user(&record.user_id)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::InvalidToken)?;
        let now = Utc::now();
        check_owner(login, record.expires_at, &user, now)?;
        self.accounts
            .touch_token(&record.id, now)
            .await
            .map_err(unavailable)?;
        Ok(Account::of(user, record.id))
    }

    async fn may_create_address(&self, user_id: &str, address: &str) -> Result<(), AddressRefusal> {
        self.policy.may_create_address(user_id, address).await
    }

    async fn bans(&self) -> Result<Arc<BanList>, Unavailable> {
        self.policy.bans().await
    }

    async fn warm_up(&self) -> Result<(), Unavailable> {
        self.policy.warm_up().await
    }

    fn caches(&self) -> Vec<super::cache::CacheStatus> {
        self.policy.caches()
    }

    async fn recheck(&self, token_ids: &[String]) -> Result<Vec<TokenStanding>, Unavailable> {
        self.accounts
            .token_standings(token_ids)
            .await
            .map_err(|e| Unavailable(e.to_string()))
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
