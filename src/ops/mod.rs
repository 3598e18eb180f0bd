//! What an operator watches: the metrics (Prometheus text), the liveness
//! and readiness probes, and the small HTTP listener (`METRICS_BIND`)
//! that serves them.

pub mod health;
pub mod http;
pub mod metrics;
