//! The operator's HTTP listener (`METRICS_BIND`): `GET /metrics`,
//! `GET /health/live` and `GET /health/ready`, nothing else.
//!
//! Deliberately small and strict: one request per connection, a request
//! head of at most `HEAD_LIMIT` bytes that must arrive within
//! `READ_TIMEOUT`, no body, at most `MAX_CONNECTIONS` at once. Anything
//! else is answered 400, 404, 405 or 408 and closed; nothing hangs.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as METRICS_TYPE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::imap::Services;

/// Request line and headers together.
pub const HEAD_LIMIT: usize = 8 * 1024;
/// For the whole request head: a client trickling bytes is cut off.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 32;
const MAX_HEADERS: usize = 32;
/// After answering, what the client still sends is read and dropped for a
/// moment, so that the kernel does not answer unread input with a reset
/// that destroys the answer before the client reads it.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_LIMIT: usize = 64 * 1024;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} (METRICS_BIND): {source}")]
pub struct BindError {
    address: SocketAddr,
    source: io::Error,
}

/// Binds `address`; serving starts with `serve`.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| BindError { address, source })
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, services: Arc<Services>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the cap, the connection is simply closed: scrapers retry.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let services = services.clone();
        tokio::spawn(async move {
            answer(stream, &services).await;
            drop(slot);
        });
    }
}

/// An answer: status line, content type, body.
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: String,
    /// For 405.
    allow: bool,
}

impl Reply {
    fn text(status: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: false,
        }
    }

    fn bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

async fn answer(mut stream: TcpStream, services: &Services) {
    let (reply, head_only) = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await
    {
        Err(_) => (
            Reply::text("408 Request Timeout", "request timeout\n"),
            false,
        ),
        Ok(Err(Unreadable::Closed)) => return,
        Ok(Err(Unreadable::TooLarge)) => (
            Reply::text("400 Bad Request", "request head too large\n"),
            false,
        ),
        Ok(Ok(head)) => match parse(&head) {
            Ok(request) => (route(&request, services).await, request.head_only),
            Err(reply) => (reply, false),
        },
    };
    let write = async {
        stream.write_all(&reply.bytes(head_only)).await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(WRITE_TIMEOUT, write).await.is_err() {
        return;
    }
    drain(&mut stream).await;
}

enum Unreadable {
    Closed,
    TooLarge,
}

/// Reads up to the blank line that ends the head, never past `HEAD_LIMIT`.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Unreadable> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Unreadable::Closed)?;
        if read == 0 {
            return Err(Unreadable::Closed);
        }
        // Where to look for the end: the new bytes and the three before them.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(head);
        }
        if head.len() >= HEAD_LIMIT {
            return Err(Unreadable::TooLarge);
        }
    }
}

/// The offset just past `\r\n\r\n` (or a bare `\n\n`).
fn find_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Request {
    path: String,
    head_only: bool,
}

fn parse(head: &[u8]) -> Result<Request, Reply> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let bad = |why: &str| Reply::text("400 Bad Request", format!("{why}\n"));
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request")),
        Err(httparse::Error::TooManyHeaders) => return Err(bad("too many headers")),
        Err(_) => return Err(bad("malformed request")),
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(bad("malformed request"));
    };
    // A body is not read: a request that announces one is refused rather
    // than misread as the next request.
    let has_body = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
    });
    if has_body {
        return Err(bad("a request body is not accepted"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Err(Reply {
                allow: true,
                ..Reply::text("405 Method Not Allowed", "only GET and HEAD\n")
            });
        }
    };
    let path = target.split(['?', '#']).next().unwrap_or_default();
    Ok(Request {
        path: path.to_owned(),
        head_only,
    })
}

async fn route(request: &Request, services: &Services) -> Reply {
    match request.path.as_str() {
        "/metrics" => Reply {
            status: "200 OK",
            content_type: METRICS_TYPE,
            body: services.metrics.encode(),
            allow: false,
        },
        "/health/live" => Reply::text("200 OK", "live\n"),
        "/health/ready" => match services.health.ready().await {
            Ok(()) => Reply::text("200 OK", "ready\n"),
            Err(reason) => Reply::text("503 Service Unavailable", format!("not ready: {reason}\n")),
        },
        _ => Reply::text("404 Not Found", "not found\n"),
    }
}

async fn drain(stream: &mut TcpStream) {
    let drain = async {
        let mut buffer = [0u8; 4096];
        let mut drained = 0;
        while drained < DRAIN_LIMIT {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn requests_are_parsed_strictly() {
        let ok = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!((ok.path.as_str(), ok.head_only), ("/metrics", false));
        let status = |head: &[u8]| parse(head).err().map(|reply| reply.status);
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some("405 Method Not Allowed")
        );
        assert_eq!(status(b"GET\r\n\r\n"), Some("400 Bad Request"));
        assert_eq!(
            status(b"\x16\x03\x01\x02\x00\r\n\r\n"),
            Some("400 Bad Request")
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Some("400 Bad Request")
        );
    }
}
