//! Which disposable addresses a user may create, and which bans apply: the
//! rules of ARCHITECTURE (accounts, domains and bans) over cached domain and ban lists. Both directories use
//! this one policy, so their answers cannot drift apart; only where the rows
//! come from differs (`Origin`), per list, which is what Supabase's
//! `USE_SUPABASE_DOMAINS` / `USE_SUPABASE_BANS` toggles choose.

use std::sync::Arc;
use std::time::Duration;

use super::cache::{CacheStatus, Refreshing};
use super::domains::{DomainList, DomainRefusal};
use super::supabase::SupabaseClient;
use super::{AddressRefusal, BanList, Scope, Unavailable, parse_address};
use crate::store::{AccountStore, BanRecord, DomainRecord};

/// Where domain or ban rows are read from.
#[derive(Clone)]
pub enum Origin {
    /// The SQL database of `DATABASE_URL`.
    Sql(Arc<dyn AccountStore>),
    /// Supabase's REST API.
    Supabase(Arc<SupabaseClient>),
}

impl Origin {
    async fn domains(&self) -> Result<Vec<DomainRecord>, Unavailable> {
        match self {
            Origin::Sql(store) => store.domains().await.map_err(unavailable),
            Origin::Supabase(client) => client.domains().await.map_err(unavailable),
        }
    }

    async fn bans(&self) -> Result<Vec<BanRecord>, Unavailable> {
        match self {
            Origin::Sql(store) => store.bans().await.map_err(unavailable),
            Origin::Supabase(client) => client.bans().await.map_err(unavailable),
        }
    }
}

fn unavailable(error: impl std::fmt::Display) -> Unavailable {
    Unavailable(error.to_string())
}

/// Domain ownership and bans, each list cached with its own refresh time.
pub struct AddressPolicy {
    domain_origin: Origin,
    ban_origin: Origin,
    domains: Refreshing<DomainList>,
    bans: Refreshing<BanList>,
}

impl AddressPolicy {
    pub fn new(
        domain_origin: Origin,
        domain_ttl: Duration,
        ban_origin: Origin,
        ban_ttl: Duration,
    ) -> AddressPolicy {
        AddressPolicy {
            domain_origin,
            ban_origin,
            domains: Refreshing::new("domains", domain_ttl),
            bans: Refreshing::new("bans", ban_ttl),
        }
    }

    /// Checks domain ownership and bans for a new disposable address.
    pub async fn may_create_address(
        &self,
        user_id: &str,
        address: &str,
    ) -> Result<(), AddressRefusal> {
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

    /// The active bans, from the cache.
    pub async fn bans(&self) -> Result<Arc<BanList>, Unavailable> {
        self.bans
            .get(|| async { Ok::<_, Unavailable>(BanList::new(&self.ban_origin.bans().await?)) })
            .await
            .inspect_err(|error| tracing::error!(%error, "cannot load bans"))
    }

    /// Loads both lists, so that the first login does not wait for them
    /// and the readiness probe knows the directory answers.
    pub async fn warm_up(&self) -> Result<(), Unavailable> {
        self.bans().await?;
        self.domain_list().await?;
        Ok(())
    }

    pub fn caches(&self) -> Vec<CacheStatus> {
        vec![self.domains.status(), self.bans.status()]
    }

    async fn domain_list(&self) -> Result<Arc<DomainList>, Unavailable> {
        self.domains
            .get(|| async { Ok(DomainList::new(self.domain_origin.domains().await?)) })
            .await
    }
}
