//! Latency percentiles from a sorted list of samples: exact, and small enough
//! for the few hundred thousand operations a run makes.

use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Completed operations.
    pub count: usize,
    /// Failed operations (each also printed once).
    pub errors: usize,
    pub elapsed: Duration,
    samples: Vec<Duration>,
}

impl Measured {
    pub fn new(mut samples: Vec<Duration>, errors: usize, elapsed: Duration) -> Measured {
        samples.sort_unstable();
        Measured {
            count: samples.len(),
            errors,
            elapsed,
            samples,
        }
    }

    /// Operations per second over the whole run.
    pub fn rate(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    /// The mean latency, in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        let total: Duration = self.samples.iter().sum();
        total.as_secs_f64() * 1000.0 / self.samples.len() as f64
    }

    /// The `p`-th percentile (0..=100), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.samples.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.samples.len()) - 1;
        self.samples[index].as_secs_f64() * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let measured = Measured::new(samples, 0, Duration::from_secs(2));
        assert_eq!(measured.percentile_ms(50.0), 50.0);
        assert_eq!(measured.percentile_ms(99.0), 99.0);
        assert_eq!(measured.rate(), 50.0);
        assert_eq!(measured.percentile_ms(100.0), 100.0);
        assert!((measured.mean_ms() - 50.5).abs() < 1e-9);
    }
}
