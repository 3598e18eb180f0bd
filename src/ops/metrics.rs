//! The process's metrics, in one registry per `Services` (so each test server
//! has its own), served as Prometheus text by `ops::http`.
//!
//! Every label value comes from a fixed list: command names from the
//! commands we know ("other" for the rest), outcomes from our own enums.
//! Nothing a client sends, and no email, ever becomes a label.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::directory::{AuthError, Directory};
use crate::store::{Backend, PoolWaits, WAIT_BOUNDS};

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CommandLabel {
    command: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CommandStatusLabel {
    command: &'static str,
    status: &'static str,
}

/// How a login attempt ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok,
    BadCredentials,
    Expired,
    Subscription,
    Unavailable,
    /// Refused before any check: no TLS where TLS is required.
    PrivacyRequired,
}

impl LoginOutcome {
    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Ok => "ok",
            LoginOutcome::BadCredentials => "bad_credentials",
            LoginOutcome::Expired => "expired",
            LoginOutcome::Subscription => "subscription",
            LoginOutcome::Unavailable => "unavailable",
            LoginOutcome::PrivacyRequired => "privacy_required",
        }
    }
}

impl From<&AuthError> for LoginOutcome {
    fn from(error: &AuthError) -> LoginOutcome {
        match error {
            AuthError::InvalidToken => LoginOutcome::BadCredentials,
            AuthError::Expired => LoginOutcome::Expired,
            AuthError::SubscriptionInactive => LoginOutcome::Subscription,
            AuthError::Unavailable => LoginOutcome::Unavailable,
        }
    }
}

/// How a request to Supabase ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Ok,
    /// An HTTP status we do not take as an answer.
    Status,
    Timeout,
    Transport,
    Malformed,
}

impl RequestOutcome {
    fn label(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::Status => "http_error",
            RequestOutcome::Timeout => "timeout",
            RequestOutcome::Transport => "transport_error",
            RequestOutcome::Malformed => "malformed",
        }
    }
}

/// The status word of a tagged answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    Ok,
    No,
    Bad,
}

impl CommandStatus {
    fn label(self) -> &'static str {
        match self {
            CommandStatus::Ok => "ok",
            CommandStatus::No => "no",
            CommandStatus::Bad => "bad",
        }
    }
}

/// Every metric of one server, and the registry that encodes them. The
/// handles given out (`traffic`, `idle_mark`, `supabase`) share its values.
pub struct Metrics {
    registry: Registry,
    connections_open: Family<ListenerLabel, Gauge>,
    connections: Family<ListenerLabel, Counter>,
    logins: Family<OutcomeLabel, Counter>,
    logins_delayed: Counter,
    commands: Family<CommandStatusLabel, Counter>,
    command_duration: Family<CommandLabel, Histogram>,
    received: Counter,
    sent: Counter,
    idling: Gauge,
    notification_lag: Histogram,
    database_errors: Counter,
    supabase_requests: Family<OutcomeLabel, Counter>,
    supabase_duration: Histogram,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// From 100 µs to about 13 s, doubling: IMAP commands on a local database
/// take a millisecond; a FETCH of many large messages takes seconds.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 18)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            connections_open: Family::default(),
            connections: Family::default(),
            logins: Family::default(),
            logins_delayed: Counter::default(),
            commands: Family::default(),
            command_duration: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            received: Counter::default(),
            sent: Counter::default(),
            idling: Gauge::default(),
            notification_lag: Histogram::new(latency_buckets()),
            database_errors: Counter::default(),
            supabase_requests: Family::default(),
            supabase_duration: Histogram::new(latency_buckets()),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "imap_connections_open",
            "Connections open now, by listener",
            self.connections_open.clone(),
        );
        r.register(
            "imap_connections",
            "Connections accepted, by listener",
            self.connections.clone(),
        );
        r.register(
            "imap_logins",
            "Login attempts (LOGIN, AUTHENTICATE), by outcome",
            self.logins.clone(),
        );
        r.register(
            "imap_logins_delayed",
            "Login attempts held back by the failed-login penalty",
            self.logins_delayed.clone(),
        );
        r.register(
            "imap_commands",
            "Tagged answers, by command and status",
            self.commands.clone(),
        );
        r.register_with_unit(
            "imap_command_duration",
            "Time from a command's arrival to its tagged answer (IDLE excluded)",
            Unit::Seconds,
            self.command_duration.clone(),
        );
        r.register_with_unit(
            "imap_received",
            "IMAP bytes read from clients (after TLS)",
            Unit::Bytes,
            self.received.clone(),
        );
        r.register_with_unit(
            "imap_sent",
            "IMAP bytes written to clients (before TLS)",
            Unit::Bytes,
            self.sent.clone(),
        );
        r.register(
            "imap_idle_sessions",
            "Sessions in IDLE now",
            self.idling.clone(),
        );
        r.register_with_unit(
            "imap_notification_lag",
            "From a change notification's arrival to the update it caused being sent to an idling client",
            Unit::Seconds,
            self.notification_lag.clone(),
        );
        r.register(
            "imap_database_errors",
            "Database failures that reached a session",
            self.database_errors.clone(),
        );
        r.register(
            "imap_supabase_requests",
            "Requests to Supabase, by outcome",
            self.supabase_requests.clone(),
        );
        r.register_with_unit(
            "imap_supabase_request_duration",
            "Time a Supabase request took, failures included",
            Unit::Seconds,
            self.supabase_duration.clone(),
        );
    }

    /// Adds the database pool's connections and how long statements
    /// waited for one, read at each scrape.
    pub fn watch_pool(&mut self, backend: Backend, waits: Arc<PoolWaits>) {
        self.registry
            .register_collector(Box::new(PoolCollector(backend)));
        self.registry
            .register_collector(Box::new(PoolWaitCollector(waits)));
    }

    /// Adds the directory's caches (refreshes and age), read at each scrape.
    pub fn watch_directory(&mut self, directory: Arc<dyn Directory>) {
        self.registry
            .register_collector(Box::new(CacheCollector(directory)));
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail; an encoder error would be ours.
        if let Err(error) = prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }

    /// A connection accepted on `listener` ("imap" or "imaps"); counted open
    /// until the returned guard is dropped.
    pub fn connection_opened(self: &Arc<Self>, listener: &'static str) -> OpenConnection {
        let label = ListenerLabel { listener };
        self.connections.get_or_create(&label).inc();
        self.connections_open.get_or_create(&label).inc();
        OpenConnection {
            metrics: self.clone(),
            label,
        }
    }

    pub fn login(&self, outcome: LoginOutcome) {
        self.logins
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn login_delayed(&self) {
        self.logins_delayed.inc();
    }

    /// A tagged answer to `command` (a name from `command_label`).
    pub fn command(&self, command: &'static str, status: CommandStatus, took: Option<Duration>) {
        self.commands
            .get_or_create(&CommandStatusLabel {
                command,
                status: status.label(),
            })
            .inc();
        if let Some(took) = took {
            self.command_duration
                .get_or_create(&CommandLabel { command })
                .observe(took.as_secs_f64());
        }
    }

    /// The counters a connection adds its bytes to.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            received: self.received.clone(),
            sent: self.sent.clone(),
        }
    }

    /// A gauge the session sets while it idles (see `IdleMark`).
    pub fn idle_mark(&self) -> IdleMark {
        IdleMark {
            gauge: self.idling.clone(),
            idling: false,
        }
    }

    pub fn notification_lag(&self, lag: Duration) {
        self.notification_lag.observe(lag.as_secs_f64());
    }

    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// The counters the Supabase client records its requests in.
    pub fn supabase(&self) -> SupabaseMetrics {
        SupabaseMetrics {
            requests: self.supabase_requests.clone(),
            duration: self.supabase_duration.clone(),
        }
    }
}

/// Requests to Supabase: outcomes and latency.
#[derive(Clone, Debug)]
pub struct SupabaseMetrics {
    requests: Family<OutcomeLabel, Counter>,
    duration: Histogram,
}

impl SupabaseMetrics {
    pub fn request(&self, outcome: RequestOutcome, took: Duration) {
        self.requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }
}

/// Counted in `imap_connections_open` while it lives.
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    label: ListenerLabel,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .get_or_create(&self.label)
            .dec();
    }
}

/// Byte counters a connection adds to as it reads and writes.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub received: Counter,
    pub sent: Counter,
}

/// One session's contribution to `imap_idle_sessions`, taken back when
/// it is dropped however the connection ends.
pub struct IdleMark {
    gauge: Gauge,
    idling: bool,
}

impl IdleMark {
    pub fn set(&mut self, idling: bool) {
        match (self.idling, idling) {
            (false, true) => {
                self.gauge.inc();
            }
            (true, false) => {
                self.gauge.dec();
            }
            _ => {}
        }
        self.idling = idling;
    }
}

impl Drop for IdleMark {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// A gauge family whose values are read at scrape time.
fn encode_gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(&[(&str, &str)], f64)],
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// `imap_database_connections{state}`: the pool as it is at the scrape.
struct PoolCollector(Backend);

impl fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolCollector")
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let (size, idle) = match &self.0 {
            Backend::Postgres(pool) => (pool.size(), pool.num_idle()),
            Backend::Sqlite(pool) => (pool.size(), pool.num_idle()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        encode_gauges(
            &mut encoder,
            "imap_database_connections",
            "Database pool connections now, by state",
            None,
            &[
                (&[("state", "in_use")], f64::from(size - idle)),
                (&[("state", "idle")], f64::from(idle)),
            ],
        )
    }
}

/// `imap_database_pool_wait_seconds`: how long statements waited for a
/// pooled connection (a transaction's wait includes its BEGIN), counted by
/// the store as they happen.
#[derive(Debug)]
struct PoolWaitCollector(Arc<PoolWaits>);

impl Collector for PoolWaitCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let totals = self.0.totals();
        let buckets: Vec<(f64, u64)> = WAIT_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(totals.counts.iter().copied())
            .collect();
        let count = totals.counts.iter().sum();
        encoder
            .encode_descriptor(
                "imap_database_pool_wait",
                "Time statements waited for a pooled database connection",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(totals.sum_seconds, count, &buckets, None)
    }
}

/// The directory's caches: refreshes, and how old each copy is.
struct CacheCollector(Arc<dyn Directory>);

impl fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheCollector")
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let caches = self.0.caches();
        let mut refreshes = encoder.encode_descriptor(
            "imap_cache_refreshes",
            "Loads of a directory cache (domains, bans), by outcome",
            None,
            MetricType::Counter,
        )?;
        for cache in &caches {
            for (outcome, count) in [("ok", cache.refreshes), ("error", cache.failures)] {
                let labels = [("cache", cache.name), ("outcome", outcome)];
                ConstCounter::new(count).encode(refreshes.encode_family(&labels)?)?;
            }
        }
        let ages: Vec<([(&str, &str); 1], f64)> = caches
            .iter()
            .filter_map(|cache| Some(([("cache", cache.name)], cache.age?.as_secs_f64())))
            .collect();
        let ages: Vec<(&[(&str, &str)], f64)> = ages
            .iter()
            .map(|(labels, age)| (&labels[..], *age))
            .collect();
        encode_gauges(
            &mut encoder,
            "imap_cache_age",
            "Age of the copy a directory cache serves (absent until it first loads)",
            Some(&Unit::Seconds),
            &ages,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_encoded_with_their_conventional_names() {
        let metrics = Arc::new(Metrics::new());
        metrics.command("NOOP", CommandStatus::Ok, Some(Duration::from_millis(1)));
        metrics.login(LoginOutcome::BadCredentials);
        let guard = metrics.connection_opened("imap");
        let text = metrics.encode();
        assert!(text.contains("imap_commands_total{command=\"NOOP\",status=\"ok\"} 1\n"));
        assert!(text.contains("imap_logins_total{outcome=\"bad_credentials\"} 1\n"));
        assert!(text.contains("imap_command_duration_seconds_count{command=\"NOOP\"} 1\n"));
        assert!(text.contains("imap_connections_open{listener=\"imap\"} 1\n"));
        drop(guard);
        assert!(
            metrics
                .encode()
                .contains("imap_connections_open{listener=\"imap\"} 0\n")
        );
    }
}
