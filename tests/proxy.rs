//! The PROXY protocol (`PROXY_PROTOCOL_FROM`): behind a real HAProxy
//! (`send-proxy-v2` and `send-proxy`), and spoken directly with headers built
//! here byte by byte. The address in the header is the client address for
//! the per-address cap, the login penalty and the loopback rule; a listed
//! peer must send a valid header in time; anyone else's header is just input.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use imap_server::config::TlsFiles;
use imap_server::server::tls::write_self_signed;
use imap_server::server::{CleartextLogin, ProxyProtocol};
use support::haproxy::HaProxy;
use support::tls_client::{connector, localhost};
use support::{Backend, Client, Options, TestServer, User, free_port};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where the proxies of these tests connect from.
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Two client addresses on loopback that are not the proxy's.
const CLIENT_A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const CLIENT_B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const TOO_MANY: &str = "* BYE [UNAVAILABLE] Too many connections from your address";

fn trusting_loopback_proxy() -> ProxyProtocol {
    let mut proxy = ProxyProtocol::new(vec!["127.0.0.1/32".parse().unwrap()]);
    proxy.header_timeout = HEADER_TIMEOUT;
    proxy
}

fn options(cap: u32) -> Options {
    let mut options = Options {
        proxy_protocol: Some(trusting_loopback_proxy()),
        ..Options::default()
    };
    options.limits.max_connections_per_ip = cap;
    options
}

/// `PROXY TCP4 <client> 127.0.0.1 <port> 143`, as HAProxy's `send-proxy` writes it.
fn v1(client: Ipv4Addr) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 50000 143\r\n").into_bytes()
}

/// A v2 header: the 12-byte signature, version 2 and `command`, TCP over
/// IPv4, and the addresses (client first).
fn v2(command: u8, client: Ipv4Addr) -> Vec<u8> {
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    bytes.push(0x20 | command);
    bytes.push(0x11);
    bytes.extend_from_slice(&12u16.to_be_bytes());
    bytes.extend_from_slice(&client.octets());
    bytes.extend_from_slice(&[127, 0, 0, 1]);
    bytes.extend_from_slice(&50000u16.to_be_bytes());
    bytes.extend_from_slice(&143u16.to_be_bytes());
    bytes
}

const PROXY_COMMAND: u8 = 1;
const LOCAL_COMMAND: u8 = 0;

/// Connected from the proxy's address, header sent, first line read.
async fn proxied(server: &TestServer, header: &[u8]) -> (Client, String) {
    let mut client = Client::connect_raw_from(server.addr, PROXY).await;
    client.send(header).await;
    let first = client.line().await;
    (client, first)
}

async fn failed_login(client: &mut Client) -> Duration {
    let started = Instant::now();
    let answer = client.run("LOGIN alice@example.com wrong-token").await;
    assert!(
        answer.tail().starts_with("NO [AUTHENTICATIONFAILED]"),
        "{answer:?}"
    );
    started.elapsed()
}

fn login_command(user: &User) -> String {
    format!("LOGIN {} {}", user.email, user.token)
}

#[tokio::test]
async fn the_header_s_address_is_the_one_capped_and_local_keeps_the_socket_s() {
    let server = TestServer::start_with(Backend::Sqlite, options(1)).await;
    let one: Ipv4Addr = "192.0.2.1".parse().unwrap();
    let (_first, greeting) = proxied(&server, &v1(one)).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // The same client through v2: over its cap of one.
    let (mut second, answer) = proxied(&server, &v2(PROXY_COMMAND, one)).await;
    assert_eq!(answer, TOO_MANY);
    assert!(second.is_closed().await);
    // Another client through the same proxy socket address is not.
    let (_other, greeting) = proxied(&server, &v1("192.0.2.2".parse().unwrap())).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // LOCAL (the proxy's own health check) counts as the proxy's address:
    // one place, then full.
    let (_check, greeting) = proxied(&server, &v2(LOCAL_COMMAND, Ipv4Addr::UNSPECIFIED)).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let (_again, answer) = proxied(&server, b"PROXY UNKNOWN\r\n").await;
    assert_eq!(answer, TOO_MANY, "UNKNOWN also keeps the socket address");
}

#[tokio::test]
async fn the_login_penalty_follows_the_header_s_address() {
    let mut options = options(0);
    options.limits.auth_penalty_max = Duration::from_secs(2);
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    server.user("alice@example.com").await;
    let (mut guesser, _) = proxied(&server, &v2(PROXY_COMMAND, "192.0.2.3".parse().unwrap())).await;
    for attempt in 1..=3 {
        let took = failed_login(&mut guesser).await;
        assert!(
            took < Duration::from_millis(700),
            "attempt {attempt}: {took:?}"
        );
    }
    let took = failed_login(&mut guesser).await;
    assert!(
        took >= Duration::from_millis(900),
        "the 4th failure took {took:?}"
    );
    // Another client behind the same proxy is not slowed down.
    let (mut innocent, _) = proxied(&server, &v1("192.0.2.4".parse().unwrap())).await;
    let took = failed_login(&mut innocent).await;
    assert!(
        took < Duration::from_millis(700),
        "another client was slowed: {took:?}"
    );
}

#[tokio::test]
async fn a_client_behind_a_local_proxy_is_not_loopback_for_cleartext_login() {
    let (server, _, alice, _dir) = with_tls(CleartextLogin::LoopbackOnly, 0).await;
    let (mut remote, greeting) =
        proxied(&server, &v2(PROXY_COMMAND, "192.0.2.5".parse().unwrap())).await;
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    let login = remote.run(&login_command(&alice)).await;
    assert!(
        login.tail().starts_with("NO [PRIVACYREQUIRED]"),
        "{login:?}"
    );
    // The proxy's own LOCAL connection is loopback, as it really is.
    let (mut local, greeting) = proxied(&server, &v2(LOCAL_COMMAND, Ipv4Addr::UNSPECIFIED)).await;
    assert!(!greeting.contains("LOGINDISABLED"), "{greeting}");
    assert!(local.run(&login_command(&alice)).await.is_ok());
}

#[tokio::test]
async fn a_header_from_an_unlisted_address_is_only_a_bad_command() {
    let server = TestServer::start_with(Backend::Sqlite, options(1)).await;
    // Greeted at once: nothing is read ahead from an unlisted peer.
    let mut client = Client::connect_from(server.addr, CLIENT_A).await;
    assert!(client.greeting.starts_with("* OK"), "{}", client.greeting);
    client.send(&v1("192.0.2.6".parse().unwrap())).await;
    let answer = client.line().await;
    assert!(answer.contains("BAD"), "{answer}");
    // Still counted as itself: its address is full, 192.0.2.6 is not used.
    let mut second = Client::connect_raw_from(server.addr, CLIENT_A).await;
    assert_eq!(second.line().await, TOO_MANY);
    let (_claimed, greeting) = proxied(&server, &v1("192.0.2.6".parse().unwrap())).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
}

#[tokio::test]
async fn a_listed_peer_without_a_valid_header_is_closed_ungreeted() {
    let server = TestServer::start_with(Backend::Sqlite, options(0)).await;
    let mut bad_v2_version = v2(PROXY_COMMAND, "192.0.2.7".parse().unwrap());
    bad_v2_version[12] = 0x11;
    let mut truncated_v2_addresses = v2(PROXY_COMMAND, "192.0.2.7".parse().unwrap());
    truncated_v2_addresses[15] = 4;
    truncated_v2_addresses.truncate(20);
    let overlong = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
    let cases: [(&str, &[u8]); 6] = [
        ("an IMAP command", b"a1 CAPABILITY\r\n"),
        (
            "a v1 header with a bad address",
            b"PROXY TCP4 192.0.2.999 127.0.0.1 1 143\r\n",
        ),
        (
            "a v1 header without its ports",
            b"PROXY TCP4 192.0.2.7 127.0.0.1\r\n",
        ),
        ("an overlong v1 line", &overlong),
        ("v2 with version 1", &bad_v2_version),
        ("v2 with too few address bytes", &truncated_v2_addresses),
    ];
    for (what, bytes) in cases {
        let mut client = Client::connect_raw_from(server.addr, PROXY).await;
        let started = Instant::now();
        client.send(bytes).await;
        assert_eq!(
            client.rest().await,
            Vec::<String>::new(),
            "{what}: no greeting"
        );
        assert!(started.elapsed() < HEADER_TIMEOUT, "{what}: closed at once");
    }
}

#[tokio::test]
async fn a_slow_header_is_timed_out() {
    let server = TestServer::start_with(Backend::Sqlite, options(0)).await;
    for start in [
        &b"PROXY TCP4 192.0.2.8"[..],
        b"",
        b"\r\n\r\n\0\r\nQUIT\n\x21",
    ] {
        let mut client = Client::connect_raw_from(server.addr, PROXY).await;
        let started = Instant::now();
        client.send(start).await;
        assert_eq!(client.rest().await, Vec::<String>::new());
        let took = started.elapsed();
        assert!(
            took >= HEADER_TIMEOUT - Duration::from_millis(100) && took < 4 * HEADER_TIMEOUT,
            "closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn imaps_reads_the_header_before_the_tls_hello() {
    let (server, files, alice, _dir) = with_tls(CleartextLogin::NoOne, 1).await;
    let tls_addr = server.tls_addr.unwrap();
    let client: Ipv4Addr = "192.0.2.10".parse().unwrap();
    let mut tcp = bind_connect(tls_addr, PROXY).await;
    tcp.write_all(&v2(PROXY_COMMAND, client)).await.unwrap();
    let (mut session, greeting) = tls_session(tcp, &files.cert).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(
        tls_run(&mut session, &login_command(&alice))
            .await
            .starts_with("l OK")
    );
    // The header's address is the one capped, on this listener too.
    // (Refused before the handshake, in clear, as without a proxy.)
    let mut tcp = bind_connect(tls_addr, PROXY).await;
    tcp.write_all(&v1(client)).await.unwrap();
    let mut refused = String::new();
    BufReader::new(tcp).read_line(&mut refused).await.unwrap();
    assert_eq!(refused.trim_end(), TOO_MANY);
    // From an unlisted address the header is no TLS hello: the handshake fails.
    let mut tcp = bind_connect(tls_addr, CLIENT_A).await;
    tcp.write_all(&v2(PROXY_COMMAND, client)).await.unwrap();
    let handshake = connector(&[&files.cert]).connect(localhost(), tcp).await;
    assert!(
        handshake.is_err(),
        "a PROXY header was taken from an unlisted peer"
    );
}

#[tokio::test]
async fn behind_haproxy_send_proxy_v2_and_v1() {
    for send_proxy in ["send-proxy-v2", "send-proxy"] {
        let server = TestServer::start_with(Backend::Sqlite, options(1)).await;
        let alice = server.user("alice@example.com").await;
        let frontend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let _haproxy = HaProxy::start(
            &format!(
                "frontend imap\n    bind {frontend}\n    default_backend servers\n\n\
                 backend servers\n    server s1 {} {send_proxy}\n",
                server.addr
            ),
            &[frontend],
        );
        // HAProxy connects from 127.0.0.1 every time; the server caps
        // the clients it names.
        let _first = logged_in_through(frontend, CLIENT_A, &alice, send_proxy).await;
        let second = Client::connect_from(frontend, CLIENT_A).await;
        assert_eq!(second.greeting, TOO_MANY, "{send_proxy}");
        let _other = logged_in_through(frontend, CLIENT_B, &alice, send_proxy).await;
    }
}

#[tokio::test]
async fn behind_haproxy_imaps_and_the_loopback_rule() {
    let (server, files, alice, _dir) = with_tls(CleartextLogin::LoopbackOnly, 0).await;
    let imaps = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let local = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let remote = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // `remote` plays a client from elsewhere: HAProxy rewrites the source
    // it reports, as it would report a real remote client's.
    let _haproxy = HaProxy::start(
        &format!(
            "listen imaps\n    bind {imaps}\n    server s1 {} send-proxy-v2\n\n\
             listen local\n    bind {local}\n    server s1 {} send-proxy-v2\n\n\
             listen remote\n    bind {remote}\n    tcp-request connection set-src ipv4(192.0.2.11)\n    \
             server s1 {} send-proxy-v2\n",
            server.tls_addr.unwrap(),
            server.addr,
            server.addr
        ),
        &[imaps, local, remote],
    );
    let tcp = bind_connect(imaps, CLIENT_A).await;
    let (mut session, greeting) = tls_session(tcp, &files.cert).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(
        tls_run(&mut session, &login_command(&alice))
            .await
            .starts_with("l OK")
    );
    let mut loopback = Client::connect_from(local, CLIENT_A).await;
    assert!(loopback.run(&login_command(&alice)).await.is_ok());
    let mut elsewhere = Client::connect_from(remote, CLIENT_A).await;
    assert!(
        elsewhere.greeting.contains("LOGINDISABLED"),
        "{}",
        elsewhere.greeting
    );
    let login = elsewhere.run(&login_command(&alice)).await;
    assert!(
        login.tail().starts_with("NO [PRIVACYREQUIRED]"),
        "{login:?}"
    );
}

/// Greeted and logged in through `frontend`, connecting from `local`.
async fn logged_in_through(frontend: SocketAddr, local: IpAddr, user: &User, how: &str) -> Client {
    let mut client = Client::connect_from(frontend, local).await;
    assert!(
        client.greeting.starts_with("* OK"),
        "{how}: {}",
        client.greeting
    );
    assert!(client.run(&login_command(user)).await.is_ok(), "{how}");
    client
}

/// A server with STARTTLS and IMAPS behind the loopback proxy, and alice.
async fn with_tls(
    cleartext: CleartextLogin,
    cap: u32,
) -> (TestServer, TlsFiles, User, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate(dir.path());
    let options = Options {
        tls: Some((files.clone(), cleartext)),
        ..options(cap)
    };
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let alice = server.user("alice@example.com").await;
    (server, files, alice, dir)
}

fn certificate(dir: &Path) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        reload_interval: Duration::from_secs(60),
    };
    write_self_signed(&["localhost".into()], &files.cert, &files.key).unwrap();
    files
}

async fn bind_connect(addr: SocketAddr, local: IpAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

type TlsSession = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

/// The handshake, then the greeting (or a refusal's BYE).
async fn tls_session(tcp: TcpStream, cert: &Path) -> (TlsSession, String) {
    let tls = connector(&[cert])
        .connect(localhost(), tcp)
        .await
        .expect("TLS handshake");
    let mut session = BufReader::new(tls);
    let greeting = tls_line(&mut session).await;
    (session, greeting)
}

async fn tls_line(session: &mut TlsSession) -> String {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(20), session.read_line(&mut line))
        .await
        .expect("an answer in time")
        .expect("read over TLS");
    line.trim_end().to_owned()
}

/// Sends `command` tagged `l` and returns the tagged answer.
async fn tls_run(session: &mut TlsSession, command: &str) -> String {
    session
        .get_mut()
        .write_all(format!("l {command}\r\n").as_bytes())
        .await
        .unwrap();
    loop {
        let line = tls_line(session).await;
        if line.starts_with("l ") {
            return line;
        }
    }
}
