//! The composition root: the database, the directory and what every session
//! shares, built from the configuration. `main` joins this to the server.

use std::sync::Arc;

use crate::config::{Config, redact_url};
use crate::directory::supabase::{SupabaseClient, SupabaseSettings};
use crate::directory::{Directory, SqlDirectory, SupabaseDirectory};
use crate::imap::Services;
use crate::imap::penalty::LoginPenalties;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::store::Database;

/// Why the services could not be set up; each message names the cause.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot open the database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("cannot set up Supabase: {0}")]
    Supabase(String),
}

/// Opens the database (migrating it), starts listening for its change
/// notifications and chooses the directory.
pub async fn open(config: &Config) -> Result<Arc<Services>, SetupError> {
    let database = Database::open(&config.database_url, config.database_max_connections)
        .await
        .map_err(|e| SetupError::Database {
            url: redact_url(&config.database_url),
            reason: e.to_string(),
        })?;
    // Without this, PostgreSQL's NOTIFYs reach nobody and IDLE sees new
    // mail only at its next poll (IMAP_IDLE_POLL).
    let listening = database.listen_for_changes();
    forget_old_expunges(&database, config.expunged_retention);
    let mut metrics = Metrics::new();
    let directory = directory(config, &database, &metrics)?;
    metrics.watch_pool(database.backend.clone(), database.waits.clone());
    metrics.watch_directory(directory.clone());
    warm_up(directory.clone());
    if config.supabase.is_none() {
        hint_at_the_first_account(&database).await;
    }
    Ok(Arc::new(Services {
        store: database.mail.clone(),
        directory: directory.clone(),
        limits: config.limits.clone(),
        penalties: LoginPenalties::new(config.limits.auth_penalty_max),
        metrics: Arc::new(metrics),
        health: Health::new(database.backend.clone(), listening, directory),
    }))
}

/// Expunges are remembered for QRESYNC (docs/ARCHITECTURE.md,
/// Mod-sequences) for `retention`, no longer: once an hour, older ones are
/// forgotten, so the table follows the rate of expunges, not their sum.
fn forget_old_expunges(database: &Database, retention: std::time::Duration) {
    let store = database.mail.clone();
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return;
    };
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match store.forget_expunged(chrono::Utc::now() - retention).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "forgot expunges older than the retention"),
                Err(error) => tracing::warn!(%error, "could not forget old expunges"),
            }
        }
    });
}

/// Loads the domain and ban caches in the background, so that the first
/// login does not wait for them and readiness is reached without traffic.
/// A failure here is retried by the readiness probe and by the first use.
fn warm_up(directory: Arc<dyn Directory>) {
    tokio::spawn(async move {
        if let Err(error) = directory.warm_up().await {
            tracing::warn!(%error, "cannot load the domain and ban caches yet");
        }
    });
}

/// On an empty database nobody can log in: say how to change that.
async fn hint_at_the_first_account(database: &Database) {
    if let Ok(false) = database.accounts.has_users().await {
        tracing::info!(
            "no accounts yet: run `imap-server demo` for a demo account with mail, or create one with `imap-server admin users add EMAIL` and `imap-server admin tokens create EMAIL` (README: Admin commands)"
        );
    }
}

/// Supabase when configured (README: Supabase mode), else the SQL database.
fn directory(
    config: &Config,
    database: &Database,
    metrics: &Metrics,
) -> Result<Arc<dyn Directory>, SetupError> {
    let Some(supabase) = &config.supabase else {
        return Ok(Arc::new(SqlDirectory::new(
            database.accounts.clone(),
            config.domain_cache_ttl,
            config.ban_cache_ttl,
        )));
    };
    let mut client = SupabaseClient::new(&supabase.url, &supabase.service_key.0, supabase.timeout)
        .map_err(|e| SetupError::Supabase(e.to_string()))?;
    client.observe_with(metrics.supabase());
    let settings = SupabaseSettings {
        use_domains: supabase.use_domains,
        use_bans: supabase.use_bans,
        domain_ttl: config.domain_cache_ttl,
        ban_ttl: config.ban_cache_ttl,
        account_ttl: supabase.account_cache_ttl,
    };
    tracing::info!(
        url = %redact_url(&supabase.url),
        domains = if supabase.use_domains { "supabase" } else { "database" },
        bans = if supabase.use_bans { "supabase" } else { "database" },
        "accounts and tokens are checked through Supabase"
    );
    Ok(Arc::new(SupabaseDirectory::new(
        client,
        database.accounts.clone(),
        &settings,
    )))
}
