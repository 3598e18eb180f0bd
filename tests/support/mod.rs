//! Test support: a real server on an ephemeral port over a real database
//! (a throwaway PostgreSQL cluster, or a temporary SQLite file), fixtures
//! written through the stores, and a minimal IMAP client speaking the wire
//! protocol.

#![allow(dead_code)]

pub mod binary;
pub mod compressed;
pub mod haproxy;
pub mod postgres;
pub mod supabase;
pub mod tls_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imap_server::config::{Limits, TlsFiles};
use imap_server::directory::supabase::{SupabaseClient, SupabaseSettings};
use imap_server::directory::{Directory, SqlDirectory, SupabaseDirectory};
use imap_server::imap::Services;
use imap_server::ops::health::Health;
use imap_server::ops::metrics::Metrics;
use imap_server::server::tls::Certificates;
use imap_server::server::{CleartextLogin, ProxyProtocol, Server};
use imap_server::store::{
    BanRecord, Database, DomainRecord, MailboxId, TokenRecord, UserRecord, new_id,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use self::supabase::{FakeSupabase, SERVICE_KEY};

/// How long a test waits for an answer before calling the server hung.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Settings a test may change.
#[derive(Clone)]
pub struct Options {
    pub domain_ttl: Duration,
    pub ban_ttl: Duration,
    pub limits: Limits,
    /// STARTTLS and an implicit-TLS listener with these files.
    pub tls: Option<(TlsFiles, CleartextLogin)>,
    /// Accounts in a fake Supabase instead of the SQL database.
    pub supabase: Option<SupabaseOptions>,
    /// PROXY headers read from these peers (`PROXY_PROTOCOL_FROM`).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Serve `/metrics` and the health probes on an ephemeral port.
    pub metrics: bool,
}

impl Default for Options {
    fn default() -> Options {
        // Caches refresh on every use unless a test is about caching.
        Options {
            domain_ttl: Duration::ZERO,
            ban_ttl: Duration::ZERO,
            limits: Limits::default(),
            tls: None,
            supabase: None,
            proxy_protocol: None,
            metrics: false,
        }
    }
}

impl Options {
    /// Supabase mode with everything (accounts, domains, bans) in Supabase.
    pub fn supabase() -> Options {
        Options::supabase_with(SupabaseOptions::default())
    }

    pub fn supabase_with(supabase: SupabaseOptions) -> Options {
        Options {
            supabase: Some(supabase),
            ..Options::default()
        }
    }
}

/// How a test server uses the fake Supabase.
#[derive(Clone)]
pub struct SupabaseOptions {
    pub use_domains: bool,
    pub use_bans: bool,
    pub timeout: Duration,
    pub account_ttl: Duration,
    /// Talk to this URL instead of the fake (which still holds the fixtures).
    pub url: Option<String>,
    /// The key the server sends.
    pub key: String,
}

impl Default for SupabaseOptions {
    fn default() -> SupabaseOptions {
        SupabaseOptions {
            use_domains: true,
            use_bans: true,
            timeout: Duration::from_secs(5),
            account_ttl: Duration::from_secs(30),
            url: None,
            key: SERVICE_KEY.to_owned(),
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The implicit-TLS listener, with `Options::tls`.
    pub tls_addr: Option<SocketAddr>,
    pub database: Database,
    pub url: String,
    pub backend: Backend,
    /// The fake Supabase, in Supabase mode.
    pub supabase: Option<Arc<FakeSupabase>>,
    /// `/metrics` and the health probes, with `Options::metrics`.
    pub metrics_addr: Option<SocketAddr>,
    options: Options,
    _dir: Option<tempfile::TempDir>,
}

/// A customer created for a test.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> TestServer {
        let (url, dir) = database_url(backend);
        TestServer::launch(backend, url, dir, options).await
    }

    /// A server on an existing database.
    pub async fn start_on(backend: Backend, url: String) -> TestServer {
        TestServer::start_on_with(backend, url, Options::default()).await
    }

    pub async fn start_on_with(backend: Backend, url: String, options: Options) -> TestServer {
        TestServer::launch(backend, url, None, options).await
    }

    async fn launch(
        backend: Backend,
        url: String,
        dir: Option<tempfile::TempDir>,
        options: Options,
    ) -> TestServer {
        let database = Database::open(&url, 10)
            .await
            .expect("open the test database");
        let fake = match &options.supabase {
            Some(_) => Some(Arc::new(FakeSupabase::start().await)),
            None => None,
        };
        let mut metrics = Metrics::new();
        let directory: Arc<dyn Directory> = match (&options.supabase, &fake) {
            (Some(mode), Some(fake)) => {
                let url = mode.url.clone().unwrap_or_else(|| fake.url());
                let mut client = SupabaseClient::new(&url, &mode.key, mode.timeout)
                    .expect("build the Supabase client");
                client.observe_with(metrics.supabase());
                let settings = SupabaseSettings {
                    use_domains: mode.use_domains,
                    use_bans: mode.use_bans,
                    domain_ttl: options.domain_ttl,
                    ban_ttl: options.ban_ttl,
                    account_ttl: mode.account_ttl,
                };
                Arc::new(SupabaseDirectory::new(
                    client,
                    database.accounts.clone(),
                    &settings,
                ))
            }
            _ => Arc::new(SqlDirectory::new(
                database.accounts.clone(),
                options.domain_ttl,
                options.ban_ttl,
            )),
        };
        let listening = database.listen_for_changes();
        metrics.watch_pool(database.backend.clone(), database.waits.clone());
        metrics.watch_directory(directory.clone());
        let services = Arc::new(Services {
            store: database.mail.clone(),
            directory: directory.clone(),
            limits: options.limits.clone(),
            penalties: imap_server::imap::penalty::LoginPenalties::new(
                options.limits.auth_penalty_max,
            ),
            metrics: Arc::new(metrics),
            health: Health::new(database.backend.clone(), listening, directory),
        });
        let metrics_addr = match options.metrics {
            true => {
                let listener = imap_server::ops::http::bind(loopback_any())
                    .await
                    .expect("bind the metrics port");
                let addr = listener.local_addr().expect("metrics address");
                tokio::spawn(imap_server::ops::http::serve(listener, services.clone()));
                Some(addr)
            }
            false => None,
        };
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
        let mut server = Server::bind(loopback, services)
            .await
            .expect("bind an ephemeral port");
        if let Some(proxy) = &options.proxy_protocol {
            server = server.with_proxy_protocol(proxy.clone());
        }
        if let Some((files, cleartext)) = &options.tls {
            let certificates =
                Certificates::open(files.clone()).expect("load the test certificate");
            certificates.watch();
            server = server
                .with_tls(&certificates, Some(loopback), *cleartext)
                .await
                .expect("bind the TLS port");
        }
        let addr = server.local_addr().expect("local address");
        let tls_addr = server.tls_addr();
        tokio::spawn(server.run(std::future::pending()));
        TestServer {
            addr,
            tls_addr,
            database,
            url,
            backend,
            supabase: fake,
            metrics_addr,
            options,
            _dir: dir,
        }
    }

    /// The fake Supabase; panics outside Supabase mode.
    pub fn fake(&self) -> &FakeSupabase {
        self.supabase.as_deref().expect("a server in Supabase mode")
    }

    /// Where domain fixtures go: the fake when domains come from Supabase.
    fn domains_in_supabase(&self) -> Option<&FakeSupabase> {
        let mode = self.options.supabase.as_ref()?;
        mode.use_domains.then(|| self.fake())
    }

    fn bans_in_supabase(&self) -> Option<&FakeSupabase> {
        let mode = self.options.supabase.as_ref()?;
        mode.use_bans.then(|| self.fake())
    }

    /// When the token was last used, as the directory recorded it.
    pub async fn last_used_at(&self, token: &str) -> Option<DateTime<Utc>> {
        match &self.supabase {
            Some(fake) => fake
                .row("imap_tokens", "token", token)
                .and_then(|row| {
                    row.get("last_used_at")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                })
                .map(|text| {
                    DateTime::parse_from_rfc3339(&text)
                        .expect("last_used_at is RFC 3339")
                        .with_timezone(&Utc)
                }),
            None => {
                self.database
                    .accounts
                    .token(token)
                    .await
                    .expect("read the token")
                    .expect("the token exists")
                    .last_used_at
            }
        }
    }

    /// `last_used_at` once the login's bookkeeping is done: the SQL directory
    /// records it before answering, Supabase mode just after.
    pub async fn settled_last_used_at(&self, token: &str) -> Option<DateTime<Utc>> {
        if let Some(fake) = &self.supabase {
            let id = fake
                .row("imap_tokens", "token", token)
                .and_then(|row| row.get("id").and_then(|v| v.as_str()).map(str::to_owned))
                .expect("the token exists");
            let filter = format!("eq.{id}");
            fake.wait_for_request(|r| r.method == "PATCH" && r.param("id") == Some(&filter))
                .await;
        }
        self.last_used_at(token).await
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A client logged in as `user`.
    pub async fn login(&self, user: &User) -> Client {
        let mut client = self.connect().await;
        let response = client
            .run(&format!("LOGIN {} {}", user.email, user.token))
            .await;
        assert!(response.is_ok(), "login failed: {response:?}");
        client
    }

    /// A customer with the given subscription and a token valid for a year.
    pub async fn user_with(&self, email: &str, status: &str, end: Option<DateTime<Utc>>) -> User {
        let id = new_id();
        if let Some(fake) = &self.supabase {
            fake.add_user(&id, email, Some(status), end);
        } else {
            self.database
                .accounts
                .add_user(&UserRecord {
                    id: id.clone(),
                    email: email.to_owned(),
                    subscription_status: Some(status.to_owned()),
                    subscription_end_date: end,
                })
                .await
                .expect("add user");
        }
        let token = self
            .token(&id, Some(Utc::now() + chrono::Duration::days(365)))
            .await;
        User {
            id,
            email: email.to_owned(),
            token,
        }
    }

    pub async fn user(&self, email: &str) -> User {
        self.user_with(email, "active", None).await
    }

    pub async fn token(&self, user_id: &str, expires_at: Option<DateTime<Utc>>) -> String {
        let token = format!("tok-{}", new_id());
        if let Some(fake) = &self.supabase {
            fake.add_token(&new_id(), user_id, &token, expires_at);
            return token;
        }
        self.database
            .accounts
            .add_token(&TokenRecord {
                id: new_id(),
                user_id: user_id.to_owned(),
                token: token.clone(),
                expires_at,
                last_used_at: None,
                created_at: None,
            })
            .await
            .expect("add token");
        token
    }

    pub async fn domain(&self, name: &str, owner: Option<&User>, active: bool, global: bool) {
        if let Some(fake) = self.domains_in_supabase() {
            fake.add_domain(
                &new_id(),
                name,
                owner.map(|u| u.id.as_str()),
                active,
                global,
            );
            return;
        }
        self.database
            .accounts
            .add_domain(&DomainRecord {
                id: new_id(),
                domain: name.to_owned(),
                user_id: owner.map(|u| u.id.clone()),
                active,
                global,
            })
            .await
            .expect("add domain");
    }

    /// alice@example.com, owner of the active domain alice.example, with
    /// these addresses on it: the fixture most scenarios start from.
    pub async fn alice_with(&self, addresses: &[&str]) -> User {
        let alice = self.user("alice@example.com").await;
        self.domain("alice.example", Some(&alice), true, false)
            .await;
        for address in addresses {
            self.address(&alice, address).await;
        }
        alice
    }

    pub async fn address(&self, user: &User, address: &str) {
        self.database
            .mail
            .create_address(&user.id, address)
            .await
            .expect("add address");
    }

    pub async fn ban(&self, scope: &str, value: &str, match_type: &str) {
        if let Some(fake) = self.bans_in_supabase() {
            fake.add_ban(&new_id(), scope, value, match_type, "active");
            return;
        }
        self.database
            .accounts
            .add_ban(&BanRecord {
                id: new_id(),
                scope: scope.to_owned(),
                value: value.to_owned(),
                match_type: match_type.to_owned(),
                active: true,
            })
            .await
            .expect("add ban");
    }

    /// Stores a message for an address, as `imap-server deliver` does.
    pub async fn deliver(&self, address: &str, raw: &str) -> u32 {
        let message =
            imap_server::imap::new_message(raw.as_bytes().to_vec(), Vec::new(), Utc::now());
        self.database
            .mail
            .append(
                &MailboxId::Folder {
                    user_id: address.to_owned(),
                    name: "INBOX".into(),
                },
                &message,
            )
            .await
            .expect("deliver")
            .uid
    }

    /// A number the test database answers, such as a `count(*)`.
    pub async fn number(&self, sql: &'static str) -> i64 {
        match &self.database.backend {
            imap_server::store::Backend::Postgres(pool) => sqlx::query_scalar(sql)
                .fetch_one(pool)
                .await
                .expect("query"),
            imap_server::store::Backend::Sqlite(pool) => sqlx::query_scalar(sql)
                .fetch_one(pool)
                .await
                .expect("query"),
        }
    }

    /// Runs SQL on the test database; for tests that play an external writer.
    pub async fn execute(&self, sql: &'static str) {
        match &self.database.backend {
            imap_server::store::Backend::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await.expect("execute SQL");
            }
            imap_server::store::Backend::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await.expect("execute SQL");
            }
        }
    }
}

/// A free port on 127.0.0.1, bound and released, for a process the test
/// starts (the server binary, HAProxy) to bind next.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn loopback_any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

fn database_url(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Postgres => (postgres::fresh_database_url(), None),
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}/test.db", dir.path().display());
            (url, Some(dir))
        }
    }
}

/// What a command got back.
#[derive(Debug, Clone)]
pub struct Response {
    pub untagged: Vec<String>,
    pub tagged: String,
}

impl Response {
    pub fn is_ok(&self) -> bool {
        self.status() == "OK"
    }

    /// OK, NO or BAD.
    pub fn status(&self) -> &str {
        self.tagged.split(' ').nth(1).unwrap_or("")
    }

    /// The tagged line without its tag.
    pub fn tail(&self) -> &str {
        self.tagged.split_once(' ').map_or("", |(_, rest)| rest)
    }

    pub fn has_untagged(&self, needle: &str) -> bool {
        self.untagged.iter().any(|line| line.contains(needle))
    }
}

/// A bare-bones IMAP client: sends lines, reads lines.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_tag: u32,
    pub greeting: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let mut client = Client::connect_raw(addr).await;
        client.greeting = client.line().await;
        assert!(
            client.greeting.starts_with("* OK"),
            "greeting: {}",
            client.greeting
        );
        client
    }

    /// Connected from another loopback address (127.0.0.0/8 is all
    /// loopback on Linux): a second client address for per-address rules.
    pub async fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> Client {
        let mut client = Client::connect_raw_from(addr, local).await;
        client.greeting = client.line().await;
        client
    }

    /// Connected from `local`, greeting not yet read: for a test that
    /// speaks first (a PROXY header).
    pub async fn connect_raw_from(addr: SocketAddr, local: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::new(local, 0))
            .expect("bind the local address");
        let stream = socket
            .connect(addr)
            .await
            .expect("connect to the test server");
        Client::from_stream(stream)
    }

    /// Connected, greeting not yet read.
    pub async fn connect_raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the test server");
        Client::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Client {
        let (read, write) = stream.into_split();
        Client {
            reader: BufReader::new(read),
            writer: write,
            next_tag: 1,
            greeting: String::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send to server");
    }

    /// Sends, or tells that the connection is gone (for tests that kill
    /// servers).
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).await.is_ok()
    }

    /// The next line, without CRLF. Panics when the server says nothing.
    pub async fn line(&mut self) -> String {
        self.try_line()
            .await
            .expect("the server closed the connection while an answer was expected")
    }

    /// The next line, or `None` at end of stream.
    pub async fn try_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        let read = tokio::time::timeout(ANSWER_TIMEOUT, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("the server did not answer in time");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
        }
    }

    /// The next line if one comes within `wait`: `Err(())` when none did,
    /// `Ok(None)` at end of stream. For clients that wait for news (IDLE)
    /// longer than any answer may take.
    pub async fn line_within(&mut self, wait: Duration) -> Result<Option<String>, ()> {
        let mut line = Vec::new();
        match tokio::time::timeout(wait, self.reader.read_until(b'\n', &mut line)).await {
            Err(_) if line.is_empty() => Err(()),
            // A line cut by the timeout: its rest follows at once.
            Err(_) => {
                let rest = self.line().await;
                Ok(Some(format!("{}{rest}", String::from_utf8_lossy(&line))))
            }
            Ok(Ok(0)) | Ok(Err(_)) => Ok(None),
            Ok(Ok(_)) => Ok(Some(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            )),
        }
    }

    /// Reads until the line tagged `tag`.
    pub async fn until_tagged(&mut self, tag: &str) -> Response {
        let mut untagged = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let line = self.line().await;
            if line.starts_with(&prefix) {
                return Response {
                    untagged,
                    tagged: line,
                };
            }
            untagged.push(line);
        }
    }

    pub fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends a command with a fresh tag and reads its answer.
    pub async fn run(&mut self, command: &str) -> Response {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tagged(&tag).await
    }

    /// The connection itself, once nothing is left buffered (after an OK to
    /// COMPRESS, what follows is no longer lines).
    pub fn into_stream(self) -> TcpStream {
        assert!(self.reader.buffer().is_empty(), "nothing follows the OK");
        self.reader
            .into_inner()
            .reunite(self.writer)
            .expect("the halves of one stream")
    }

    /// Sends each command and expects a BAD for every one.
    pub async fn expect_bad(&mut self, commands: &[&str]) {
        for command in commands {
            let response = self.run(command).await;
            assert_eq!(response.status(), "BAD", "{command}: {response:?}");
        }
    }

    /// Sends a command and returns everything up to and including its tagged
    /// line as text, literals inline: for answers that carry message bytes.
    pub async fn run_raw(&mut self, command: &str) -> String {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.raw_until_tagged(&tag).await
    }

    pub async fn raw_until_tagged(&mut self, tag: &str) -> String {
        let prefix = format!("{tag} ");
        let mut text = Vec::new();
        let mut line_start = 0;
        loop {
            let mut line = Vec::new();
            let read =
                tokio::time::timeout(ANSWER_TIMEOUT, self.reader.read_until(b'\n', &mut line))
                    .await
                    .expect("the server did not answer in time")
                    .expect("read from server");
            assert!(
                read > 0,
                "the server closed the connection: {}",
                String::from_utf8_lossy(&text)
            );
            text.extend_from_slice(&line);
            if let Some(length) = literal_length(&line) {
                let mut literal = vec![0u8; length];
                tokio::time::timeout(ANSWER_TIMEOUT, self.reader.read_exact(&mut literal))
                    .await
                    .expect("the server did not send the literal in time")
                    .expect("read literal");
                text.extend_from_slice(&literal);
                continue;
            }
            if text[line_start..].starts_with(prefix.as_bytes()) {
                return String::from_utf8_lossy(&text).into_owned();
            }
            line_start = text.len();
        }
    }

    /// Reads what is left until the server closes the connection.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_line().await {
            lines.push(line);
        }
        lines
    }

    /// Whether the server closed the connection (nothing more to read).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(ANSWER_TIMEOUT, self.reader.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// `{123}` at the end of a line announces a literal.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// Runs each named scenario against PostgreSQL and SQLite:
/// `on_both_backends!(scenario_a, scenario_b);` where each scenario is
/// `async fn scenario_a(server: TestServer)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::support::TestServer::start(super::support::Backend::Postgres).await).await;
                }
            )*
        }
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::support::TestServer::start(super::support::Backend::Sqlite).await).await;
                }
            )*
        }
    };
}

/// Runs each named scenario in Supabase mode (accounts, domains and bans in
/// the fake Supabase; inboxes and mail in PostgreSQL, and in SQLite).
#[macro_export]
macro_rules! in_supabase_mode {
    ($($scenario:ident),* $(,)?) => {
        mod supabase_on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    use super::support::{Backend, Options, TestServer};
                    super::$scenario(TestServer::start_with(Backend::Postgres, Options::supabase()).await).await;
                }
            )*
        }
        mod supabase_on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    use super::support::{Backend, Options, TestServer};
                    super::$scenario(TestServer::start_with(Backend::Sqlite, Options::supabase()).await).await;
                }
            )*
        }
    };
}

/// Runs each scenario on both backends and again in Supabase mode: for
/// behaviour that must not depend on where accounts live.
#[macro_export]
macro_rules! in_every_mode {
    ($($scenario:ident),* $(,)?) => {
        on_both_backends!($($scenario),*);
        in_supabase_mode!($($scenario),*);
    };
}
