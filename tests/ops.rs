//! Running it like production: `/metrics` counts exactly what clients did,
//! the health probes tell a load balancer the truth, the HTTP listener
//! answers every bad request and never hangs, and SIGTERM ends the real
//! binary gracefully.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::binary::{BINARY, imap_server, user_with_token};
use support::{Backend, Client, Options, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SAMPLE: &str =
    "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: Hi\r\n\r\nHello\r\n";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(
        backend,
        Options {
            metrics: true,
            ..Options::default()
        },
    )
    .await
}

/// An HTTP answer as a client reads it, up to the server's close.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads until the server closes the connection.
async fn http(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send the request");
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Answer {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection after answering")
        .expect("read the answer");
    let text = String::from_utf8(raw).expect("a text answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Polls until the probe says ready: the LISTEN connection and the caches
/// come up in the background after start-up.
async fn wait_ready(addr: SocketAddr) {
    for _ in 0..200 {
        if get(addr, "/health/ready").await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the server never became ready: {:?}",
        get(addr, "/health/ready").await
    );
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await
}

/// The samples of one scrape, by series: the name and its labels sorted,
/// as in `imap_commands_total{command="NOOP",status="ok"}`.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(server: &TestServer) -> Scrape {
        let answer = get(server.metrics_addr.expect("metrics enabled"), "/metrics").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            answer
                .head
                .contains("Content-Type: text/plain; version=0.0.4"),
            "{}",
            answer.head
        );
        Scrape::parse(&answer.body)
    }

    /// Parses the Prometheus text format (0.0.4) strictly: every sample
    /// belongs to a family announced by a TYPE line, every value is a number.
    fn parse(text: &str) -> Scrape {
        let mut families = HashSet::new();
        let mut samples = HashMap::new();
        for line in text.lines().filter(|line| !line.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                families.insert(name.to_owned());
                continue;
            }
            if line.starts_with('#') {
                assert!(line.starts_with("# HELP "), "{line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}').unwrap())),
                None => (series, Vec::new()),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| families.contains(*base))
                .unwrap_or(name);
            assert!(families.contains(family), "no TYPE for {line}");
            samples.insert(series_key(name, &labels), value);
        }
        Scrape(samples)
    }

    /// A sample's value; 0 when the series does not exist yet (families
    /// grow their series on first use).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .get(&series_key(name, &labels))
            .copied()
            .unwrap_or(0.0)
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.contains_key(&series_key(name, &labels))
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closing quote") {
                (_, '\\') => {
                    let (_, escaped) = chars.next().expect("an escaped character");
                    value.push(if escaped == 'n' { '\n' } else { escaped });
                }
                (at, '"') => break at,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// A client that counts the bytes it sends, to check `imap_received_bytes_total`.
struct Counted {
    client: Client,
    sent: usize,
}

impl Counted {
    async fn connect(server: &TestServer) -> Counted {
        Counted {
            client: server.connect().await,
            sent: 0,
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.sent += bytes.len();
        self.client.send(bytes.as_bytes()).await;
    }

    async fn run(&mut self, tag: &str, command: &str) -> support::Response {
        self.send(&format!("{tag} {command}\r\n")).await;
        self.client.until_tagged(tag).await
    }
}

async fn metrics_count_what_happened(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    server.address(&alice, "box@alice.example").await;
    let before = Scrape::of(&server).await;

    let mut good = Counted::connect(&server).await;
    let mut bad = Counted::connect(&server).await;
    let during = Scrape::of(&server).await;
    let open = |s: &Scrape| s.get("imap_connections_open", &[("listener", "imap")]);
    assert_eq!(open(&during) - open(&before), 2.0);

    let login = format!("LOGIN {} {}", alice.email, alice.token);
    assert!(good.run("a1", &login).await.is_ok());
    let refused = bad.run("b1", "LOGIN alice@example.com wrong-token").await;
    assert_eq!(refused.status(), "NO");
    assert!(good.run("a2", "NOOP").await.is_ok());
    assert!(good.run("a3", "SELECT INBOX").await.is_ok());
    assert_eq!(
        good.run("a4", "FROB alice@example.com").await.status(),
        "BAD"
    );
    assert!(good.run("a5", "UID FETCH 1:* FLAGS").await.is_ok());

    good.send("a6 IDLE\r\n").await;
    assert_eq!(good.client.line().await, "+ idling");
    let idling = Scrape::of(&server).await;
    assert_eq!(idling.get("imap_idle_sessions", &[]), 1.0);
    server.deliver("box@alice.example", SAMPLE).await;
    assert_eq!(good.client.line().await, "* 1 EXISTS");
    good.send("DONE\r\n").await;
    assert!(good.client.until_tagged("a6").await.is_ok());
    let sent = good.sent + bad.sent;
    drop((good, bad));

    // The closed connections leave the gauge once the server sees the close.
    let mut after = Scrape::of(&server).await;
    for _ in 0..100 {
        if open(&after) == open(&before) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = Scrape::of(&server).await;
    }
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let command = |name: &str, status: &str| {
        delta(
            "imap_commands_total",
            &[("command", name), ("status", status)],
        )
    };
    assert_eq!(open(&after), open(&before));
    assert_eq!(
        delta("imap_connections_total", &[("listener", "imap")]),
        2.0
    );
    assert_eq!(delta("imap_logins_total", &[("outcome", "ok")]), 1.0);
    assert_eq!(
        delta("imap_logins_total", &[("outcome", "bad_credentials")]),
        1.0
    );
    assert_eq!(command("LOGIN", "ok"), 1.0);
    assert_eq!(command("LOGIN", "no"), 1.0);
    assert_eq!(command("NOOP", "ok"), 1.0);
    assert_eq!(command("SELECT", "ok"), 1.0);
    assert_eq!(command("FETCH", "ok"), 1.0);
    assert_eq!(command("IDLE", "ok"), 1.0);
    // An unknown command is "other", never the client's word.
    assert_eq!(command("other", "bad"), 1.0);
    assert!(
        !after
            .0
            .keys()
            .any(|series| series.contains("FROB") || series.contains("alice"))
    );
    let total: f64 = after
        .0
        .iter()
        .filter(|(series, _)| series.starts_with("imap_commands_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(total, 7.0, "one count per tagged answer");
    // Latency: one observation per answer but IDLE, each within the test's time.
    let count = |name: &str| delta("imap_command_duration_seconds_count", &[("command", name)]);
    assert_eq!(
        (count("LOGIN"), count("NOOP"), count("IDLE")),
        (2.0, 1.0, 0.0)
    );
    let noop_sum = delta("imap_command_duration_seconds_sum", &[("command", "NOOP")]);
    assert!(noop_sum > 0.0 && noop_sum < 5.0, "{noop_sum}");
    assert_eq!(
        after.get(
            "imap_command_duration_seconds_bucket",
            &[("command", "NOOP"), ("le", "+Inf")]
        ),
        1.0
    );
    assert_eq!(delta("imap_received_bytes_total", &[]), sent as f64);
    assert!(delta("imap_sent_bytes_total", &[]) > 0.0);
    assert_eq!(after.get("imap_idle_sessions", &[]), 0.0);
    assert_eq!(delta("imap_notification_lag_seconds_count", &[]), 1.0);
    assert_eq!(delta("imap_database_errors_total", &[]), 0.0);
    // Read at the scrape: the pool, and the caches the logins loaded.
    assert!(after.has("imap_database_connections", &[("state", "idle")]));
    assert!(after.has("imap_database_connections", &[("state", "in_use")]));
    // Every statement waited for its connection: the commands above took
    // some, and an idle pool hands them out well within a second.
    let waits = delta("imap_database_pool_wait_seconds_count", &[]);
    assert!(waits >= 3.0, "{waits}");
    assert_eq!(
        after.get("imap_database_pool_wait_seconds_bucket", &[("le", "+Inf")]),
        after.get("imap_database_pool_wait_seconds_count", &[])
    );
    assert!(delta("imap_database_pool_wait_seconds_sum", &[]) < waits);
    assert!(
        after.get(
            "imap_cache_refreshes_total",
            &[("cache", "bans"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(after.has("imap_cache_age_seconds", &[("cache", "bans")]));
}

async fn readiness_holds_on_a_healthy_server(server: TestServer) {
    let addr = server.metrics_addr.unwrap();
    let live = get(addr, "/health/live").await;
    assert_eq!((live.status, live.body.as_str()), (200, "live\n"));
    wait_ready(addr).await;
}

async fn bad_http_requests_are_answered_and_closed(server: TestServer) {
    let addr = server.metrics_addr.unwrap();
    assert_eq!(get(addr, "/nowhere").await.status, 404);
    let post = http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"), "{post:?}");
    // A TLS ClientHello, or any other garbage.
    assert_eq!(
        http(
            addr,
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"
        )
        .await
        .status,
        400
    );
    assert_eq!(http(addr, b"GET\r\n\r\n").await.status, 400);
    // A head over 8 KiB, without its end ever coming.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 16 * 1024));
    let oversized = http(addr, &huge).await;
    assert_eq!(oversized.status, 400);
    assert_eq!(oversized.body, "request head too large\n");
    let with_body = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
    )
    .await;
    assert_eq!(with_body.status, 400);
    // HEAD: the head only.
    let head = http(addr, b"HEAD /health/live HTTP/1.1\r\n\r\n").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert!(head.head.contains("Content-Length: 5"), "{head:?}");
}

async fn a_slow_http_client_is_cut_off(server: TestServer) {
    let addr = server.metrics_addr.unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    // One byte every half second: never a whole head within the timeout.
    let trickle = tokio::spawn(async move {
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: abcdefghijklmnopqrstuvwxyz0123456789" {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let answer = read_answer(&mut read).await;
    let took = started.elapsed();
    trickle.abort();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(7),
        "cut off after {took:?}"
    );
}

macro_rules! on_both_backends_with_metrics {
    ($($scenario:ident),* $(,)?) => {
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::start(super::Backend::Postgres).await).await;
                }
            )*
        }
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::start(super::Backend::Sqlite).await).await;
                }
            )*
        }
    };
}

on_both_backends_with_metrics!(
    metrics_count_what_happened,
    readiness_holds_on_a_healthy_server,
    bad_http_requests_are_answered_and_closed,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_client_is_cut_off_by_the_timeout() {
    a_slow_http_client_is_cut_off(start(Backend::Sqlite).await).await;
}

/// Supabase requests are counted by outcome, with their latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_requests_are_counted() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options {
            metrics: true,
            ..Options::supabase()
        },
    )
    .await;
    let alice = server.user("alice@example.com").await;
    let before = Scrape::of(&server).await;
    let mut client = server.login(&alice).await;
    assert!(client.run("NOOP").await.is_ok());
    let after = Scrape::of(&server).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let ok = delta("imap_supabase_requests_total", &[("outcome", "ok")]);
    assert!(ok >= 1.0, "a login asks Supabase: {ok}");
    // Every request is timed, whatever its outcome.
    let all: f64 = after
        .0
        .iter()
        .filter(|(series, _)| series.starts_with("imap_supabase_requests_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(
        after.get("imap_supabase_request_duration_seconds_count", &[]),
        all
    );
    assert_eq!(
        delta("imap_supabase_requests_total", &[("outcome", "timeout")]),
        0.0
    );
}

/// The server's database name, and a pool connected as the superuser.
async fn as_superuser(server: &TestServer) -> (String, sqlx::PgPool) {
    let name = url::Url::parse(&server.url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = sqlx::PgPool::connect(&support::postgres::admin_url())
        .await
        .expect("connect as the superuser");
    (name, admin)
}

/// A database that goes away makes the process unready (a load balancer
/// stops sending it clients); liveness is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_goes_away() {
    let server = start(Backend::Postgres).await;
    let addr = server.metrics_addr.unwrap();
    wait_ready(addr).await;
    let (name, admin) = as_superuser(&server).await;
    let drop = format!("DROP DATABASE \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&admin)
        .await
        .expect("drop the server's database");
    let unready = get(addr, "/health/ready").await;
    assert_eq!(unready.status, 503, "{unready:?}");
    assert!(unready.body.starts_with("not ready: "), "{unready:?}");
    assert_eq!(get(addr, "/health/live").await.status, 200);
}

/// A PostgreSQL process without its LISTEN connection hears nobody else's
/// deliveries: it is not ready, though its pool still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_without_the_listen_connection() {
    let server = start(Backend::Postgres).await;
    let addr = server.metrics_addr.unwrap();
    wait_ready(addr).await;
    let (name, admin) = as_superuser(&server).await;
    // Only the LISTEN connection; it reconnects, so keep ending it.
    let kill = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{name}' AND query ILIKE 'LISTEN%'"
    );
    let mut seen = None;
    for _ in 0..50 {
        sqlx::query(sqlx::AssertSqlSafe(kill.clone()))
            .execute(&admin)
            .await
            .unwrap();
        let answer = get(addr, "/health/ready").await;
        if answer.status == 503 {
            seen = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = seen.expect("readiness fails while LISTEN is down");
    assert_eq!(
        answer.body,
        "not ready: change notifications (LISTEN) not connected\n"
    );
    // It comes back by itself.
    let mut back = false;
    for _ in 0..250 {
        if get(addr, "/health/ready").await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "LISTEN reconnects and readiness returns");
}

// --- Graceful shutdown of the real binary -----------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary serving an embedded SQLite database in a fresh
/// directory, with one user; its token, IMAP and HTTP addresses.
struct Served {
    process: std::process::Child,
    token: String,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn serve_binary(shutdown_timeout: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let token = user_with_token(dir.path(), "alice@example.com", "30");
    let bind = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let env = [
        ("IMAP_BIND", bind.as_str()),
        ("METRICS_BIND", metrics.as_str()),
        ("SHUTDOWN_TIMEOUT", shutdown_timeout),
    ];
    let process = imap_server(dir.path(), &env, &["serve"])
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let listening = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(&bind).is_ok()
    });
    assert!(listening, "the server starts listening");
    let metrics_addr: SocketAddr = metrics.parse().unwrap();
    wait_ready(metrics_addr).await;
    Served {
        process,
        token,
        addr: bind.parse().unwrap(),
        metrics_addr,
        _dir: dir,
    }
}

fn sigterm(process: &std::process::Child) -> Instant {
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    signalled
}

/// Waits for the exit, which must come before `limit` has passed since `since`.
fn exit_status(
    process: &mut std::process::Child,
    since: Instant,
    limit: Duration,
) -> std::process::ExitStatus {
    loop {
        if let Some(status) = process.try_wait().unwrap() {
            return status;
        }
        assert!(
            since.elapsed() < limit,
            "the process exits within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client from `address` whose next login attempt the failed-login
/// penalty holds for `2^(failures-3)` seconds: a command that stays in flight.
async fn penalised_client(addr: SocketAddr, address: &str, failures: u32) -> Client {
    let address = address.parse().unwrap();
    let mut failed = 0;
    while failed < failures {
        let mut client = Client::connect_from(addr, address).await;
        // Five failures close a connection; the address keeps its count.
        for _ in 0..(failures - failed).min(4) {
            assert_eq!(
                client.run("LOGIN alice@example.com wrong").await.status(),
                "NO"
            );
            failed += 1;
        }
    }
    Client::connect_from(addr, address).await
}

/// SIGTERM: no new connections, BYE at once to an idling session, BYE
/// after the answer to a session whose command was running, and exit 0
/// well within SHUTDOWN_TIMEOUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_bye_finishes_commands_and_exits_cleanly() {
    let Served {
        mut process,
        token,
        addr,
        metrics_addr,
        _dir,
    } = serve_binary("5").await;
    assert_eq!(get(metrics_addr, "/health/live").await.status, 200);
    let mut idle = Client::connect(addr).await;
    let login = format!("LOGIN alice@example.com {token}");
    assert!(idle.run(&login).await.is_ok());
    assert!(idle.run("SELECT INBOX").await.is_ok());
    idle.send(b"i1 IDLE\r\n").await;
    assert_eq!(idle.line().await, "+ idling");

    // A client mid-command: its LOGIN is held two seconds by the penalty
    // of four failures from its address.
    let mut busy = penalised_client(addr, "127.0.0.2", 4).await;
    busy.send(format!("b1 {login}\r\n").as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = sigterm(&process);
    assert_eq!(idle.rest().await, vec!["* BYE Server shutting down"]);
    drop(idle);
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "an idling session hears BYE at once: {:?}",
        signalled.elapsed()
    );
    // No new clients once shutdown began.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    let answered = busy.rest().await;
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(
        answered[0].starts_with("b1 OK"),
        "the running LOGIN is answered: {answered:?}"
    );
    assert_eq!(answered[1], "* BYE Server shutting down");
    drop(busy);

    let status = exit_status(&mut process, signalled, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

/// The unit in deploy/ keeps its hardening, and gives shutdown more time
/// than SHUTDOWN_TIMEOUT's default; `systemd-analyze verify` accepts it
/// where systemd is installed (README: Deployment has its security score).
#[test]
fn the_systemd_unit_is_hardened() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/imap-server.service");
    let unit = std::fs::read_to_string(&path).expect("deploy/imap-server.service");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{key}= is missing"))
    };
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("Restart", "on-failure"),
        ("User", "imap-server"),
        ("ReadWritePaths", "/var/lib/imap-server"),
        ("EnvironmentFile", "/etc/imap-server/env"),
    ] {
        assert_eq!(value(key), expected, "{key}");
    }
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    let default = imap_server::config::Limits::default().shutdown_timeout;
    assert!(
        stop > default.as_secs(),
        "TimeoutStopSec={stop} must exceed {default:?}"
    );
    if Path::new("/usr/bin/systemd-analyze").exists() {
        // The binary need not be installed for the check: point at ours.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("imap-server.service");
        std::fs::write(&copy, unit.replace("/usr/local/bin/imap-server", BINARY)).unwrap();
        let verified = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
}

/// A command still running when SHUTDOWN_TIMEOUT runs out does not hold
/// the exit: the process ends on time, and cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_a_command_that_runs_on() {
    let Served {
        mut process,
        token,
        addr,
        _dir,
        ..
    } = serve_binary("1").await;
    // Five failures: the next attempt waits four seconds, past the timeout.
    let mut busy = penalised_client(addr, "127.0.0.3", 5).await;
    busy.send(format!("b1 LOGIN alice@example.com {token}\r\n").as_bytes())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = sigterm(&process);
    let status = exit_status(&mut process, signalled, Duration::from_millis(3500));
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "it waited SHUTDOWN_TIMEOUT for the command: {:?}",
        signalled.elapsed()
    );
    assert!(
        busy.rest().await.is_empty(),
        "no answer came after the exit"
    );
}

/// Connections are counted by the listener they came in on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_counted_by_listener() {
    let dir = tempfile::tempdir().unwrap();
    let files = imap_server::config::TlsFiles {
        cert: dir.path().join("server.crt"),
        key: dir.path().join("server.key"),
        reload_interval: Duration::from_secs(3600),
    };
    imap_server::server::tls::write_self_signed(
        &["localhost".into(), "127.0.0.1".into()],
        &files.cert,
        &files.key,
    )
    .unwrap();
    let options = Options {
        metrics: true,
        tls: Some((
            files.clone(),
            imap_server::server::CleartextLogin::LoopbackOnly,
        )),
        ..Options::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let tcp = TcpStream::connect(server.tls_addr.unwrap()).await.unwrap();
    let mut tls = support::tls_client::connector(&[&files.cert])
        .connect(support::tls_client::localhost(), tcp)
        .await
        .expect("TLS handshake");
    let mut greeting = [0u8; 5];
    tls.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"* OK ");
    let _plain = server.connect().await;
    let scrape = Scrape::of(&server).await;
    for listener in ["imap", "imaps"] {
        let labels = [("listener", listener)];
        assert_eq!(
            scrape.get("imap_connections_total", &labels),
            1.0,
            "{listener}"
        );
        assert_eq!(
            scrape.get("imap_connections_open", &labels),
            1.0,
            "{listener}"
        );
    }
}
