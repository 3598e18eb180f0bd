//! One connection: feeds framed input to the session, sends its answers,
//! enforces the silence timeouts, and logs the connection's life.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::connection::{Connection, Frame, ReadError};
use super::sessions::{Registered, Sessions};
use super::stream::Stream;
use crate::directory::AuthError;
use crate::imap::outcome::Failure;
use crate::imap::refusal::Problem;
use crate::imap::response::Out;
use crate::imap::session::{Input, Next};
use crate::imap::{Services, Session, Transport};

/// Input read from the wire, owned.
enum Read {
    Command(Vec<u8>),
    Line(Option<Vec<u8>>),
    Refused {
        tag: Option<String>,
        problem: Problem,
    },
}

impl Read {
    fn as_input(&self) -> Input<'_> {
        match self {
            Read::Command(bytes) => Input::Command(bytes),
            Read::Line(line) => Input::Line(line.as_deref()),
            Read::Refused { tag, problem } => Input::Refused {
                tag: tag.clone(),
                problem: *problem,
            },
        }
    }
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    next: Next,
) -> Result<Read, ReadError> {
    match next {
        Next::Line | Next::Idle => Ok(Read::Line(connection.read_plain_line().await?)),
        _ => Ok(match connection.read_frame().await? {
            Frame::Command(bytes) => Read::Command(bytes),
            Frame::Refused { tag, problem } => Read::Refused { tag, problem },
        }),
    }
}

/// How a connection may use TLS.
#[derive(Clone)]
pub struct Security {
    /// For STARTTLS on a plain connection; `None` without TLS configured.
    pub starttls: Option<TlsAcceptor>,
    pub transport: Transport,
}

/// What the listener knows of a connection it accepted.
pub struct Accepted {
    /// The client: the socket's peer, or who a PROXY header named.
    pub peer: SocketAddr,
    /// The proxy the connection came through, when a PROXY header named
    /// someone else.
    pub via: Option<SocketAddr>,
    pub security: Security,
    /// When the client must have logged in by (IMAP_LOGIN_TIMEOUT counted
    /// from the accept, TLS handshakes included), however chatty it is: a
    /// client sending NOOP every few seconds must not hold an
    /// unauthenticated slot forever.
    pub login_deadline: Instant,
}

pub async fn serve(
    stream: Stream,
    accepted: Accepted,
    services: Arc<Services>,
    sessions: Arc<Sessions>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Accepted {
        peer,
        via,
        security,
        login_deadline,
    } = accepted;
    match via {
        Some(proxy) => {
            tracing::info!(%peer, %proxy, tls = stream.is_encrypted(), "connection opened")
        }
        None => tracing::info!(%peer, tls = stream.is_encrypted(), "connection opened"),
    }
    let mut connection = Connection::new(stream, &services.limits);
    connection.count_traffic(services.metrics.traffic());
    let mut idle_mark = services.metrics.idle_mark();
    let mut session = Session::new(services, peer, security.transport);
    let mut out = Out::new();
    session.greeting(&mut out);
    let mut next = Next::Command;
    // When the client must have said something by. Reports sent during IDLE
    // do not move it: a client that vanished without closing the connection
    // must not hold its session forever.
    let mut deadline = next_deadline(&session, login_deadline);
    // Once logged in: the entry the periodic re-check may end.
    let mut registration: Option<Registered> = None;
    let reason = loop {
        idle_mark.set(next == Next::Idle);
        connection.write(out.bytes());
        out.clear();
        if let Err(error) = connection.flush().await {
            tracing::debug!(%peer, %error, "write failed");
            break "write failed";
        }
        if next == Next::Close {
            connection.close().await;
            break "closed by server";
        }
        if next == Next::StartTls {
            let Some(acceptor) = &security.starttls else {
                break "STARTTLS without TLS";
            };
            let dropped = connection.discard_input();
            if dropped > 0 {
                tracing::info!(%peer, dropped, "discarded input pipelined after STARTTLS");
            }
            let handshake = connection.stream_mut().start_tls(acceptor);
            // STARTTLS is only valid before login: the handshake, too, must
            // be over by the login deadline.
            match tokio::time::timeout_at(login_deadline, handshake).await {
                Ok(Ok(())) => {
                    session.tls_started();
                    next = Next::Command;
                    deadline = next_deadline(&session, login_deadline);
                    continue;
                }
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "TLS handshake failed");
                    break "TLS handshake failed";
                }
                Err(_) => break "TLS handshake timed out",
            }
        }
        if next == Next::Compress {
            connection.start_compression();
            next = Next::Command;
        }
        // A timeout on the read fires only when the read has to wait: a
        // client that always has its next command queued (or pipelined one
        // behind a penalised LOGIN) would be read past the deadline.
        if session.account().is_none() && Instant::now() >= login_deadline {
            out.bye(timeout_text(&session));
            next = Next::Close;
            continue;
        }
        // A command that was running when shutdown began has just been
        // answered: the BYE follows it.
        if *shutdown.borrow() {
            out.bye("Server shutting down");
            next = Next::Close;
            continue;
        }
        let read = tokio::select! {
            _ = shutdown.changed() => {
                out.bye("Server shutting down");
                next = Next::Close;
                continue;
            }
            read = tokio::time::timeout_at(deadline, read(&mut connection, next)) => read,
            reason = revoked(&mut registration) => {
                let failure = Failure::from(reason);
                match &failure.code {
                    Some(code) => out.bye_with(code, &failure.text),
                    None => out.bye(&failure.text),
                }
                next = Next::Close;
                continue;
            }
            // Reading is cancel-safe: bytes already received stay buffered.
            wake = session.wait_for_change(), if next == Next::Idle => {
                next = session.idle_update(wake, &mut out).await;
                continue;
            }
        };
        let input = match read {
            Ok(Ok(input)) => input,
            Err(_) => {
                out.bye(timeout_text(&session));
                next = Next::Close;
                continue;
            }
            Ok(Err(ReadError::Flood)) => {
                out.bye("Literal too large; closing connection");
                next = Next::Close;
                continue;
            }
            Ok(Err(ReadError::Closed)) => break "closed by client",
            Ok(Err(ReadError::Io(error))) => {
                tracing::debug!(%peer, %error, "read failed");
                break "read failed";
            }
        };
        // A long answer streams out while it is built (see `Out::streaming`).
        let mut streaming = Out::streaming(&mut connection);
        next = session.handle(input.as_input(), &mut streaming).await;
        let (rest, broken) = streaming.finish();
        if broken {
            break "write failed";
        }
        out.extend(&rest);
        connection.allow_message_literals(session.account().is_some());
        if registration.is_none()
            && let Some(account) = session.account()
        {
            registration = Some(sessions.register(account));
        }
        deadline = next_deadline(&session, login_deadline);
    };
    let user = session
        .account()
        .map(|a| a.email.clone())
        .unwrap_or_default();
    tracing::info!(%peer, %user, reason, "connection closed");
}

/// The re-check's verdict on this session, once it has one.
async fn revoked(registration: &mut Option<Registered>) -> AuthError {
    match registration {
        Some(registered) => registered.ended().await,
        None => std::future::pending().await,
    }
}

/// Logged in: the idle timeout from now. Not yet: the login deadline.
fn next_deadline(session: &Session, login_deadline: Instant) -> Instant {
    match session.account() {
        Some(_) => Instant::now() + session.timeout(),
        None => login_deadline,
    }
}

fn timeout_text(session: &Session) -> &'static str {
    match session.account() {
        Some(_) => session.timeout_text(),
        None => "Login timed out",
    }
}
