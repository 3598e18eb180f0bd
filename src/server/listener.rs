//! The accept loop: a cap on simultaneous connections, one task per
//! connection, and a graceful shutdown that says BYE to every session.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::handler::{self, Security};
use super::per_address::PerAddress;
use super::proxy_protocol::{self, ProxyProtocol};
use super::sessions::Sessions;
use super::stream::Stream;
use super::tls::{Certificates, TlsError};
use crate::config::Config;
use crate::imap::{Services, Transport};

/// Why the server could not start; each message is one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {0}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE; set IMAP_BIND=127.0.0.1:1143 for an unprivileged port)"
    )]
    PermissionDenied(SocketAddr),
    #[error("cannot listen on {0}: the address is already in use (is another server running?)")]
    AddressInUse(SocketAddr),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, io::Error),
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// Who may log in without TLS once TLS is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleartextLogin {
    /// Clients on loopback only (a local proxy, a health check): the default.
    LoopbackOnly,
    /// Everyone (`ALLOW_PLAINTEXT_AUTH=true`).
    Everyone,
    /// No one, not even loopback (for tests of the refusal).
    NoOne,
}

/// TLS as the server uses it.
struct Tls {
    acceptor: TlsAcceptor,
    /// The implicit-TLS listener (IMAPS), if any.
    listener: Option<TcpListener>,
    cleartext: CleartextLogin,
}

pub struct Server {
    listener: TcpListener,
    tls: Option<Tls>,
    services: Arc<Services>,
    max_connections: usize,
    /// Peers whose connections open with a PROXY header.
    proxy_protocol: Option<Arc<ProxyProtocol>>,
}

impl Server {
    /// Binds the listeners the configuration asks for, serving `services`.
    pub async fn start(config: &Config, services: Arc<Services>) -> Result<Server, StartError> {
        let mut server = Server::bind(config.imap_bind, services).await?;
        if let Some(networks) = &config.proxy_protocol_from {
            server = server.with_proxy_protocol(ProxyProtocol::new(networks.clone()));
        }
        match &config.tls {
            Some(files) => {
                let certificates = Certificates::open(files.clone())?;
                certificates.watch();
                let cleartext = if config.allow_plaintext_auth {
                    CleartextLogin::Everyone
                } else {
                    CleartextLogin::LoopbackOnly
                };
                server
                    .with_tls(&certificates, config.imaps_bind, cleartext)
                    .await
            }
            None => {
                tracing::warn!(
                    "TLS is not configured (TLS_CERT, TLS_KEY): IMAP tokens travel in clear; keep IMAP_BIND on a trusted network"
                );
                Ok(server)
            }
        }
    }

    /// Adds STARTTLS on the plain listener and, with `imaps`, an
    /// implicit-TLS listener.
    pub async fn with_tls(
        mut self,
        certificates: &Arc<Certificates>,
        imaps: Option<SocketAddr>,
        cleartext: CleartextLogin,
    ) -> Result<Server, StartError> {
        let listener = match imaps {
            Some(address) => Some(listen(address).await?),
            None => None,
        };
        self.tls = Some(Tls {
            acceptor: certificates.acceptor(),
            listener,
            cleartext,
        });
        Ok(self)
    }

    /// The implicit-TLS listener's address, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        let listener = self.tls.as_ref()?.listener.as_ref()?;
        listener.local_addr().ok()
    }

    pub async fn bind(address: SocketAddr, services: Arc<Services>) -> Result<Server, StartError> {
        let listener = listen(address).await?;
        let max_connections = services.limits.max_connections;
        Ok(Server {
            listener,
            tls: None,
            services,
            max_connections,
            proxy_protocol: None,
        })
    }

    /// Reads a PROXY header on connections from the peers `proxy` lists,
    /// on both listeners, and takes the client's address from it.
    pub fn with_proxy_protocol(mut self, proxy: ProxyProtocol) -> Server {
        self.proxy_protocol = Some(Arc::new(proxy));
        self
    }

    /// What a connection's task needs of the TLS set-up.
    fn tls_parts(&self) -> TlsParts {
        TlsParts(
            self.tls
                .as_ref()
                .map(|tls| (tls.acceptor.clone(), tls.cleartext)),
        )
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then closes every session with a BYE.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let per_address = PerAddress::new(self.services.limits.max_connections_per_ip);
        let sessions = Arc::new(Sessions::default());
        let rechecks = sessions.spawn_rechecks(
            self.services.directory.clone(),
            self.services.limits.session_recheck,
        );
        let (stop, stopped) = watch::channel(false);
        tokio::pin!(shutdown);
        let imaps = self.tls.as_ref().and_then(|tls| tls.listener.as_ref());
        loop {
            let (accepted, implicit_tls) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => (accepted, false),
                accepted = accept_on(imaps) => (accepted, true),
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection refused: too many connections");
                refuse(stream, b"* BYE Too many connections, try again later\r\n");
                continue;
            };
            let services = self.services.clone();
            let sessions = sessions.clone();
            let stopped = stopped.clone();
            let per_address = per_address.clone();
            let proxy = self.proxy_protocol.clone();
            let tls = self.tls_parts();
            // IMAP_LOGIN_TIMEOUT counts from here: an IMAPS handshake (and a
            // PROXY header) spends the same time the session has to log in.
            let login_deadline = Instant::now() + services.limits.login_timeout;
            let listener = if implicit_tls { "imaps" } else { "imap" };
            let open = services.metrics.connection_opened(listener);
            tokio::spawn(async move {
                let mut stream = stream;
                // Behind a proxy, the client is who the header names: the
                // per-address cap, the penalty, the logs and the loopback
                // rule all follow it.
                let Some(client) = client_address(&mut stream, peer, proxy.as_deref()).await else {
                    return;
                };
                let via = (client != peer).then_some(peer);
                let Some(held) = per_address.try_hold(client.ip()) else {
                    tracing::warn!(peer = %client, "connection refused: too many from this address");
                    say_bye(
                        stream,
                        b"* BYE [UNAVAILABLE] Too many connections from your address\r\n",
                    )
                    .await;
                    return;
                };
                let (security, acceptor) = tls.for_client(client, implicit_tls);
                if let Some(stream) = open_stream(stream, client, acceptor, login_deadline).await {
                    let connection = handler::Accepted {
                        peer: client,
                        via,
                        security,
                        login_deadline,
                    };
                    handler::serve(stream, connection, services, sessions, stopped).await;
                }
                // The places are given back only now, however it ended.
                drop((held, slot, open));
            });
        }
        // New clients are refused at once rather than left in the backlog.
        drop(self.listener);
        drop(self.tls);
        tracing::info!("shutting down");
        // Every session is about to hear "shutting down"; none should hear
        // a re-check's verdict instead.
        if let Some(rechecks) = rechecks {
            rechecks.abort();
        }
        let _ = stop.send(true);
        // Each session finishes the command it is running, then says BYE.
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let grace = self.services.limits.shutdown_timeout;
        if tokio::time::timeout(grace, slots.acquire_many(all))
            .await
            .is_err()
        {
            let left = self
                .max_connections
                .saturating_sub(slots.available_permits());
            tracing::warn!(
                sessions = left,
                ?grace,
                "shutdown timeout: closing the sessions still busy"
            );
        }
    }
}

/// The TLS acceptor and the cleartext rule, without the listener: what a
/// connection's task decides its security with, once it knows the client.
struct TlsParts(Option<(TlsAcceptor, CleartextLogin)>);

impl TlsParts {
    /// What a connection from `client` may do, given how it arrived, and the
    /// acceptor for its implicit-TLS handshake, if it needs one.
    fn for_client(self, client: SocketAddr, implicit_tls: bool) -> (Security, Option<TlsAcceptor>) {
        let Some((acceptor, cleartext)) = self.0 else {
            let plain = Security {
                starttls: None,
                transport: Transport::PLAIN,
            };
            return (plain, None);
        };
        let cleartext_login = match cleartext {
            CleartextLogin::Everyone => true,
            CleartextLogin::LoopbackOnly => client.ip().to_canonical().is_loopback(),
            CleartextLogin::NoOne => false,
        };
        let security = Security {
            starttls: (!implicit_tls).then(|| acceptor.clone()),
            transport: Transport {
                encrypted: implicit_tls,
                can_start_tls: true,
                cleartext_login,
            },
        };
        (security, implicit_tls.then_some(acceptor))
    }
}

/// The client's address: the socket's, or, from a listed proxy, the one its
/// PROXY header names. `None`: a listed peer without a valid header, closed.
async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    proxy: Option<&ProxyProtocol>,
) -> Option<SocketAddr> {
    let Some(proxy) = proxy.filter(|p| p.expects_header_from(peer.ip())) else {
        return Some(peer);
    };
    match proxy_protocol::read_client_address(stream, peer, proxy.header_timeout).await {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::info!(%peer, %error, "connection closed: PROXY protocol expected from this address");
            None
        }
    }
}

/// Answers a connection that is refused, off the accept loop: a client that
/// does not read must not stall it. The write is bounded by the socket buffer.
fn refuse(stream: TcpStream, bye: &'static [u8]) {
    tokio::spawn(say_bye(stream, bye));
}

async fn say_bye(mut stream: TcpStream, bye: &'static [u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(bye)).await;
    let _ = stream.shutdown().await;
}

async fn listen(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => StartError::PermissionDenied(address),
            io::ErrorKind::AddrInUse => StartError::AddressInUse(address),
            _ => StartError::Listen(address, e),
        })
}

/// Accepts on the implicit-TLS listener; never, without one.
async fn accept_on(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The connection's stream: plain, or TLS after a handshake that must finish
/// by the login deadline (a silent client must not hold a slot forever).
async fn open_stream(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    login_deadline: Instant,
) -> Option<Stream> {
    let Some(acceptor) = acceptor else {
        return Some(Stream::Plain(tcp));
    };
    match tokio::time::timeout_at(login_deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            None
        }
    }
}
