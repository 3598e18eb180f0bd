//! Abuse from the network: failed logins slow their address down, one
//! address cannot take every connection, and an unauthenticated connection
//! cannot outstay the login deadline. The delays here are the behaviour
//! under test (deliberate waits), with generous margins either side.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use support::{Backend, Client, Options, TestServer};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_penalised_attempt_costs_supabase_nothing_until_its_delay_has_passed() {
    let options = with_penalty(Options::supabase());
    let server = TestServer::start_with(Backend::Postgres, options).await;
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
