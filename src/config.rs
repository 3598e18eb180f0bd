//! Configuration from the environment (and `.env`), validated once at start-up.
//!
//! Every setting is an environment variable with a default; a bad value stops
//! start-up with a message naming the variable and the form it expects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A start-up error that names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// The validated configuration of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    pub imap_bind: SocketAddr,
    pub domain_cache_ttl: Duration,
    pub ban_cache_ttl: Duration,
    pub limits: Limits,
    pub tls: Option<TlsFiles>,
    /// The implicit-TLS listener (IMAPS), when TLS is configured.
    pub imaps_bind: Option<SocketAddr>,
    /// Lets LOGIN and AUTHENTICATE through on unencrypted connections from
    /// anywhere, even with TLS configured.
    pub allow_plaintext_auth: bool,
    /// Supabase mode, when `SUPABASE_URL` and a key are set.
    pub supabase: Option<Supabase>,
    pub log_format: LogFormat,
    /// Peers that must open with a PROXY protocol header (`PROXY_PROTOCOL_FROM`).
    pub proxy_protocol_from: Option<Vec<ipnet::IpNet>>,
    /// How long expunges are remembered for QRESYNC's VANISHED
    /// (`IMAP_EXPUNGED_RETENTION_DAYS`); older reconnections resynchronise
    /// in full.
    pub expunged_retention: Duration,
    /// Where `/metrics` and the health probes are served (`METRICS_BIND`;
    /// none by default).
    pub metrics_bind: Option<SocketAddr>,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line per event, coloured only on a terminal.
    Text,
    /// For log shippers: one JSON object per line.
    Json,
}

fn log_format(source: &dyn Source) -> Result<LogFormat, ConfigError> {
    match source.get("LOG_FORMAT").as_deref().map(str::trim) {
        None | Some("") | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(_) => Err(ConfigError {
            variable: "LOG_FORMAT",
            problem: "expected text or json".into(),
        }),
    }
}

/// The PEM files TLS is served from; re-read when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key: PKCS#8, RSA (PKCS#1) or EC (SEC1).
    pub key: PathBuf,
    /// How often the files are checked for changes (SIGHUP reloads at once).
    pub reload_interval: Duration,
}

/// Where and how to reach Supabase (README: Supabase mode).
#[derive(Debug, Clone)]
pub struct Supabase {
    /// The project URL, without a trailing slash.
    pub url: String,
    pub service_key: ServiceKey,
    /// Domains from Supabase (`true`) or from `DATABASE_URL`.
    pub use_domains: bool,
    /// Bans from Supabase (`true`) or from `DATABASE_URL`.
    pub use_bans: bool,
    /// Deadline of each HTTP request.
    pub timeout: Duration,
    /// How long an account's email and subscription are remembered (0: not at all).
    pub account_cache_ttl: Duration,
}

/// The service key; its `Debug` form hides it so that it never reaches a log.
#[derive(Clone)]
pub struct ServiceKey(pub String);

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey(***)")
    }
}

/// Per-connection protocol limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest command line accepted (without literals).
    pub max_line: usize,
    /// Largest literal accepted by commands other than APPEND.
    pub max_literal: u32,
    /// Largest message accepted by APPEND.
    pub max_message_size: u32,
    /// How long a connection may take, from connecting, to log in.
    pub login_timeout: Duration,
    /// How long an authenticated connection may stay silent.
    pub idle_timeout: Duration,
    /// Most simultaneous connections per process.
    pub max_connections: usize,
    /// Consecutive malformed commands tolerated before the connection is closed.
    pub max_bad_commands: u32,
    /// How often an idling session looks for changes nobody announced
    /// (a ban taking effect, a write to SQLite from another process).
    pub idle_poll: Duration,
    /// How long one write to the client may wait: a client that stops
    /// reading is closed, rather than holding its answer in memory.
    pub write_timeout: Duration,
    /// Most simultaneous connections from one client address (0: no cap).
    pub max_connections_per_ip: u32,
    /// Longest delay the failed-login penalty imposes (0: no penalty).
    pub auth_penalty_max: Duration,
    /// How often live sessions' tokens and subscriptions are checked again (0: never).
    pub session_recheck: Duration,
    /// How long shutdown waits for sessions to finish their command and
    /// hear BYE (`SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 64 * 1024,
            max_literal: 64 * 1024,
            max_message_size: 50 * 1024 * 1024,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30 * 60),
            max_connections: 10_000,
            max_bad_commands: 20,
            idle_poll: Duration::from_secs(15),
            write_timeout: Duration::from_secs(60),
            max_connections_per_ip: 50,
            auth_penalty_max: Duration::from_secs(15),
            session_recheck: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/imap-server.db";

/// Where configuration values come from; the environment in production,
/// a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Environment;

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

impl Config {
    /// Reads `.env` (if present) and the environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError {
                    variable: ".env",
                    problem: format!("cannot be read: {e}"),
                });
            }
        }
        Config::from_source(&Environment)
    }

    /// Only the database location, for sub-commands that need nothing else
    /// (`migrate`, `admin`, `deliver`).
    pub fn database_url_from(source: &dyn Source) -> String {
        source
            .get("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
    }

    pub fn from_source(source: &dyn Source) -> Result<Config, ConfigError> {
        let database_url = Config::database_url_from(source);
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            return Err(ConfigError {
                variable: "DATABASE_URL",
                problem: "expected postgres://… or sqlite://…".into(),
            });
        }
        let supabase = supabase(source)?;
        let defaults = Limits::default();
        let limits = Limits {
            max_line: number(source, "IMAP_MAX_LINE", defaults.max_line, 1024)?,
            max_literal: number(source, "IMAP_MAX_LITERAL", defaults.max_literal, 1024)?,
            max_message_size: number(
                source,
                "IMAP_MAX_MESSAGE_SIZE",
                defaults.max_message_size,
                1024,
            )?,
            login_timeout: seconds(source, "IMAP_LOGIN_TIMEOUT", defaults.login_timeout)?,
            idle_timeout: seconds(source, "IMAP_IDLE_TIMEOUT", defaults.idle_timeout)?,
            max_connections: number(source, "IMAP_MAX_CONNECTIONS", defaults.max_connections, 1)?,
            max_bad_commands: number(
                source,
                "IMAP_MAX_BAD_COMMANDS",
                defaults.max_bad_commands,
                1,
            )?,
            idle_poll: seconds(source, "IMAP_IDLE_POLL", defaults.idle_poll)?,
            write_timeout: seconds(source, "IMAP_WRITE_TIMEOUT", defaults.write_timeout)?,
            max_connections_per_ip: number(
                source,
                "IMAP_MAX_CONNECTIONS_PER_IP",
                defaults.max_connections_per_ip,
                0,
            )?,
            auth_penalty_max: seconds_or_off(
                source,
                "IMAP_AUTH_PENALTY_MAX",
                defaults.auth_penalty_max,
            )?,
            session_recheck: seconds_or_off(
                source,
                "IMAP_SESSION_RECHECK",
                defaults.session_recheck,
            )?,
            shutdown_timeout: seconds(source, "SHUTDOWN_TIMEOUT", defaults.shutdown_timeout)?,
        };
        let tls = tls_files(source)?;
        let imaps_bind = match source.get("IMAPS_BIND") {
            Some(_) if tls.is_none() => {
                return Err(ConfigError {
                    variable: "IMAPS_BIND",
                    problem: "needs TLS_CERT and TLS_KEY".into(),
                });
            }
            Some(_) => Some(bind_address(source, "IMAPS_BIND", "0.0.0.0:993")?),
            None => None,
        };
        let allow_plaintext_auth = match source.get("ALLOW_PLAINTEXT_AUTH") {
            Some(value) => boolean("ALLOW_PLAINTEXT_AUTH", &value)?,
            None => false,
        };
        Ok(Config {
            database_url,
            database_max_connections: number(source, "DATABASE_MAX_CONNECTIONS", 20, 1)?,
            imap_bind: bind_address(source, "IMAP_BIND", "0.0.0.0:143")?,
            domain_cache_ttl: seconds(source, "DOMAIN_CACHE_TTL", Duration::from_secs(60))?,
            ban_cache_ttl: seconds(source, "BAN_CACHE_TTL", Duration::from_secs(30))?,
            limits,
            tls,
            imaps_bind,
            allow_plaintext_auth,
            supabase,
            log_format: log_format(source)?,
            proxy_protocol_from: proxy_protocol_from(source)?,
            expunged_retention: Duration::from_secs(
                86_400 * number::<u64>(source, "IMAP_EXPUNGED_RETENTION_DAYS", 30, 1)?,
            ),
            metrics_bind: match source.get("METRICS_BIND") {
                Some(value) if !value.trim().is_empty() => {
                    Some(bind_address(source, "METRICS_BIND", "127.0.0.1:9143")?)
                }
                _ => None,
            },
        })
    }
}

/// `PROXY_PROTOCOL_FROM`: CIDRs (or single addresses), comma-separated.
fn proxy_protocol_from(source: &dyn Source) -> Result<Option<Vec<ipnet::IpNet>>, ConfigError> {
    let Some(text) = source.get("PROXY_PROTOCOL_FROM") else {
        return Ok(None);
    };
    let problem = |problem: String| ConfigError {
        variable: "PROXY_PROTOCOL_FROM",
        problem,
    };
    let mut networks = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let network = item
            .parse::<ipnet::IpNet>()
            .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| problem(format!("{item:?} is not a CIDR such as 10.0.0.0/8")))?;
        networks.push(network);
    }
    if networks.is_empty() {
        return Err(problem(
            "expected comma-separated CIDRs such as 127.0.0.1/32,10.0.0.0/8".into(),
        ));
    }
    Ok(Some(networks))
}

/// `TLS_CERT` and `TLS_KEY` come together or not at all.
fn tls_files(source: &dyn Source) -> Result<Option<TlsFiles>, ConfigError> {
    let reload_interval = seconds(source, "TLS_RELOAD_INTERVAL", Duration::from_secs(60))?;
    match (source.get("TLS_CERT"), source.get("TLS_KEY")) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
            reload_interval,
        })),
        (Some(_), None) => Err(ConfigError {
            variable: "TLS_KEY",
            problem: "must be set when TLS_CERT is (the PEM private key)".into(),
        }),
        (None, Some(_)) => Err(ConfigError {
            variable: "TLS_CERT",
            problem: "must be set when TLS_KEY is (the PEM certificate chain)".into(),
        }),
        (None, None) => Ok(None),
    }
}

/// Supabase mode: on when the URL and a key are set; one without the other is
/// a mistake worth stopping for. The toggles are validated even without
/// Supabase, so a typo never waits for the day Supabase is switched on.
fn supabase(source: &dyn Source) -> Result<Option<Supabase>, ConfigError> {
    let use_domains = flag(source, "USE_SUPABASE_DOMAINS", true)?;
    let use_bans = flag(source, "USE_SUPABASE_BANS", true)?;
    let timeout = seconds(source, "SUPABASE_TIMEOUT", Duration::from_secs(5))?;
    let account_cache_ttl =
        Duration::from_secs(number(source, "SUPABASE_ACCOUNT_CACHE_TTL", 30, 0)?);
    let key = source
        .get("SUPABASE_SERVICE_KEY")
        .or_else(|| source.get("SUPABASE_KEY"));
    let url = match (source.get("SUPABASE_URL"), key.is_some()) {
        (None, false) => return Ok(None),
        (None, true) => {
            return Err(ConfigError {
                variable: "SUPABASE_URL",
                problem: "must be set along with SUPABASE_SERVICE_KEY (or SUPABASE_KEY)".into(),
            });
        }
        (Some(url), _) => url.trim().trim_end_matches('/').to_owned(),
    };
    let Some(key) = key else {
        return Err(ConfigError {
            variable: "SUPABASE_SERVICE_KEY",
            problem: "must be set (or SUPABASE_KEY) when SUPABASE_URL is".into(),
        });
    };
    let parsed = reqwest::Url::parse(&url).ok();
    if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
        return Err(ConfigError {
            variable: "SUPABASE_URL",
            problem: format!("expected https://PROJECT.supabase.co, got {url:?}"),
        });
    }
    Ok(Some(Supabase {
        url,
        service_key: ServiceKey(key.trim().to_owned()),
        use_domains,
        use_bans,
        timeout,
        account_cache_ttl,
    }))
}

fn flag(source: &dyn Source, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
    source
        .get(variable)
        .map_or(Ok(default), |value| boolean(variable, &value))
}

/// `true/false/1/0/yes/no`, any case.
pub fn boolean(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError {
            variable,
            problem: format!("expected true/false/1/0/yes/no, got {value:?}"),
        }),
    }
}

fn number<T>(
    source: &dyn Source,
    variable: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = source.get(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if value >= min => Ok(value),
        _ => Err(ConfigError {
            variable,
            problem: format!("expected a whole number of at least {min}, got {raw:?}"),
        }),
    }
}

fn seconds(
    source: &dyn Source,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let value: u64 = number(source, variable, default.as_secs(), 1)?;
    Ok(Duration::from_secs(value))
}

/// Seconds where `0` switches the feature off.
fn seconds_or_off(
    source: &dyn Source,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let value: u64 = number(source, variable, default.as_secs(), 0)?;
    Ok(Duration::from_secs(value))
}

fn bind_address(
    source: &dyn Source,
    variable: &'static str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let raw = source.get(variable).unwrap_or_else(|| default.to_owned());
    raw.trim().parse().map_err(|_| ConfigError {
        variable,
        problem: format!("expected HOST:PORT such as 127.0.0.1:1143, got {raw:?}"),
    })
}

/// The database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &url[scheme_end + 3 + at..]
        ),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_source(&map)
    }

    #[test]
    fn defaults_are_the_embedded_database_and_port_143() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.imap_bind.to_string(), "0.0.0.0:143");
        assert_eq!(c.domain_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.ban_cache_ttl, Duration::from_secs(30));
    }

    #[test]
    fn metrics_are_off_unless_bound_and_shutdown_waits_ten_seconds() {
        let c = config(&[]).unwrap();
        assert_eq!(c.metrics_bind, None);
        assert_eq!(c.limits.shutdown_timeout, Duration::from_secs(10));
        let c = config(&[
            ("METRICS_BIND", "127.0.0.1:9143"),
            ("SHUTDOWN_TIMEOUT", "3"),
        ])
        .unwrap();
        assert_eq!(c.metrics_bind.unwrap().to_string(), "127.0.0.1:9143");
        assert_eq!(c.limits.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(
            config(&[("METRICS_BIND", "9143")]).unwrap_err().variable,
            "METRICS_BIND"
        );
        assert_eq!(
            config(&[("SHUTDOWN_TIMEOUT", "0")]).unwrap_err().variable,
            "SHUTDOWN_TIMEOUT"
        );
    }

    #[test]
    fn a_malformed_bind_address_names_the_variable() {
        let e = config(&[("IMAP_BIND", "localhost")]).unwrap_err();
        assert_eq!(e.variable, "IMAP_BIND");
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn booleans_accept_the_usual_spellings_and_nothing_else() {
        for yes in ["true", "TRUE", "1", "Yes"] {
            assert!(boolean("X", yes).unwrap());
        }
        for no in ["false", "0", "NO"] {
            assert!(!boolean("X", no).unwrap());
        }
        let e = config(&[("USE_SUPABASE_BANS", "maybe")]).unwrap_err();
        assert_eq!(e.variable, "USE_SUPABASE_BANS");
    }

    #[test]
    fn tls_files_come_in_pairs_and_imaps_needs_them() {
        assert!(config(&[]).unwrap().tls.is_none());
        let e = config(&[("TLS_CERT", "c.pem")]).unwrap_err();
        assert_eq!(e.variable, "TLS_KEY");
        let e = config(&[("TLS_KEY", "k.pem")]).unwrap_err();
        assert_eq!(e.variable, "TLS_CERT");
        let e = config(&[("IMAPS_BIND", "0.0.0.0:993")]).unwrap_err();
        assert_eq!(e.variable, "IMAPS_BIND");
        let c = config(&[
            ("TLS_CERT", "c.pem"),
            ("TLS_KEY", "k.pem"),
            ("IMAPS_BIND", "127.0.0.1:993"),
            ("ALLOW_PLAINTEXT_AUTH", "yes"),
        ])
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("c.pem"));
        assert_eq!(tls.key, PathBuf::from("k.pem"));
        assert_eq!(c.imaps_bind.unwrap().to_string(), "127.0.0.1:993");
        assert!(c.allow_plaintext_auth);
    }

    #[test]
    fn supabase_mode_needs_a_url_and_a_key() {
        assert!(config(&[]).unwrap().supabase.is_none());
        let c = config(&[
            ("SUPABASE_URL", "https://p.supabase.co/"),
            ("SUPABASE_KEY", "k"),
            ("USE_SUPABASE_BANS", "no"),
        ])
        .unwrap();
        let s = c.supabase.unwrap();
        assert_eq!(s.url, "https://p.supabase.co");
        assert_eq!(s.service_key.0, "k");
        assert!(s.use_domains && !s.use_bans);
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.account_cache_ttl, Duration::from_secs(30));
        assert!(
            !format!("{s:?}").contains("\"k\""),
            "the key is never printed"
        );
        let preferred = config(&[
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_KEY", "old"),
            ("SUPABASE_SERVICE_KEY", "new"),
        ])
        .unwrap();
        assert_eq!(preferred.supabase.unwrap().service_key.0, "new");
        let e = config(&[("SUPABASE_URL", "https://p.supabase.co")]).unwrap_err();
        assert_eq!(e.variable, "SUPABASE_SERVICE_KEY");
        let e = config(&[("SUPABASE_SERVICE_KEY", "k")]).unwrap_err();
        assert_eq!(e.variable, "SUPABASE_URL");
        let e = config(&[("SUPABASE_URL", "p.supabase.co"), ("SUPABASE_KEY", "k")]).unwrap_err();
        assert_eq!(e.variable, "SUPABASE_URL");
        let e = config(&[
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_KEY", "k"),
            ("SUPABASE_TIMEOUT", "0"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "SUPABASE_TIMEOUT");
        let off = config(&[
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_KEY", "k"),
            ("SUPABASE_ACCOUNT_CACHE_TTL", "0"),
        ])
        .unwrap();
        assert!(off.supabase.unwrap().account_cache_ttl.is_zero());
    }

    #[test]
    fn proxy_protocol_from_is_a_list_of_cidrs() {
        assert!(config(&[]).unwrap().proxy_protocol_from.is_none());
        let c = config(&[("PROXY_PROTOCOL_FROM", "10.0.0.0/8, 127.0.0.1,::1/128")]).unwrap();
        let networks: Vec<String> = c
            .proxy_protocol_from
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(networks, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        for bad in ["10.0.0.0/33", "proxy.local", " , ", "10.0.0.0/8,nonsense"] {
            let e = config(&[("PROXY_PROTOCOL_FROM", bad)]).unwrap_err();
            assert_eq!(e.variable, "PROXY_PROTOCOL_FROM", "{bad}");
        }
    }

    #[test]
    fn a_zero_ttl_is_refused() {
        let e = config(&[("DOMAIN_CACHE_TTL", "0")]).unwrap_err();
        assert_eq!(e.variable, "DOMAIN_CACHE_TTL");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://imap:s3cret@db.example:5432/mail"),
            "postgres://imap:***@db.example:5432/mail"
        );
        assert_eq!(
            redact_url("postgres://imap@db/mail"),
            "postgres://imap@db/mail"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
