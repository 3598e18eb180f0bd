//! A value loaded from the database and refreshed after a time-to-live.
//!
//! Refreshes happen on use, by one caller at a time; while one caller
//! refreshes, the others keep using the previous copy. A refresh that fails
//! keeps the last good copy (and logs why), so a database hiccup does not
//! turn into refused logins or vanished domains.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub struct Refreshing<T> {
    name: &'static str,
    ttl: Duration,
    current: RwLock<Option<(Arc<T>, Instant)>>,
    refreshing: Mutex<()>,
    /// Loads that succeeded, and that failed (for the metrics).
    loads: AtomicU64,
    failures: AtomicU64,
    /// When the copy served was loaded (a failed refresh keeps it, and its age).
    loaded_at: RwLock<Option<Instant>>,
}

/// What the metrics and the readiness probe know of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStatus {
    pub name: &'static str,
    /// Age of the copy served; `None` until the first load succeeds.
    pub age: Option<Duration>,
    pub refreshes: u64,
    pub failures: u64,
}

impl<T> Refreshing<T> {
    pub fn new(name: &'static str, ttl: Duration) -> Refreshing<T> {
        Refreshing {
            name,
            ttl,
            current: RwLock::new(None),
            refreshing: Mutex::new(()),
            loads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            loaded_at: RwLock::new(None),
        }
    }

    pub fn status(&self) -> CacheStatus {
        let loaded_at = *self
            .loaded_at
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        CacheStatus {
            name: self.name,
            age: loaded_at.map(|at| at.elapsed()),
            refreshes: self.loads.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    fn snapshot(&self) -> Option<(Arc<T>, Instant)> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc;
        // the value inside is still whole.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, value: Arc<T>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((value, Instant::now()));
    }

    /// The cached value, refreshed with `load` when older than the TTL.
    pub async fn get<E, F, Fut>(&self, load: F) -> Result<Arc<T>, E>
    where
        E: std::fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let snapshot = self.snapshot();
        if let Some((value, at)) = &snapshot
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let _guard = match (self.refreshing.try_lock(), &snapshot) {
            (Ok(guard), _) => guard,
            // Someone else is refreshing: the previous copy will do meanwhile.
            (Err(_), Some((value, _))) => return Ok(value.clone()),
            (Err(_), None) => self.refreshing.lock().await,
        };
        // Another caller may have finished a refresh while we waited.
        if let Some((value, at)) = self.snapshot()
            && at.elapsed() < self.ttl
        {
            return Ok(value);
        }
        match load().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.replace(fresh.clone());
                self.loads.fetch_add(1, Ordering::Relaxed);
                *self
                    .loaded_at
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
                Ok(fresh)
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                match snapshot {
                    Some((stale, _)) => {
                        tracing::warn!(cache = self.name, %error, "refresh failed; serving the last good copy");
                        // Try again after another TTL rather than on every use.
                        self.replace(stale.clone());
                        Ok(stale)
                    }
                    None => Err(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_cached_copy_until_the_ttl_passes() {
        let cache = Refreshing::new("test", Duration::from_secs(3600));
        let first = cache.get(|| async { Ok::<_, String>(1) }).await.unwrap();
        let second = cache.get(|| async { Ok::<_, String>(2) }).await.unwrap();
        assert_eq!((*first, *second), (1, 1));
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_copy() {
        let cache = Refreshing::new("test", Duration::from_millis(1));
        cache.get(|| async { Ok::<_, String>(7) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let kept = cache
            .get(|| async { Err::<i32, _>("down".to_string()) })
            .await
            .unwrap();
        assert_eq!(*kept, 7);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let fresh = cache.get(|| async { Ok::<_, String>(8) }).await.unwrap();
        assert_eq!(*fresh, 8);
    }

    #[tokio::test]
    async fn a_first_load_that_fails_is_an_error() {
        let cache: Refreshing<i32> = Refreshing::new("test", Duration::from_secs(1));
        let result = cache
            .get(|| async { Err::<i32, _>("down".to_string()) })
            .await;
        assert_eq!(result.unwrap_err(), "down");
    }
}
