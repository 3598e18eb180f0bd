//! How long statements wait for a connection from the pool: the sign of a
//! pool too small for its load, or of a database that stopped answering.
//! Counted here, where connections are taken, and read by the metrics at
//! each scrape; a few atomics, no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds.
pub const BOUNDS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Debug, Default)]
pub struct PoolWaits {
    /// Waits up to each bound (not cumulative), then the rest.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    total_nanos: AtomicU64,
}

/// The waits so far: how many fell in each bucket (up to each of
/// `BOUNDS`, then above the last), and their sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitTotals {
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
}

impl PoolWaits {
    pub fn record(&self, waited: Duration) {
        let seconds = waited.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn totals(&self) -> WaitTotals {
        let counts = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        WaitTotals {
            counts,
            sum_seconds: self.total_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_land_in_their_bucket_and_add_up() {
        let waits = PoolWaits::default();
        waits.record(Duration::from_micros(50));
        waits.record(Duration::from_millis(3));
        waits.record(Duration::from_secs(7));
        let totals = waits.totals();
        assert_eq!(totals.counts, vec![1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert!((totals.sum_seconds - 7.00305).abs() < 1e-6);
    }
}
