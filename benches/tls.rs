//! TLS costs, measured on the release binary in its own process:
//! handshakes per second on the IMAPS port, and the server's memory per idle
//! connection, TLS against plain.
//!
//! Run with `cargo bench --bench tls`. The client runs on the same machine,
//! so the handshake rate is a floor for the server alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imap_server::server::tls::write_self_signed;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Connections held open for the memory figure (within the default limit of
/// 1024 open files for both processes).
const IDLE_CONNECTIONS: usize = 800;
const HANDSHAKE_SECONDS: u64 = 5;
const HANDSHAKE_CLIENTS: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn start_server(dir: &Path, plain: u16, tls: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_imap-server"))
        .current_dir(dir)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/bench.db", dir.display()),
        )
        .env("IMAP_BIND", format!("127.0.0.1:{plain}"))
        .env("IMAPS_BIND", format!("127.0.0.1:{tls}"))
        .env("TLS_CERT", dir.join("cert.pem"))
        .env("TLS_KEY", dir.join("key.pem"))
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the release binary")
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn connector(cert: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert).expect("certificate") {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn greeting<S: tokio::io::AsyncRead + Unpin>(stream: S) -> BufReader<S> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("greeting");
    assert!(line.starts_with("* OK"), "{line}");
    reader
}

async fn tls_connection(
    connector: &TlsConnector,
    port: u16,
) -> BufReader<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    greeting(tls).await
}

async fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

async fn handshakes_per_second(connector: &TlsConnector, port: u16) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(HANDSHAKE_SECONDS);
    let started = Instant::now();
    let clients = (0..HANDSHAKE_CLIENTS).map(|_| {
        let connector = connector.clone();
        tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                drop(tls_connection(&connector, port).await);
                done += 1;
            }
            done
        })
    });
    let mut total = 0;
    for client in clients.collect::<Vec<_>>() {
        total += client.await.expect("client task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// KiB of server memory per idle connection, from the resident size before
/// and after opening `IDLE_CONNECTIONS` of them.
async fn memory_per_connection<F, Fut, C>(pid: u32, open: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = C>,
{
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = resident_kib(pid);
    let mut held = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        held.push(open().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = resident_kib(pid);
    drop(held);
    after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert = dir.path().join("cert.pem");
    write_self_signed(&["localhost".into()], &cert, &dir.path().join("key.pem"))
        .expect("certificate");
    let (plain, tls) = (free_port(), free_port());
    let mut server = start_server(dir.path(), plain, tls);
    wait_until_listening(tls).await;
    let connector = connector(&cert);
    let pid = server.id();

    // Warm up: the first connections allocate the runtime's pools.
    for _ in 0..20 {
        drop(tls_connection(&connector, tls).await);
    }
    let rate = handshakes_per_second(&connector, tls).await;
    println!("TLS handshakes (full, TLS 1.3, {HANDSHAKE_CLIENTS} clients): {rate:>8.0} per second");

    let plain_kib = memory_per_connection(pid, || async {
        greeting(
            TcpStream::connect(("127.0.0.1", plain))
                .await
                .expect("connect"),
        )
        .await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tls_kib = memory_per_connection(pid, || tls_connection(&connector, tls)).await;
    println!("memory per idle plain connection: {plain_kib:>8.1} KiB ({IDLE_CONNECTIONS} held)");
    println!("memory per idle TLS connection:   {tls_kib:>8.1} KiB ({IDLE_CONNECTIONS} held)");
    println!(
        "server resident size at the end:  {:>8} KiB",
        resident_kib(pid)
    );
    let _ = server.kill();
    let _ = server.wait();
}
