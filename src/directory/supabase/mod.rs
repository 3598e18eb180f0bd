//! Supabase mode (README: Supabase mode): tokens, accounts and subscriptions are read
//! from Supabase over HTTP; domains and bans from Supabase or from
//! `DATABASE_URL`, per toggle. Inboxes and mail stay in `DATABASE_URL`.
//!
//! The answers are the SQL directory's, word for word: the same checks
//! (`check_owner`), the same address policy, the same errors.

mod accounts;
mod client;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

pub use accounts::AccountCache;
use client::SubscriptionRow;
pub use client::{SupabaseClient, SupabaseError};

use super::policy::{AddressPolicy, Origin};
use super::*;
use crate::store::{AccountStore, TokenStanding, UserRecord};

/// What Supabase mode needs beyond the client.
#[derive(Clone)]
pub struct SupabaseSettings {
    /// Read domains from Supabase (`USE_SUPABASE_DOMAINS`), else from SQL.
    pub use_domains: bool,
    /// Read bans from Supabase (`USE_SUPABASE_BANS`), else from SQL.
    pub use_bans: bool,
    pub domain_ttl: Duration,
    pub ban_ttl: Duration,
    /// How long an account's email and subscription are remembered.
    pub account_ttl: Duration,
}

pub struct SupabaseDirectory {
    client: Arc<SupabaseClient>,
    accounts: AccountCache,
    policy: AddressPolicy,
}

impl SupabaseDirectory {
    /// `local` is the SQL database, used for domains or bans whose toggle is off.
    pub fn new(
        client: SupabaseClient,
        local: Arc<dyn AccountStore>,
        settings: &SupabaseSettings,
    ) -> SupabaseDirectory {
        let client = Arc::new(client);
        let origin = |remote: bool| {
            if remote {
                Origin::Supabase(client.clone())
            } else {
                Origin::Sql(local.clone())
            }
        };
        let policy = AddressPolicy::new(
            origin(settings.use_domains),
            settings.domain_ttl,
            origin(settings.use_bans),
            settings.ban_ttl,
        );
        SupabaseDirectory {
            accounts: AccountCache::new(settings.account_ttl),
            client,
            policy,
        }
    }

    /// The token owner's email and subscription, from the cache or from
    /// GoTrue and PostgREST asked at the same time. `None`: no such user.
    async fn owner(&self, user_id: &str) -> Result<Option<UserRecord>, SupabaseError> {
        if let Some(user) = self.accounts.get(user_id) {
            return Ok(Some(user));
        }
        let (email, subscription) = tokio::join!(
            self.client.email(user_id),
            self.client.subscription(user_id)
        );
        let Some(email) = email? else {
            return Ok(None);
        };
        // An account without a `public.users` row has no subscription.
        let subscription = subscription?.unwrap_or_default();
        let user = UserRecord {
            id: user_id.to_owned(),
            email,
            subscription_status: subscription.subscription_status,
            subscription_end_date: subscription.subscription_end_date,
        };
        // Only accounts that may log in are remembered: a renewed subscription
        // must work at the next login, not one TTL later.
        if subscription_allows_login(&user, Utc::now()) {
            self.accounts.put(user.clone());
        }
        Ok(Some(user))
    }

    /// Records the login without making the client wait for it: the answer
    /// does not depend on it, and a failure only costs a stale `last_used_at`.
    fn touch_token_later(&self, token_id: String) {
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(error) = client.touch_token(&token_id, Utc::now()).await {
                tracing::warn!(%error, "cannot record the token's last use");
            }
        });
    }
}

fn unavailable(error: SupabaseError) -> AuthError {
    tracing::error!(%error, "Supabase lookup failed during login");
    AuthError::Unavailable
}

#[async_trait]
impl Directory for SupabaseDirectory {
    async fn authenticate(&self, login: &str, token: &str) -> Result<Account, AuthError> {
        let record = self
            .client
            .token(token)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::InvalidToken)?;
        check_token(&record.token, token)?;
        let owner = self
            .owner(&record.user_id)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::InvalidToken)?;
        check_owner(login, record.expires_at, &owner, Utc::now())?;
        self.touch_token_later(record.id.clone());
        Ok(Account::of(owner, record.id))
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

    /// Two requests per page whatever the number of sessions: the tokens,
    /// then their owners' subscriptions, each with one `in.(…)` filter (or a
    /// few, when the ids would make a request line longer than the gateway
    /// takes: `client::in_lists`). Not
    /// through the account cache: the point is to see what changed. Emails
    /// are not asked for (GoTrue has no batch lookup): they were checked at
    /// login, and the token's owner id is what must still match.
    async fn recheck(&self, token_ids: &[String]) -> Result<Vec<TokenStanding>, Unavailable> {
        let failed = |e: SupabaseError| Unavailable(e.to_string());
        let tokens = self.client.tokens_by_id(token_ids).await.map_err(failed)?;
        let mut owners: Vec<String> = tokens.iter().map(|t| t.user_id.clone()).collect();
        owners.sort();
        owners.dedup();
        let subscriptions: HashMap<String, SubscriptionRow> = self
            .client
            .subscriptions(&owners)
            .await
            .map_err(failed)?
            .into_iter()
            .collect();
        Ok(tokens
            .into_iter()
            .map(|token| {
                // As at login, an account without a `public.users` row has
                // no subscription.
                let subscription = subscriptions
                    .get(&token.user_id)
                    .cloned()
                    .unwrap_or_default();
                let owner = Some(UserRecord {
                    id: token.user_id.clone(),
                    email: String::new(),
                    subscription_status: subscription.subscription_status,
                    subscription_end_date: subscription.subscription_end_date,
                });
                TokenStanding {
                    token_id: token.id,
                    user_id: token.user_id,
                    expires_at: token.expires_at,
                    owner,
                }
            })
            .collect())
    }
}
