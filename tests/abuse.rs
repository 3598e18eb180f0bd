//! Abuse from the network: failed logins slow their address down, one
//! address cannot take every connection, and an unauthenticated connection
//! cannot outstay the login deadline. The delays here are the behaviour
//! under test (deliberate waits), with generous margins either side.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use imap_server::config::TlsFiles;
use imap_server::server::CleartextLogin;
use imap_server::server::tls::write_self_signed;
use support::tls_client::{connector, localhost};
use support::{Backend, Client, Options, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// A delay of one second was served.
const HELD: Duration = Duration::from_millis(900);
/// No delay was served (a login answers in milliseconds).
const PROMPT: Duration = Duration::from_millis(700);

fn with_penalty(mut options: Options) -> Options {
    options.limits.auth_penalty_max = Duration::from_secs(2);
    options
}

/// How long a failing LOGIN takes to be answered.
async fn failed_login(client: &mut Client) -> Duration {
    let started = Instant::now();
    let answer = client.run("LOGIN alice@example.com wrong-token").await;
    assert_eq!(
        answer.tail(),
        "NO [AUTHENTICATIONFAILED] Invalid IMAP token"
    );
    started.elapsed()
}

async fn failed_logins_slow_their_address_and_only_theirs(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    for attempt in 1..=3 {
        let took = failed_login(&mut client).await;
        assert!(took < PROMPT, "attempt {attempt} took {took:?}");
    }
    // The fourth waits 2^0 s before it is even checked.
    let took = failed_login(&mut client).await;
    assert!(took >= HELD, "the 4th failure took only {took:?}");
    // Another address is not slowed.
    let mut other = Client::connect_from(server.addr, ELSEWHERE).await;
    let took = failed_login(&mut other).await;
    assert!(took < PROMPT, "another address was slowed: {took:?}");
    // A success (itself held: the address is still penalised) forgives it.
    let mut fresh = server.connect().await;
    let started = Instant::now();
    assert!(
        fresh
            .run(&format!("LOGIN alice@example.com {}", alice.token))
            .await
            .is_ok()
    );
    assert!(started.elapsed() >= HELD);
    let mut after = server.connect().await;
    let took = failed_login(&mut after).await;
    assert!(
        took < PROMPT,
        "the success did not reset the penalty: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_their_address_and_only_theirs_on_postgres() {
    let options = with_penalty(Options::default());
    failed_logins_slow_their_address_and_only_theirs(
        TestServer::start_with(Backend::Postgres, options).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_their_address_and_only_theirs_on_sqlite() {
    let options = with_penalty(Options::default());
    failed_logins_slow_their_address_and_only_theirs(
        TestServer::start_with(Backend::Sqlite, options).await,
    )
    .await;
}

/// With the default cap (15 s) the 4th attempt waits 1 s.
async fn a_penalised_attempt_costs_supabase_nothing_until_its_delay_has_passed(server: TestServer) {
    server.user("alice@example.com").await;
    let mut client = server.connect().await;
    for _ in 1..=3 {
        failed_login(&mut client).await;
    }
    let token_lookups = |server: &TestServer| {
        server
            .fake()
            .requests()
            .iter()
            .filter(|r| r.path == "/rest/v1/imap_tokens")
            .count()
    };
    server.fake().clear_requests();
    client
        .send(b"p1 LOGIN alice@example.com wrong-token\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(token_lookups(&server), 0, "looked up during the delay");
    assert_eq!(client.until_tagged("p1").await.status(), "NO");
    assert_eq!(token_lookups(&server), 1);
}

in_supabase_mode!(a_penalised_attempt_costs_supabase_nothing_until_its_delay_has_passed);

fn with_cap(cap: u32) -> Options {
    let mut options = Options::default();
    options.limits.max_connections_per_ip = cap;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = TestServer::start_with(backend, with_cap(3)).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(server.connect().await);
        }
        let mut refused = Client::connect_raw(server.addr).await;
        assert_eq!(
            refused.line().await,
            "* BYE [UNAVAILABLE] Too many connections from your address"
        );
        assert!(refused.is_closed().await);
        // Another address has its own share.
        let other = Client::connect_from(server.addr, ELSEWHERE).await;
        assert!(other.greeting.starts_with("* OK"), "{}", other.greeting);
        // A connection that ends gives its place back.
        let mut leaving = held.pop().expect("three held");
        assert!(leaving.run("LOGOUT").await.is_ok());
        assert!(leaving.is_closed().await);
        let mut greeted = None;
        for _ in 0..50 {
            let mut again = Client::connect_raw(server.addr).await;
            let line = again.line().await;
            if line.starts_with("* OK") {
                greeted = Some(line);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(greeted.is_some(), "the place was never given back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_means_no_cap_per_address() {
    let server = TestServer::start_with(Backend::Sqlite, with_cap(0)).await;
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(server.connect().await);
    }
    assert!(held[59].run("NOOP").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_deadline_counts_from_the_connection_not_the_last_command() {
    let mut options = Options::default();
    options.limits.login_timeout = Duration::from_secs(2);
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let alice = server.user("alice@example.com").await;
    let mut logged_in = server.login(&alice).await;
    let mut chatty = server.connect().await;
    let started = Instant::now();
    let bye = loop {
        chatty.send(b"n NOOP\r\n").await;
        let line = chatty.line().await;
        if line.starts_with("* BYE") {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "NOOPs kept an unauthenticated connection open"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(bye, "* BYE Login timed out");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // The session that logged in is governed by the idle timeout instead.
    assert!(logged_in.run("NOOP").await.is_ok());
}

/// A client whose next command is always already waiting (it writes NOOPs
/// as fast as the server reads them) must meet the deadline too: the read
/// never has to wait, so a timeout on the read alone would never fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_lets_the_server_wait_still_meets_the_login_deadline() {
    let mut options = Options::default();
    options.limits.login_timeout = Duration::from_secs(1);
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let flood = tokio::spawn(async move {
        let batch = b"n NOOP\r\n".repeat(64);
        // Ends when the server closes the connection.
        while write.write_all(&batch).await.is_ok() {}
    });
    let mut lines = BufReader::new(read).lines();
    let started = Instant::now();
    let last = loop {
        let next = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        match next {
            Ok(Ok(Some(line))) if line.starts_with("* BYE") => break line,
            Ok(Ok(Some(_))) => {}
            other => panic!("the connection ended without a BYE: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a flood of NOOPs kept an unauthenticated connection open"
        );
    };
    assert_eq!(last, "* BYE Login timed out");
    flood.abort();
}

/// A server with TLS (STARTTLS and IMAPS) and the given login timeout; the
/// certificate lives as long as the returned directory.
async fn tls_server(login_timeout: Duration) -> (TestServer, TlsConnector, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let files = TlsFiles {
        cert: dir.path().join("server.crt"),
        key: dir.path().join("server.key"),
        reload_interval: Duration::from_secs(60),
    };
    write_self_signed(&["localhost".into()], &files.cert, &files.key)
        .expect("write a test certificate");
    let connector = connector(&[&files.cert]);
    let mut options = Options {
        tls: Some((files, CleartextLogin::LoopbackOnly)),
        ..Options::default()
    };
    options.limits.login_timeout = login_timeout;
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    (server, connector, dir)
}

/// The login deadline is 3 s; each client spends 2.5 s of it before or in
/// its TLS handshake. Counted from the connection, it is over 3 s after
/// connecting; restarted after the handshake, it would last until 5.5 s.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(3);
const STALL: Duration = Duration::from_millis(2500);
const WITHIN_DEADLINE: Duration = Duration::from_millis(4500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_implicit_tls_handshake_counts_against_the_login_deadline() {
    let (server, connector, _dir) = tls_server(LOGIN_TIMEOUT).await;
    let started = Instant::now();
    let tcp = TcpStream::connect(server.tls_addr.expect("an IMAPS listener"))
        .await
        .expect("connect");
    tokio::time::sleep(STALL).await;
    let tls = connector
        .connect(localhost(), tcp)
        .await
        .expect("the handshake is still in time");
    let mut tls = BufReader::new(tls);
    let mut bye = None;
    while started.elapsed() < Duration::from_secs(10) {
        let mut line = String::new();
        match tls.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line.starts_with("* BYE") => {
                bye = Some(line.trim_end().to_owned());
                break;
            }
            Ok(_) => {}
        }
        if line.starts_with("* OK") || line.starts_with("n ") {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = tls.get_mut().write_all(b"n NOOP\r\n").await;
        }
    }
    let took = started.elapsed();
    assert_eq!(bye.as_deref(), Some("* BYE Login timed out"));
    assert!(
        took < WITHIN_DEADLINE,
        "the deadline restarted after the handshake: closed after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_starttls_handshake_ends_at_the_login_deadline() {
    let (server, _connector, _dir) = tls_server(LOGIN_TIMEOUT).await;
    let started = Instant::now();
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut plain = BufReader::new(tcp);
    let mut greeting = String::new();
    plain.read_line(&mut greeting).await.expect("the greeting");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    tokio::time::sleep(STALL).await;
    plain
        .get_mut()
        .write_all(b"s STARTTLS\r\n")
        .await
        .expect("send STARTTLS");
    let mut answer = String::new();
    plain.read_line(&mut answer).await.expect("the answer");
    assert_eq!(answer, "s OK Begin TLS negotiation now\r\n");
    // The client never starts its handshake.
    let mut byte = [0u8; 1];
    let end = tokio::time::timeout(Duration::from_secs(10), plain.read(&mut byte)).await;
    let took = started.elapsed();
    assert!(
        matches!(end, Ok(Ok(0)) | Ok(Err(_))),
        "the stalled handshake was not ended: {end:?}"
    );
    assert!(
        took < WITHIN_DEADLINE,
        "the handshake got a full login timeout of its own: closed after {took:?}"
    );
}
