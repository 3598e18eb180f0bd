//! Several nodes: three server processes (the real binary) on one PostgreSQL
//! database behind a real HAProxy (round robin, `send-proxy-v2`). Mail
//! delivered through one node, or by the receiver's plain SQL INSERT, reaches
//! a client idling on another; an EXPUNGE on a third reaches both; a node
//! killed (SIGKILL) in the middle of APPENDs loses nothing it answered OK,
//! and its clients carry on through the others.

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::haproxy::HaProxy;
use support::{Backend, Client, TestServer, User, free_port};

const BINARY: &str = env!("CARGO_BIN_EXE_imap-server");
const ADDRESS: &str = "box@example.com";
/// Clients that talk to one node directly (the nodes expect PROXY headers
/// from 127.0.0.1, HAProxy's address, only).
const DIRECT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Clients that go through HAProxy.
const VIA_HAPROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// One server process.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    /// The binary on `url`, with IDLE's own poll far beyond the test's
    /// patience: news from other nodes can only come through NOTIFY.
    fn start(url: &str, log: &Path) -> Node {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(BINARY)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("IMAP_BIND", addr.to_string())
            .env("IMAP_IDLE_POLL", "600")
            .env("PROXY_PROTOCOL_FROM", "127.0.0.1/32")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start imap-server");
        Node { child, addr }
    }

    /// SIGKILL: no BYE, no clean-up, as a crash or an OOM kill.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_listening(addr: SocketAddr) {
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node {addr} did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Cluster {
    fixtures: TestServer,
    alice: User,
    nodes: Vec<Node>,
    haproxy: HaProxy,
    frontend: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A fresh database with alice and her address, three nodes on it, and
/// HAProxy in front of them.
async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres::fresh_database_url();
    // Migrates the database and writes the fixtures; no client uses its
    // own listener.
    let fixtures = TestServer::start_on(Backend::Postgres, url.clone()).await;
    let alice = fixtures.user("alice@example.com").await;
    fixtures.address(&alice, ADDRESS).await;
    let nodes: Vec<Node> = (0..3)
        .map(|n| Node::start(&url, &dir.path().join(format!("node{n}.log"))))
        .collect();
    for node in &nodes {
        wait_listening(node.addr);
    }
    let frontend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let servers: String = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            format!(
                "    server node{n} {} send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 2\n",
                node.addr
            )
        })
        .collect();
    let haproxy = HaProxy::start(
        &format!(
            "frontend imap\n    bind {frontend}\n    default_backend nodes\n\n\
             backend nodes\n    balance roundrobin\n    option redispatch\n    retries 3\n{servers}"
        ),
        &[frontend],
    );
    Cluster {
        fixtures,
        alice,
        nodes,
        haproxy,
        frontend,
        _dir: dir,
    }
}

fn message(subject: &str) -> String {
    format!(
        "From: Writer <writer@example.org>\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n"
    )
}

fn append_command(subject: &str) -> String {
    let raw = message(subject);
    format!("APPEND {ADDRESS} {{{}+}}\r\n{raw}", raw.len())
}

/// Logged in and with the address selected, on one node directly.
async fn session_on(node: &Node, alice: &User) -> Client {
    let mut client = Client::connect_from(node.addr, DIRECT).await;
    assert!(client.greeting.starts_with("* OK"), "{}", client.greeting);
    let login = client
        .run(&format!("LOGIN {} {}", alice.email, alice.token))
        .await;
    assert!(login.is_ok(), "{login:?}");
    assert!(client.run(&format!("SELECT {ADDRESS}")).await.is_ok());
    client
}

/// How long, from `since`, until an idling client is told `news`; what
/// comes with it (RECENT counts, the flags of a message about to go) is
/// passed over.
async fn idle_news(client: &mut Client, news: &str, since: Instant) -> Duration {
    let mut told = Vec::new();
    while told.len() < 10 {
        let line = client.line().await;
        if line == news {
            return since.elapsed();
        }
        told.push(line);
    }
    panic!("not told {news:?}: {told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_and_expunges_travel_between_nodes() {
    let cluster = cluster().await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let mut idler = session_on(a, &cluster.alice).await;
    idler.send(b"i IDLE\r\n").await;
    assert_eq!(idler.line().await, "+ idling");

    // Through node B.
    let mut writer = session_on(b, &cluster.alice).await;
    let since = Instant::now();
    let appended = writer.run(&append_command("through node B")).await;
    assert!(appended.is_ok(), "{appended:?}");
    let via_b = idle_news(&mut idler, "* 1 EXISTS", since).await;

    // The receiver's path: a plain INSERT, no server involved.
    let since = Instant::now();
    cluster
        .fixtures
        .execute(
            "INSERT INTO emails (mailbox_owner, subject, from_addr, body) \
             VALUES ('box@example.com', 'by SQL', 'rx@example.org', 'hello')",
        )
        .await;
    let via_sql = idle_news(&mut idler, "* 2 EXISTS", since).await;

    // An EXPUNGE on node C reaches the idler on A and the session on B.
    let mut expunger = session_on(c, &cluster.alice).await;
    assert!(
        expunger
            .run("STORE 1 +FLAGS.SILENT (\\Deleted)")
            .await
            .is_ok()
    );
    let since = Instant::now();
    let expunged = expunger.run("EXPUNGE").await;
    assert_eq!(expunged.untagged, vec!["* 1 EXPUNGE"]);
    let expunge_to_a = idle_news(&mut idler, "* 1 EXPUNGE", since).await;
    let noop = writer.run("NOOP").await;
    assert!(noop.has_untagged("* 1 EXPUNGE"), "{noop:?}");
    idler.send(b"DONE\r\n").await;
    assert!(idler.until_tagged("i").await.is_ok());
    eprintln!(
        "news across nodes: APPEND on B -> A {via_b:?}, SQL INSERT -> A {via_sql:?}, EXPUNGE on C -> A {expunge_to_a:?}"
    );
    drop(cluster.haproxy);
}

/// What one writer through HAProxy achieved.
#[derive(Default)]
struct Written {
    /// Subjects whose APPEND was answered OK.
    confirmed: Vec<String>,
    /// Connections it had to open again after losing one.
    reconnects: u32,
    confirmed_after_kill: u32,
}

/// Greeted and logged in through HAProxy, or `None` (the node behind the
/// connection died at that moment).
async fn log_in_through(frontend: SocketAddr, alice: &User) -> Option<Client> {
    let mut client = Client::connect_raw_from(frontend, VIA_HAPROXY).await;
    if !client.try_line().await?.starts_with("* OK") {
        return None;
    }
    let login = format!("l LOGIN {} {}\r\n", alice.email, alice.token);
    tagged_ok(&mut client, &login, "l").await?.then_some(client)
}

/// Sends `command` (tagged `tag`) and tells whether it was answered OK;
/// `None` when the connection ended first.
async fn tagged_ok(client: &mut Client, command: &str, tag: &str) -> Option<bool> {
    if !client.try_send(command.as_bytes()).await {
        return None;
    }
    let prefix = format!("{tag} ");
    loop {
        let line = client.try_line().await?;
        if let Some(status) = line.strip_prefix(&prefix) {
            return Some(status.starts_with("OK"));
        }
    }
}

/// APPENDs through HAProxy until a while after the kill, reconnecting
/// whenever its connection dies.
async fn write_until_stopped(
    writer: usize,
    frontend: SocketAddr,
    alice: User,
    killed: Arc<AtomicBool>,
    total: Arc<AtomicUsize>,
) -> Written {
    let mut written = Written::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client: Option<Client> = None;
    let mut attempt = 0;
    while written.confirmed_after_kill < 5 {
        assert!(
            Instant::now() < deadline,
            "writer {writer} made no progress"
        );
        let Some(session) = client.as_mut() else {
            client = log_in_through(frontend, &alice).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        attempt += 1;
        let subject = format!("w{writer}-{attempt}");
        let command = format!("a {}\r\n", append_command(&subject));
        // Read before the answer: an OK seen after the kill was given by
        // a surviving node.
        let after_kill = killed.load(Ordering::SeqCst);
        match tagged_ok(session, &command, "a").await {
            Some(true) => {
                written.confirmed.push(subject);
                total.fetch_add(1, Ordering::SeqCst);
                if after_kill {
                    written.confirmed_after_kill += 1;
                }
            }
            Some(false) => panic!("writer {writer}: APPEND refused"),
            None => {
                written.reconnects += 1;
                client = None;
            }
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_append_loses_nothing_answered_ok() {
    let mut cluster = cluster().await;
    // A client halfway through an APPEND's literal on node B when it dies.
    let mut halfway = session_on(&cluster.nodes[1], &cluster.alice).await;
    let unfinished = message("never finished");
    halfway
        .send(format!("h APPEND {ADDRESS} {{{}}}\r\n", unfinished.len()).as_bytes())
        .await;
    assert!(halfway.line().await.starts_with('+'));
    halfway
        .send(&unfinished.as_bytes()[..unfinished.len() / 2])
        .await;

    let killed = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            tokio::spawn(write_until_stopped(
                writer,
                cluster.frontend,
                cluster.alice.clone(),
                killed.clone(),
                total.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    while total.load(Ordering::SeqCst) < 60 {
        assert!(started.elapsed() < Duration::from_secs(60), "no writes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.nodes[1].kill();
    killed.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for writer in writers {
        results.push(writer.await.expect("a writer"));
    }
    assert_eq!(halfway.try_line().await, None, "the killed node's client");

    let confirmed: Vec<&String> = results.iter().flat_map(|w| &w.confirmed).collect();
    let reconnects: u32 = results.iter().map(|w| w.reconnects).sum();
    assert!(
        reconnects >= 1,
        "round robin put writers on the killed node; they must have reconnected"
    );

    // Every confirmed APPEND is there, once; the unfinished one is not.
    let mut reader = session_on(&cluster.nodes[0], &cluster.alice).await;
    let fetched = reader
        .run_raw("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    let mut stored: HashMap<String, u32> = HashMap::new();
    for line in fetched.lines() {
        if let Some(subject) = line.strip_prefix("Subject: ") {
            *stored.entry(subject.trim().to_owned()).or_default() += 1;
        }
    }
    for subject in &confirmed {
        assert_eq!(stored.get(*subject), Some(&1), "{subject} answered OK");
    }
    assert!(!stored.contains_key("never finished"));
    eprintln!(
        "killed node: {} APPENDs answered OK by the cluster, all stored once; {} stored in all; {reconnects} reconnects through HAProxy",
        confirmed.len(),
        stored.values().sum::<u32>()
    );
}
